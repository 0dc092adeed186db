"""Sound event detection in long recordings: what happens, and when.

The bundle's model scores analysis windows at a set hop over the whole file
(read in blocks: memory stays bounded whatever its length). Each class's
probability track is then median-filtered, thresholded with hysteresis (an
event starts above ``on`` and lasts until it falls below ``off``), events
shorter than ``min_duration`` are dropped and gaps shorter than ``min_gap``
merged. A window's score is placed at its centre, so an event runs from
half a hop before its first active window's centre to half a hop after its
last one's. With ``snap``, each event's boundaries then move to where the
signal itself is active (:mod:`earmark.activity`).

Events are :class:`earmark.events.Event` with a ``confidence`` (the mean
smoothed probability inside the event); write them with
:func:`earmark.events.write_events` and score them with
:mod:`earmark.metrics.events`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from earmark.activity import ActivitySettings, level_track, snap_to_activity
from earmark.errors import ConfigError
from earmark.events import Event
from earmark.runtime.bundle import Bundle
from earmark.runtime.classify import Classifier, ClipResult

BACKGROUND = ("_silence_", "_unknown_")


#: The longest shift of an event's boundaries, shortest event or merged gap (seconds).
MAX_SHIFT_SECONDS = 3600.0


@dataclass
class DetectionSettings:
    """Post-processing of the probability tracks."""

    window_hop_seconds: float = 0.1         #: between analysis windows
    median_windows: int = 5                 #: odd; 1 = no filtering
    on_threshold: float = 0.5
    off_threshold: float = 0.3
    thresholds: dict[str, tuple[float, float]] = field(default_factory=dict)  #: per class
    min_duration: float = 0.1               #: seconds
    min_gap: float = 0.2                    #: seconds; shorter gaps are merged
    ignore: tuple[str, ...] = BACKGROUND    #: labels never reported as events
    onset_shift: float = 0.0                #: seconds added to every onset (bias correction)
    offset_shift: float = 0.0               #: seconds added to every offset
    snap: bool = False                      #: move boundaries to the signal's activity
    activity: ActivitySettings = field(default_factory=ActivitySettings)  #: how to snap

    def __post_init__(self) -> None:
        if self.median_windows < 1 or self.median_windows % 2 == 0:
            raise ConfigError("median_windows must be an odd number >= 1")
        for label, (on, off) in {"default": (self.on_threshold, self.off_threshold),
                                 **self.thresholds}.items():
            if not 0 <= off <= on <= 1:
                raise ConfigError(f"thresholds for {label}: need 0 <= off <= on <= 1, "
                                  f"got on={on}, off={off}")
        for name in ("onset_shift", "offset_shift", "min_duration", "min_gap"):
            value = getattr(self, name)
            low = -MAX_SHIFT_SECONDS if name.endswith("shift") else 0.0
            if not low <= value <= MAX_SHIFT_SECONDS:          # NaN fails too
                raise ConfigError(f"{name} {value}: give seconds from {low:g} to "
                                  f"{MAX_SHIFT_SECONDS:g}")

    def check_labels(self, labels: list[str]) -> None:
        """Per-class thresholds name classes the model has."""
        unknown = sorted(set(self.thresholds) - set(labels))
        if unknown:
            raise ConfigError(f"class thresholds for {', '.join(map(repr, unknown))}: the "
                              f"model has no such class (its classes: {', '.join(labels)})")


def detect_events(bundle: Bundle, path: str | os.PathLike,
                  settings: DetectionSettings) -> tuple[list[Event], ClipResult]:
    """Events of a file, and the per-window scores they came from.

    Parameters
    ----------
    bundle : Bundle
        The model that scores each window.
    path : str or os.PathLike
        The recording; read in blocks, so any length.
    settings : DetectionSettings
        Hop and post-processing.

    Returns
    -------
    tuple
        The events (times in seconds from the file's start, each with a
        confidence), sorted by onset then label, and the window scores.
    """
    settings.check_labels(bundle.labels)
    classifier = Classifier(bundle, window_hop_seconds=settings.window_hop_seconds)
    result = classifier.classify_file(path)
    events = events_from_tracks(result, settings)
    if settings.snap:
        events = snap_to_activity(events, level_track(path, bundle.sample_rate),
                                  settings.activity)
    return events, result


def events_from_tracks(result: ClipResult, settings: DetectionSettings) -> list[Event]:
    """Turn per-window probabilities into events (see the module docstring).

    Returns events in seconds with a ``confidence``, sorted by onset then label.
    """
    starts = result.window_starts
    hop = float(starts[1] - starts[0]) if len(starts) > 1 else result.window_seconds
    centres = starts + result.window_seconds / 2
    smoothed = median_filter(result.window_probabilities, settings.median_windows)
    events = []
    for index, label in enumerate(result.labels):
        if label in settings.ignore:
            continue
        on, off = settings.thresholds.get(label, (settings.on_threshold, settings.off_threshold))
        for first, last in hysteresis_runs(smoothed[:, index], on, off):
            # Active from the first window (or to the last): the event reaches the file's end.
            onset = 0.0 if first == 0 else centres[first] - hop / 2 + settings.onset_shift
            offset = (result.duration if last == len(centres) - 1
                      else centres[last] + hop / 2 + settings.offset_shift)
            onset, offset = max(0.0, onset), min(result.duration, max(offset, onset))
            if offset < onset:
                continue        # shifted past the file's end: nothing of it is in the file
            confidence = float(smoothed[first:last + 1, index].mean())
            events.append(Event(onset, offset, label, confidence=confidence))
    events = _merge_gaps(sorted(events, key=lambda e: (e.label, e.onset)), settings.min_gap)
    events = [e for e in events if e.offset - e.onset >= settings.min_duration]
    return sorted(events, key=lambda e: (e.onset, e.label))


def median_filter(tracks: np.ndarray, size: int) -> np.ndarray:
    """Running median over windows, per class; edges use the nearest values."""
    if size <= 1 or len(tracks) == 0:
        return tracks
    half = size // 2
    padded = np.pad(tracks, ((half, half), (0, 0)), mode="edge")
    stacked = np.lib.stride_tricks.sliding_window_view(padded, size, axis=0)
    return np.median(stacked, axis=-1)


def hysteresis_runs(track: np.ndarray, on: float, off: float) -> list[tuple[int, int]]:
    """(first, last) window indices of runs that rise above ``on`` and stay above ``off``."""
    runs, start = [], None
    for index, value in enumerate(track):
        if start is None and value >= on:
            start = index
            while start > 0 and track[start - 1] >= off:
                start -= 1                     # extend back over the rising flank
        elif start is not None and value < off:
            runs.append((start, index - 1))
            start = None
    if start is not None:
        runs.append((start, len(track) - 1))
    merged: list[tuple[int, int]] = []
    for run in runs:
        if merged and run[0] <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], run[1]))
        else:
            merged.append(run)
    return merged


def _merge_gaps(events: list[Event], min_gap: float) -> list[Event]:
    """Join same-label events less than ``min_gap`` seconds apart (sorted by label, onset);
    the confidence of a join is the duration-weighted mean of its parts."""
    merged: list[Event] = []
    for event in events:
        last = merged[-1] if merged else None
        if last and last.label == event.label and event.onset - last.offset < min_gap:
            span = (last.offset - last.onset) + (event.offset - event.onset)
            confidence = ((last.confidence * (last.offset - last.onset)
                           + event.confidence * (event.offset - event.onset)) / max(span, 1e-9))
            merged[-1] = Event(last.onset, max(last.offset, event.offset), event.label,
                               confidence=confidence)
        else:
            merged.append(event)
    return merged


def coarse_spectrogram(path: str | os.PathLike, sample_rate: int, columns: int = 1500,
                       n_fft: int = 512) -> tuple[np.ndarray, float]:
    """A dB spectrogram of a whole file with about ``columns`` frames, read in blocks.

    For pictures of long recordings: one frame every ``duration / columns``
    seconds. Returns ``(decibels (bins, frames), seconds per frame)``.
    """
    from earmark import audio

    total = audio.info(path).duration
    hop = max(n_fft, int(total * sample_rate / columns))
    window = np.hanning(n_fft).astype(np.float32)
    frames, carry = [], np.zeros(0, dtype=np.float32)
    for block in audio.read_blocks(path, sample_rate, block_seconds=30.0):
        carry = np.concatenate([carry, block])
        count = max(0, (len(carry) - n_fft) // hop + 1)
        for i in range(count):
            frames.append(np.abs(np.fft.rfft(carry[i * hop:i * hop + n_fft] * window)) ** 2)
        carry = carry[count * hop:]
    if not frames:
        frames.append(np.zeros(n_fft // 2 + 1))
    power = np.stack(frames, axis=1)
    return 10 * np.log10(np.maximum(power, 1e-10)), hop / sample_rate
