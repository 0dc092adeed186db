"""The speech embedding's mel: the shipped graph's numbers for half the work, floored at a
fixed level (numpy + ONNX).

openWakeWord's ``melspectrogram.onnx`` computes its spectrum as two strided
convolutions, the dense DFT's real and imaginary parts for all 257 bins of a
512-sample frame, and then weighs them with 32 mel filters that reach bins 2
to 121 only. The graph here is built from the shipped file's own window
and filters: one convolution for just the bins the filters use (real and
imaginary parts side by side), their squares through the filters, then the
same dB scale. On one thread it costs half the shipped graph's time
(``benchmarks/stream_cost.py`` has the whole stream's figures); the values
agree to float rounding (the tests hold them to the shipped graph).

The shipped graph floors its dB values 80 dB below the loudest value of the
whole call (``ReduceMax`` over everything, the batch included), so a clip's
features would depend on its batch and a stream's on how it is cut. This one
floors at :data:`~earmark.frontend.speech_embedding.FLOOR_DB` (a mel power
of one 16-bit step squared): only digital silence and sub-LSB sound reach it,
and clips, batches and streams give the same frames.

Input and output are the shipped graph's: ``input`` (batch, samples) in 16-bit
units -> ``output`` (batch, 1, frames, 32), a frame every 160 samples.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np

from earmark.errors import ConfigError
from earmark.frontend import speech_embedding as embedding

#: The shipped graph's lowest mel power before its logarithm.
POWER_FLOOR = 1e-10
#: The shipped graph's initializers this one is built from.
REAL, IMAGINARY, FILTERS = "0.stft.conv_real.weight", "0.stft.conv_imag.weight", "1.melW"
OPSET = 18


def mel_graph(path: str | Path | None = None):
    """The mel graph from the shipped ``melspectrogram.onnx`` (``path``; default the file
    earmark ships, its hash checked)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    path = embedding.model_files()["mel"] if path is None else path
    shipped = _shipped(path)
    filters = shipped[FILTERS]                                    # (257 bins, 32)
    bins = _filter_bins(filters)
    kernels = np.concatenate([shipped[REAL][bins], shipped[IMAGINARY][bins]])
    constants = {"m/kernels": kernels,                            # (2 bins, 1, 512)
                 "m/filters": np.vstack([filters[bins], filters[bins]]),   # (2 bins, 32)
                 "m/floor_power": np.float32(POWER_FLOOR),
                 "m/decibels": np.float32(10.0 / math.log(10.0)),
                 "m/floor_db": np.float32(embedding.FLOOR_DB),
                 "m/axis1": np.array([1], np.int64)}
    node = helper.make_node
    nodes = [node("Unsqueeze", ["input", "m/axis1"], ["m/signal"]),        # (B, 1, S)
             node("Conv", ["m/signal", "m/kernels"], ["m/parts"],           # (B, 2 bins, T)
                  kernel_shape=[embedding.MEL_WINDOW], strides=[embedding.MEL_HOP]),
             node("Mul", ["m/parts", "m/parts"], ["m/squares"]),
             node("Transpose", ["m/squares"], ["m/by_frame"], perm=[0, 2, 1]),
             node("MatMul", ["m/by_frame", "m/filters"], ["m/power"]),      # (B, T, 32)
             node("Max", ["m/power", "m/floor_power"], ["m/above_floor"]),
             node("Log", ["m/above_floor"], ["m/log"]),
             node("Mul", ["m/log", "m/decibels"], ["m/decibels_out"]),
             node("Max", ["m/decibels_out", "m/floor_db"], ["m/floored"]),
             node("Unsqueeze", ["m/floored", "m/axis1"], ["output"])]        # (B, 1, T, 32)
    graph = helper.make_graph(
        nodes, "earmark_embedding_mel",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", "samples"])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT,
                                       ["batch", 1, "frames", embedding.MEL_BANDS])],
        [numpy_helper.from_array(np.asarray(value), name) for name, value in constants.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="earmark")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


@functools.lru_cache(maxsize=1)
def macs_per_frame() -> int:
    """Multiply-accumulates of :func:`mel_graph` per mel frame: the DFT of the bins the
    filters use, real and imaginary, and the filters over their squares."""
    used = len(_filter_bins(_shipped(embedding.model_files()["mel"])[FILTERS]))
    return 2 * used * (embedding.MEL_WINDOW + embedding.MEL_BANDS)


def _filter_bins(filters: np.ndarray) -> np.ndarray:
    """The DFT bins any mel filter weighs."""
    return np.flatnonzero(np.abs(filters).sum(axis=1) > 0)


def _shipped(path) -> dict[str, np.ndarray]:
    """The shipped graph's initializers, checked to be those this graph is built from."""
    import onnx
    from onnx import numpy_helper

    initializers = {t.name: numpy_helper.to_array(t)
                    for t in onnx.load(str(path)).graph.initializer}
    bins, window = embedding.MEL_WINDOW // 2 + 1, embedding.MEL_WINDOW
    shapes = {REAL: (bins, 1, window), IMAGINARY: (bins, 1, window),
              FILTERS: (bins, embedding.MEL_BANDS)}
    if any(name not in initializers or initializers[name].shape != shape
           for name, shape in shapes.items()):
        raise ConfigError(f"{path} is not the mel graph earmark ships; reinstall earmark")
    return initializers
