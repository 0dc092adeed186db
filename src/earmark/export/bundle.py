"""Build a deployable bundle from a training run: ONNX from raw waveform to probabilities.

A bundle is a folder::

    model.onnx     waveform (batch, samples) float32 -> probabilities (batch, classes)
    earmark.json   labels, sample rate, window and hop, front-end and training
                   config, validation metrics, parity and footprint figures

The front-end and the network are exported separately and joined into one
graph, so ``--int8`` can quantize the network (Conv and Gemm, calibrated on
training audio) while the front-end stays in float. Export checks
onnxruntime against torch on real validation windows and fails past 1e-4.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import torch

from earmark import __version__
from earmark.atomic import write_json
from earmark.config import ExperimentConfig, to_dict
from earmark.data.dataset import Dataset, open_dataset
from earmark.data.manifest import from_csv
from earmark.errors import EarmarkError
from earmark.frontend.module import FrontEnd
from earmark.models import count_parameters
from earmark.models.dscnn_stream import DSCNNStream, state_shapes, stream_layout, supports_streaming
from earmark.network import hop_samples, load_trained, window_samples
from earmark.export.tables import compact_frontend, shorten_names
from earmark.runtime.bundle import (
    BUNDLE_JSON,
    BUNDLE_MODEL,
    STREAM_FRAMES,
    STREAM_STEP,
    STREAM_WINDOW,
)

#: Export fails when onnxruntime and torch differ by more than this.
PARITY_TOLERANCE = 1e-4
#: At most this many validation windows are compared.
PARITY_WINDOWS = 1000


class ExportError(EarmarkError):
    """The exported graph does not reproduce the trained model."""


class _Frames(torch.nn.Module):
    """Waveform -> per-frame levels (the part a stream computes incrementally)."""

    def __init__(self, frontend: FrontEnd):
        super().__init__()
        self.frontend = frontend
        self.min_samples = frontend.min_samples

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return self.frontend.frames(waveform)


class _Finish(torch.nn.Module):
    """One window's frames -> features (relative levels, DCT, deltas)."""

    def __init__(self, frontend: FrontEnd):
        super().__init__()
        self.frontend = frontend

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.frontend.finish(frames)


class _ProbabilityHead(torch.nn.Module):
    """The network on features, ending in softmax."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(features), dim=-1)


@dataclass
class ExportResult:
    bundle: Path
    metadata: dict


@dataclass
class _Parts:
    """The three exported pieces, joined for the bundle and for streaming."""

    frames: Path        # waveform -> frames
    finish: Path        # frames -> features
    network: Path       # features -> probabilities


def export_run(run_dir: str | Path, out: str | Path, int8: bool = False,
               calibration_windows: int = 300, progress: bool = True) -> ExportResult:
    """Export ``run_dir``'s best model to the bundle folder ``out`` (replaced atomically)."""
    run_dir, out = Path(run_dir), Path(out)
    config, labels, classifier = load_trained(run_dir)
    dataset = open_dataset(config, from_csv(run_dir / "manifest.csv"), progress=progress)
    dataset.labels = labels
    window = window_samples(config)
    validation = _windows(dataset, dataset.indices("validation") or dataset.indices("train"),
                          config, limit=None)
    # A fresh front-end for the tables: torch's exporter strips the traced one.
    tables = FrontEnd(config.features, config.data.sample_rate)
    macs = _macs(classifier, window)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        parts = _export_parts(classifier, torch.from_numpy(validation[0][:2]), scratch)
        graph = _assemble([parts.frames, parts.finish, parts.network], tables)
        parity = _check_parity(graph, classifier, validation[0])
        quality = {"float32": _quality(graph, validation)}
        if int8:
            calibration = _windows(dataset, dataset.indices("train"), config,
                                   limit=calibration_windows)[0]
            parts.network = _quantize(parts, calibration, scratch)
            graph = _assemble([parts.frames, parts.finish, parts.network], tables)
            quality["int8"] = _quality(graph, validation)
        for name, figures in quality.items():
            print(f"{name}: validation accuracy {figures['accuracy']:.4f} (per window), "
                  f"{figures['size_bytes'] / 1024:.0f} KiB")
        metadata = _metadata(config, labels, run_dir, window, parity, quality, int8)
        metadata.update(parameters=count_parameters(classifier), macs_per_window=macs,
                        stream=_stream_metadata(tables, window))
        stepped = not int8 and supports_streaming(classifier.model, classifier.frontend)
        onnx.helper.set_model_props(graph, {"earmark": json.dumps(_header(metadata),
                                                                  separators=(",", ":"))})
        staging = scratch / "bundle"
        (staging / "stream").mkdir(parents=True)
        onnx.save(graph, str(staging / BUNDLE_MODEL))
        onnx.save(_assemble([parts.frames], tables), str(staging / STREAM_FRAMES))
        onnx.save(_assemble([parts.finish, parts.network], tables), str(staging / STREAM_WINDOW))
        if stepped:
            metadata["stream"]["network"] = _export_step(classifier, staging,
                                                         metadata["stream"]["frames_per_window"])
        write_json(staging / BUNDLE_JSON, metadata)
        _replace_folder(staging, out)
    return ExportResult(out, metadata)


def _export_parts(classifier, example: torch.Tensor, scratch: Path) -> _Parts:
    frontend = classifier.frontend
    parts = _Parts(scratch / "frames.onnx", scratch / "finish.onnx", scratch / "network.onnx")
    with torch.no_grad():
        frames = frontend.frames(example)
        features = frontend.finish(frames)
    _export_module(_Frames(frontend), example, parts.frames, "waveform", "frames",
                   dynamic_length=True)
    _export_module(_Finish(frontend), frames, parts.finish, "frames", "features",
                   dynamic_length=False)
    _export_module(_ProbabilityHead(classifier.model), features, parts.network, "features",
                   "probabilities", dynamic_length=False)
    return parts


def _export_step(classifier, folder: Path, window_frames: int) -> dict:
    """The stream step of a streamable DS-CNN (samples and states in, a result per frame out)."""
    model, frontend = classifier.model.eval(), classifier.frontend
    layout = stream_layout(model, window_frames)
    shapes = state_shapes(model, frontend)
    # Two new frames in the example: their number stays a dynamic dimension.
    frames = torch.zeros(1, 2, frontend.n_fft)
    count = torch.export.Dim("frames", min=1, max=1 << 16)
    step = DSCNNStream(model, frontend)
    states = tuple(torch.zeros(shape) for shape in shapes.values())
    path = folder / STREAM_STEP
    _export_fixed(step, (frames, *states), path,
                  ["frames", *shapes], ["probabilities", *(f"next_{name}" for name in shapes)],
                  dynamic_shapes=({1: count}, None, None, None))
    graph = compact_frontend(onnx.load(str(path)), frontend)
    shorten_names(graph)
    onnx.save(graph, str(path))
    return {**layout, "states": shapes}


def _export_fixed(module: torch.nn.Module, examples: tuple, path: Path, inputs: list[str],
                  outputs: list[str], dynamic_shapes=None) -> None:
    """torch.onnx dynamo export of a module with several inputs and outputs."""
    with _quiet_export():
        torch.onnx.export(module.eval(), examples, str(path), dynamo=True,
                          external_data=False, input_names=inputs, output_names=outputs,
                          dynamic_shapes=dynamic_shapes, verbose=False)


def _stream_metadata(frontend: FrontEnd, window: int) -> dict:
    """How a stream cuts frames: only frame-local front-ends can be computed incrementally."""
    return {"frames_per_window": frontend.frames_for(window),
            "frame_hop_samples": frontend.hop_length, "frame_samples": frontend.n_fft,
            "incremental": not frontend.config.center and frontend.kind != "spectrogram128"}


def _windows(dataset: Dataset, indices: list[int], config: ExperimentConfig,
             limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Every analysis window of the recordings (or an even sample of ``limit``), with targets."""
    window = window_samples(config)
    jobs = dataset.window_jobs(indices, window, hop_samples(config))
    if limit is not None and len(jobs) > limit:
        chosen = np.linspace(0, len(jobs) - 1, limit).round().astype(int)
        jobs = [jobs[i] for i in chosen]
    waveforms = np.stack([dataset.store.window(i, s, window) for i, s in jobs])
    targets = np.array(dataset.targets([i for i, _ in jobs]))
    return waveforms.astype(np.float32, copy=False), targets


def _export_module(module: torch.nn.Module, example: torch.Tensor, path: Path,
                   input_name: str, output_name: str, dynamic_length: bool) -> None:
    """torch.onnx dynamo export with a dynamic batch (and optionally length)."""
    module = module.eval()
    dims = {0: torch.export.Dim("batch")}
    if dynamic_length:
        dims[1] = torch.export.Dim("samples", min=2 * max(getattr(module, "min_samples", 2), 2))
    with _quiet_export():
        torch.onnx.export(module, (example,), str(path), dynamo=True, external_data=False,
                          input_names=[input_name], output_names=[output_name],
                          dynamic_shapes={_first_argument(module): dims}, verbose=False)


@contextlib.contextmanager
def _quiet_export():
    """No gradients, and none of the exporter's chatter (a line per op it cannot find)."""
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with warnings.catch_warnings(), torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def _first_argument(module: torch.nn.Module) -> str:
    import inspect
    return next(iter(inspect.signature(module.forward).parameters))


def _macs(classifier: torch.nn.Module, window: int) -> int:
    """Multiply-accumulates of one window, front-end included (torch's FLOP counter / 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        classifier(torch.zeros(1, window))
    return int(counter.get_total_flops() // 2)


def _quantize(parts: _Parts, calibration: np.ndarray, scratch: Path) -> Path:
    """Static int8 quantization of the network (Conv, Gemm, Relu), calibrated on features."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    frontend = _session(_assemble([parts.frames, parts.finish], None))
    features = [frontend.run(None, {"waveform": calibration[i:i + 32]})[0]
                for i in range(0, len(calibration), 32)]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter(features)

        def get_next(self):
            batch = next(self.batches, None)
            return None if batch is None else {"features": batch}

    prepared = scratch / "network.prep.onnx"
    quant_pre_process(str(parts.network), str(prepared), skip_symbolic_shape=True)
    quantized = scratch / "network.int8.onnx"
    # QOperator (QLinearConv) with per-tensor scales: the smallest graph, and on
    # the keyword model as accurate as QDQ per-channel (measured at export).
    quantize_static(str(prepared), str(quantized), Reader(), quant_format=QuantFormat.QOperator,
                    op_types_to_quantize=["Conv", "Gemm", "MatMul", "Relu"],
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    per_channel=False)
    return quantized


_PREFIXES = {"waveform": "frontend/", "frames": "finish/", "features": "network/"}


def _assemble(paths: list[Path], frontend: FrontEnd | None) -> onnx.ModelProto:
    """Join consecutive pieces (each one's output is the next one's input) into one graph.

    The graph keeps its outer input and output names; with ``frontend`` the
    front-end tables become formulas and internal names are shortened.
    """
    models = [onnx.load(str(path)) for path in paths]
    opset = max(_opset(model) for model in models)
    prefixed = []
    for model in models:
        prefix = _PREFIXES[model.graph.input[0].name]
        prefixed.append(onnx.compose.add_prefix(_with_opset(model, opset), prefix))
    joined = prefixed[0]
    for following in prefixed[1:]:
        joined = onnx.compose.merge_models(
            joined, following, io_map=[(joined.graph.output[0].name,
                                         following.graph.input[0].name)])
    outer = {joined.graph.input[0].name: models[0].graph.input[0].name,
             joined.graph.output[0].name: models[-1].graph.output[0].name}
    joined.graph.input[0].name = outer[joined.graph.input[0].name]
    joined.graph.output[0].name = outer[joined.graph.output[0].name]
    for node in joined.graph.node:
        node.input[:] = [outer.get(name, name) for name in node.input]
        node.output[:] = [outer.get(name, name) for name in node.output]
    if frontend is not None:
        compact_frontend(joined, frontend)
        shorten_names(joined)
    return joined


def _opset(model: onnx.ModelProto) -> int:
    return max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def _with_opset(model: onnx.ModelProto, opset: int) -> onnx.ModelProto:
    if _opset(model) == opset:
        return model
    return onnx.version_converter.convert_version(model, opset)


def _session(graph: onnx.ModelProto) -> onnxruntime.InferenceSession:
    return onnxruntime.InferenceSession(graph.SerializeToString(),
                                        providers=["CPUExecutionProvider"])


def _run(graph: onnx.ModelProto, waveforms: np.ndarray, batch: int = 64) -> np.ndarray:
    session = _session(graph)
    return np.concatenate([session.run(None, {"waveform": waveforms[i:i + batch]})[0]
                           for i in range(0, len(waveforms), batch)])


def _check_parity(graph: onnx.ModelProto, classifier, waveforms: np.ndarray) -> dict:
    """onnxruntime vs torch on real windows: max abs difference and top-1 agreement."""
    waveforms = waveforms[:PARITY_WINDOWS]
    exported = _run(graph, waveforms)
    with torch.no_grad():
        expected = np.concatenate([
            torch.softmax(classifier(torch.from_numpy(waveforms[i:i + 64])), dim=-1).numpy()
            for i in range(0, len(waveforms), 64)])
    difference = float(np.abs(exported - expected).max())
    agree = float((exported.argmax(1) == expected.argmax(1)).mean())
    print(f"onnxruntime vs torch on {len(waveforms)} validation windows: max |diff| "
          f"{difference:.2e}, same top-1 on {agree:.2%}")
    if difference > PARITY_TOLERANCE:
        raise ExportError(f"onnxruntime and torch differ by {difference:.2e} (> "
                          f"{PARITY_TOLERANCE:.0e}) on real inputs; the export is wrong, "
                          "nothing was written")
    return {"windows": len(waveforms), "max_abs_diff": difference, "top1_agreement": agree}


def _quality(graph: onnx.ModelProto, validation: tuple[np.ndarray, np.ndarray]) -> dict:
    """Validation accuracy per window and the serialized size of ``graph``."""
    waveforms, targets = validation
    accuracy = float((_run(graph, waveforms).argmax(1) == targets).mean())
    return {"accuracy": accuracy, "size_bytes": graph.ByteSize()}


def _metadata(config: ExperimentConfig, labels: list[str], run_dir: Path, window: int,
              parity: dict, quality: dict, int8: bool) -> dict:
    summary_path = run_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    settings = to_dict(config)
    return {
        "format": "earmark-bundle", "format_version": 1, "earmark_version": __version__,
        "labels": labels, "sample_rate": config.data.sample_rate,
        "window_samples": window, "hop_samples": hop_samples(config),
        "aggregate": config.data.aggregate, "input": "waveform", "output": "probabilities",
        "quantization": ("int8-static (network Conv/Gemm/Relu, per-tensor; front-end float)"
                         if int8 else "none"),
        "features": settings["features"], "model": settings["model"],
        "augment": settings["augment"], "train": settings["train"],
        "data": {k: settings["data"][k] for k in ("sample_rate", "clip_seconds", "hop_seconds",
                                                  "aggregate", "split", "group_pattern")},
        "metrics": {k: v for k, v in summary.items() if k.startswith("validation")},
        "export_quality": quality,
        "parity": parity,
    }


def _header(metadata: dict) -> dict:
    """What a runtime needs, embedded in the graph so model.onnx also works alone."""
    keys = ("format", "format_version", "labels", "sample_rate", "window_samples",
            "hop_samples", "aggregate", "input", "output", "quantization")
    return {key: metadata[key] for key in keys}


def _replace_folder(staging: Path, out: Path) -> None:
    """Move the finished bundle into place; an old bundle there is replaced whole."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists() and not (out / BUNDLE_JSON).is_file():
        raise EarmarkError(f"{out} exists and is not an earmark bundle; choose another --out")
    temporary = out.with_name(f".{out.name}.partial")
    shutil.rmtree(temporary, ignore_errors=True)
    shutil.copytree(staging, temporary)
    if out.exists():
        old = out.with_name(f".{out.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
        temporary.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        temporary.rename(out)
