"""A bundle's detection threshold set on your own recordings (``earmark calibrate``).

The threshold ``earmark wakeword`` stores was calibrated on held-out synthesized
voices among the negative recordings it was given and on synthesized conversation:
it knows nothing of the particular conversation, television or music a device will
hear. Here the bundle streams through long recordings of that sound
(none of them holding the phrase), as ``listen`` would hear them, and every threshold
of a sweep is scored at once: its false alarms, and false alarms per hour with their
exact 95% interval. Recordings of the phrase itself (optional: a few of your own
voice) give the miss rate at each threshold. The chosen threshold is the lowest from
which on every higher one stays within the false-alarm budget;
:func:`store_threshold` writes it into the bundle.

Memory: the scores of at most an hour of one recording at a time. The smoother's
window and suppression restart at each such hour (and each file), which can add a
detection per boundary: a count errs towards more false alarms, never fewer.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from earmark import audio
from earmark.errors import DataError
from earmark.metrics.classification import wilson_interval
from earmark.metrics.streaming import WAKE_THRESHOLDS, poisson_interval
from earmark.progress import ProgressLike, as_progress
from earmark.runtime.bundle import Bundle
from earmark.runtime.metadata import write_detection
from earmark.runtime.monitor import find_recordings
from earmark.runtime.smoother import SmootherConfig, gate, stored_settings, window_tops
from earmark.runtime.stream import StreamEngine

#: Scores gathered before the detections are counted (bounds memory on long files).
SEGMENT_SECONDS = 3600.0
#: Quiet around each recording of the phrase: the stream starts quiet and the phrase's
#: late scores have time to arrive.
QUIET_BEFORE_S, QUIET_AFTER_S = 1.0, 2.5
#: A recording of the phrase longer than this is not one saying of it.
MAX_POSITIVE_SECONDS = 30.0
BLOCK_SECONDS = 10.0


@dataclass(frozen=True)
class StreamSettings:
    """How the bundle listens: the stride and the smoother (threshold aside)."""

    stride_ms: float
    smoother: SmootherConfig


@dataclass
class ThresholdSweep:
    """False alarms (and, given recordings of the phrase, detections) at each threshold."""

    thresholds: np.ndarray
    false_alarms: np.ndarray          #: (thresholds,) int
    negative_seconds: float
    negative_files: int
    found: np.ndarray | None = None   #: (thresholds,) recordings of the phrase detected
    positives: int = 0

    @property
    def hours(self) -> float:
        return self.negative_seconds / 3600

    @property
    def false_alarms_per_hour(self) -> np.ndarray:
        return self.false_alarms / max(self.hours, 1e-12)

    def pooled(self, other: "ThresholdSweep") -> "ThresholdSweep":
        """This sweep's negatives and ``other``'s heard as one (same thresholds); this
        sweep's recordings of the phrase."""
        if not np.array_equal(self.thresholds, other.thresholds):
            raise ValueError("pooled sweeps need the same thresholds")
        return ThresholdSweep(self.thresholds, self.false_alarms + other.false_alarms,
                              self.negative_seconds + other.negative_seconds,
                              self.negative_files + other.negative_files, self.found,
                              self.positives)

    def choose(self, budget_per_hour: float) -> float | None:
        """The lowest threshold from which on every higher one stays within the budget;
        None when even the highest does not."""
        within = self.false_alarms_per_hour <= budget_per_hour
        if not within[-1]:
            return None
        over = np.flatnonzero(~within)
        return float(self.thresholds[over[-1] + 1 if over.size else 0])

    def row(self, threshold: float) -> dict:
        """One threshold's figures, with 95% intervals."""
        i = int(np.argmin(np.abs(self.thresholds - threshold)))
        count = int(self.false_alarms[i])
        low, high = poisson_interval(count)
        row = {"threshold": float(self.thresholds[i]), "false_alarms": count,
               "false_alarms_per_hour": count / max(self.hours, 1e-12),
               "false_alarms_per_hour_95": [low / max(self.hours, 1e-12),
                                            high / max(self.hours, 1e-12)]}
        if self.found is not None and self.positives:
            missed = self.positives - int(self.found[i])
            row.update(miss_rate=missed / self.positives,
                       miss_rate_95=list(wilson_interval(missed, self.positives)))
        return row


def stream_settings(bundle: Bundle, default_stride_ms: float = 20.0) -> StreamSettings:
    """The bundle's calibrated stride and smoother (``earmark.json`` ``detection``), else the
    defaults ``listen`` uses."""
    stored = bundle.metadata.detection or {}
    return StreamSettings(float(stored.get("stride_ms", default_stride_ms)),
                          SmootherConfig(**stored_settings(stored)))


def target_label(bundle: Bundle, smoother: SmootherConfig, label: str | None = None) -> str:
    """The label recordings of the phrase must be detected as: ``label``, or the bundle's
    only reportable one."""
    reportable = [name for name in bundle.labels
                  if name not in (smoother.silence_label, smoother.unknown_label)]
    if label is not None:
        if label not in bundle.labels:
            raise DataError(f"--label {label!r} is not one of the bundle's labels "
                            f"{list(bundle.labels)}")
        return label
    if len(reportable) != 1:
        raise DataError(f"the bundle reports {len(reportable)} labels {reportable}: name the "
                        "one the recordings of the phrase say with --label")
    return reportable[0]


def sweep_recordings(bundle: Bundle, negatives: Iterable[str | os.PathLike],
                     settings: StreamSettings, positives: Iterable[str | os.PathLike] = (),
                     label: str | None = None,
                     thresholds: Sequence[float] = WAKE_THRESHOLDS,
                     progress: ProgressLike = None) -> ThresholdSweep:
    """Stream every negative recording (and every recording of the phrase) through the
    bundle once; count what fires at each threshold."""
    thresholds = np.asarray(sorted(set(thresholds)), dtype=float)
    negatives = list(negatives)                  # none: only the phrase's recordings
    headers = find_recordings(negatives) if negatives else []   # all read before any work
    wanted = target_label(bundle, settings.smoother, label) if positives else None
    said = _positive_files(positives) if positives else []
    total = sum(h.duration for h in [*headers, *said])
    alarms = np.zeros(len(thresholds), dtype=np.int64)
    found = np.zeros(len(thresholds), dtype=np.int64)
    with as_progress(progress)(total=int(np.ceil(total)), description="calibrating",
                               unit="s") as advance:
        for header in headers:
            blocks = audio.read_blocks(header.path, bundle.sample_rate, BLOCK_SECONDS,
                                       header)
            alarms += _false_alarms(bundle, blocks, settings, thresholds, advance)
        for header in said:
            found += _found(bundle, header, settings, thresholds, wanted)
            advance(round(header.duration))
    return ThresholdSweep(thresholds, alarms, sum(h.duration for h in headers), len(headers),
                          found if said else None, len(said))


def _positive_files(positives: Iterable[str | os.PathLike]) -> list[audio.AudioInfo]:
    headers = find_recordings(positives)
    for header in headers:
        if header.duration > MAX_POSITIVE_SECONDS:
            raise DataError(f"{header.path}: {header.duration:.0f} s is not one saying of the "
                            f"phrase (at most {MAX_POSITIVE_SECONDS:g} s each): give "
                            "--positives short recordings, one phrase each")
    return headers


def _false_alarms(bundle: Bundle, blocks: Iterable[np.ndarray], settings: StreamSettings,
                  thresholds: np.ndarray, advance) -> np.ndarray:
    """Detections at each threshold in one negative recording (its blocks at the bundle's
    rate), an hour of scores at a time."""
    engine = StreamEngine(bundle, stride_ms=settings.stride_ms, smoother=settings.smoother)
    alarms = np.zeros(len(thresholds), dtype=np.int64)
    times, scores, segment_start, heard = [], [], 0.0, 0
    for block in blocks:
        for result in engine.process(block):
            times.append(result.time_ms)
            scores.append(result.scores)
        advance(int((heard + len(block)) / bundle.sample_rate) - int(heard / bundle.sample_rate))
        heard += len(block)
        if times and times[-1] - segment_start >= 1000 * SEGMENT_SECONDS:
            alarms += _detections(times, scores, bundle.labels, settings.smoother, thresholds)
            times, scores, segment_start = [], [], times[-1]
    if times:
        alarms += _detections(times, scores, bundle.labels, settings.smoother, thresholds)
    return alarms


def sweep_pieces(bundle: Bundle, pieces: Iterable[np.ndarray], settings: StreamSettings,
                 thresholds: Sequence[float] = WAKE_THRESHOLDS, seconds: float = 0.0,
                 progress: ProgressLike = None) -> ThresholdSweep:
    """False alarms at each threshold in negative audio given as pieces at the bundle's rate
    (each streamed on its own; ``seconds`` in all, for the progress), such as synthesized
    conversation (:mod:`earmark.wakeword.conversation`)."""
    thresholds = np.asarray(sorted(set(thresholds)), dtype=float)
    alarms = np.zeros(len(thresholds), dtype=np.int64)
    heard = 0
    with as_progress(progress)(total=int(np.ceil(seconds)), description="conversation",
                               unit="s") as advance:
        for piece in pieces:
            alarms += _false_alarms(bundle, [piece], settings, thresholds, advance)
            heard += len(piece)
    return ThresholdSweep(thresholds, alarms, heard / bundle.sample_rate, 0)


def _found(bundle: Bundle, header: audio.AudioInfo, settings: StreamSettings,
           thresholds: np.ndarray, label: str) -> np.ndarray:
    """1 at each threshold where the recording of the phrase, between stretches of its
    own background level, is detected as ``label``."""
    rate = bundle.sample_rate
    samples = _between_quiet(audio.load(header.path, rate), rate)
    engine = StreamEngine(bundle, stride_ms=settings.stride_ms, smoother=settings.smoother)
    results = engine.process(samples)
    if not results:
        return np.zeros(len(thresholds), dtype=np.int64)
    return _detections([r.time_ms for r in results], [r.scores for r in results],
                       bundle.labels, settings.smoother, thresholds, only=label).clip(0, 1)


def _between_quiet(said: np.ndarray, rate: int) -> np.ndarray:
    """The recording with :data:`QUIET_BEFORE_S` before it and :data:`QUIET_AFTER_S` after
    it of white noise at its quietest level (the 10th percentile of its 20 ms levels), not
    digital silence, which a model that never heard it may take for anything."""
    frame = max(1, rate // 50)
    levels = np.sqrt(np.mean(said[:len(said) // frame * frame].reshape(-1, frame) ** 2, axis=1)
                     ) if len(said) >= frame else np.zeros(1)
    rng = np.random.default_rng(len(said))

    def quiet(seconds: float) -> np.ndarray:
        return (np.percentile(levels, 10) * rng.standard_normal(int(seconds * rate))
                ).astype(np.float32)

    return np.concatenate([quiet(QUIET_BEFORE_S), said, quiet(QUIET_AFTER_S)])


def _detections(times: list, scores: list, labels: Sequence[str], smoother: SmootherConfig,
                thresholds: np.ndarray, only: str | None = None) -> np.ndarray:
    """How many detections (of ``only``, else of any reportable label) at each threshold."""
    tops = window_tops(np.asarray(times), np.stack(scores), smoother)
    counts = []
    for threshold in thresholds:
        config = dataclasses.replace(smoother, detection_threshold=float(threshold))
        counts.append(sum(1 for d in gate(tops, labels, config)
                          if only is None or d.label == only))
    return np.asarray(counts, dtype=np.int64)


def store_threshold(bundle_dir: str | os.PathLike, settings: StreamSettings, threshold: float,
                    budget_per_hour: float) -> None:
    """Write the threshold (with the stride and smoother it was chosen under) into the
    bundle's ``earmark.json``, atomically; the graph is untouched."""
    smoother = settings.smoother
    write_detection(bundle_dir, {"stride_ms": settings.stride_ms,
                                 "average_window_ms": smoother.average_window_ms,
                                 "detection_threshold": float(threshold),
                                 "suppression_ms": smoother.suppression_ms,
                                 "minimum_count": smoother.minimum_count,
                                 "calibrated_for_false_alarms_per_hour": budget_per_hour})


def report(sweep: ThresholdSweep, budget_per_hour: float, stored: float | None) -> dict:
    """What the sweep says, for JSON and for people: the chosen threshold's figures, the
    stored one's, and every threshold's."""
    chosen = sweep.choose(budget_per_hour)
    return {"budget_per_hour": budget_per_hour, "negative_hours": sweep.hours,
            "negative_files": sweep.negative_files, "positives": sweep.positives,
            "chosen": None if chosen is None else sweep.row(chosen),
            "stored": None if stored is None else sweep.row(stored),
            "hours_to_show_budget": (poisson_interval(0)[1] / budget_per_hour
                                     if budget_per_hour > 0 else None),
            "sweep": [sweep.row(t) for t in sweep.thresholds]}
