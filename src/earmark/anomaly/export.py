"""``earmark anomaly export``: an anomaly run folder -> a bundle, waveform windows -> scores.

The bundle holds ``model.onnx`` (``waveform`` (batch, window_samples) float32
at the run's rate -> ``score`` (batch,)), with everything the method learned
(the bank of normal windows and its lines, or the autoencoder's weights) as
graph constants, and ``earmark.json``: format ``earmark-anomaly``, method,
rate, window and hop, threshold and its false-alarm rate, the hash of the
graph, the scorer's settings, the validation figures and the parity of
onnxruntime against torch on the run's validation windows. Nothing is pickled;
:mod:`earmark.runtime.anomaly_bundle` reads it without torch.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np
import torch

from earmark import __version__
from earmark.anomaly.evaluate import load_detector
from earmark.atomic import write_json
from earmark.export.bundle import replace_folder
from earmark.export.graph import export_module, run_graph
from earmark.export.parity import ExportError
from earmark.anomaly.methods import score_windows
from earmark.run_folder import RunFolder
from earmark.runtime.anomaly_bundle import ANOMALY_FORMAT_VERSION
from earmark.runtime.metadata import ANOMALY_FORMAT_NAME, BUNDLE_JSON, BUNDLE_MODEL, file_sha256

log = logging.getLogger(__name__)
#: Largest |onnxruntime - torch| score difference accepted, relative to the threshold.
PARITY_TOLERANCE = 1e-3


def export_detector(run_dir: str | Path, out: str | Path) -> dict:
    """Write the bundle of an anomaly run to ``out`` (replaced whole when it exists); return
    its JSON record.

    Raises
    ------
    ExportError
        When onnxruntime's scores differ from torch's by more than
        :data:`PARITY_TOLERANCE` of the threshold.
    """
    detector = load_detector(run_dir)
    summary, scorer = detector.summary, detector.scorer
    windows = _parity_windows(RunFolder(run_dir), summary)
    with tempfile.TemporaryDirectory(prefix="earmark-anomaly-") as scratch:
        staging = Path(scratch) / "bundle"
        staging.mkdir()
        export_module(scorer, torch.as_tensor(windows[:2]), staging / BUNDLE_MODEL,
                      "waveform", "score", dynamic_length=False)
        parity = _parity(staging / BUNDLE_MODEL, scorer, windows, summary["threshold"])
        record = _record(summary, scorer, parity, file_sha256(staging / BUNDLE_MODEL))
        write_json(staging / BUNDLE_JSON, record)
        replace_folder(staging, Path(out))
    log.info("anomaly bundle in %s (parity: max |difference| %.2g over %d windows)", out,
             parity["max_abs_diff"], parity["windows"])
    return record


def _parity_windows(run: RunFolder, summary: dict) -> np.ndarray:
    """The run's validation windows (or seeded noise without them), then digital silence
    and a window barely above it: the graph must score those as torch does."""
    kept = run.read_export_windows()
    rng = np.random.default_rng(0)
    samples = summary["window_samples"]
    if kept is not None and len(kept.validation) >= 2:
        windows = kept.validation.astype(np.float32)
    else:
        windows = (0.05 * rng.standard_normal((8, samples))).astype(np.float32)
    quiet = np.stack([np.zeros(samples), 1e-7 * rng.standard_normal(samples)])
    return np.concatenate([windows, quiet.astype(np.float32)])


def _parity(graph_path: Path, scorer: torch.nn.Module, windows: np.ndarray,
            threshold: float) -> dict:
    import onnx

    graph = onnx.load(str(graph_path))
    exported = run_graph(graph, windows).reshape(-1)
    reference = score_windows(scorer, windows)
    difference = float(np.max(np.abs(exported - reference)))
    tolerance = PARITY_TOLERANCE * max(abs(threshold), 1e-6)
    if not difference <= tolerance:
        raise ExportError(f"the exported graph's scores differ from torch's by {difference:.3g} "
                          f"(allowed {tolerance:.3g}); the bundle was not written")
    return {"windows": len(windows), "max_abs_diff": difference,
            "same_verdict": float(np.mean((exported > threshold) == (reference > threshold)))}


def _record(summary: dict, scorer: torch.nn.Module, parity: dict, sha256: str) -> dict:
    return {
        "format": ANOMALY_FORMAT_NAME, "format_version": ANOMALY_FORMAT_VERSION,
        "earmark_version": __version__,
        "method": summary["method"], "sample_rate": summary["sample_rate"],
        "window_samples": summary["window_samples"], "hop_samples": summary["hop_samples"],
        "threshold": summary["threshold"], "false_alarm_rate": summary["false_alarm_rate"],
        "aggregate": "mean", "model_sha256": sha256, "settings": scorer.settings(),
        "validation": summary["validation"], "machine": {"machines": summary["machines"]},
        "parity": parity,
    }
