"""The streaming smoother: hand-built score streams with known detections.

Streams are built at a 20 ms stride with a 500 ms window, so a full window
holds 26 results (both ends included). A word at probability 1 after
silence needs 14 of them to win: at 13 it ties with silence, and a tie goes
to the first class (silence), so it fires 260 ms after it starts.
"""

from __future__ import annotations

import numpy as np
import pytest

from earmark.errors import ConfigError, EarmarkError
from earmark.runtime.smoother import (Detection, Smoother, SmootherConfig, StreamError,
                                      detect)

LABELS = ["_silence_", "_unknown_", "yes", "no"]
STRIDE_MS = 20
CONFIG = SmootherConfig(average_window_ms=500, detection_threshold=0.5,
                        suppression_ms=1500, minimum_count=5)


def stream(*segments, stride_ms: int = STRIDE_MS) -> tuple[np.ndarray, np.ndarray]:
    """Times and scores for ``(label, milliseconds[, probability])`` segments.

    The segment's label gets ``probability`` (1.0 by default) and silence
    the rest; a dict instead of a label gives the whole score vector.
    """
    times, rows = [], []
    now = 0
    for segment in segments:
        label, duration = segment[:2]
        probability = segment[2] if len(segment) > 2 else 1.0
        if isinstance(label, dict):
            row = np.array([label.get(name, 0.0) for name in LABELS])
        else:
            row = np.zeros(len(LABELS))
            row[0] = 1.0 - probability
            row[LABELS.index(label)] += probability
        for _ in range(duration // stride_ms):
            times.append(now)
            rows.append(row)
            now += stride_ms
    return np.array(times), np.array(rows)


def run(times, scores, config=CONFIG) -> list[tuple[str, int]]:
    """Feed a stream through a fresh Smoother; (label, time) of each detection."""
    smoother = Smoother(LABELS, config)
    found = [smoother.update(row, int(time)) for time, row in zip(times, scores)]
    return [(d.label, d.time_ms) for d in found if d is not None]


def test_word_held_for_one_second_fires_once_at_the_right_time():
    times, scores = stream(("_silence_", 1000), ("yes", 1000), ("_silence_", 1500))
    smoother = Smoother(LABELS, CONFIG)
    found = [d for t, row in zip(times, scores) if (d := smoother.update(row, int(t)))]
    assert found == [Detection("yes", pytest.approx(14 / 26), 1260)]


def test_word_held_for_four_seconds_fires_once_per_suppression_period():
    times, scores = stream(("_silence_", 1000), ("yes", 4000), ("_silence_", 2000))
    found = run(times, scores)
    # First at 1260, then at the first step more than 1500 ms later, twice.
    assert found == [("yes", 1260), ("yes", 2780), ("yes", 4300)]


def test_same_word_said_again_after_suppression_fires_again():
    times, scores = stream(("_silence_", 1000), ("yes", 600), ("_silence_", 2400),
                           ("yes", 600), ("_silence_", 1000))
    assert run(times, scores) == [("yes", 1260), ("yes", 4260)]


def test_two_different_words_back_to_back_both_fire():
    times, scores = stream(("_silence_", 1000), ("yes", 600), ("no", 600), ("_silence_", 1000))
    # At 1840 "no" and "yes" tie at 13 results each; "no" wins at 1860,
    # well within the 1500 ms suppression of "yes".
    assert run(times, scores) == [("yes", 1260), ("no", 1860)]


def test_min_gap_suppresses_a_different_word_too():
    times, scores = stream(("_silence_", 1000), ("yes", 600), ("no", 600), ("_silence_", 1000))
    config = SmootherConfig(average_window_ms=500, detection_threshold=0.5,
                            suppression_ms=1500, minimum_count=5, min_gap_ms=1500)
    assert run(times, scores, config) == [("yes", 1260)]


def test_silence_never_fires():
    times, scores = stream(("_silence_", 5000))
    assert run(times, scores) == []
    assert run(times, scores, SmootherConfig(detection_threshold=0.0, minimum_count=1)) == []


def test_unknown_fires_only_when_reported():
    times, scores = stream(("_silence_", 1000), ("_unknown_", 1000), ("_silence_", 1000))
    assert run(times, scores) == []
    config = SmootherConfig(average_window_ms=500, detection_threshold=0.5,
                            suppression_ms=1500, minimum_count=5, report_unknown=True)
    assert run(times, scores, config) == [("_unknown_", 1260)]


def test_below_threshold_never_fires():
    weak = {"_silence_": 0.25, "yes": 0.45, "no": 0.3}
    times, scores = stream(("_silence_", 1000), (weak, 3000), ("_silence_", 1000))
    assert run(times, scores) == []
    lower = SmootherConfig(average_window_ms=500, detection_threshold=0.4,
                           suppression_ms=1500, minimum_count=5)
    assert [label for label, _ in run(times, scores, lower)] == ["yes", "yes"]


def test_threshold_is_inclusive():
    times, scores = stream(("yes", 2000, 0.5))
    config = SmootherConfig(average_window_ms=500, detection_threshold=0.5,
                            suppression_ms=5000, minimum_count=5)
    # "yes" and silence tie at 0.5: argmax takes silence, the first class.
    assert run(times, scores, config) == []
    times, scores = stream(("yes", 2000, 0.75))
    config = SmootherConfig(average_window_ms=500, detection_threshold=0.75,
                            suppression_ms=5000, minimum_count=5)
    assert run(times, scores, config) == [("yes", 80)]


def test_minimum_count_is_respected():
    times, scores = stream(("yes", 2000))

    def config(minimum_count):
        return SmootherConfig(average_window_ms=500, detection_threshold=0.5,
                              suppression_ms=5000, minimum_count=minimum_count)

    assert run(times, scores, config(5)) == [("yes", 80)]        # 5th result
    assert run(times, scores, config(26)) == [("yes", 500)]      # a full window
    assert run(times, scores, config(27)) == []                  # more than fits


def test_averaging_window_drops_old_results():
    times, scores = stream(("yes", 500), ("_silence_", 1000))
    smoother = Smoother(LABELS, CONFIG)
    for time, row in zip(times, scores):
        smoother.update(row, int(time))
        if time == 700:
            # Window [200, 700]: "yes" at 200..480 (15), silence at 500..700 (11).
            assert smoother.top_label == "yes"
            assert smoother.top_score == pytest.approx(15 / 26)
    assert smoother.top_label == "_silence_"
    assert smoother.top_score == pytest.approx(1.0)


def test_time_going_backwards_raises():
    smoother = Smoother(LABELS, CONFIG)
    row = np.array([1.0, 0.0, 0.0, 0.0])
    smoother.update(row, 100)
    smoother.update(row, 100)                # equal times are fine
    with pytest.raises(StreamError, match="time order"):
        smoother.update(row, 99)
    assert issubclass(StreamError, ValueError) and issubclass(StreamError, EarmarkError)
    with pytest.raises(StreamError, match="must not decrease"):
        detect([0, 20, 10], np.tile(row, (3, 1)), LABELS, CONFIG)


def test_reset_starts_a_new_stream():
    times, scores = stream(("_silence_", 1000), ("yes", 1000))
    smoother = Smoother(LABELS, CONFIG)
    first = [d for t, row in zip(times, scores) if (d := smoother.update(row, int(t)))]
    smoother.reset()
    again = [d for t, row in zip(times, scores) if (d := smoother.update(row, int(t)))]
    assert first == again and len(first) == 1


def test_bad_scores_and_config_are_rejected():
    smoother = Smoother(LABELS, CONFIG)
    with pytest.raises(StreamError, match="shape"):
        smoother.update(np.zeros(3), 0)
    with pytest.raises(ConfigError, match="minimum_count"):
        SmootherConfig(minimum_count=0)
    with pytest.raises(ConfigError, match="average_window_ms"):
        SmootherConfig(average_window_ms=0)
    with pytest.raises(ConfigError, match="unique"):
        Smoother(["yes", "yes"])


def test_batch_detect_matches_the_streaming_smoother():
    rng = np.random.default_rng(3)
    steps = 3000
    logits = rng.normal(0.0, 2.0, (steps, len(LABELS)))
    scores = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    times = np.cumsum(rng.integers(0, 40, steps))
    for config in (SmootherConfig(average_window_ms=500, detection_threshold=0.3,
                                  suppression_ms=1500, minimum_count=5),
                   SmootherConfig(average_window_ms=300, detection_threshold=0.35,
                                  suppression_ms=700, minimum_count=3,
                                  min_gap_ms=200, report_unknown=True)):
        smoother = Smoother(LABELS, config)
        streamed = [d for t, row in zip(times, scores) if (d := smoother.update(row, int(t)))]
        batch = detect(times, scores, LABELS, config)
        assert len(batch) > 10
        assert [(d.label, d.time_ms) for d in streamed] == [(d.label, d.time_ms) for d in batch]
        np.testing.assert_allclose([d.score for d in streamed], [d.score for d in batch])
