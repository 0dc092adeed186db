"""Static int8 quantization of the network; the front-end stays in float.

Quantizing the mel matrix and the DFT with the network wrecks accuracy, so
only the network's Conv, Gemm, MatMul and Relu are quantized, calibrated on
the features of real training windows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from earmark.export.graph import Parts, assemble, session

#: What the bundle's metadata says of an int8 export.
INT8_DESCRIPTION = "int8-static (network Conv/Gemm/Relu, per-tensor; front-end float)"


def quantize_network(parts: Parts, calibration: np.ndarray, scratch: Path) -> Path:
    """The network piece quantized to int8, calibrated on ``calibration`` waveforms."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = scratch / "network.prep.onnx"
    quant_pre_process(str(parts.network), str(prepared), skip_symbolic_shape=True)
    quantized = scratch / "network.int8.onnx"
    # QOperator (QLinearConv) with per-tensor scales: the smallest graph, and on
    # the keyword model as accurate as QDQ per-channel (measured at export).
    quantize_static(str(prepared), str(quantized), _feature_reader(parts, calibration),
                    quant_format=QuantFormat.QOperator,
                    op_types_to_quantize=["Conv", "Gemm", "MatMul", "Relu"],
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    per_channel=False)
    return quantized


def _feature_reader(parts: Parts, calibration: np.ndarray):
    """onnxruntime's calibration reader over the front-end's features of the windows."""
    from onnxruntime.quantization import CalibrationDataReader

    frontend = session(assemble([parts.frames, parts.finish], None))
    features = [frontend.run(None, {"waveform": calibration[i:i + 32]})[0]
                for i in range(0, len(calibration), 32)]

    class FeatureBatches(CalibrationDataReader):
        def __init__(self):
            self.batches = iter(features)

        def get_next(self):
            batch = next(self.batches, None)
            return None if batch is None else {"features": batch}

    return FeatureBatches()
