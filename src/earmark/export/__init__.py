"""Export: a training run -> a deployable bundle (ONNX from waveform to scores + JSON).

One module per concern: :mod:`~earmark.export.bundle` (the bundle from a run
folder), :mod:`~earmark.export.graph` (torch pieces to ONNX, joined),
:mod:`~earmark.export.tables` (front-end tables as ONNX formulas),
:mod:`~earmark.export.parity` (onnxruntime against torch on real windows),
:mod:`~earmark.export.quantize` (static int8), :mod:`~earmark.export.stream`
(the graphs a stream runs).
"""

from earmark.export.bundle import ExportResult, export_run
from earmark.export.parity import PARITY_TOLERANCE, ExportError

__all__ = ["ExportError", "ExportResult", "PARITY_TOLERANCE", "export_run"]
