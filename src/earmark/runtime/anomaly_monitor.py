"""Alarms over long recordings and live streams from an anomaly bundle's window scores.

Every window is scored (:mod:`earmark.runtime.anomaly_score`); the score
track is median-smoothed over ``smooth`` windows, then thresholded with the
hysteresis of event detection (:func:`earmark.runtime.detect.hysteresis_runs`):
an alarm is raised where the smoothed score rises above ``on`` (strictly, as
``earmark anomaly score`` flags a window above the threshold) and lasts, back
over its rising flank and forward, while it stays at or above ``off``.
Alarms less than ``min_gap`` seconds apart are joined (an alarm holds through
short dips), then alarms shorter than ``min_seconds`` are dropped.

Defaults: ``on`` is the bundle's threshold. ``off`` is ``on`` as well,
because anomaly scores have no common scale (a reconstruction error, a
distance) from which a margin could be guessed: give ``off`` below ``on``
for hysteresis in level, in the units of the bundle's scores (``earmark
anomaly score --windows`` shows them). The default smoothing (3 windows)
and join (2 s) already keep a score hovering at the threshold from
flickering.

As with events, a window's score is placed at its centre: an alarm runs from
half a hop before its first window's centre to half a hop after its last
one's (from the recording's start, or to its end, when it reaches them).
Alarms are :class:`earmark.events.Event` labelled ``"anomaly"`` whose
``confidence`` is the peak window score inside them.

:func:`monitor_file` judges a whole recording; :func:`monitor_stream` a live
one (a microphone), reporting each alarm as it is raised and cleared
(:class:`AlarmTracker`). Both keep one score per window and one block of audio
in memory, and give the same alarms for the same windows; the tracker itself
keeps only the windows since the last settled point (an open alarm's).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

import numpy as np
import soxr

from earmark.errors import AudioError, ConfigError
from earmark.events import Event
from earmark.input_limits import check_sample_rate
from earmark.progress import ProgressLike
from earmark.runtime.anomaly_bundle import AnomalyBundle
from earmark.runtime.anomaly_score import FileScores, WindowScorer, score_file
from earmark.runtime.detect import hysteresis_runs, median_filter

#: The label of every alarm.
ALARM_LABEL = "anomaly"


@dataclass(frozen=True)
class AlarmSettings:
    """How window scores become alarms (see the module docstring)."""

    on: float | None = None          #: raise at this score; None: the bundle's threshold
    off: float | None = None         #: clear below this score; None: ``on``
    smooth: int = 3                  #: median over this many windows (odd; 1 = none)
    min_seconds: float = 0.0         #: shorter alarms are dropped
    min_gap: float = 2.0             #: alarms closer than this (s) are joined

    def __post_init__(self) -> None:
        if isinstance(self.smooth, bool) or not isinstance(self.smooth, int) \
                or self.smooth < 1 or self.smooth % 2 == 0:
            raise ConfigError(f"smooth must be an odd number of windows >= 1 (1 = none), "
                              f"got {self.smooth!r}")
        for name in ("on", "off", "min_seconds", "min_gap"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not math.isfinite(value)):
                raise ConfigError(f"alarm {name} must be a finite number, got {value!r}")
        if self.min_seconds < 0 or self.min_gap < 0:
            raise ConfigError(f"min_seconds and min_gap must be >= 0, got {self.min_seconds} "
                              f"and {self.min_gap}")
        if self.on is not None and self.off is not None and self.off > self.on:
            raise ConfigError(f"alarm off ({self.off:g}) is above on ({self.on:g}): an alarm "
                              "clears below off, so off must be at or below on")

    def levels(self, threshold: float) -> tuple[float, float]:
        """``(on, off)`` for a bundle whose threshold is ``threshold``."""
        on = threshold if self.on is None else float(self.on)
        off = on if self.off is None else float(self.off)
        if off > on:
            raise ConfigError(f"alarm off ({off:g}) is above on ({on:g}, the bundle's "
                              "threshold): give an off at or below on")
        return on, off


@dataclass
class Monitoring:
    """A monitored recording: every window's score, the alarms, and the levels used."""

    scores: FileScores
    alarms: list[Event]
    on: float
    off: float
    smoothed: np.ndarray = field(default_factory=lambda: np.zeros(0))  #: the track judged


def find_alarms(scores: FileScores, settings: AlarmSettings | None = None) -> list[Event]:
    """The alarms of a recording's window scores (see the module docstring), by onset."""
    settings = settings or AlarmSettings()
    on, off = settings.levels(scores.threshold)
    track = smooth_scores(scores.window_scores, settings.smooth)
    hop = window_hop_seconds(scores)
    runs = join_runs(alarm_runs(track, on, off), hop, settings.min_gap)
    last = len(track) - 1
    alarms = []
    for first, end in runs:
        onset, offset = run_seconds(first, end, hop, scores.window_seconds, scores.duration,
                                    reaches_end=end == last)
        if offset - onset >= settings.min_seconds:
            peak = float(np.max(scores.window_scores[first:end + 1]))
            alarms.append(Event(onset, offset, ALARM_LABEL, confidence=peak))
    return alarms


def alarm_runs(track: np.ndarray, on: float, off: float) -> list[tuple[int, int]]:
    """Hysteresis runs of a smoothed track raised strictly above ``on``."""
    return hysteresis_runs(track, float(np.nextafter(on, np.inf)), off)


def smooth_scores(scores: np.ndarray, size: int) -> np.ndarray:
    """Running median of a score track over ``size`` windows (edges: nearest values)."""
    scores = np.asarray(scores, dtype=np.float64)
    return median_filter(scores[:, None], size)[:, 0]


def window_hop_seconds(scores: FileScores) -> float:
    """Seconds between the windows of ``scores`` (a single window: its length)."""
    starts = scores.window_starts
    return float(starts[1] - starts[0]) if len(starts) > 1 else scores.window_seconds


def join_runs(runs: list[tuple[int, int]], hop: float,
              min_gap: float) -> list[tuple[int, int]]:
    """Join ``(first, last)`` window runs whose gap, in seconds, is under ``min_gap``."""
    joined: list[tuple[int, int]] = []
    for first, last in runs:
        if joined and (first - joined[-1][1] - 1) * hop < min_gap:
            joined[-1] = (joined[-1][0], last)
        else:
            joined.append((first, last))
    return joined


def run_seconds(first: int, last: int, hop: float, window_seconds: float, end: float,
                reaches_end: bool) -> tuple[float, float]:
    """Onset and offset (s) of windows ``first..last``, each window at its centre."""
    onset = 0.0 if first == 0 else first * hop + window_seconds / 2 - hop / 2
    offset = end if reaches_end else last * hop + window_seconds / 2 + hop / 2
    onset = min(max(0.0, onset), end)
    return onset, min(end, max(offset, onset))


def monitor_file(bundle: AnomalyBundle, path: str | os.PathLike,
                 settings: AlarmSettings | None = None, progress: ProgressLike = None,
                 hop_seconds: float | None = None) -> Monitoring:
    """Score every window of a recording (read in blocks) and find its alarms.

    ``hop_seconds`` sets the step between windows (default the bundle's);
    a shorter one gives a finer timeline at more cost.
    """
    settings = settings or AlarmSettings()
    on, off = settings.levels(bundle.threshold)       # checked before the file is read
    scores = score_file(bundle, path, progress, hop_seconds=hop_seconds)
    return Monitoring(scores, find_alarms(scores, settings), on, off,
                      smooth_scores(scores.window_scores, settings.smooth))


@dataclass(frozen=True)
class AlarmChange:
    """An alarm raised (``offset``: when it was raised) or cleared (the whole alarm)."""

    kind: str             #: "raised" or "cleared"
    alarm: Event


class AlarmTracker:
    """:func:`find_alarms`, one window score at a time: the changes as they become certain.

    An alarm is announced as raised once it is ``min_seconds`` long, and as
    cleared once the score has stayed below ``off`` for ``min_gap`` seconds
    (so a later rise could not join it). A window's smoothed score is known
    ``smooth // 2`` windows after it. Only the windows since the last settled
    point are kept and re-examined at each window: a few when all is quiet,
    an open alarm's while one lasts.
    """

    #: Settled windows are dropped in chunks of this many (not one list copy per window).
    TRIM_EVERY = 256

    def __init__(self, threshold: float, settings: AlarmSettings, hop: float,
                 window_seconds: float):
        self.settings = settings
        self.on, self.off = settings.levels(threshold)
        self.hop, self.window_seconds = hop, window_seconds
        self.raw: list[float] = []        #: scores of windows raw_from, raw_from + 1, ...
        self.raw_from = 0
        self.smoothed: list[float] = []   #: smoothed scores of windows smoothed_from, ...
        self.smoothed_from = 0
        self.pushed = 0                   #: windows pushed
        self.known = 0                    #: windows whose smoothed score is known
        self.base = 0                     #: no alarm can start before this window
        self.raised: set[int] = set()     #: first windows of the alarms announced

    def push(self, score: float) -> list[AlarmChange]:
        """Add the next window's score; the alarms raised or cleared by it."""
        self.raw.append(float(score))
        self.pushed += 1
        if self.pushed - 1 - self.settings.smooth // 2 < 0:
            return []
        self._smooth_next(last=self.pushed - 1)
        changes = self._changes()
        self._trim()
        return changes

    def finish(self, duration: float) -> list[AlarmChange]:
        """The stream ended ``duration`` seconds in: every alarm left is settled."""
        while self.known < self.pushed:
            self._smooth_next(last=self.pushed - 1)
        return self._changes(end=duration) if self.pushed else []

    def _smooth_next(self, last: int) -> None:
        """The median of the next window's neighbourhood (edges: the nearest window)."""
        half, index = self.settings.smooth // 2, self.known
        around = [self.raw[min(max(0, i), last) - self.raw_from]
                  for i in range(index - half, index + half + 1)]
        self.smoothed.append(float(np.median(around)))
        self.known += 1

    def _changes(self, end: float | None = None) -> list[AlarmChange]:
        """Raise and clear what the known scores make certain; at the ``end``, everything."""
        known = self.known
        now = (known - 1) * self.hop + self.window_seconds / 2 + self.hop / 2
        now = now if end is None else end
        track = np.asarray(self.smoothed[self.base - self.smoothed_from:])
        runs = [(self.base + a, self.base + b) for a, b in alarm_runs(track, self.on, self.off)]
        changes = []
        for first, last in join_runs(runs, self.hop, self.settings.min_gap):
            onset, offset = run_seconds(first, last, self.hop, self.window_seconds, now,
                                        reaches_end=last == known - 1)
            peak = max(self.raw[first - self.raw_from:last + 1 - self.raw_from])
            alarm = Event(onset, offset, ALARM_LABEL, confidence=peak)
            announced = any(first <= raised <= last for raised in self.raised)
            if not announced and offset - onset >= self.settings.min_seconds:
                announced = True
                self.raised.add(first)
                changes.append(AlarmChange("raised", alarm))
            if end is not None or (last < known - 1
                                   and now - offset >= self.settings.min_gap):   # settled
                if announced:
                    changes.append(AlarmChange("cleared", alarm))
                self.raised -= set(range(first, last + 1))
                self.base = last + 1
        below = np.flatnonzero(track < self.off)
        if not runs and len(below):
            self.base += int(below[-1]) + 1       # no alarm can reach back past these
        return changes

    def _trim(self) -> None:
        """Drop the windows no alarm can reach and no smoothing still needs."""
        keep_raw = min(self.base, self.known - self.settings.smooth // 2)
        if keep_raw - self.raw_from >= self.TRIM_EVERY:
            del self.raw[:keep_raw - self.raw_from]
            self.raw_from = keep_raw
        if self.base - self.smoothed_from >= self.TRIM_EVERY:
            del self.smoothed[:self.base - self.smoothed_from]
            self.smoothed_from = self.base


def monitor_stream(bundle: AnomalyBundle, blocks: Iterable[np.ndarray],
                   settings: AlarmSettings | None = None, source: str = "<stream>",
                   hop_seconds: float | None = None,
                   on_window: Callable[[float, float], None] | None = None,
                   on_change: Callable[[AlarmChange], None] | None = None) -> Monitoring:
    """Monitor a stream of mono blocks at the bundle's rate until it ends.

    Each window is scored as soon as it is complete; ``on_window(start
    seconds, score)`` is called for it and ``on_change`` for each alarm
    raised or cleared (:class:`AlarmTracker`). When the stream ends, the
    alarms still open are cleared; the result's alarms are
    :func:`find_alarms` of all the windows, as :func:`monitor_file` gives.
    """
    settings = settings or AlarmSettings()
    on, off = settings.levels(bundle.threshold)
    scorer = WindowScorer(bundle, hop_seconds, batch_size=1)
    rate = bundle.sample_rate
    tracker = AlarmTracker(bundle.threshold, settings, scorer.hop / rate,
                           bundle.window_samples / rate)
    starts, values = [], []
    for batch_starts, batch_scores in scorer.scores(blocks, source):
        for start, score in zip(batch_starts, batch_scores):
            starts.append(start / rate)
            values.append(float(score))
            if on_window is not None:
                on_window(start / rate, float(score))
            for change in tracker.push(float(score)):
                if on_change is not None:
                    on_change(change)
    if scorer.total == 0:
        raise AudioError(f"{source}: the stream ended before any audio arrived")
    scores = FileScores(source, np.asarray(starts), np.asarray(values, dtype=np.float32),
                        bundle.threshold, scorer.total / rate, bundle.window_samples / rate)
    for change in tracker.finish(scores.duration):
        if on_change is not None:
            on_change(change)
    return Monitoring(scores, find_alarms(scores, settings), on, off,
                      smooth_scores(scores.window_scores, settings.smooth))


def resampled(blocks: Iterable[np.ndarray], from_rate: int, to_rate: int) -> Iterator[np.ndarray]:
    """A live stream of mono blocks at ``from_rate``, resampled to ``to_rate`` as it comes."""
    from_rate = check_sample_rate(from_rate, "the stream's sample rate")
    if from_rate == to_rate:
        yield from blocks
        return
    stream = soxr.ResampleStream(from_rate, to_rate, 1, dtype="float32")
    for block in blocks:
        out = stream.resample_chunk(np.asarray(block, dtype=np.float32))
        if out.size:
            yield out
    tail = stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
    if tail.size:
        yield tail
