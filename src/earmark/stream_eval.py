"""Score streaming recognition honestly: long streams from held-out speakers.

Two streams are built from a training run's own split manifest (see
:mod:`earmark.data.streams`): one from its validation speakers, on
which the detection threshold is calibrated for a target false-alarm
rate, and one from its test speakers, which is scored once at that
threshold. Both run through the same :class:`StreamEngine` as ``earmark
listen``.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from earmark import audio
from earmark.atomic import write_json, write_text
from earmark.config import load_config
from earmark.data.cache import build_store
from earmark.data.manifest import from_csv
from earmark.data.streams import StreamSpec, TruthWord, build_stream
from earmark.errors import DataError
from earmark.events import write_events
from earmark.metrics.streaming import (StreamScore, ThresholdError, fewest_false_alarms,
                                      pick_threshold, score_stream, sweep_thresholds)
from earmark.run_folder import RunFolder
from earmark.runtime.bundle import Bundle
from earmark.runtime.smoother import SmootherConfig, detect
from earmark.runtime.stream import StreamEngine

logger = logging.getLogger(__name__)

#: Thresholds the calibration tries: 0.30-0.95 every 0.025, then 0.97, 0.98 and 0.99 for
#: models whose confident mistakes need them.
THRESHOLDS = tuple(np.round(np.concatenate([np.arange(0.30, 0.96, 0.025), [0.97, 0.98, 0.99]]),
                            3))


@dataclass
class StreamRun:
    """A stream, its truth, and the model's scores at every stride."""

    audio: np.ndarray
    truth: list[TruthWord]
    times_ms: np.ndarray
    scores: np.ndarray
    seconds: float

    def truth_pairs(self) -> list[tuple[str, float]]:
        """(label, time) with the word's end as its time: latency is measured from it."""
        return [(word.label, word.end_ms) for word in self.truth]


def run_stream(bundle: Bundle, audio_samples: np.ndarray, truth: list[TruthWord],
               stride_ms: float, smoother: SmootherConfig) -> StreamRun:
    """Feed a stream through the engine in 100 ms blocks, as fast as possible."""
    engine = StreamEngine(bundle, stride_ms=stride_ms, smoother=smoother)
    block = bundle.sample_rate // 10
    times, scores = [], []
    for start in range(0, len(audio_samples), block):
        for result in engine.process(audio_samples[start:start + block]):
            times.append(result.time_ms)
            scores.append(result.scores)
    return StreamRun(audio_samples, truth, np.asarray(times), np.stack(scores),
                     len(audio_samples) / bundle.sample_rate)


def evaluate_streaming(bundle: Bundle, run_dir: str | Path, out_dir: str | Path,
                       minutes: float = 10.0, noise_dir: str | None = None,
                       noise_volume: float = 0.1, max_false_alarms_per_hour: float = 60.0,
                       stride_ms: float = 20.0, smoother: SmootherConfig | None = None,
                       seed: int = 0) -> dict:
    """Calibrate on a validation stream, score a test stream; write the evidence to ``out_dir``."""
    smoother = smoother or SmootherConfig()
    out_dir = Path(out_dir)
    if minutes * 60 * bundle.sample_rate < 4 * bundle.window_samples:
        raise DataError(f"a {minutes:g}-minute stream is too short to test; give at least "
                        f"{4 * bundle.window_samples / bundle.sample_rate / 60:.2f} minutes")
    clips = held_out_clips(run_dir, bundle.sample_rate)
    noise = background_noise(run_dir, noise_dir, bundle.sample_rate)
    spec = StreamSpec(duration_s=minutes * 60, noise_volume=noise_volume, seed=seed)
    runs = {}
    for split in ("validation", "test"):
        samples, truth = build_stream(clips[split], noise, bundle.sample_rate,
                                      dataclasses.replace(spec, seed=seed + len(runs)))
        runs[split] = run_stream(bundle, samples, truth, stride_ms, smoother)
    calibration = _sweep(runs["validation"], bundle.labels, smoother)
    try:
        threshold, met = pick_threshold(calibration, max_false_alarms_per_hour), True
    except ThresholdError as error:     # the test is still scored, at the fewest alarms
        threshold, met = fewest_false_alarms(calibration), False
        logger.warning("%s; the test stream is scored at threshold %s", error, threshold)
    chosen = dataclasses.replace(smoother, detection_threshold=threshold)
    test = runs["test"]
    detections = detect(test.times_ms, test.scores, bundle.labels, chosen)
    score = score_stream(test.truth_pairs(), detections, test.seconds)
    report = _report(score, threshold, chosen, minutes, noise_volume, stride_ms,
                     max_false_alarms_per_hour, test)
    report["calibration_met"] = met
    report["detections"] = [(round(d.time_ms / 1000, 2), d.label, _heard(d.time_ms, test.truth))
                            for d in detections]
    _write_evidence(out_dir, bundle, test, detections, _sweep(test, bundle.labels, smoother),
                    calibration, threshold, report)
    return report


def _heard(time_ms: float, truth: list[TruthWord], tolerance_ms: float = 750) -> str:
    """The word being said just before ``time_ms``, or "-" for none."""
    for word in truth:
        if word.start_ms <= time_ms <= word.end_ms + tolerance_ms:
            return word.label
    return "-"


def held_out_clips(run_dir: str | Path, sample_rate: int,
                   keep: Callable[[str], bool] | None = None,
                   splits: tuple[str, ...] = ("validation", "test"),
                   ) -> dict[str, list[tuple[np.ndarray, str]]]:
    """The clips of a training run's validation and test splits, at ``sample_rate``.

    Parameters
    ----------
    run_dir : str or Path
        A run folder written by ``earmark train`` (its ``config.toml`` and
        ``manifest.csv``, whose splits keep speakers apart).
    sample_rate : int
        The rate to read them at (Hz): the bundle's.
    keep : callable, optional
        Given a recording's path, whether to take it (all when omitted).
    splits : tuple of str
        The splits to read.

    Returns
    -------
    dict
        Each of ``splits`` (``"validation"`` and ``"test"``): lists of
        ``(samples, label)``.

    Raises
    ------
    DataError
        One of them is empty.
    """
    run = RunFolder(run_dir)
    config = load_config(run.config)
    manifest = from_csv(run.manifest)
    store = build_store(manifest, sample_rate, config.cache_dir(),
                        skip_bad_files=True, progress=False)
    clips = {split: [] for split in splits}
    for index, row in enumerate(store.manifest):
        if row.split in clips and (keep is None or keep(row.path)):
            clips[row.split].append((np.asarray(store.recording(index)), row.label))
    for split, items in clips.items():
        if not items:
            raise DataError(f"{run.path}: the {split} split is empty; a stream test needs "
                            "held-out speakers in validation and test")
    return clips


def background_noise(run_dir: str | Path, noise_dir: str | None,
                     sample_rate: int) -> list[np.ndarray]:
    """Background recordings at ``sample_rate`` Hz for test streams.

    From ``noise_dir``, or when it is None from the run's configured
    ``augment.noise_dir``; an empty list when neither names a folder.
    """
    if noise_dir is None:
        config = load_config(RunFolder(run_dir).config)
        noise_dir = config.augment.noise_dir
    return audio.load_folder(noise_dir, sample_rate, "noise folder") if noise_dir else []


def _sweep(run: StreamRun, labels: list[str], smoother: SmootherConfig):
    return sweep_thresholds(run.times_ms, run.scores, labels, smoother, run.truth_pairs(),
                            run.seconds, THRESHOLDS)


def _report(score: StreamScore, threshold: float, smoother: SmootherConfig, minutes: float,
            noise_volume: float, stride_ms: float, target: float, run: StreamRun) -> dict:
    latencies = np.asarray(score.latencies_ms)
    return {
        "threshold": threshold, "calibrated_for_false_alarms_per_hour": target,
        "stream_minutes": minutes, "noise_volume": noise_volume, "stride_ms": stride_ms,
        "smoother": smoother.__dict__, "words": len(run.truth),
        "score": score.to_dict(),
        "latency_ms_median": float(np.median(latencies)) if latencies.size else None,
        "latency_ms_p95": float(np.percentile(latencies, 95)) if latencies.size else None,
    }


def _write_evidence(out_dir: Path, bundle: Bundle, test: StreamRun, detections, sweep,
                    calibration, threshold: float, report: dict) -> None:
    from earmark.plots import plot_tradeoff

    out_dir.mkdir(parents=True, exist_ok=True)
    audio.write(out_dir / "test_stream.flac", test.audio, bundle.sample_rate)
    truth = [word.as_event() for word in test.truth]
    write_events(out_dir / "truth.csv", truth)
    write_events(out_dir / "truth_audacity.txt", truth, decimals=3)
    write_text(out_dir / "detections.csv", _csv(["time_s", "label", "score"],
               [(d.time_ms / 1000, d.label, round(float(d.score), 4)) for d in detections]))
    write_text(out_dir / "sweep.csv", _csv(
        ["threshold", "correct_rate", "wrong_rate", "false_positive_rate",
         "false_alarms_per_hour", "validation_false_alarms_per_hour"],
        [(t, s.correct_rate, s.wrong_rate, s.false_positive_rate, s.false_alarms_per_hour,
          c.false_alarms_per_hour) for (t, s), (_, c) in zip(sweep, calibration)]))
    plot_tradeoff([t for t, _ in sweep], [s.correct_rate for _, s in sweep],
                  [s.false_alarms_per_hour for _, s in sweep], out_dir / "tradeoff.png",
                  chosen=threshold, title="Test stream: correct words vs false alarms")
    write_json(out_dir / "report.json", report)


def _csv(header: list[str], rows) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()
