"""Does the exported graph compute what torch computes? Checked on real windows."""

from __future__ import annotations

import logging

import numpy as np
import onnx
import torch

from earmark.errors import EarmarkError
from earmark.export.graph import run_graph
from earmark.runtime.graph_input import GraphFeed

logger = logging.getLogger(__name__)

#: Export fails when onnxruntime and torch differ by more than this.
PARITY_TOLERANCE = 1e-4
#: At most this many validation windows are compared.
PARITY_WINDOWS = 1000


class ExportError(EarmarkError):
    """The exported graph does not reproduce the trained model."""


def check_parity(graph: onnx.ModelProto, classifier, waveforms: np.ndarray,
                 feed: GraphFeed | None = None) -> dict:
    """onnxruntime vs torch on real windows: max abs difference and top-1 agreement.

    Raises
    ------
    ExportError
        When they differ by more than :data:`PARITY_TOLERANCE`.
    """
    waveforms = waveforms[:PARITY_WINDOWS]
    exported = run_graph(graph, waveforms, feed=feed)
    with torch.no_grad():
        expected = np.concatenate([
            torch.softmax(classifier(torch.from_numpy(waveforms[i:i + 64])), dim=-1).numpy()
            for i in range(0, len(waveforms), 64)])
    difference = float(np.abs(exported - expected).max())
    agree = float((exported.argmax(1) == expected.argmax(1)).mean())
    logger.info(f"onnxruntime vs torch on {len(waveforms)} validation windows: max |diff| "
                f"{difference:.2e}, same top-1 on {agree:.2%}")
    if difference > PARITY_TOLERANCE:
        raise ExportError(f"onnxruntime and torch differ by {difference:.2e} (> "
                          f"{PARITY_TOLERANCE:.0e}) on real inputs; the export is wrong, "
                          "nothing was written")
    return {"windows": len(waveforms), "max_abs_diff": difference, "top1_agreement": agree}


def graph_quality(graph: onnx.ModelProto, waveforms: np.ndarray, targets: np.ndarray,
                  feed: GraphFeed | None = None) -> dict:
    """Accuracy per window on ``(waveforms, targets)`` and the serialized size of ``graph``."""
    accuracy = float((run_graph(graph, waveforms, feed=feed).argmax(1) == targets).mean())
    return {"accuracy": accuracy, "size_bytes": graph.ByteSize()}
