"""Sound event detection metrics: event- and segment-based scores, timing bias, report.

Every expected number is worked by hand in the comments, following the
definitions in the module docstring of earmark.metrics.events. The event
type and its files are tested in test_event_files.py.
"""

from __future__ import annotations

import math
import random
import subprocess
import sys

import pytest

from earmark.errors import ConfigError, DataError
from earmark.events import Event
from earmark.metrics.events import (
    _maximum_matching,
    event_based,
    format_report,
    segment_based,
    timing_bias,
)


def E(onset, offset, label="dog"):
    return Event(onset, offset, label)


# --------------------------------------------------------------------------
# Inputs


def test_scores_take_what_as_events_takes_and_ignore_source_and_confidence():
    detected = [Event(0.0, 1.0, "dog", "a.wav", 0.9), (1.0, 2.0, "cat"),
                {"start": 2.0, "end": 3.0, "label": "bird"}]
    reference = [E(0, 1, "dog"), E(1, 2, "cat"), E(2, 3, "bird")]
    assert event_based(reference, detected)["overall"]["f1"] == 1.0
    assert segment_based(reference, detected)["overall"]["f1"] == 1.0
    with pytest.raises(DataError, match="estimated item 1"):
        event_based([], [(0, 1, "dog"), (3, 2, "dog")])


# --------------------------------------------------------------------------
# Event-based


def test_perfect_match():
    reference = [E(0.0, 1.0, "dog"), E(2.0, 3.0, "cat")]
    result = event_based(reference, list(reference))
    overall = result["overall"]
    # TP = 2, FP = FN = 0: P = R = F1 = 1; ER = (0 + 0 + 0) / 2 = 0.
    assert (overall["tp"], overall["fp"], overall["fn"]) == (2, 0, 0)
    assert overall["precision"] == overall["recall"] == overall["f1"] == 1.0
    assert overall["error_rate"] == 0.0
    assert set(result["class_wise"]) == {"cat", "dog"}
    assert result["class_average"]["f1"] == 1.0


def test_onset_collar_bound_is_inside_and_beyond_is_outside():
    reference = [E(1.0, 2.0)]
    # |1.2 - 1.0| = 0.2 <= 0.2: inside.
    assert event_based(reference, [E(1.2, 2.0)])["overall"]["tp"] == 1
    # |0.8 - 1.0| = 0.2, early side: inside.
    assert event_based(reference, [E(0.8, 2.0)])["overall"]["tp"] == 1
    # 1.3 - 1.1 is 0.2000000000000002 in floats; still the bound: inside.
    assert event_based([E(1.1, 2.0)], [E(1.3, 2.0)])["overall"]["tp"] == 1
    # |1.21 - 1.0| = 0.21 > 0.2: outside. TP 0, FP 1, FN 1; no substitution either
    # (the time rule fails too), so D = 1, I = 1, ER = (0 + 1 + 1) / 1 = 2.
    overall = event_based(reference, [E(1.21, 2.0)])["overall"]
    assert (overall["tp"], overall["fp"], overall["fn"]) == (0, 1, 1)
    assert (overall["substitutions"], overall["deletions"], overall["insertions"]) == (0, 1, 1)
    assert overall["error_rate"] == 2.0
    assert overall["f1"] == 0.0
    # A wider collar takes it: |1.21 - 1.0| = 0.21 <= 0.25.
    assert event_based(reference, [E(1.21, 2.0)], t_collar=0.25)["overall"]["tp"] == 1


def test_offset_criterion_on_and_off():
    reference = [E(1.0, 3.0)]                  # length 2 s: offset may be off by
    far = [E(1.1, 4.5)]                        # max(0.2, 0.5 * 2) = 1.0 s
    near = [E(1.1, 3.9)]
    # Onset only: |1.1 - 1.0| = 0.1 <= 0.2, offsets ignored: both correct.
    assert event_based(reference, far)["overall"]["tp"] == 1
    # Onset and offset: |4.5 - 3.0| = 1.5 > 1.0: wrong; |3.9 - 3.0| = 0.9 <= 1.0: right.
    assert event_based(reference, far, evaluate_offset=True)["overall"]["tp"] == 0
    assert event_based(reference, near, evaluate_offset=True)["overall"]["tp"] == 1
    # With percentage_of_length = 0.25: max(0.2, 0.25 * 2) = 0.5 < 0.9: wrong.
    assert event_based(reference, near, evaluate_offset=True,
                       percentage_of_length=0.25)["overall"]["tp"] == 0
    # Short event (0.2 s): the collar wins, max(0.2, 0.5 * 0.2 = 0.1) = 0.2;
    # |1.45 - 1.2| = 0.25 > 0.2: wrong; |1.35 - 1.2| = 0.15: right.
    short = [E(1.0, 1.2)]
    assert event_based(short, [E(1.0, 1.45)], evaluate_offset=True)["overall"]["tp"] == 0
    assert event_based(short, [E(1.0, 1.35)], evaluate_offset=True)["overall"]["tp"] == 1


def test_wrong_label_is_fn_plus_fp_and_one_substitution():
    result = event_based([E(1.0, 2.0, "dog")], [E(1.05, 2.0, "cat")])
    overall = result["overall"]
    # dog: TP 0, FN 1; cat: TP 0, FP 1. Overall TP 0, FP 1, FN 1, F1 = 0.
    assert (overall["tp"], overall["fp"], overall["fn"]) == (0, 1, 1)
    assert overall["f1"] == 0.0
    # In the error rate the pair is one substitution: S = 1, D = 1 - 1 = 0,
    # I = 1 - 1 = 0, ER = (1 + 0 + 0) / 1 = 1 (not 2).
    assert (overall["substitutions"], overall["deletions"], overall["insertions"]) == (1, 0, 0)
    assert overall["error_rate"] == overall["substitution_rate"] == 1.0
    dog, cat = result["class_wise"]["dog"], result["class_wise"]["cat"]
    # Class-wise ER = (FN + FP) / Nref: dog (1 + 0) / 1 = 1; cat (0 + 1) / 0 = inf.
    assert dog["error_rate"] == 1.0 and dog["recall"] == 0.0
    assert cat["error_rate"] == math.inf and math.isnan(cat["recall"])
    # The macro average is over classes in the reference (dog only).
    assert result["class_average"]["error_rate"] == 1.0
    assert result["class_average"]["f1"] == 0.0


def test_mixed_errors_overall():
    reference = [E(0.0, 1.0, "dog"), E(2.0, 3.0, "cat"), E(5.0, 6.0, "bird")]
    estimated = [E(0.1, 1.0, "dog"), E(2.05, 3.0, "dog"), E(8.0, 9.0, "car")]
    overall = event_based(reference, estimated)["overall"]
    # TP 1 (dog at 0); FP = 3 - 1 = 2; FN = 3 - 1 = 2.
    # Leftovers: ref cat@2.0, bird@5.0; est dog@2.05, car@8.0. cat~dog@2.05 on
    # time: S = 1. D = 2 - 1 = 1 (bird), I = 2 - 1 = 1 (car).
    # ER = (1 + 1 + 1) / 3 = 1; P = R = 1/3; F1 = 2 / (2 + 2 + 2) = 1/3.
    assert (overall["tp"], overall["fp"], overall["fn"]) == (1, 2, 2)
    assert (overall["substitutions"], overall["deletions"], overall["insertions"]) == (1, 1, 1)
    assert overall["error_rate"] == pytest.approx(1.0)
    assert overall["precision"] == overall["recall"] == pytest.approx(1 / 3)
    assert overall["f1"] == pytest.approx(1 / 3)


def test_each_event_matched_once():
    # Two estimates fit one reference: only one is credited, the other is an
    # insertion. TP 1, FP 1, FN 0; ER = (0 + 0 + 1) / 1 = 1; P = 1/2, F1 = 2/3.
    overall = event_based([E(1.0, 2.0)], [E(1.0, 2.0), E(1.1, 2.0)])["overall"]
    assert (overall["tp"], overall["fp"], overall["fn"]) == (1, 1, 0)
    assert overall["error_rate"] == 1.0
    assert overall["precision"] == 0.5
    assert overall["f1"] == pytest.approx(2 / 3)
    # And one estimate cannot serve two references.
    overall = event_based([E(1.0, 2.0), E(1.1, 2.0)], [E(1.05, 2.0)])["overall"]
    assert (overall["tp"], overall["fp"], overall["fn"]) == (1, 0, 1)


def test_matching_is_maximum_not_greedy():
    # ref A@1.0 fits est X@1.1 (0.1) and Y@0.85 (0.15); ref B@1.25 fits X only
    # (|1.25 - 1.1| = 0.15; |1.25 - 0.85| = 0.4). Nearest-first greedy gives
    # A-X and leaves B alone (TP 1); the maximum matching is A-Y, B-X (TP 2).
    reference = [E(1.0, 2.0), E(1.25, 2.0)]
    estimated = [E(1.1, 2.0), E(0.85, 2.0)]
    assert event_based(reference, estimated)["overall"]["tp"] == 2


def test_matching_size_equals_brute_force_maximum():
    # The augmenting-path matcher against exhaustive search on small random graphs.
    rng = random.Random(0)

    def best(candidates, row=0, used=frozenset()):
        if row == len(candidates):
            return 0
        return max([best(candidates, row + 1, used)]
                   + [1 + best(candidates, row + 1, used | {right})
                      for right in candidates[row] if right not in used])

    for _ in range(300):
        n_left, n_right = rng.randint(0, 6), rng.randint(1, 6)
        candidates = [rng.sample(range(n_right), rng.randint(0, n_right)) for _ in range(n_left)]
        matched = _maximum_matching(candidates, n_right, list(range(n_left)))
        taken = [right for right in matched if right >= 0]
        assert len(taken) == len(set(taken)) == best(candidates)
        assert all(right in candidates[left] for left, right in enumerate(matched) if right >= 0)


def test_overlapping_events_of_one_class_event_based():
    # Two overlapping dog events, each found: TP 2. One long estimate finds
    # only the first onset (|1.0 - 0.0| = 1 > 0.2 for the second): TP 1, FN 1.
    reference = [E(0.0, 2.0), E(1.0, 3.0)]
    assert event_based(reference, [E(0.1, 2.0), E(1.1, 3.0)])["overall"]["tp"] == 2
    overall = event_based(reference, [E(0.0, 3.0)])["overall"]
    assert (overall["tp"], overall["fn"]) == (1, 1)
    # Identical duplicates are two events and need two estimates.
    assert event_based([E(0, 1), E(0, 1)], [E(0, 1)])["overall"]["fn"] == 1


def test_event_based_empty_inputs():
    # No estimates: P = 0/0 = NaN, R = 0/2 = 0, F1 = 0 / (0 + 0 + 2) = 0,
    # ER = (0 + 2 + 0) / 2 = 1.
    overall = event_based([E(0, 1), E(2, 3)], [])["overall"]
    assert math.isnan(overall["precision"])
    assert (overall["recall"], overall["f1"], overall["error_rate"]) == (0.0, 0.0, 1.0)
    # No reference: P = 0/1 = 0, R = 0/0 = NaN, F1 = 0, ER = 1/0 = inf.
    overall = event_based([], [E(0, 1)])["overall"]
    assert overall["precision"] == 0.0 and math.isnan(overall["recall"])
    assert overall["f1"] == 0.0 and overall["error_rate"] == math.inf
    # Both empty: nothing to measure, every rate NaN, counts 0.
    result = event_based([], [])
    assert result["class_wise"] == {}
    assert result["overall"]["tp"] == 0
    for key in ("precision", "recall", "f1", "error_rate"):
        assert math.isnan(result["overall"][key])
        assert math.isnan(result["class_average"][key])


def test_event_based_parameters_are_checked():
    with pytest.raises(ConfigError, match="t_collar"):
        event_based([], [], t_collar=-0.1)
    with pytest.raises(ConfigError, match="percentage_of_length"):
        event_based([], [], percentage_of_length=1.5)


# --------------------------------------------------------------------------
# Segment-based


def test_segment_based_perfect_match_and_events_at_both_ends():
    reference = [E(0.0, 1.0, "dog"), E(2.0, 3.0, "cat")]     # at time 0 and at the end
    result = segment_based(reference, list(reference))
    # Duration inferred 3.0 s: 3 segments; dog in [0, 1), cat in [2, 3).
    # An offset exactly on a boundary (1.0, 3.0) does not spill over.
    assert result["parameters"]["n_segments"] == 3
    overall = result["overall"]
    assert (overall["n_reference"], overall["tp"], overall["fp"], overall["fn"]) == (2, 2, 0, 0)
    assert overall["f1"] == 1.0 and overall["error_rate"] == 0.0


def test_segment_based_events_spanning_boundaries():
    # ref dog 0.5-2.5 touches segments 0, 1, 2 (floor 0.5 = 0 to ceil 2.5 = 3);
    # est dog 1.0-2.0 lies exactly in segment 1. Duration 2.5 -> 3 segments.
    result = segment_based([E(0.5, 2.5)], [E(1.0, 2.0)], segment_length=1.0)
    assert result["parameters"]["n_segments"] == 3
    overall = result["overall"]
    # TP 1 (seg 1), FN 2 (segs 0, 2), FP 0; P = 1, R = 1/3, F1 = 2 / (2 + 0 + 2) = 0.5.
    assert (overall["n_reference"], overall["n_estimated"]) == (3, 1)
    assert (overall["tp"], overall["fp"], overall["fn"]) == (1, 0, 2)
    assert overall["f1"] == 0.5
    # Per segment: seg0 FN 1 FP 0 -> D 1; seg1 none; seg2 D 1. ER = 2 / 3.
    assert (overall["substitutions"], overall["deletions"], overall["insertions"]) == (0, 2, 0)
    assert overall["error_rate"] == pytest.approx(2 / 3)


def test_segment_based_substitutions_per_segment():
    reference = [E(0, 1, "dog"), E(1, 2, "dog"), E(1, 2, "bird")]
    estimated = [E(0, 1, "cat"), E(1, 2, "cat")]
    overall = segment_based(reference, estimated)["overall"]
    # seg0: FN 1 (dog), FP 1 (cat) -> S = min(1, 1) = 1.
    # seg1: FN 2 (dog, bird), FP 1 (cat) -> S = 1, D = 2 - 1 = 1.
    # S = 2, D = 1, I = 0, N = 3: ER = 3 / 3 = 1.
    assert (overall["substitutions"], overall["deletions"], overall["insertions"]) == (2, 1, 0)
    assert overall["error_rate"] == 1.0
    assert (overall["tp"], overall["fp"], overall["fn"]) == (0, 2, 3)


def test_segment_based_duration_given_and_clipping():
    # 3 segments; ref in seg 0, est 2.5-3.0 in seg 2 (ends on the file's end).
    # FN 1, FP 1, but in different segments: D 1 + I 1, ER = 2 / 1 = 2.
    overall = segment_based([E(0, 0.5)], [E(2.5, 3.0)], duration=3.0)["overall"]
    assert (overall["deletions"], overall["insertions"], overall["substitutions"]) == (1, 1, 0)
    assert overall["error_rate"] == 2.0
    # Activity after the duration is ignored.
    result = segment_based([E(0, 0.5)], [E(4.0, 5.0)], duration=3.0)
    assert result["overall"]["n_estimated"] == 0
    # A partial last segment counts whole: 2.5 s / 1 s -> 3 segments.
    assert segment_based([], [], duration=2.5)["parameters"]["n_segments"] == 3


def test_segment_indices_survive_float_rounding():
    # 0.3 / 0.1 = 2.9999999999999996 and 0.4 / 0.1 = 4.000000000000001:
    # the event is segment 3 only, not 2-4.
    result = segment_based([E(0.3, 0.4)], [E(0.3, 0.4)], segment_length=0.1, duration=1.0)
    assert result["overall"]["n_reference"] == 1
    assert result["overall"]["tp"] == 1
    # A zero-length event marks the segment that holds it (0.35 -> segment 3).
    result = segment_based([E(0.35, 0.35)], [E(0.3, 0.4)], segment_length=0.1, duration=1.0)
    assert result["overall"]["tp"] == 1


def test_segment_based_overlapping_events_count_once():
    # dog 0-2 and dog 1-3 overlap in segment 1: active in segs 0, 1, 2 -> 3 pairs, not 4.
    result = segment_based([E(0, 2), E(1, 3)], [E(0, 3)])
    overall = result["overall"]
    assert overall["n_reference"] == 3
    assert (overall["tp"], overall["fp"], overall["fn"], overall["f1"]) == (3, 0, 0, 1.0)


def test_segment_based_empty_inputs():
    # Both empty, no duration: 0 segments, every rate NaN.
    result = segment_based([], [])
    assert result["parameters"]["n_segments"] == 0
    assert math.isnan(result["overall"]["f1"]) and math.isnan(result["overall"]["error_rate"])
    # Both empty over 5 s: still nothing to measure.
    assert math.isnan(segment_based([], [], duration=5.0)["overall"]["error_rate"])
    # Only estimates: 2 insertions over N = 0: ER = inf, F1 = 0.
    overall = segment_based([], [E(0, 2)])["overall"]
    assert overall["error_rate"] == math.inf and overall["f1"] == 0.0
    # Only reference: D = 2, ER = 2 / 2 = 1, F1 = 0.
    overall = segment_based([E(0, 2)], [])["overall"]
    assert overall["error_rate"] == 1.0 and overall["f1"] == 0.0


def test_segment_based_parameters_are_checked():
    with pytest.raises(ConfigError, match="segment_length"):
        segment_based([], [], segment_length=0)
    with pytest.raises(ConfigError, match="duration"):
        segment_based([], [], duration=-1.0)


# --------------------------------------------------------------------------
# Report


def test_format_report_lists_classes_and_undefined_values():
    reference = [E(1.0, 2.0, "dog")]
    estimated = [E(1.05, 2.0, "cat")]
    text = format_report(event_based(reference, estimated), segment_based(reference, estimated))
    assert "Event-based metrics (onset only; collar 200 ms)" in text
    assert "Segment-based metrics (1 s segments, 2 over 2 s)" in text
    for expected in ("dog", "cat", "overall (micro)", "class average (macro)", "n/a", "inf",
                     "S=1, D=0, I=0, N=1"):
        assert expected in text
    assert "Segment-based" not in format_report(event_based(reference, estimated))
    with pytest.raises(ConfigError):
        format_report(None, None)


# --------------------------------------------------------------------------
# Timing bias


def test_timing_bias_is_the_median_over_same_label_pairs():
    reference = [E(1.0, 2.0), E(5.0, 6.0), E(9.0, 10.0), E(20.0, 21.0, "cat")]
    # dog: 1.0 - 0.8 = 0.2, 5.0 - 4.9 = 0.1, 9.0 - 8.7 = 0.3: median 0.2;
    # offsets 2.0 - 2.3 = -0.3, 6.0 - 6.1 = -0.1, 10.0 - 10.2 = -0.2: median -0.2.
    # The cat estimate is 1.5 s away (> within = 1 s), the bird has no reference.
    detected = [E(0.8, 2.3), E(4.9, 6.1), E(8.7, 10.2), E(21.5, 22.0, "cat"), E(1, 2, "bird")]
    onset, offset = timing_bias(reference, detected)
    assert onset == pytest.approx(0.2) and offset == pytest.approx(-0.2)
    # Each estimate takes the nearest onset: 4.9 pairs with 5.0, not with 9.0.
    assert timing_bias(reference, [E(4.9, 6.1)], within=10.0) == pytest.approx((0.1, -0.1))
    assert timing_bias(reference, [E(21.5, 22.0, "cat")]) == (0.0, 0.0)
    assert timing_bias([], []) == (0.0, 0.0)


# --------------------------------------------------------------------------
# Runtime stays torch-free


def test_no_torch_import():
    code = ("import sys; sys.modules['torch'] = None\n"
            "from earmark.events import Event\n"
            "from earmark.metrics.events import event_based, segment_based\n"
            "r = event_based([Event(0, 1, 'a')], [Event(0, 1, 'a')])\n"
            "assert r['overall']['f1'] == 1.0\n"
            "assert segment_based([Event(0, 1, 'a')], [])['overall']['f1'] == 0.0\n")
    subprocess.run([sys.executable, "-c", code], check=True)
