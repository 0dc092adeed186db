"""``earmark export RUN --out DIR --target micro``: a wake word for microWakeWord and ESPHome.

A run trained on the micro front-end (``features.kind = "micro"``) with the
causal ``tcn`` model becomes the files ESPHome's ``micro_wake_word`` and
``pymicro-wakeword`` load, with earmark's own float reference beside them::

    <word>.tflite        streaming int8: (1, 3, 40) int8 micro features in (three
                         10 ms frames a call) -> (1, 1) the wake word's probability;
                         the state in the graph's variables (READ/ASSIGN_VARIABLE)
    <word>.json          the manifest, version 2: probability cutoff, sliding window,
                         feature step, tensor arena (measured in TFLite-Micro)
    window.onnx          float: (batch, frames, 40) features -> (batch, classes)
                         probabilities, the window the stream's last call sees
                         (earmark's runtime, :mod:`earmark.runtime.micro_wakeword`)
    earmark_micro.json   labels, the wake word's class, window, stride, the figures
    micro/earmark_model.h, .cc   the streaming model as C source

The stream step (:class:`~earmark.models.tcn_stream.TCNStream`) is converted
by ``litert-torch`` with its state as inputs and outputs, quantized to int8
by ``ai-edge-quantizer`` (calibrated on the states and frames of real
training windows streamed through it), and its state then moved into
variables (:mod:`earmark.export.tflite_variables`). Parity: every real
validation window is streamed through the int8 file in the LiteRT
interpreter and compared with the float window model.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from earmark.atomic import write_json
from earmark.errors import ConfigError
from earmark.export.bundle import calibration_sample, real_windows, replace_folder
from earmark.export.graph import export_module
from earmark.export.litert import (compact_tflite, convert_to_tflite, quantize_int8,
                                   require_converter, signature)
from earmark.export.micro_source import c_identifier, write_c_source
from earmark.export.esphome_ops import ESPHOME_VARIABLES, for_esphome
from earmark.export.parity import ExportError
from earmark.export.tflite_variables import shared_ranges, states_to_variables
from earmark.frontend import micro
from earmark.models.tcn import CausalTCN
from earmark.models.tcn_stream import TCNStream
from earmark.network import load_trained
from earmark.progress import ProgressLike
from earmark.run_folder import RunFolder
from earmark.runtime.micro_wakeword import (MICRO_JSON, STRIDE, MicroWindowModel,
                                            StreamingTFLite)
from earmark.runtime.litert_model import tensor_arena_bytes

logger = logging.getLogger(__name__)

#: Training windows streamed through the float step for int8 calibration, and the
#: calls sampled from them.
CALIBRATION_WINDOWS, CALIBRATION_CALLS = 64, 600
#: Classes that are never a wake word.
NOT_WAKE_WORDS = ("_unknown_", "_silence_", "_background_noise_")
#: What ESPHome's micro_wake_word needs at least to read manifest version 2.
MINIMUM_ESPHOME = "2024.7.0"


@dataclass
class MicroExport:
    folder: Path
    figures: dict


def export_micro(run_dir: str | Path, out: str | Path, wake_word: str | None = None,
                 probability_cutoff: float = 0.9, sliding_window: int = 5,
                 progress: ProgressLike = None) -> MicroExport:
    """The microWakeWord files of ``run_dir`` in ``out`` (written whole, or not at all)."""
    require_converter()
    micro.require_micro_features()
    run = RunFolder(run_dir)
    config, labels, classifier = load_trained(run.path)
    model = streamable_model(config, classifier)
    target = wake_word_class(labels, wake_word)
    windows = real_windows(run, config, progress)
    validation = window_features(classifier, windows.validation)
    calibration = window_features(classifier, calibration_sample(windows.calibration,
                                                                 CALIBRATION_WINDOWS))
    step = TCNStream(model, target)
    name = file_stem(labels[target])
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        staging = scratch / "micro"
        staging.mkdir()
        tflite = streaming_tflite(step, calibration, scratch)
        (staging / f"{name}.tflite").write_bytes(tflite)
        export_module(WindowScores(model), torch.from_numpy(validation[:1]),
                      staging / "window.onnx", "features", "probabilities",
                      dynamic_length=False)
        description = {"labels": labels, "wake_word": labels[target], "target": target,
                       "window_frames": model.receptive_frames, "stride": STRIDE,
                       "probability_cutoff": probability_cutoff,
                       "sliding_window_size": sliding_window, "model": f"{name}.tflite"}
        figures = parity(MicroWindowModel.open(description, staging / "window.onnx"),
                         staging / f"{name}.tflite", validation,
                         windows.validation_targets == target, probability_cutoff)
        figures["tensor_arena_bytes"] = tensor_arena_bytes(tflite)
        if figures["tensor_arena_bytes"] is None:
            raise ConfigError("--target micro measures the tensor arena ESPHome allocates "
                              "with tflite-micro: pip install 'earmark[edge]'")
        write_json(staging / MICRO_JSON, {**description, "figures": figures})
        write_json(staging / f"{name}.json",
                   manifest(labels[target], name, probability_cutoff, sliding_window,
                            figures["tensor_arena_bytes"]))
        write_c_source(staging / "micro", tflite, labels,
                       _c_defines(figures, probability_cutoff, sliding_window, target),
                       f"{labels[target]}: a microWakeWord streaming model, three 10 ms "
                       "frames of micro front-end features a call -> the wake word's "
                       "probability; state in resource variables.")
        replace_folder(staging, Path(out), marker=MICRO_JSON)
    return MicroExport(Path(out), figures)


def streamable_model(config, classifier) -> CausalTCN:
    """The run's model, or an ExportError saying what ``--target micro`` exports."""
    kind, model = config.features.kind, classifier.model
    if kind != "micro" or not isinstance(model, CausalTCN):
        elsewhere = {"embedding": "; this run exports with --target onnx",
                     "birdnet": "; this run exports with --target onnx"}
        raise ExportError(
            f"--target micro exports a model of the micro front-end: features.kind = "
            f"\"micro\" and [model] name = \"tcn\" (this run: features.kind = {kind!r}, "
            f"model {config.model.name!r}). The TFLite-Micro front-end computes 40 channels "
            "every 10 ms with its own noise reduction and gain control, which no other "
            "front-end reproduces; train with `earmark wakeword PHRASE --target micro` (or "
            "a config with those two settings)"
            + elsewhere.get(kind, ", or export this run with --target litert"))
    if model.head.out_features != 2:
        raise ExportError(f"--target micro: a microWakeWord model answers one probability; "
                          f"this run has {model.head.out_features} classes. Train the wake "
                          "word against everything else as two classes (data.classes = "
                          "[word, \"_unknown_\"]; `earmark wakeword --target micro` does)")
    if model.stem_kernel <= model.stride or model.head_columns < 2:
        raise ExportError("--target micro needs model.stem_kernel > model.stride and "
                          "head_columns >= 2 (every state holds at least one column)")
    if model.stride != STRIDE:
        raise ExportError(f"--target micro: microWakeWord feeds {STRIDE} frames a call; "
                          f"this model's stride is {model.stride}")
    return model


def wake_word_class(labels: list[str], wake_word: str | None) -> int:
    """The index of the class the model wakes on: ``wake_word``, or the run's only class
    that is not ``_unknown_`` / ``_silence_``."""
    if wake_word is not None:
        if wake_word not in labels or wake_word in NOT_WAKE_WORDS:
            raise ConfigError(f"--wake-word {wake_word!r} is not a word class of this run; "
                              f"its classes: {labels} ({', '.join(NOT_WAKE_WORDS)} never "
                              "are)")
        return labels.index(wake_word)
    words = [label for label in labels if label not in NOT_WAKE_WORDS]
    if len(words) != 1:
        raise ConfigError(f"this run has {len(words)} classes that could be the wake word "
                          f"({words}); say which with --wake-word")
    return labels.index(words[0])


def file_stem(label: str) -> str:
    """The export's file names for ``label`` (never one of the folder's other files)."""
    stem = c_identifier(label).lower()
    return f"{stem}_wake_word" if stem in ("earmark_micro", "window", "class") else stem


class WindowScores(torch.nn.Module):
    """(batch, frames, 40) features -> (batch, classes) probabilities."""

    def __init__(self, model: CausalTCN):
        super().__init__()
        self.model = model.eval()

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(features.transpose(1, 2).unsqueeze(1)), dim=-1)


def window_features(classifier, waveforms: np.ndarray) -> np.ndarray:
    """(windows, frames, 40) micro features of waveform windows (the last frames the model
    reads, each window from a fresh front-end as in training)."""
    with torch.no_grad():
        features = classifier.frontend(torch.from_numpy(waveforms))[:, 0].transpose(1, 2)
    return features[:, -classifier.model.receptive_frames:].contiguous().numpy()


def streaming_tflite(step: TCNStream, calibration: np.ndarray, scratch: Path) -> bytes:
    """The int8 streaming file: converted, calibrated, quantized, its state in variables."""
    states = step.zero_states()
    frames = torch.zeros(1, STRIDE, micro.CHANNELS)
    float_path = scratch / "step_float.tflite"
    convert_to_tflite(step, (frames, *states), float_path)
    _, inputs, outputs = signature(float_path)
    examples = calibration_calls(step, calibration, inputs)
    ranges = shared_ranges(float_path.read_bytes(), inputs[1:], outputs[1:],
                           {inputs[0]: (0.0, micro.FEATURE_MAX)})
    # Each tensor's whole range over the calls: the rare wake-word calls reach far.
    quantize_int8(float_path, examples, scratch / "step_int8.tflite", ".*", "CHANNELWISE",
                  ranges, per_tensor_ops=("MUL",), whole_range=True)
    compact = compact_tflite(scratch / "step_int8.tflite", scratch / "step_compact.tflite")
    if len(inputs) - 1 > ESPHOME_VARIABLES:
        raise ExportError(f"the stream keeps {len(inputs) - 1} states; ESPHome makes room "
                          f"for {ESPHOME_VARIABLES}: use fewer dilations")
    return for_esphome(states_to_variables(compact.read_bytes(), inputs[1:], outputs[1:]))


def calibration_calls(step: TCNStream, windows: np.ndarray, names: list[str]) -> list[dict]:
    """The step's inputs (frames and states) at calls sampled at random from streaming
    ``windows`` through the float step, plus silence and the loudest frames the front-end
    gives (the input's range is then microWakeWord's, 0-26)."""
    calls = []
    with torch.no_grad():
        for features in windows:
            states = step.zero_states()
            for start in range(0, len(features) - STRIDE + 1, STRIDE):
                frames = torch.from_numpy(features[None, start:start + STRIDE])
                calls.append([frames, *states])
                states = list(step(frames, *states)[1:])
    order = np.random.default_rng(0).permutation(len(calls))[:CALIBRATION_CALLS]
    chosen = [calls[int(i)] for i in order]
    for level in (0.0, micro.FEATURE_MAX):
        chosen.append([torch.full((1, STRIDE, micro.CHANNELS), level), *chosen[-1][1:]])
    return [{name: tensor.numpy().astype(np.float32) for name, tensor in zip(names, call)}
            for call in chosen]


def parity(window: MicroWindowModel, model_path: Path, validation: np.ndarray,
           is_wake_word: np.ndarray, cutoff: float) -> dict:
    """The int8 stream (``model_path``) against the float window on every validation
    window."""
    reference = window.probability(validation)
    stream = StreamingTFLite.load(model_path)
    streamed = np.array([stream.last_probability(features) for features in validation])
    figures = {"validation_windows": int(len(validation))}
    for name, scores in (("window_float", reference), ("stream_int8", streamed)):
        figures[name] = {"accuracy": float(((scores > 0.5) == is_wake_word).mean()),
                         "detections_at_cutoff": int((scores > cutoff).sum())}
    figures["stream_int8"].update(
        agreement_at_cutoff=float(((streamed > cutoff) == (reference > cutoff)).mean()),
        max_abs_difference=float(np.abs(streamed - reference).max()),
        mean_abs_difference=float(np.abs(streamed - reference).mean()),
        latency_ms=stream.latency_ms(), size_bytes=model_path.stat().st_size, cutoff=cutoff)
    return figures


def manifest(wake_word: str, name: str, cutoff: float, sliding_window: int,
             arena: int | None) -> dict:
    """What ESPHome's micro_wake_word and pymicro-wakeword read (version 2)."""
    return {"type": "micro", "wake_word": wake_word.replace("_", " ").strip().title(),
            "author": "earmark", "website": "", "model": f"{name}.tflite",
            "trained_languages": ["en"], "version": 2,
            "micro": {"probability_cutoff": round(float(cutoff), 4), "feature_step_size": 10,
                      "sliding_window_size": int(sliding_window),
                      "tensor_arena_size": int(arena or 0),
                      "minimum_esphome_version": MINIMUM_ESPHOME}}


def _c_defines(figures: dict, cutoff: float, sliding_window: int, target: int) -> dict:
    return {"feature_channels": micro.CHANNELS, "frames_per_call": STRIDE,
            "feature_step_ms": 10, "probability_cutoff": float(cutoff),
            "sliding_window_size": int(sliding_window), "wake_word_class": target,
            "tensor_arena_bytes": int(figures.get("tensor_arena_bytes") or 0)}


def format_micro(figures: dict) -> str:
    """The side-by-side table export prints."""
    window, stream = figures["window_float"], figures["stream_int8"]
    arena = figures.get("tensor_arena_bytes")
    return "\n".join([
        f"{'model':<28}{'accuracy':>10}{'agrees':>9}{'KiB':>8}{'ms/call':>9}",
        f"{'window.onnx (float)':<28}{window['accuracy']:>10.4f}{'-':>9}{'-':>8}{'-':>9}",
        f"{'streaming int8 .tflite':<28}{stream['accuracy']:>10.4f}"
        f"{stream['agreement_at_cutoff']:>9.3f}{stream['size_bytes'] / 1024:>8.1f}"
        f"{stream['latency_ms']:>9.3f}",
        f"on {figures['validation_windows']} validation windows (accuracy: wake word or not "
        f"at 0.5; agrees: the same side of the cutoff); max difference "
        f"{stream['max_abs_difference']:.3f}; TFLite-Micro tensor arena: "
        + (f"{arena:,} bytes" if arena else "not measured (pip install tflite-micro)")])


def set_cutoff(folder: str | Path, cutoff: float) -> float:
    """Write a calibrated probability cutoff (rounded to 4 places, as the manifest keeps
    it) into an export's manifest, its description and its C header, each rewritten
    atomically; the cutoff written. The parity figures keep the cutoff they were
    measured at (``figures.stream_int8.cutoff``)."""
    from earmark.atomic import write_text
    from earmark.runtime.micro_wakeword import manifest_path, read_description

    folder, cutoff = Path(folder), round(float(cutoff), 4)
    description = read_description(folder)
    path = manifest_path(folder, description)
    try:
        manifest = json.loads(path.read_text())
        manifest["micro"]["probability_cutoff"] = cutoff
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ConfigError(f"{path} is missing or damaged ({error}); export the run again") \
            from error
    write_json(path, manifest)
    write_json(folder / MICRO_JSON, {**description, "probability_cutoff": cutoff})
    header = folder / "micro" / "earmark_model.h"
    if header.is_file():
        write_text(header, re.sub(r"(#define EARMARK_PROBABILITY_CUTOFF )\S+",
                                  lambda m: f"{m.group(1)}{cutoff!r}f", header.read_text()))
    return cutoff
