"""Test streams: words placed exactly where the truth says; the stream evaluation end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest

from earmark.data.streams import StreamSpec, TruthWord, build_stream, speech_extent
from earmark.events import Event, read_events
from earmark.runtime import load_bundle
from earmark.stream_eval import evaluate_streaming

RATE = 8000


def word(frequency: float, start: float, length: float) -> np.ndarray:
    """A 1 s clip with a tone from ``start`` for ``length`` seconds."""
    clip = np.zeros(RATE, dtype=np.float32)
    t = np.arange(int(length * RATE)) / RATE
    clip[int(start * RATE):int(start * RATE) + len(t)] = 0.5 * np.sin(2 * np.pi * frequency * t)
    return clip


def test_speech_extent_finds_the_word_inside_the_clip():
    start, end = speech_extent(word(500, 0.3, 0.4), RATE)
    assert abs(start - 0.3 * RATE) <= RATE // 100 and abs(end - 0.7 * RATE) <= RATE // 100


def test_speech_extent_ignores_the_clips_own_background():
    rng = np.random.default_rng(0)
    clip = word(500, 0.4, 0.3) + 0.01 * rng.standard_normal(RATE).astype(np.float32)
    start, end = speech_extent(clip, RATE)            # noise 31 dB below the word
    assert abs(start - 0.4 * RATE) <= RATE // 100 and abs(end - 0.7 * RATE) <= RATE // 100


def test_speech_extent_leaves_out_a_click_apart_from_the_word():
    clip = word(500, 0.5, 0.3) + word(3000, 0.1, 0.01) * 0.2     # a click 0.39 s before
    start, end = speech_extent(clip, RATE)
    assert abs(start - 0.5 * RATE) <= RATE // 100 and abs(end - 0.8 * RATE) <= RATE // 100
    gap = word(500, 0.3, 0.2) + word(600, 0.6, 0.1)               # a 0.1 s closure inside
    assert speech_extent(gap, RATE) == pytest.approx((0.3 * RATE, 0.7 * RATE), abs=RATE // 100)


def test_truth_times_match_where_the_words_were_placed():
    clips = [(word(300 + 100 * i, 0.2, 0.3), f"w{i}") for i in range(5)] + \
            [(np.zeros(RATE, dtype=np.float32), "_silence_")]
    spec = StreamSpec(duration_s=20, noise_volume=0.0, gain_db=(0.0, 0.0), seed=2)
    stream, truth = build_stream(clips, [], RATE, spec)
    assert len(stream) == 20 * RATE and truth
    assert all(t.label != "_silence_" for t in truth)
    for entry in truth:
        start, end = int(entry.start_ms * RATE / 1000), int(entry.end_ms * RATE / 1000)
        assert np.abs(stream[start:end]).max() > 0.4
        assert np.abs(stream[max(0, start - 80):start]).max() < 1e-6      # silent before
        assert np.abs(stream[end:end + 80]).max() < 1e-6                  # and after
        frequency = np.fft.rfftfreq(end - start, 1 / RATE)[
            np.abs(np.fft.rfft(stream[start:end])).argmax()]
        assert abs(frequency - (300 + 100 * int(entry.label[1:]))) < 30


def test_a_wake_phrase_gets_its_quiet_after_it():
    clips = [(word(400, 0.2, 0.3), "hey")] * 6 + [(word(700, 0.2, 0.3), "_unknown_")] * 6
    spec = StreamSpec(duration_s=60, noise_volume=0.0, gap_s=(0.5, 1.0), seed=3,
                      quiet_after_s={"hey": 2.5})
    _, truth = build_stream(clips, [], RATE, spec)
    gaps = {label: [b.start_ms - a.end_ms for a, b in zip(truth, truth[1:]) if a.label == label]
            for label in ("hey", "_unknown_")}
    assert gaps["hey"] and min(gaps["hey"]) >= 2500 - 1
    assert gaps["_unknown_"] and max(gaps["_unknown_"]) <= 1000 + 1


def test_a_truth_word_is_an_event_in_seconds():
    assert TruthWord("yes", 1250.0, 1687.5).as_event() == Event(1.25, 1.6875, "yes")


def test_a_budget_no_threshold_meets_still_scores_the_test_stream(bundle, trained_run,
                                                                  tmp_path, caplog, monkeypatch):
    """A model that no threshold keeps within the budget is scored at the threshold with the
    fewest false alarms on the validation stream (what a cross-validation fold needs), and
    the report says so."""
    import earmark.stream_eval as stream_eval
    from earmark.metrics.streaming import ThresholdError

    swept = []

    def over_budget(sweep, budget):
        swept.extend(sweep)
        raise ThresholdError("no threshold keeps false alarms at or below 0/hour")

    monkeypatch.setattr(stream_eval, "pick_threshold", over_budget)
    report = evaluate_streaming(load_bundle(bundle), trained_run, tmp_path / "st", minutes=0.5,
                                noise_dir="", max_false_alarms_per_hour=0)
    assert report["calibration_met"] is False
    fewest = min(score.false_alarms_per_hour for _, score in swept)
    assert report["threshold"] == max(t for t, score in swept
                                      if score.false_alarms_per_hour == fewest)
    assert "no threshold keeps false alarms" in caplog.text
    assert (tmp_path / "st" / "report.json").is_file()


def test_stream_evaluation_writes_its_evidence(bundle, trained_run, tmp_path):
    report = evaluate_streaming(load_bundle(bundle), trained_run, tmp_path / "st", minutes=0.5,
                                noise_dir="", max_false_alarms_per_hour=1000)
    assert report["words"] > 5
    assert 0 <= report["score"]["correct_rate"] <= 1
    for name in ("test_stream.flac", "truth.csv", "truth_audacity.txt", "detections.csv",
                 "sweep.csv", "tradeoff.png", "report.json"):
        assert (tmp_path / "st" / name).is_file(), name
    assert json.loads((tmp_path / "st" / "report.json").read_text())["threshold"] == \
        pytest.approx(report["threshold"])
    assert report["calibration_met"] is True
    truth = read_events(tmp_path / "st" / "truth.csv")
    assert len(truth) == report["words"]
    labels = read_events(tmp_path / "st" / "truth_audacity.txt")
    assert [e.label for e in labels] == [e.label for e in truth]
    assert [e.onset for e in labels] == [round(e.onset, 3) for e in truth]
