"""Event boundaries snapped to where the signal is active."""

from __future__ import annotations

import numpy as np
import pytest

from earmark import audio
from earmark.activity import ActivitySettings, LevelTrack, level_track, snap_to_activity
from earmark.events import Event

RATE = 16000


def Ev(onset: float, offset: float, label: str = "word", confidence: float | None = None):
    return Event(onset, offset, label, confidence=confidence)


def bursts(spans: list[tuple[float, float]], seconds: float = 8.0, seed: int = 0) -> np.ndarray:
    """Noise at -46 dB with tone bursts (-10 dB) at the given spans."""
    rng = np.random.default_rng(seed)
    signal = 0.005 * rng.standard_normal(int(seconds * RATE))
    t = np.arange(len(signal)) / RATE
    for start, stop in spans:
        inside = (t >= start) & (t < stop)
        signal[inside] += 0.4 * np.sin(2 * np.pi * 500 * t[inside])
    return signal.astype(np.float32)


def track_of(signal: np.ndarray) -> LevelTrack:
    frames = signal[:len(signal) // 160 * 160].reshape(-1, 160)
    return LevelTrack((10 * np.log10((frames ** 2).mean(axis=1) + 1e-12)).astype(np.float32),
                      0.01)


def test_level_track_reads_the_file_in_blocks(tmp_path):
    signal = bursts([(1.0, 1.5)], seconds=65.0)        # longer than one 30 s block
    path = tmp_path / "long.flac"
    audio.write(path, signal, RATE)
    track = level_track(path, RATE)
    assert len(track.decibels) == 6500
    assert track.decibels[102:148].min() > track.decibels[200:6400].max() + 20


def test_an_early_wide_event_snaps_to_its_burst():
    track = track_of(bursts([(2.30, 2.95)]))
    [snapped] = snap_to_activity([Ev(2.05, 3.10, confidence=0.75)], track)
    assert snapped.onset == pytest.approx(2.30, abs=0.011)
    assert snapped.offset == pytest.approx(2.95, abs=0.011)
    assert isinstance(snapped, Event)
    assert (snapped.label, snapped.confidence) == ("word", 0.75)


def test_a_boundary_may_move_beyond_the_event_by_the_margin_only():
    track = track_of(bursts([(2.0, 3.0)]))
    [snapped] = snap_to_activity([Ev(2.5, 2.8)], track, ActivitySettings(margin_seconds=0.2))
    assert snapped.onset == pytest.approx(2.3, abs=0.011)
    assert snapped.offset == pytest.approx(3.0, abs=0.011)


def test_neighbours_keep_their_own_bursts_and_short_gaps_are_bridged():
    track = track_of(bursts([(1.0, 1.3), (1.36, 1.6), (2.0, 2.5)]))    # 60 ms gap inside
    first, second = snap_to_activity([Ev(0.7, 1.9), Ev(1.95, 2.9)], track)
    assert (first.onset, first.offset) == pytest.approx((1.0, 1.6), abs=0.011)
    assert (second.onset, second.offset) == pytest.approx((2.0, 2.5), abs=0.011)


def test_an_event_over_noise_alone_is_left_as_it_is():
    track = track_of(bursts([(5.0, 5.5)]))
    event = Ev(1.0, 2.0)
    assert snap_to_activity([event], track) == [event]
    assert snap_to_activity([], track) == []
