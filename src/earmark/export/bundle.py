"""Build a deployable bundle from a training run: ONNX from raw waveform to probabilities.

A bundle is a folder::

    model.onnx     waveform (batch, samples) float32 -> probabilities (batch, classes)
    earmark.json   labels, sample rate, window and hop, front-end and training
                   config, validation metrics, parity and footprint figures
    stream/        the pieces a stream runs (see :mod:`earmark.export.stream`)

Export needs only the run folder: the weights, the config, and the real
validation and training windows training kept (``export_windows.npz``) for
the parity check (:mod:`~earmark.export.parity`) and int8 calibration
(:mod:`~earmark.export.quantize`). Runs trained before training kept them
are exported from their recordings, as before.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import onnx
import torch

from earmark import __version__
from earmark.atomic import write_json
from earmark.config import ExperimentConfig, to_dict
from earmark.errors import EarmarkError
from earmark.export.embedding_graph import (STEP_CONTEXT_SAMPLES, export_head,
                                           features_graph, frames_step_graph)
from earmark.export.graph import assemble, export_parts
from earmark.export.parity import ExportError, check_parity, graph_quality
from earmark.export.quantize import INT8_DESCRIPTION, quantize_network
from earmark.export.stream import export_step, stream_description
from earmark.data.dataset import EXPORT_CALIBRATION_WINDOWS
from earmark.frontend import sliding_embedding
from earmark.frontend import bird_embedding as bird
from earmark.frontend import embedding_int8
from earmark.frontend.bird_embedding import KIND as BIRD_KIND
from earmark.frontend.embedding_module import KIND as EMBEDDING_KIND
from earmark.frontend.module import FrontEnd
from earmark.models import count_parameters
from earmark.models.dscnn_stream import supports_streaming
from earmark.network import load_trained, window_hop_samples, window_samples
from earmark.progress import ProgressLike
from earmark.run_folder import ExportWindows, RunFolder
from earmark.runtime.graph_input import graph_feed
from earmark.runtime.metadata import (
    BIRDNET_INPUT,
    BUNDLE_JSON,
    BUNDLE_MODEL,
    CURRENT_FORMAT_VERSION,
    FORMAT_NAME,
    GRAPH_HEADER_KEY,
    MODEL_INPUT,
    STREAM_FRAMES,
    STREAM_FRAMES_STEP,
    STREAM_STEP,
    STREAM_WINDOW,
    BundleMetadata,
    StreamMetadata,
    file_sha256,
)

logger = logging.getLogger(__name__)


@dataclass
class ExportResult:
    bundle: Path
    metadata: BundleMetadata


def export_run(run_dir: str | Path, out: str | Path, int8: bool = False,
               calibration_windows: int = EXPORT_CALIBRATION_WINDOWS, progress: ProgressLike = None) -> ExportResult:
    """Export ``run_dir``'s best model to the bundle folder ``out`` (replaced atomically).

    Parameters
    ----------
    int8 : bool
        Quantize the network statically to int8 (the front-end stays float).
    calibration_windows : int
        Training windows that calibrate int8 (at most as many as training kept).
    progress : Progress, optional
        Told of decoding, for runs exported from their recordings.
    """
    run = RunFolder(run_dir)
    config, labels, classifier = load_trained(run.path)
    check_front_end_target(config, "onnx", int8)
    windows = real_windows(run, config, progress)
    window = window_samples(config)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        if config.features.kind == EMBEDDING_KIND:
            graphs = _embedding_graphs(classifier, windows, window, scratch)
        elif config.features.kind == BIRD_KIND:
            graphs = _bird_graphs(classifier, windows, window, config.data.sample_rate,
                                  scratch)
        else:
            graphs = _frontend_graphs(config, classifier, windows, calibration_windows,
                                      scratch, int8)
        _log_quality(graphs.quality)
        record = _metadata(config, labels, run, window, graphs, int8)
        record.update(parameters=count_parameters(classifier),
                      macs_per_window=_macs(classifier, window),
                      stream=graphs.stream)
        staging = scratch / "bundle"
        metadata = _stage(staging, graphs, classifier, record)
        replace_folder(staging, Path(out))
    return ExportResult(Path(out), metadata)


@dataclass
class BundleGraphs:
    """What a bundle is made of: the whole graph, the pieces a stream runs, and the checks
    that the graph computes what torch does."""

    model: onnx.ModelProto
    frames: onnx.ModelProto | None      #: None: no stream graphs (the stream runs ``model``)
    window: onnx.ModelProto | None
    stream: dict | None
    parity: dict
    quality: dict
    #: Whether a valid-padded DS-CNN gets its one-frame stream step (a float network on
    #: earmark's front-end).
    steppable: bool = False
    #: New frames from new samples with the front-end's states (the speech embedding).
    frames_step: onnx.ModelProto | None = None
    #: What ``model`` takes (the bundle's ``input``): the waveform, or a pretrained
    #: network's output (BirdNET's, run beside the graph).
    input: str = MODEL_INPUT


def _frontend_graphs(config: ExperimentConfig, classifier, windows: ExportWindows,
                     calibration_windows: int, scratch: Path, int8: bool) -> BundleGraphs:
    """earmark's own front-ends: torch pieces exported, joined, the network optionally
    int8."""
    # A fresh front-end for the tables: torch's exporter strips the traced one.
    tables = FrontEnd(config.features, config.data.sample_rate)
    parts = export_parts(classifier, torch.from_numpy(windows.validation[:2]), scratch)
    graph = assemble([parts.frames, parts.finish, parts.network], tables)
    parity = check_parity(graph, classifier, windows.validation)
    quality = {"float32": graph_quality(graph, windows.validation, windows.validation_targets)}
    if int8:
        calibration = calibration_sample(windows.calibration, calibration_windows)
        parts.network = quantize_network(parts, calibration, scratch)
        graph = assemble([parts.frames, parts.finish, parts.network], tables)
        quality["int8"] = graph_quality(graph, windows.validation, windows.validation_targets)
    return BundleGraphs(graph, assemble([parts.frames], tables),
                        assemble([parts.finish, parts.network], tables),
                        stream_description(tables, window_samples(config)), parity, quality,
                        steppable=not int8)


def _embedding_graphs(classifier, windows: ExportWindows, window: int,
                      scratch: Path) -> BundleGraphs:
    """The pretrained speech embedding's graphs and the model on its columns."""
    columns = classifier.frontend.frames_for(window)
    depth = classifier.frontend.depth
    export_head(classifier.model, columns, scratch / "head.onnx", depth.dimensions)
    int8 = classifier.frontend.int8
    features = features_graph(blocks=depth.blocks, int8=int8)
    window_graph = onnx.load(str(scratch / "head.onnx"))
    graph = assemble([features, window_graph], None)
    parity = check_parity(graph, classifier, windows.validation)
    precision = "embedding_int8" if int8 else "float32"
    quality = {precision: graph_quality(graph, windows.validation, windows.validation_targets)}
    frames_step, states = frames_step_graph(blocks=depth.blocks, int8=int8)
    stream = {"frames_per_window": columns, "frame_hop_samples": depth.hop_samples,
              "frame_samples": depth.window_samples, "incremental": True,
              "frames_step": {"context_samples": STEP_CONTEXT_SAMPLES, "states": states}}
    return BundleGraphs(graph, features, window_graph, stream, parity, quality,
                        frames_step=frames_step)


def _bird_graphs(classifier, windows: ExportWindows, window: int, sample_rate: int,
                 scratch: Path) -> BundleGraphs:
    """The model on BirdNET's embedding, fed by BirdNET beside it (no bundle holds BirdNET:
    the runtime runs the installed file); the stream recomputes whole windows."""
    frontend = classifier.frontend
    export_head(classifier.model, frontend.frames_for(window), scratch / "head.onnx",
                dimensions=frontend.bands)
    graph = onnx.load(str(scratch / "head.onnx"))
    feed = graph_feed(BIRDNET_INPUT, sample_rate, playback_rates=frontend.playback_rates)
    parity = check_parity(graph, classifier, windows.validation, feed)
    quality = {"float32": graph_quality(graph, windows.validation, windows.validation_targets,
                                        feed)}
    return BundleGraphs(graph, None, None, None, parity, quality, input=BIRDNET_INPUT)


def whole_window_detection(config: ExperimentConfig) -> dict[str, float]:
    """The stream settings of a bundle that runs a pretrained network on whole windows: a
    result every hop of the recordings (not a keyword's 20 ms: BirdNET 50 times a second
    runs behind real time), the last two averaged, one detection per three hops."""
    hop_ms = 1000.0 * window_hop_samples(config) / config.data.sample_rate
    return {"stride_ms": hop_ms, "average_window_ms": 2 * hop_ms, "minimum_count": 2,
            "suppression_ms": 3 * hop_ms}


def check_front_end_target(config: ExperimentConfig, target: str = "onnx",
                           int8: bool = False) -> None:
    """A bundle holds its front-end in the graph; the micro front-end (the device's C code,
    with state across frames) is none that ONNX or LiteRT graphs can hold, and the
    pretrained speech embedding comes as float ONNX graphs only."""
    if config.features.kind == EMBEDDING_KIND and int8:
        raise ExportError("--int8 quantizes earmark's own networks; this run stands on the "
                          "pretrained speech embedding (features.kind = \"embedding\"), "
                          "exported as trained: leave out --int8 (an embedding in int8 is "
                          "chosen before training: features.embedding_int8 = true)")
    if config.features.kind == EMBEDDING_KIND and target != "onnx":
        raise ExportError(f"--target {target} converts earmark's own front-ends; this run "
                          "stands on the pretrained speech embedding (features.kind = "
                          "\"embedding\"), whose graphs exist as ONNX only: export it with "
                          "--target onnx")
    if config.features.kind == BIRD_KIND and (int8 or target != "onnx"):
        raise ExportError("this run stands on BirdNET's embedding (features.kind = "
                          "\"birdnet\"), a float LiteRT network that its bundle runs beside "
                          "the model, never inside a graph: export it with --target onnx "
                          "and no --int8")
    if config.features.kind == "micro":
        raise ExportError("this run's front-end is the TFLite-Micro one (features.kind = "
                          "\"micro\"), computed beside the model on a device, never inside a "
                          "graph: export it with --target micro (microWakeWord / ESPHome "
                          "files); --target onnx and litert take the logmel, mfcc, "
                          "spectrogram and spectrogram128 front-ends")


def real_windows(run: RunFolder, config: ExperimentConfig,
                  progress: ProgressLike) -> ExportWindows:
    """The windows training kept; for older runs, the same cut from the recordings."""
    kept = run.read_export_windows()
    if kept is not None:
        return kept
    from earmark.data.dataset import export_windows, open_dataset
    from earmark.data.manifest import from_csv

    if not run.summary.is_file():
        logger.warning("%s is unfinished (no summary.json): exporting its best weights so "
                       "far; `earmark train ... --resume` finishes it", run.path)
    logger.info("%s keeps no export windows (%s): reading them from the recordings", run.path,
                "trained by an older earmark" if run.summary.is_file() else "unfinished")
    dataset = open_dataset(config, from_csv(run.manifest), progress=progress)
    dataset.labels = run.read_labels()
    return export_windows(dataset, window_samples(config), window_hop_samples(config))


def calibration_sample(kept: np.ndarray, wanted: int) -> np.ndarray:
    """``wanted`` of the kept training windows, evenly spread."""
    if wanted > len(kept):
        logger.warning("the run kept %d training windows for calibration; using those, "
                       "not %d", len(kept), wanted)
        return kept
    return kept[np.linspace(0, len(kept) - 1, wanted).round().astype(int)]


def _log_quality(quality: dict) -> None:
    for name, figures in quality.items():
        logger.info(f"{name}: validation accuracy {figures['accuracy']:.4f} (per window), "
                    f"{figures['size_bytes'] / 1024:.0f} KiB")


def _stage(staging: Path, graphs: BundleGraphs, classifier, record: dict) -> BundleMetadata:
    """Write every file of the bundle into ``staging``; the metadata, checked as a
    loader checks it, last, with the hash of the graph's bytes."""
    staging.mkdir(parents=True)
    if graphs.stream is not None:
        (staging / "stream").mkdir()
    if graphs.steppable and supports_streaming(classifier.model, classifier.frontend):
        record["stream"]["network"] = export_step(classifier, staging / STREAM_STEP,
                                                  record["stream"]["frames_per_window"])
    metadata = BundleMetadata.from_json(record, staging / BUNDLE_JSON)
    graph = graphs.model
    onnx.helper.set_model_props(graph, {GRAPH_HEADER_KEY: json.dumps(
        metadata.header_json(), separators=(",", ":"))})
    onnx.save(graph, str(staging / BUNDLE_MODEL))
    metadata = replace(metadata, model_sha256=file_sha256(staging / BUNDLE_MODEL))
    if metadata.stream is not None:
        metadata = replace(metadata, stream=_stage_stream(staging, graphs, metadata.stream))
    write_json(staging / BUNDLE_JSON, metadata.to_json())
    return metadata


def _stage_stream(staging: Path, graphs: BundleGraphs, stream: StreamMetadata
                  ) -> StreamMetadata:
    """The stream's graphs written, and their hashes in its record."""
    onnx.save(graphs.frames, str(staging / STREAM_FRAMES))
    onnx.save(graphs.window, str(staging / STREAM_WINDOW))
    if graphs.frames_step is not None:
        onnx.save(graphs.frames_step, str(staging / STREAM_FRAMES_STEP))
    stream_files = sorted(path.relative_to(staging).as_posix()
                          for path in (staging / "stream").glob("*.onnx"))
    return replace(stream, files_sha256={name: file_sha256(staging / name)
                                         for name in stream_files})


def _macs(classifier: torch.nn.Module, window: int) -> int:
    """Multiply-accumulates of one window, front-end included (torch's FLOP counter / 2;
    a pretrained embedding, outside torch, counted from its graph)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        classifier(torch.zeros(1, window))
    kind = classifier.frontend.kind
    outside = (sliding_embedding.macs(window, classifier.frontend.depth.blocks)
               if kind == EMBEDDING_KIND else
               bird.network_macs() * classifier.frontend.count(window)
               * len(classifier.frontend.playback_rates) if kind == BIRD_KIND
               else 0)
    return int(counter.get_total_flops() // 2) + outside


def _quantization(config: ExperimentConfig, int8: bool) -> str:
    """What the bundle's metadata says of its numbers' precision."""
    if config.features.kind == EMBEDDING_KIND and config.features.embedding_int8:
        return embedding_int8.DESCRIPTION
    return INT8_DESCRIPTION if int8 else "none"


def _metadata(config: ExperimentConfig, labels: list[str], run: RunFolder, window: int,
              graphs: BundleGraphs, int8: bool) -> dict:
    summary = run.read_summary()
    settings = to_dict(config)
    whole_windows = graphs.input != MODEL_INPUT     # a pretrained network runs beside
    return {
        "format": FORMAT_NAME, "format_version": CURRENT_FORMAT_VERSION,
        "earmark_version": __version__,
        "labels": labels, "sample_rate": config.data.sample_rate,
        "window_samples": window, "hop_samples": window_hop_samples(config),
        "aggregate": config.data.aggregate, "input": graphs.input, "output": "probabilities",
        "quantization": _quantization(config, int8),
        "features": settings["features"], "model": settings["model"],
        "augment": settings["augment"], "train": settings["train"],
        "data": {k: settings["data"][k] for k in ("sample_rate", "clip_seconds", "hop_seconds",
                                                  "aggregate", "split", "group_pattern")},
        "metrics": {k: v for k, v in summary.items() if k.startswith("validation")},
        "export_quality": graphs.quality,
        "parity": graphs.parity,
        **({"detection": whole_window_detection(config)} if whole_windows else {}),
    }


def replace_folder(staging: Path, out: Path, marker: str = BUNDLE_JSON) -> None:
    """Move the finished bundle into place; an old bundle there (a folder holding
    ``marker``) is replaced whole."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists() and not (out / marker).is_file():
        raise EarmarkError(f"{out} exists and is not an earmark bundle or export (it holds no "
                           f"{marker}); choose another --out")
    temporary = out.with_name(f".{out.name}.partial")
    shutil.rmtree(temporary, ignore_errors=True)
    try:
        shutil.copytree(staging, temporary)
    except OSError:
        shutil.rmtree(temporary, ignore_errors=True)     # a full disk leaves no half copy
        raise
    if out.exists():
        old = out.with_name(f".{out.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
        temporary.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        temporary.rename(out)
