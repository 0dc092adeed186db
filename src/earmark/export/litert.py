"""Export to LiteRT (TensorFlow Lite): a run's network as ``.tflite`` files and C source.

``earmark export RUN --out DIR --target litert [--int8]`` writes the usual ONNX
bundle (float; the reference the LiteRT files are checked against) and beside
it ``DIR/litert/``::

    model.tflite          raw waveform (1, samples) float32 -> probabilities, the
                          front-end inside; with --int8 the network inside is int8
                          (activations and weights), the front-end float
    network_int8.tflite   with --int8: the network alone, fully integer (int8 in and
                          out): log-mel features -> probabilities, for microcontrollers
    litert.json           labels, rate, window, front-end, each file's inputs and
                          outputs, accuracies next to the ONNX bundle, latency, sizes,
                          the tensor arena TFLite-Micro needs
    micro/earmark_model.h, .cc   the microcontroller model as a C array (see
                          :mod:`earmark.export.micro_source`)

Conversion uses ``litert-torch`` (the maintained PyTorch-to-LiteRT converter);
int8 uses ``ai-edge-quantizer``'s static recipe (int8 weights per channel, int8
activations calibrated on the training windows the run kept). Parity is checked
in the LiteRT interpreter (``ai-edge-litert``) on the run's real validation
windows; TFLite-Micro's own interpreter (``tflite-micro``) measures the arena.
All of it: ``pip install earmark[edge]``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from earmark.atomic import write_json
from earmark.config import to_dict
from earmark.data.dataset import EXPORT_CALIBRATION_WINDOWS
from earmark.errors import ConfigError
from earmark.export.bundle import (calibration_sample, check_front_end_target, export_run,
                                   real_windows, replace_folder)
from earmark.flatbuffer import read_model, write_model
from earmark.export.micro_source import write_c_source
from earmark.export.parity import ExportError
from earmark.native_output import quiet_stderr
from earmark.network import WaveformClassifier, load_trained, window_samples
from earmark.progress import ProgressLike
from earmark.run_folder import RunFolder
from earmark.runtime import load_bundle
from earmark.runtime.footprint import call_milliseconds
from earmark.runtime.litert_model import LiteRTModel, require_litert, tensor_arena_bytes
from earmark.runtime.smoother import SmootherConfig

logger = logging.getLogger(__name__)

#: The tensors of the network (not the front-end, not the final softmax) carry the
#: module path of the model class in their names: what int8 quantizes inside model.tflite.
NETWORK_TENSORS = r".*earmark\.models\..*"
#: int8 weight granularities tried (ai-edge-quantizer's names); the first wins a tie.
WEIGHT_GRANULARITIES = ("TENSORWISE", "CHANNELWISE")
#: Top-1 agreement with the ONNX bundle below which a float LiteRT export is refused.
FLOAT_AGREEMENT = 0.99


@dataclass
class LiteRTExport:
    bundle: Path               #: the ONNX bundle; the LiteRT files in ``bundle / "litert"``
    figures: dict              #: what litert.json holds


class Scores(torch.nn.Module):
    """A network's logits as probabilities (what a bundle answers)."""

    def __init__(self, network: torch.nn.Module):
        super().__init__()
        self.network = network

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.network(inputs), dim=-1)


def require_converter():
    """``litert_torch``, or a ConfigError that says how to install the edge extra."""
    try:
        with converter_output():                # their import-time notices
            import ai_edge_quantizer  # noqa: F401  (checked here, used later)
            import litert_torch
    except ImportError as error:
        raise ConfigError("--target litert needs the edge extra: pip install 'earmark[edge]'") \
            from error
    require_litert()
    return litert_torch


def export_litert(run_dir: str | Path, out: str | Path, int8: bool = False,
                  calibration_windows: int = EXPORT_CALIBRATION_WINDOWS,
                  progress: ProgressLike = None) -> LiteRTExport:
    """The ONNX bundle of ``run_dir`` in ``out`` with its LiteRT files in ``out/litert``
    (written whole, or not at all)."""
    require_converter()
    run = RunFolder(run_dir)
    config, labels, classifier = load_trained(run.path)
    check_front_end_target(config, "litert")
    classifier.eval()
    windows = real_windows(run, config, progress)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        export_run(run.path, scratch / "bundle", calibration_windows=calibration_windows)
        staging = scratch / "litert"
        staging.mkdir()
        calibration = (calibration_sample(windows.calibration, calibration_windows) if int8
                       else windows.calibration[:0])
        files = _convert_all(classifier, windows, calibration, staging, int8)
        figures = _figures(scratch / "bundle", files, classifier, windows)
        micro = files.get("network_int8.tflite", files["model.tflite"])
        figures["tensor_arena_bytes"] = tensor_arena_bytes(micro.read_bytes())
        figures.update(_description(config, labels, int8, micro.name))
        write_c_source(staging / "micro", micro.read_bytes(), labels,
                       _c_defines(config, figures, micro.name), _c_comment(run, micro.name))
        write_json(staging / "litert.json", figures)
        shutil.move(str(staging), scratch / "bundle" / "litert")
        replace_folder(scratch / "bundle", Path(out))
    return LiteRTExport(Path(out), figures)


def _convert_all(classifier: WaveformClassifier, windows, calibration: np.ndarray,
                 folder: Path, int8: bool) -> dict[str, Path]:
    """model.tflite (and, with int8, network_int8.tflite) in ``folder``.

    int8 weights are quantized per channel and per tensor, and the one with the
    better validation accuracy is kept (the smaller, per tensor, on a tie).
    """
    sample = torch.from_numpy(windows.validation[:1])
    float_model = folder.parent / "float.tflite"
    convert_to_tflite(Scores(classifier), sample, float_model)
    if not int8:
        return {"model.tflite": compact_tflite(float_model, folder / "model.tflite")}
    with torch.no_grad():
        features = classifier.frontend(torch.from_numpy(calibration)).numpy()
        validation = classifier.frontend(torch.from_numpy(windows.validation)).numpy()
    float_network = folder.parent / "network_float.tflite"
    convert_to_tflite(Scores(classifier.model), torch.from_numpy(features[:1]), float_network)
    tried = {}
    for granularity in WEIGHT_GRANULARITIES:
        candidate = folder.parent / f"network_{granularity}.tflite"
        quantize_int8(float_network, features, candidate, ".*", granularity)
        scores = LiteRTModel.load(candidate).predict(validation)
        tried[granularity] = float((scores.argmax(1) == windows.validation_targets).mean())
    chosen = max(WEIGHT_GRANULARITIES, key=tried.__getitem__)     # the first on a tie
    logger.info("int8 weights per %s (validation accuracy per tensor %.4f, per channel %.4f)",
                "tensor" if chosen == "TENSORWISE" else "channel", tried["TENSORWISE"],
                tried["CHANNELWISE"])
    compact_tflite(folder.parent / f"network_{chosen}.tflite", folder / "network_int8.tflite")
    quantize_int8(float_model, calibration, folder.parent / "model_int8.tflite",
                  NETWORK_TENSORS, chosen)
    return {"model.tflite": compact_tflite(folder.parent / "model_int8.tflite",
                                           folder / "model.tflite"),
            "network_int8.tflite": folder / "network_int8.tflite"}


def convert_to_tflite(network: torch.nn.Module, sample: torch.Tensor | tuple[torch.Tensor, ...],
                      path: Path) -> None:
    """litert-torch: the network (batch 1) as a float .tflite file; ``sample``: its input,
    or a tuple of its inputs."""
    import litert_torch

    samples = sample if isinstance(sample, tuple) else (sample,)
    try:
        with converter_output():
            litert_torch.convert(network.eval(), samples).export(str(path))
    except Exception as error:  # the converter raises many kinds; all mean the same here
        raise ExportError(f"LiteRT cannot express this network ({type(error).__name__}: "
                          f"{str(error)[:300]}); supported: the front-ends logmel, mfcc, "
                          "spectrogram and spectrogram128 with the models of `earmark models`"
                          ) from error


def quantize_int8(float_model: Path, calibration: np.ndarray | list[dict[str, np.ndarray]],
                  out: Path, tensors: str, granularity: str,
                  ranges: Callable[[dict], dict] | None = None,
                  per_tensor_ops: tuple[str, ...] = (), whole_range: bool = False) -> None:
    """ai-edge-quantizer's static int8 recipe on the ops whose tensors match ``tensors``,
    calibrated one example at a time (the graph has batch 1). ``calibration``: examples of
    the one input (without the batch axis), or, for several inputs, one dict per example
    from input name to array (with it). ``ranges``, if given, may change the calibrated
    ranges (tensor name -> {"min", "max"}) before they are used. ``per_tensor_ops``
    (``"MUL"``, say) take one weight scale per tensor whatever ``granularity`` says:
    their int8 kernels read one scale only. ``whole_range``: each tensor's range is the
    extremes over all examples (the calibrator otherwise keeps a moving average of each
    example's extremes, which loses rare large values: a stream's few wake-word calls)."""
    from ai_edge_quantizer import qtyping, quantizer, recipe_manager

    key, inputs, _ = signature(float_model)
    if isinstance(calibration, np.ndarray):
        calibration = [{inputs[0]: example[None].astype(np.float32)} for example in calibration]
    recipes = recipe_manager.RecipeManager()
    recipes.add_static_config(regex=tensors,
                              operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
                              activation_num_bits=8, weight_num_bits=8,
                              weight_granularity=qtyping.QuantGranularity(granularity),
                              algorithm_key=recipe_manager.AlgorithmName.MIN_MAX_UNIFORM_QUANT)
    for operation in per_tensor_ops:
        recipes.add_static_config(
            regex=tensors, operation_name=getattr(qtyping.TFLOperationName, operation),
            activation_num_bits=8, weight_num_bits=8,
            weight_granularity=qtyping.QuantGranularity.TENSORWISE,
            algorithm_key=recipe_manager.AlgorithmName.MIN_MAX_UNIFORM_QUANT)
    job = quantizer.Quantizer(str(float_model))
    job.load_quantization_recipe(recipes.get_quantization_recipe())
    with converter_output():
        if whole_range:
            from ai_edge_quantizer import calibrator
            from ai_edge_quantizer.utils import qsv_utils

            calibrating = calibrator.Calibrator(float_model.read_bytes(),
                                                qsv_update_func=qsv_utils.min_max_update)
            calibrating.calibrate({key: calibration}, recipes)
            statistics = calibrating.get_model_qsvs()
        else:
            statistics = job.calibrate({key: calibration})
        if ranges is not None:
            statistics = ranges(statistics)
        job.quantize(statistics).export_model(str(out), overwrite=True)


def compact_tflite(source: Path, out: Path) -> Path:
    """``source`` without its tensors' long debug names (a third of a small model's
    bytes; no runtime reads them), written to ``out``."""
    data = source.read_bytes()
    model, _ = read_model(data)
    for buffer in model.buffers:            # data the writer appended after the flatbuffer
        if buffer.offset > 1:
            buffer.data = np.frombuffer(data, np.uint8, buffer.size, buffer.offset).copy()
            buffer.offset = buffer.size = 0
    for graph in model.subgraphs:
        for number, tensor in enumerate(graph.tensors):
            tensor.name = f"t{number}".encode()
    out.write_bytes(write_model(model))
    return out


@contextlib.contextmanager
def converter_output():
    """The converters' progress (prints, bars, C++ logs) kept off the terminal; what
    Python printed goes to the debug log. Their errors still arrive as exceptions."""
    captured = io.StringIO()
    bars = os.environ.get("TQDM_DISABLE")
    os.environ["TQDM_DISABLE"] = "1"
    try:
        with (contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured),
              warnings.catch_warnings(), quiet_stderr()):
            warnings.simplefilter("ignore")      # their deprecation notices, not the user's
            yield
    finally:
        if bars is None:
            os.environ.pop("TQDM_DISABLE", None)
        else:
            os.environ["TQDM_DISABLE"] = bars
        if captured.getvalue().strip():
            logger.debug("%s", captured.getvalue().strip())


def signature(model: Path) -> tuple[str, list[str], list[str]]:
    """A converted model's signature: its key, its input and output names in the torch
    module's order (``args_10`` after ``args_9``)."""
    signatures = require_litert()(model_path=str(model)).get_signature_list()
    key = next(iter(signatures))
    number = lambda name: int(re.sub(r"\D", "", name) or 0)   # noqa: E731
    return (key, sorted(signatures[key]["inputs"], key=number),
            sorted(signatures[key]["outputs"], key=number))


def _figures(bundle_dir: Path, files: dict[str, Path], classifier: WaveformClassifier,
             windows) -> dict:
    """Accuracy, agreement and latency of each file next to the ONNX bundle, on the run's
    validation windows; refuses a float export that does not reproduce the bundle."""
    validation, targets = windows.validation, windows.validation_targets
    bundle = load_bundle(bundle_dir, threads=1)
    reference = bundle.predict_proba(validation)
    figures = {"validation_windows": len(validation), "onnx": {
        "accuracy": float((reference.argmax(1) == targets).mean()),
        "latency_ms": float(np.median(call_milliseconds(
            lambda: bundle.predict_proba(validation[:1]), 100))),
        "size_bytes": bundle.model_path.stat().st_size}}
    with torch.no_grad():
        features = classifier.frontend(torch.from_numpy(validation)).numpy()
    for name, path in files.items():
        model = LiteRTModel.load(path)
        inputs = features if name == "network_int8.tflite" else validation
        scores = model.predict(inputs)
        figures[name] = {
            "accuracy": float((scores.argmax(1) == targets).mean()),
            "agreement_with_onnx": float((scores.argmax(1) == reference.argmax(1)).mean()),
            "max_abs_difference": float(np.abs(scores - reference).max()),
            "latency_ms": model.latency_ms(inputs[0]), "size_bytes": path.stat().st_size,
            **model.io_description()}
    _check_float(figures)
    return figures


def _check_float(figures: dict) -> None:
    model = figures["model.tflite"]
    if model["input"]["dtype"] == "float32" and "network_int8.tflite" not in figures \
            and model["agreement_with_onnx"] < FLOAT_AGREEMENT:
        raise ExportError(f"the float LiteRT model agrees with the ONNX bundle on only "
                          f"{model['agreement_with_onnx']:.1%} of the validation windows "
                          f"(max difference {model['max_abs_difference']:.3g})")


def _description(config, labels: list[str], int8: bool, micro: str) -> dict:
    return {"labels": labels, "sample_rate": config.data.sample_rate,
            "window_samples": window_samples(config), "int8": int8,
            "features": to_dict(config)["features"], "micro_model": micro}


def _c_defines(config, figures: dict, micro: str) -> dict:
    io = figures[micro]
    defines = {"sample_rate": config.data.sample_rate,
               "window_samples": window_samples(config),
               "input_scale": io["input"]["scale"], "input_zero_point": io["input"]["zero_point"],
               "output_scale": io["output"]["scale"],
               "output_zero_point": io["output"]["zero_point"]}
    smoother = SmootherConfig()
    defines.update(average_window_ms=smoother.average_window_ms,
                   detection_threshold=float(smoother.detection_threshold),
                   suppression_ms=smoother.suppression_ms, minimum_count=smoother.minimum_count)
    if figures.get("tensor_arena_bytes"):
        defines["tensor_arena_bytes"] = figures["tensor_arena_bytes"]
    if micro == "network_int8.tflite":
        shape = io["input"]["shape"]
        defines.update(feature_channels=shape[-2], feature_frames=shape[-1],
                       n_mels=config.features.n_mels, window_ms=float(config.features.window_ms),
                       hop_ms=float(config.features.hop_ms))
    return defines


def _c_comment(run: RunFolder, micro: str) -> str:
    what = ("the network alone, int8 in and out: log-mel features (see EARMARK_N_MELS, "
            "EARMARK_WINDOW_MS, EARMARK_HOP_MS and litert.json) -> class scores"
            if micro == "network_int8.tflite" else
            "raw waveform (EARMARK_WINDOW_SAMPLES float samples) -> class probabilities")
    name = re.sub(r"\s+", " ", run.path.name)
    return (f"{name}: {micro}, {what}.\nThe smoother's settings are earmark's streaming "
            "defaults: average the scores over EARMARK_AVERAGE_WINDOW_MS, report a class whose "
            "mean reaches EARMARK_DETECTION_THRESHOLD, not again within "
            "EARMARK_SUPPRESSION_MS.")


def format_figures(figures: dict) -> str:
    """The side-by-side table export prints."""
    lines = [f"{'model':<22}{'accuracy':>10}{'agrees':>9}{'KiB':>9}{'ms/window':>11}  input",
             f"{'ONNX bundle (float)':<22}{figures['onnx']['accuracy']:>10.4f}{'-':>9}"
             f"{figures['onnx']['size_bytes'] / 1024:>9.1f}{figures['onnx']['latency_ms']:>11.3f}"
             "  float32 waveform"]
    for name in ("model.tflite", "network_int8.tflite"):
        if name in figures:
            row = figures[name]
            lines.append(f"{name:<22}{row['accuracy']:>10.4f}{row['agreement_with_onnx']:>9.3f}"
                         f"{row['size_bytes'] / 1024:>9.1f}{row['latency_ms']:>11.3f}"
                         f"  {row['input']['dtype']} {row['input']['shape']}")
    arena = figures.get("tensor_arena_bytes")
    lines.append(f"on {figures['validation_windows']} validation windows; latency: one thread; "
                 f"TFLite-Micro tensor arena for {figures['micro_model']}: "
                 + (f"{arena:,} bytes" if arena else "not measured (pip install tflite-micro)"))
    return "\n".join(lines)
