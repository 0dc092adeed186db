"""``earmark anomaly train``: learn a machine's normal sound from a config, into a run folder.

The run folder holds what any run holds (``config.toml``, ``manifest.csv``
with the splits, ``summary.json``) and the scorer: ``scorer.json`` (the
method and its shapes) and ``model.pt`` (its state dict, read back with
``torch.load(weights_only=True)``). The threshold is the score that
``anomaly.false_alarm_rate`` of the validation normal *windows* exceed: the
monitor judges windows; a file, judged by the mean of its windows, crosses it
less often.
"""

from __future__ import annotations

import io
import logging
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from earmark.anomaly.methods import fit_scorer
from earmark.anomaly.split import NORMAL, anomaly_splits, machine_of
from earmark.anomaly.windows import recording_scores, recording_windows
from earmark.atomic import write_bytes, write_json, write_text
from earmark.config import ExperimentConfig, to_toml
from earmark.data.cache import AudioStore, build_store
from earmark.data.dataset import read_manifest
from earmark.metrics.anomaly import threshold_for
from earmark.network import window_hop_samples, window_samples
from earmark.progress import ProgressLike
from earmark.run_folder import ExportWindows, RunFolder

log = logging.getLogger(__name__)
#: Validation windows kept in the run folder for export's parity check.
PARITY_WINDOWS = 64
#: Fewer validation windows than this above the threshold, and it is a guess: warned.
FEW_WINDOWS_ABOVE = 5


def train_anomaly(config: ExperimentConfig, out: str | Path,
                  progress: ProgressLike = None) -> dict:
    """Fit ``config.anomaly.method`` on the normal training recordings, set the threshold on
    the validation normals, write the run folder; return its summary."""
    run = RunFolder(out)
    with run.lock():
        run.refuse_other_contents("anomaly")
        started = time.monotonic()
        manifest = anomaly_splits(read_manifest(config), config.data, config.anomaly)
        store = build_store(manifest, config.data.sample_rate, config.cache_dir(),
                            skip_bad_files=config.data.skip_bad_files, progress=progress)
        write_text(run.config, to_toml(config))
        store.manifest.to_csv(run.manifest)
        window, hop = window_samples(config), window_hop_samples(config)
        windows, owners = recording_windows(store, _indices(store, "train"), window, hop)
        log.info("%s: %d normal training windows of %.2f s", config.anomaly.method,
                 len(windows), window / config.data.sample_rate)
        scorer = fit_scorer(windows, config, progress, owners)
        summary = _summary(config, store, scorer, window, hop)
        summary["seconds"] = round(time.monotonic() - started, 1)
        _save(run, scorer, summary)
        _keep_parity_windows(run, store, window, hop)
    return summary


def _indices(store: AudioStore, split: str, label: str = NORMAL) -> list[int]:
    return [i for i, row in enumerate(store.manifest) if row.split == split and row.label == label]


def _summary(config: ExperimentConfig, store: AudioStore, scorer: torch.nn.Module,
             window: int, hop: int) -> dict:
    validation = _indices(store, "validation")
    clip_scores, window_scores = recording_scores(scorer, store, validation, window, hop)
    threshold = threshold_for(window_scores, config.anomaly.false_alarm_rate)
    _warn_when_few(len(window_scores), config.anomaly.false_alarm_rate)
    rows = store.manifest.rows
    return {
        "method": config.anomaly.method, "threshold": threshold,
        "false_alarm_rate": config.anomaly.false_alarm_rate,
        "sample_rate": config.data.sample_rate, "window_samples": window, "hop_samples": hop,
        "recordings": {split: sum(r.split == split for r in rows)
                       for split in ("train", "validation", "test")},
        "machines": sorted({machine_of(r) for r in rows}),
        "validation": {"normal_recordings": len(validation), "windows": len(window_scores),
                       "window_score_median": float(np.median(window_scores)),
                       "recording_scores": [float(s) for s in clip_scores],
                       "recordings_above_threshold": int(np.sum(clip_scores > threshold))},
    }


def _warn_when_few(windows: int, false_alarm_rate: float) -> None:
    above = windows * false_alarm_rate
    if above < FEW_WINDOWS_ABOVE:
        warnings.warn(f"!! the threshold rests on {windows} validation windows: at "
                      f"anomaly.false_alarm_rate = {false_alarm_rate:g}, about {above:.1f} of "
                      "them lie above it, so the false-alarm rate in use may differ widely; "
                      "add normal recordings (or raise anomaly.validation_share) so that at "
                      f"least {int(np.ceil(FEW_WINDOWS_ABOVE / false_alarm_rate))} windows "
                      "set it", stacklevel=3)


def _keep_parity_windows(run: RunFolder, store: AudioStore, window: int, hop: int) -> None:
    """Validation windows (normal and any anomalous), for export's parity check."""
    indices = [i for i, row in enumerate(store.manifest) if row.split == "validation"]
    windows, _ = recording_windows(store, indices, window, hop)
    chosen = np.linspace(0, len(windows) - 1, min(len(windows), PARITY_WINDOWS)).astype(int)
    run.write_export_windows(ExportWindows(windows[chosen], np.zeros(len(chosen), np.int64),
                                           np.zeros((0, window), np.float32)))


def _save(run: RunFolder, scorer: torch.nn.Module, summary: dict) -> None:
    buffer = io.BytesIO()
    torch.save(scorer.state_dict(), buffer)
    write_bytes(run.model, buffer.getvalue())
    write_json(run.scorer, scorer.settings())
    write_json(run.summary, summary)
    log.info("threshold %.4g (%.0f%% of validation normal windows above it); run in %s",
             summary["threshold"], 100 * summary["false_alarm_rate"], run.path)
