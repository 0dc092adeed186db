"""Scoring a stream against ground truth, threshold sweeps and picking a threshold."""

from __future__ import annotations

import json

import numpy as np
import pytest

from earmark.errors import EarmarkError
from earmark.metrics.streaming import (StreamScore, ThresholdError, fewest_false_alarms,
                                      pick_threshold, score_spans, score_stream,
                                      sweep_thresholds)
from earmark.runtime.smoother import Detection, SmootherConfig, detect

LABELS = ["_silence_", "_unknown_", "yes", "no"]


def counts(score: StreamScore) -> tuple[int, ...]:
    return (score.truth_words, score.matched, score.correct, score.wrong,
            score.false_positives, score.missed)


def test_correct_wrong_false_positive_and_missed():
    truth = [("yes", 1000), ("no", 3000), ("up", 5000), ("down", 7000)]
    detections = [("yes", 1300), ("up", 3200), ("left", 9000)]
    score = score_stream(truth, detections, duration_s=10.0)
    #       truth matched correct wrong fp missed
    assert counts(score) == (4, 2, 1, 1, 1, 2)
    assert score.detections == 3
    assert score.matched_rate == 0.5
    assert score.correct_rate == 0.25
    assert score.wrong_rate == 0.25
    assert score.false_positive_rate == 0.25
    assert score.missed_rate == 0.5
    assert score.latencies_ms == [300]


def test_tolerance_is_inclusive_on_both_sides():
    truth = [("yes", 5000)]
    for offset in (-750, 750):
        assert counts(score_stream(truth, [("yes", 5000 + offset)], 10.0)) == (1, 1, 1, 0, 0, 0)
    for offset in (-751, 751):
        assert counts(score_stream(truth, [("yes", 5000 + offset)], 10.0)) == (1, 0, 0, 0, 1, 1)
    wide = score_stream(truth, [("yes", 5900)], 10.0, time_tolerance_ms=1000)
    assert wide.correct == 1 and wide.latencies_ms == [900]


def test_each_word_is_matched_at_most_once():
    score = score_stream([("yes", 1000)], [("yes", 1200), ("yes", 1400), ("no", 1500)], 10.0)
    assert counts(score) == (1, 1, 1, 0, 2, 0)
    assert score.latencies_ms == [200]


def test_detections_take_the_earliest_free_word():
    # The closest word to 600 is the one at 1000, but taking it would leave
    # the detection at 1400 without a word; the earliest free word pairs both.
    score = score_stream([("yes", 0), ("yes", 1000)], [("yes", 600), ("yes", 1400)], 10.0)
    assert counts(score) == (2, 2, 2, 0, 0, 0)
    assert score.latencies_ms == [600, 400]


def test_a_wrong_label_does_not_steal_a_correct_match():
    score = score_stream([("yes", 1000)], [("no", 900), ("yes", 1200)], 10.0)
    assert counts(score) == (1, 1, 1, 0, 1, 0)


def test_inputs_in_any_order_and_detection_objects():
    truth = [("no", 3000), ("yes", 1000)]
    detections = [Detection("no", 0.9, 3400), Detection("yes", 0.8, 1250)]
    score = score_stream(truth, detections, 10.0)
    assert counts(score) == (2, 2, 2, 0, 0, 0)
    assert score.latencies_ms == [250, 400]


def test_unknown_words_are_distractors_unless_expected():
    truth = [("_unknown_", 1000), ("yes", 3000), ("_silence_", 5000)]
    keyword_on_unknown = score_stream(truth, [("yes", 1200), ("_unknown_", 3100)], 10.0)
    # The unknown word neither counts nor is missed; "yes" on it is wrong;
    # the _unknown_ detection is ignored; the real "yes" is missed.
    assert counts(keyword_on_unknown) == (1, 0, 0, 1, 0, 1)
    assert keyword_on_unknown.detections == 1
    assert keyword_on_unknown.false_alarms == 1

    expected = score_stream(truth, [("_unknown_", 1100), ("yes", 3100)], 10.0,
                            expect_unknown=True)
    assert counts(expected) == (2, 2, 2, 0, 0, 0)
    missed_unknown = score_stream(truth, [("yes", 3100)], 10.0, expect_unknown=True)
    assert counts(missed_unknown) == (2, 1, 1, 0, 0, 1)


def test_false_alarms_per_hour():
    truth = [("yes", 1000), ("no", 5000)]
    score = score_stream(truth, [("yes", 1100), ("yes", 5100), ("no", 20000)], 1800.0)
    assert (score.correct, score.wrong, score.false_positives) == (1, 1, 1)
    assert score.false_alarms == 2
    assert score.false_alarms_per_hour == pytest.approx(4.0)


def test_report_formats_and_empty_truth():
    score = score_stream([("yes", 1000)], [("yes", 1300)], 60.0)
    record = json.loads(json.dumps(score.to_dict(), allow_nan=False))
    assert record["correct"] == 1 and record["correct_rate"] == 1.0
    assert record["latencies_ms"] == [300]
    assert "100.0% correct" in score.to_text()

    nothing = score_stream([], [("yes", 1300)], 60.0)
    assert nothing.false_positives == 1 and np.isnan(nothing.correct_rate)
    assert nothing.to_dict()["correct_rate"] is None
    json.dumps(nothing.to_dict(), allow_nan=False)
    assert "n/a" in nothing.to_text()


def test_bad_arguments_are_rejected():
    with pytest.raises(EarmarkError, match="duration_s"):
        score_stream([], [], 0.0)
    with pytest.raises(EarmarkError, match="label, time_ms"):
        score_stream([("yes",)], [], 10.0)


# --------------------------------------------------------------------------
# Sweeps


def synthetic_stream():
    """60 s at 20 ms on noisy silence: a word every 3 s (p=0.9 for 600 ms,
    truth at its start) and, 1.6 s after each, 600 ms of weak evidence for
    the same word (0.4, the rest split): late enough to escape its
    suppression, it wins the window but only passes thresholds up to 0.4."""
    stride_ms, steps = 20, 3000
    rng = np.random.default_rng(7)
    scores = np.zeros((steps, len(LABELS)))
    scores[:, 0] = 1.0
    scores += rng.uniform(0.0, 0.05, scores.shape)
    truth = []
    for word, start_ms in enumerate(range(1000, 58000, 3000)):
        label = "yes" if word % 2 else "no"
        first = start_ms // stride_ms
        scores[first:first + 30] = 0.1 / 3
        scores[first:first + 30, LABELS.index(label)] = 0.9
        truth.append((label, start_ms))
        weak = first + 80
        other = "no" if label == "yes" else "yes"
        scores[weak:weak + 30, [0, 1]] = 0.15
        scores[weak:weak + 30, LABELS.index(other)] = 0.3
        scores[weak:weak + 30, LABELS.index(label)] = 0.4
    scores /= scores.sum(axis=1, keepdims=True)
    return np.arange(steps) * stride_ms, scores, truth, steps * stride_ms / 1000


def test_sweep_trades_false_alarms_for_misses():
    times, scores, truth, duration_s = synthetic_stream()
    thresholds = [0.2, 0.3, 0.5, 0.6, 0.7, 0.8, 0.95]
    sweep = sweep_thresholds(times, scores, LABELS, SmootherConfig(), truth, duration_s,
                             thresholds)
    assert [threshold for threshold, _ in sweep] == thresholds
    detections = [score.detections for _, score in sweep]
    assert all(later <= earlier for earlier, later in zip(detections, detections[1:]))
    low, middle, high = sweep[1][1], sweep[2][1], sweep[-1][1]
    assert low.correct == len(truth) and low.false_positives == len(truth)   # the weak ones
    assert middle.correct == len(truth) and middle.false_alarms == 0
    assert high.detections == 0 and high.missed == len(truth)
    assert all(240 <= latency <= 300 for latency in middle.latencies_ms)


def test_sweep_agrees_with_detect_and_score():
    times, scores, truth, duration_s = synthetic_stream()
    config = SmootherConfig(detection_threshold=0.6)
    [(threshold, swept)] = sweep_thresholds(times, scores, LABELS, SmootherConfig(), truth,
                                            duration_s, [0.6])
    direct = score_stream(truth, detect(times, scores, LABELS, config), duration_s)
    assert threshold == 0.6 and swept == direct


def test_pick_threshold_takes_most_correct_within_the_budget():
    times, scores, truth, duration_s = synthetic_stream()
    thresholds = [0.2, 0.3, 0.5, 0.6, 0.95]
    sweep = sweep_thresholds(times, scores, LABELS, SmootherConfig(), truth, duration_s,
                             thresholds)
    # 0.5 and 0.6 find every word without false alarms: the higher one wins.
    assert pick_threshold(sweep, max_false_alarms_per_hour=0.0) == 0.6
    # With false alarms allowed, 0.2 finds as many words; 0.6 still wins the tie.
    assert pick_threshold(sweep, max_false_alarms_per_hour=10_000) == 0.6
    with pytest.raises(ThresholdError, match="no threshold"):
        pick_threshold(sweep[:2], max_false_alarms_per_hour=1.0)   # 0.2 and 0.3
    alarms = {threshold: score.false_alarms_per_hour for threshold, score in sweep[:2]}
    assert fewest_false_alarms(sweep[:2]) == min(alarms, key=lambda t: (alarms[t], -t))
    assert fewest_false_alarms(sweep) == 0.95           # 0.5, 0.6 and 0.95 have none
    with pytest.raises(ThresholdError, match="empty"):
        pick_threshold([], max_false_alarms_per_hour=1.0)


def test_sweep_rejects_scores_that_do_not_match_the_labels():
    with pytest.raises(ValueError, match="shape"):
        sweep_thresholds(np.arange(5), np.zeros((5, 3)), LABELS, SmootherConfig(), [], 1.0,
                         [0.5])


def test_spans_count_a_late_detection_as_found_and_the_rest_as_false_alarms():
    spans = [(0.0, 3500.0), (10000.0, 13500.0), (20000.0, 23500.0)]
    speech_ends = [1900.0, 11900.0, 21900.0]
    # the first phrase answered twice (the second counts as nothing), the second 1.5 s
    # after its speech (late, still in its span), the third never; two detections between
    detections = [2100.0, 2600.0, 13400.0, 8000.0, 23600.0]
    score = score_spans(spans, detections, duration_s=3600.0, reference_ms=speech_ends)
    assert (score.spans, score.found, score.false_alarms) == (3, 2, 2)
    assert score.missed_rate == pytest.approx(1 / 3)
    assert score.false_alarms_per_hour == pytest.approx(2.0)
    assert list(score.latencies_ms) == [200.0, 1500.0]
    # the stricter rule the benchmark printed before: within 1 s of the speech's end
    strict = score_stream([("w", t) for t in speech_ends], [("w", t) for t in detections],
                          3600.0, time_tolerance_ms=1000)
    assert (strict.matched, strict.false_alarms) == (1, 4)


def test_span_bounds_are_inclusive_and_no_detection_misses_everything():
    spans = [(1000.0, 2000.0), (5000.0, 6000.0)]
    assert score_spans(spans, [1000.0, 6000.0], 60.0).found == 2
    assert score_spans(spans, [999.9, 6000.1], 60.0).false_alarms == 2
    empty = score_spans(spans, [], 60.0)
    assert (empty.found, empty.false_alarms, empty.missed_rate) == (0, 0, 1.0)


@pytest.mark.parametrize("spans, reference, duration, message", [
    ([(0.0, 1000.0), (900.0, 2000.0)], None, 10.0, "overlapping"),
    ([(2000.0, 3000.0), (0.0, 1000.0)], None, 10.0, "time order"),
    ([(1000.0, 0.0)], None, 10.0, "pairs"),
    ([(0.0, 1000.0)], [1.0, 2.0], 10.0, "2 reference times for 1 spans"),
    ([(0.0, 1000.0)], None, 0.0, "duration_s"),
])
def test_bad_spans_are_refused_with_the_reason(spans, reference, duration, message):
    with pytest.raises(EarmarkError, match=message):
        score_spans(spans, [500.0], duration, reference_ms=reference)
