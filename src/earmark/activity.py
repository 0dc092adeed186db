"""Where sound is: a level track of a long file, and event boundaries snapped to it.

A window classifier knows *what* a sound is but only roughly *when*: every
window that holds part of a word votes for it, so its events start and end
up to half a window away from the word. The signal's own level knows when
much better. :func:`snap_to_activity` keeps each event's label and moves its
boundaries to the run of frames that rise clearly above the local noise
floor and overlap the event most.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from earmark import audio
from earmark.events import Event


@dataclass(frozen=True)
class LevelTrack:
    """Frame levels in dB, ``frame_seconds`` apart, from the file's start."""

    decibels: np.ndarray
    frame_seconds: float

    def index(self, seconds: float) -> int:
        return int(np.clip(round(seconds / self.frame_seconds), 0, len(self.decibels)))


@dataclass(frozen=True)
class ActivitySettings:
    """How boundaries are snapped (see :func:`snap_to_activity`)."""

    rise_db: float = 10.0        #: a frame is active this far above the local floor
    floor_percentile: float = 10.0
    context_seconds: float = 2.0  #: the floor is taken this far around the event
    bridge_seconds: float = 0.12  #: shorter quiet gaps inside a sound are bridged
    margin_seconds: float = 0.2   #: how far beyond the event a boundary may move


def level_track(path: str | os.PathLike, sample_rate: int = 16000,
                frame_seconds: float = 0.01) -> LevelTrack:
    """Mean power per frame in dB of a whole file, read in blocks (bounded memory)."""
    frame = max(1, round(frame_seconds * sample_rate))
    levels, carry = [], np.zeros(0, dtype=np.float32)
    for block in audio.read_blocks(path, sample_rate, block_seconds=30.0):
        carry = np.concatenate([carry, block])
        levels.append(frame_levels(carry, frame))
        carry = carry[len(levels[-1]) * frame:]
    decibels = np.concatenate(levels) if levels else np.zeros(0)
    return LevelTrack(decibels.astype(np.float32), frame / sample_rate)


def frame_levels(samples: np.ndarray, frame: int) -> np.ndarray:
    """Mean power in dB of each whole ``frame``-sample frame (a partial last one is left out)."""
    whole = len(samples) // frame * frame
    power = (samples[:whole].reshape(-1, frame) ** 2).mean(axis=1)
    return 10 * np.log10(power + 1e-12)


def snap_to_activity(events: Sequence[Event], track: LevelTrack,
                     settings: ActivitySettings | None = None) -> list[Event]:
    """Each event with its onset and offset moved to the active run it overlaps most.

    Parameters
    ----------
    events : sequence of Event
        Times in seconds on the track's clock.
    track : LevelTrack
        Frame levels of the same recording.
    settings : ActivitySettings, optional
        How far boundaries may move and what counts as active.

    Returns
    -------
    list of Event
        Sorted by onset, each with its label, source and confidence kept. An
        event with no active frame near it is left as it is; a boundary
        never crosses a neighbouring event's.
    """
    settings = settings or ActivitySettings()
    ordered = sorted(events, key=lambda e: e.onset)
    snapped = []
    for position, event in enumerate(ordered):
        low = ordered[position - 1].offset if position else 0.0
        high = ordered[position + 1].onset if position + 1 < len(ordered) else float("inf")
        run = _best_run(event, track, settings, max(low, event.onset - settings.margin_seconds),
                        min(high, event.offset + settings.margin_seconds))
        snapped.append(event if run is None else replace(event, onset=run[0], offset=run[1]))
    return snapped


def _best_run(event: Event, track: LevelTrack, settings: ActivitySettings, low: float,
              high: float) -> tuple[float, float] | None:
    first, last = track.index(low), track.index(high)
    if last - first < 2:
        return None
    around = track.decibels[track.index(event.onset - settings.context_seconds):
                            track.index(event.offset + settings.context_seconds)]
    floor = np.percentile(around, settings.floor_percentile)
    active = track.decibels[first:last] > floor + settings.rise_db
    runs = active_runs(active, max(0, round(settings.bridge_seconds / track.frame_seconds)))
    if not runs:
        return None
    start, stop = track.index(event.onset) - first, track.index(event.offset) - first
    best = max(runs, key=lambda r: (min(r[1], stop) - max(r[0], start), r[1] - r[0]))
    if min(best[1], stop) <= max(best[0], start):
        return None                              # no active run inside the event itself
    seconds = track.frame_seconds
    return (first + best[0]) * seconds, (first + best[1]) * seconds


def active_runs(active: np.ndarray, bridge: int) -> list[tuple[int, int]]:
    """``(start, stop)`` frame ranges of True, joining gaps of at most ``bridge`` frames."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], active.astype(np.int8), [0]])))
    runs: list[list[int]] = []
    for start, stop in zip(edges[::2], edges[1::2]):
        if runs and start - runs[-1][1] <= bridge:
            runs[-1][1] = int(stop)
        else:
            runs.append([int(start), int(stop)])
    return [(start, stop) for start, stop in runs]
