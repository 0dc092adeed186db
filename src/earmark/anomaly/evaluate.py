"""``earmark anomaly evaluate``: a trained detector on a split, per machine and overall.

Per machine (type and id or section) and over all recordings: ROC AUC,
DCASE's partial AUC (false-positive rates 0-0.1), precision, recall and F1
at the run's threshold; DCASE's official figure is the harmonic mean of the
per-machine AUCs and pAUCs. Writes ``eval_<split>.json``,
``eval_<split>_roc.png`` and ``eval_<split>_scores.png`` into the run folder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from earmark.anomaly.methods import build_scorer
from earmark.anomaly.split import ANOMALY, machine_of
from earmark.anomaly.windows import recording_scores
from earmark.atomic import write_json
from earmark.config import ExperimentConfig, load_config
from earmark.data.cache import build_store
from earmark.data.manifest import Manifest, from_csv
from earmark.errors import DataError
from earmark.metrics.anomaly import anomaly_scores, harmonic_mean
from earmark.network import read_weights
from earmark.progress import ProgressLike
from earmark.run_folder import RunFolder


@dataclass
class TrainedDetector:
    """What an anomaly run folder holds, read back."""

    config: ExperimentConfig
    manifest: Manifest
    scorer: torch.nn.Module
    summary: dict


def load_detector(run_dir: str | Path) -> TrainedDetector:
    """The config, split manifest, scorer (weights read safely) and summary of a run.

    Raises
    ------
    DataError
        When the folder is not a finished ``earmark anomaly train`` run.
    """
    run = RunFolder(run_dir)
    missing = [p.name for p in (run.config, run.manifest, run.scorer, run.model, run.summary)
               if not p.is_file()]
    if missing:
        raise DataError(f"{run.path} is not a finished anomaly run (missing "
                        f"{', '.join(missing)}); train one with `earmark anomaly train "
                        "CONFIG --out FOLDER`")
    try:
        settings = json.loads(run.scorer.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise DataError(f"{run.scorer}: unreadable ({error}); train the run again") from None
    scorer = build_scorer(settings)
    try:
        scorer.load_state_dict(read_weights(run.model))
    except RuntimeError as error:
        raise DataError(f"{run.model} does not fit {run.scorer} ({str(error)[:200]}); the "
                        "two files come from different runs: train it again") from None
    return TrainedDetector(load_config(run.config), from_csv(run.manifest), scorer.eval(),
                           run.read_summary())


def evaluate_detector(run_dir: str | Path, split: str = "test", plots: bool = True,
                      progress: ProgressLike = None) -> dict:
    """Score every recording of ``split`` and measure the detector, per machine and overall."""
    detector = load_detector(run_dir)
    rows = Manifest(r for r in detector.manifest if r.split == split)
    if len(rows) == 0:
        raise DataError(f"the run's {split} split is empty; choose another --split")
    config, summary = detector.config, detector.summary
    store = build_store(rows, config.data.sample_rate, config.cache_dir(),
                        skip_bad_files=config.data.skip_bad_files, progress=progress)
    scores, _ = recording_scores(detector.scorer, store, list(range(len(store))),
                                 summary["window_samples"], summary["hop_samples"])
    truth = np.array([row.label == ANOMALY for row in store.manifest], dtype=int)
    machines = [machine_of(row) for row in store.manifest]
    report = _report(truth, scores, machines, summary["threshold"])
    report.update(method=summary["method"], split=split, recordings=[
        {"path": r.path, "machine": m, "label": r.label, "score": float(s)}
        for r, m, s in zip(store.manifest, machines, scores)])
    run = RunFolder(run_dir)
    write_json(run.report(split).with_suffix(".json"), report)
    if plots:
        _plot(run.report(split), truth, scores, summary)
    return report


def _report(truth: np.ndarray, scores: np.ndarray, machines: list[str],
            threshold: float) -> dict:
    per_machine = {}
    for machine in sorted(set(machines)):
        chosen = np.array([m == machine for m in machines])
        if len(set(truth[chosen])) == 2:
            per_machine[machine] = anomaly_scores(truth[chosen], scores[chosen], threshold)
    if not per_machine:
        raise DataError("the split holds no machine with both normal and anomalous "
                        "recordings: AUC needs both")
    overall = anomaly_scores(truth, scores, threshold)
    return {"machines": per_machine, "overall": overall,
            "official": {"auc_hmean": harmonic_mean([m["auc"] for m in per_machine.values()]),
                         "pauc_hmean": harmonic_mean([m["pauc"] for m in per_machine.values()])}}


def _plot(stem: Path, truth: np.ndarray, scores: np.ndarray, summary: dict) -> None:
    from earmark.plots import plot_roc, plot_score_histogram

    title = f"{summary['method']}"
    plot_roc(truth, scores, stem.with_name(stem.name + "_roc.png"), title=title)
    plot_score_histogram(truth, scores, summary["threshold"],
                         stem.with_name(stem.name + "_scores.png"), title=title)
