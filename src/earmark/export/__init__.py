"""Export: a training run -> a deployable bundle (ONNX from waveform to scores + JSON).

One module per concern: :mod:`~earmark.export.bundle` (the bundle writer),
:mod:`~earmark.export.tables` (front-end tables as ONNX formulas).
"""

from earmark.export.bundle import PARITY_TOLERANCE, ExportError, ExportResult, export_run

__all__ = ["ExportError", "ExportResult", "PARITY_TOLERANCE", "export_run"]
