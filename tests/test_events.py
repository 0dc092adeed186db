"""Event detection: post-processing of probability tracks, and whole files."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import soundfile

from conftest import TONE_RATE
from earmark.errors import ConfigError
from earmark.events import Event, read_events, write_events
from earmark.metrics.events import timing_bias
from earmark.runtime import load_bundle
from earmark.runtime.classify import ClipResult
from earmark.runtime.detect import (DetectionSettings, coarse_spectrogram, detect_events,
                                    events_from_tracks, median_filter)

LABELS = ["_silence_", "dog", "bell"]


def tracks(dog_runs, bell_runs, windows=100) -> ClipResult:
    """Windows every 0.1 s (0.2 s long); probability 0.9 inside the given window runs."""
    probabilities = np.zeros((windows, 3))
    probabilities[:, 0] = 0.9
    for column, runs in ((1, dog_runs), (2, bell_runs)):
        for first, last in runs:
            probabilities[first:last + 1, column] = 0.9
            probabilities[first:last + 1, 0] = 0.05
    return ClipResult("x", LABELS, probabilities.mean(0), np.arange(windows) * 0.1,
                      probabilities, duration=windows * 0.1 + 0.1, window_seconds=0.2)


def test_runs_become_events_with_centre_times():
    settings = DetectionSettings(median_windows=1, min_duration=0.0, min_gap=0.0)
    events = events_from_tracks(tracks([(10, 19)], [(50, 54)]), settings)
    assert [(e.label, round(e.onset, 3), round(e.offset, 3)) for e in events] == [
        ("dog", 1.05, 2.05), ("bell", 5.05, 5.55)]
    assert all(isinstance(e, Event) and e.confidence == pytest.approx(0.9) for e in events)


def test_median_filter_removes_blips_and_hysteresis_holds_through_dips():
    result = tracks([(10, 30)], [(60, 60)])
    result.window_probabilities[20, 1] = 0.35          # dips below on, stays above off
    events = events_from_tracks(result, DetectionSettings(median_windows=3, min_gap=0.0))
    assert [e.label for e in events] == ["dog"]        # the one-window bell is filtered out


def test_gaps_merge_and_short_events_drop():
    settings = DetectionSettings(median_windows=1, min_gap=0.5, min_duration=0.3)
    events = events_from_tracks(tracks([(10, 14), (17, 20)], [(50, 51)]), settings)
    assert [(e.label, round(e.onset, 2), round(e.offset, 2)) for e in events] == [
        ("dog", 1.05, 2.15)]


def test_events_at_the_ends_are_clipped_to_the_file():
    events = events_from_tracks(tracks([(0, 5)], [(95, 99)]),
                                DetectionSettings(median_windows=1, min_duration=0.0))
    assert events[0].onset == 0.0 and events[-1].offset <= 10.1
    # Shifted past the file's end, an event has nothing left in the file.
    shifted = events_from_tracks(tracks([(10, 19)], [(97, 98)]), DetectionSettings(
        median_windows=1, min_duration=0.0, onset_shift=1.0))
    assert [e.label for e in shifted] == ["dog"]


def test_bad_settings_are_config_errors():
    with pytest.raises(ConfigError):
        DetectionSettings(median_windows=4)
    with pytest.raises(ConfigError, match="bell"):
        DetectionSettings(thresholds={"bell": (0.3, 0.6)})


def write_scene(path):
    """8 s of noise with a low tone at 2.0-3.5 s and a high one at 5.5-6.5 s."""
    rng = np.random.default_rng(0)
    pieces = []
    for frequency, seconds in ((None, 2.0), (300, 1.5), (None, 2.0), (2000, 1.0), (None, 1.5)):
        t = np.arange(int(seconds * TONE_RATE)) / TONE_RATE
        tone = 0.4 * np.sin(2 * np.pi * frequency * t) if frequency else 0 * t
        pieces.append(tone + 0.05 * rng.standard_normal(len(t)))
    soundfile.write(path, np.concatenate(pieces).astype(np.float32), TONE_RATE)
    return path


def test_detect_finds_tones_in_a_file_and_writes_every_format(bundle, tmp_path):
    path = write_scene(tmp_path / "scene.wav")
    events, result = detect_events(load_bundle(bundle), path, DetectionSettings(window_hop_seconds=0.05))
    assert [e.label for e in events] == ["low", "high"]
    low, high = events
    assert abs(low.onset - 2.0) < 0.35 and abs(low.offset - 3.5) < 0.35
    assert abs(high.onset - 5.5) < 0.35 and abs(high.offset - 6.5) < 0.35
    for suffix in (".csv", ".json", ".txt"):
        written = write_events(tmp_path / f"events{suffix}", events, decimals=4)
        back = read_events(written)
        assert [e.label for e in back] == ["low", "high"]
        assert [e.onset for e in back] == [round(e.onset, 4) for e in events]
        if suffix != ".txt":
            assert [e.confidence for e in back] == [round(e.confidence, 4) for e in events]
    spectrogram, seconds_per_frame = coarse_spectrogram(path, TONE_RATE, columns=200)
    assert spectrogram.shape[1] * seconds_per_frame == pytest.approx(8.0, abs=0.2)


def test_median_filter_keeps_shape():
    data = np.random.default_rng(0).random((50, 4))
    assert median_filter(data, 5).shape == data.shape
    np.testing.assert_array_equal(median_filter(data, 1), data)


def test_timing_bias_measures_and_shifts_correct_it():
    result = tracks([(10, 19), (40, 49)], [])
    plain = events_from_tracks(result, DetectionSettings(median_windows=1))
    reference = [Event(e.onset + 0.3, e.offset - 0.2, e.label) for e in plain]
    onset_bias, offset_bias = timing_bias(reference, plain)
    assert onset_bias == pytest.approx(0.3) and offset_bias == pytest.approx(-0.2)
    shifted = events_from_tracks(result, DetectionSettings(
        median_windows=1, onset_shift=onset_bias, offset_shift=offset_bias))
    assert [round(e.onset, 6) for e in shifted] == [round(r.onset, 6) for r in reference]


def test_detect_and_evaluate_events_commands(bundle, tmp_path, capsys):
    from earmark import cli

    scene = write_scene(tmp_path / "scene.wav")
    for suffix in (".csv", ".txt"):
        output = tmp_path / f"detected{suffix}"
        assert cli.main(["detect", str(bundle), str(scene), "--hop", "0.05",
                         "--output", str(output)]) == 0
    lines = (tmp_path / "detected.csv").read_text().splitlines()
    assert lines[0] == "onset,offset,label,confidence"
    assert all(re.fullmatch(r"\d+\.\d{4},\d+\.\d{4},\w+,\d\.\d{4}", line)
               for line in lines[1:])
    assert all(re.fullmatch(r"\d+\.\d{6}\t\d+\.\d{6}\t\w+", line)
               for line in (tmp_path / "detected.txt").read_text().splitlines())
    write_events(tmp_path / "truth.txt", [Event(2.0, 3.5, "low"), Event(5.5, 6.5, "high")])
    capsys.readouterr()
    assert cli.main(["evaluate-events", str(tmp_path / "truth.txt"),
                     str(tmp_path / "detected.csv"), "--collar", "0.5", "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["event_based"]["overall"]["f1"] == 1.0
    assert set(scores["timing_bias"]) == {"onset", "offset"}
