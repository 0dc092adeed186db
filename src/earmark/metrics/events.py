"""Sound event detection metrics: event-based and segment-based, as in DCASE.

The definitions follow sed_eval and Mesaros, Heittola and Virtanen (2016),
"Metrics for polyphonic sound event detection". Events are ``(onset,
offset, label)`` in seconds on one recording's clock: :class:`earmark.events.Event`,
read from files with :func:`earmark.events.read_events`.

    >>> from earmark.events import read_events
    >>> reference = read_events("annotations/street.txt")    # Audacity labels
    >>> estimated = read_events("detections/street.csv")
    >>> events = event_based(reference, estimated, t_collar=0.2)
    >>> segments = segment_based(reference, estimated, segment_length=1.0)
    >>> print(format_report(events, segments))

Event-based
-----------
An estimated event is *correct* (a true positive) for a reference event of
the **same label** when its onset lies within ``t_collar`` of the
reference onset and, with ``evaluate_offset=True``, its offset lies within
``max(t_collar, percentage_of_length * reference length)`` of the reference
offset. Each event is matched at most once: within each class the pairs
are chosen by a **maximum bipartite matching** (augmenting paths, candidates
tried nearest onset first), so the number of true positives is the largest
possible; sed_eval's ``event_matching_type='optimal'`` does the same.
Greedy first-found matching (old sed_eval) can give fewer on crowded files.

Class-wise: ``FP = Nsys - TP``, ``FN = Nref - TP`` and the error rate is
``(FN + FP) / Nref`` (no substitutions within one class).
Overall (micro): ``TP``, ``FP`` and ``FN`` are the sums over classes, so a
correctly placed event with the wrong label counts as one FN *and* one FP.
For the error rate, such pairs are *substitutions*: after the true
positives, the events left unmatched are matched again with the same time
rules but ignoring labels (again a maximum matching); that count is ``S``,
``D = FN - S`` and ``I = FP - S``, and ``ER = (S + D + I) / Nref``.
These ``D`` and ``I`` are what sed_eval reports as overall ``Nfn`` and
``Nfp``; here ``fn`` and ``fp`` keep the plain (label-aware) counts.

Segment-based
-------------
The time line is cut into segments of ``segment_length`` seconds, from 0 to
``duration`` (the last, possibly partial, segment counts whole). A class is
active in a segment, in the reference or the estimate, when any of its
events overlaps the segment by more than an instant: events touching a
segment boundary do not spill into the neighbour, overlapping events of
one class count once, and a zero-length event marks the segment that holds
it. Activity after ``duration`` is ignored. With ``duration=None`` it is the
last offset of either list. In each segment ``S = min(FN, FP)``,
``D = max(0, FN - FP)`` and ``I = max(0, FP - FN)``; these are summed over
segments and ``ER = (S + D + I) / N``, N the number of active reference
(segment, class) pairs. Class-wise ``ER = (FN + FP) / Nref``.

Undefined values
----------------
Every ratio is IEEE division, with no epsilon: ``0 / 0`` is NaN and
``x / 0`` with ``x > 0`` is infinity. So, with no estimated events,
precision is NaN, recall 0 and F1 0; with no reference events, recall is
NaN, F1 0 and the error rate infinite (insertions over nothing), NaN when
there were no errors either. With both empty every metric is NaN (nothing
to measure). F1 is ``2 TP / (2 TP + FP + FN)``, which equals the harmonic
mean of precision and recall whenever those are defined.
The class average (macro) is the mean over classes that occur in the
reference, skipping NaN entries.

Timing bias
-----------
:func:`timing_bias` measures how far detected onsets and offsets sit from
the reference ones (the median over same-label pairs), for the detector's
``onset_shift`` and ``offset_shift``.

This module needs only numpy and the standard library: the deployed runtime
may use it.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from earmark.errors import ConfigError
from earmark.events import Event, as_events

#: Slack, in seconds, on every collar comparison, so that float rounding
#: (``1.3 - 1.1 = 0.2000000000000002``) does not move an event out of it.
TIME_TOLERANCE = 1e-9

#: Decimal places (in segment units) to which times are rounded before they
#: are turned into segment indices: ``0.3 / 0.1`` is segment 3, not 2.
_SEGMENT_DECIMALS = 6
#: The most (segment, class) pairs segment-based scoring counts (a few bytes each): a
#: week of 1 s segments for 30 classes fits, a segment of a nanosecond does not.
MAX_SEGMENT_CELLS = 20_000_000


# --------------------------------------------------------------------------
# Event-based metrics


def event_based(reference: Iterable[Any], estimated: Iterable[Any], t_collar: float = 0.2,
                percentage_of_length: float = 0.5, evaluate_offset: bool = False) -> dict:
    """Event-based precision, recall, F1 and error rate (see the module docstring).

    Parameters
    ----------
    reference, estimated : iterable of Event (or what :func:`as_events` takes)
        Events of one recording.
    t_collar : float
        Seconds an estimated onset (and offset) may be away from the
        reference's, either way; the bound itself counts as inside.
    percentage_of_length : float in [0, 1]
        With ``evaluate_offset``, the offset may also be this fraction of the
        reference event's length away, when that is more than ``t_collar``.
    evaluate_offset : bool
        False (default): onsets only, as DCASE event-based results usually
        quote; True: onset and offset.

    Returns
    -------
    dict
        ``"overall"`` (micro): ``n_reference, n_estimated, tp, fp, fn,
        precision, recall, f1, substitutions, deletions, insertions,
        error_rate, substitution_rate, deletion_rate, insertion_rate``;
        ``"class_wise"``: label -> ``n_reference, n_estimated, tp, fp, fn,
        precision, recall, f1, error_rate, deletion_rate, insertion_rate``
        for every label of either list, sorted; ``"class_average"`` (macro):
        ``precision, recall, f1, error_rate, deletion_rate, insertion_rate``;
        ``"kind": "event_based"`` and ``"parameters"``. Counts are int,
        rates float (NaN or inf where undefined).

    Raises
    ------
    ConfigError
        ``t_collar`` negative or not finite, ``percentage_of_length`` outside [0, 1].
    DataError
        An event is invalid.
    """
    _check_collar(t_collar, percentage_of_length)
    reference = as_events(reference, "reference")
    estimated = as_events(estimated, "estimated")
    fits = _fit_rule(t_collar, percentage_of_length, evaluate_offset)
    class_wise, ref_left, est_left = _match_within_classes(reference, estimated, fits, t_collar)
    # Substitutions: the leftovers matched again on time alone (labels now differ).
    substitutions = len(_match_events(ref_left, est_left, fits, t_collar))
    true_positives = sum(row["tp"] for row in class_wise.values())
    overall = _overall_row(len(reference), len(estimated), true_positives,
                           substitutions=substitutions,
                           deletions=len(ref_left) - substitutions,
                           insertions=len(est_left) - substitutions)
    return {"kind": "event_based",
            "parameters": {"t_collar": float(t_collar),
                           "percentage_of_length": float(percentage_of_length),
                           "evaluate_offset": bool(evaluate_offset),
                           "matching": "maximum bipartite"},
            "overall": overall,
            "class_wise": class_wise,
            "class_average": _class_average(class_wise)}


def _check_collar(t_collar: float, percentage_of_length: float) -> None:
    if not (math.isfinite(t_collar) and t_collar >= 0):
        raise ConfigError(f"t_collar must be a finite number of seconds >= 0, got {t_collar}")
    if not 0 <= percentage_of_length <= 1:
        raise ConfigError(f"percentage_of_length must be in [0, 1], got {percentage_of_length}")


def _fit_rule(t_collar: float, percentage_of_length: float,
              evaluate_offset: bool) -> Callable[[Event, Event], bool]:
    """``fits(reference, estimate)``: the estimate's times are close enough to count."""

    def fits(ref: Event, est: Event) -> bool:
        if abs(ref.onset - est.onset) > t_collar + TIME_TOLERANCE:
            return False
        if evaluate_offset:
            allowed = max(t_collar, percentage_of_length * ref.duration)
            return abs(ref.offset - est.offset) <= allowed + TIME_TOLERANCE
        return True

    return fits


def _match_within_classes(reference: list[Event], estimated: list[Event],
                          fits: Callable[[Event, Event], bool],
                          t_collar: float) -> tuple[dict, list[Event], list[Event]]:
    """Match each label's events; return the class-wise rows and the events left unmatched.

    The rows (a dict by label, sorted) hold the class-wise counts and rates;
    the leftovers, reference then estimated, keep their input order.
    """
    labels = sorted({e.label for e in reference} | {e.label for e in estimated})
    ref_matched = [False] * len(reference)
    est_matched = [False] * len(estimated)
    class_wise = {}
    for label in labels:
        ref_ids = [j for j, e in enumerate(reference) if e.label == label]
        est_ids = [i for i, e in enumerate(estimated) if e.label == label]
        pairs = _match_events([reference[j] for j in ref_ids], [estimated[i] for i in est_ids],
                              fits, t_collar)
        class_wise[label] = _class_row(len(ref_ids), len(est_ids), len(pairs))
        for ref_index, est_index in pairs:
            ref_matched[ref_ids[ref_index]] = True
            est_matched[est_ids[est_index]] = True
    ref_left = [e for e, matched in zip(reference, ref_matched) if not matched]
    est_left = [e for e, matched in zip(estimated, est_matched) if not matched]
    return class_wise, ref_left, est_left


def _match_events(refs: Sequence[Event], ests: Sequence[Event],
                  fits: Callable[[Event, Event], bool], t_collar: float) -> list[tuple[int, int]]:
    """A maximum set of (ref index, est index) pairs that ``fits``, each index once.

    Only estimates whose onset lies within the collar can fit, so they are
    found by bisection on sorted onsets rather than by testing every pair.
    """
    order = sorted(range(len(ests)), key=lambda i: (ests[i].onset, i))
    onsets = [ests[i].onset for i in order]
    candidates = []
    for ref in refs:
        low = bisect.bisect_left(onsets, ref.onset - t_collar - 2 * TIME_TOLERANCE)
        high = bisect.bisect_right(onsets, ref.onset + t_collar + 2 * TIME_TOLERANCE)
        near = [order[k] for k in range(low, high) if fits(ref, ests[order[k]])]
        # Nearest onset first: the matching then prefers the closest pairs.
        near.sort(key=lambda i: (abs(ests[i].onset - ref.onset),
                                 abs(ests[i].offset - ref.offset), i))
        candidates.append(near)
    ref_order = sorted(range(len(refs)), key=lambda j: (refs[j].onset, j))
    match_of_ref = _maximum_matching(candidates, len(ests), ref_order)
    return [(j, i) for j, i in enumerate(match_of_ref) if i >= 0]


def _maximum_matching(candidates: list[list[int]], n_right: int,
                      left_order: Sequence[int]) -> list[int]:
    """Kuhn's augmenting-path maximum bipartite matching, without recursion.

    ``candidates[left]`` lists the right vertices ``left`` may take, in order
    of preference. Returns, for each left vertex, its right vertex or -1.
    """
    match_of_left = [-1] * len(candidates)
    match_of_right = [-1] * n_right
    for root in left_order:
        if not candidates[root]:
            continue
        visited = set()
        stack = [[root, 0, -1]]            # [left vertex, next candidate, right taken]
        while stack:
            frame = stack[-1]
            left, position = frame[0], frame[1]
            if position == len(candidates[left]):
                stack.pop()                # no augmenting path through this vertex
                continue
            frame[1] += 1
            right = candidates[left][position]
            if right in visited:
                continue
            visited.add(right)
            frame[2] = right
            owner = match_of_right[right]
            if owner == -1:                # free: flip the whole path
                for path_left, _, path_right in stack:
                    match_of_left[path_left] = path_right
                    match_of_right[path_right] = path_left
                break
            stack.append([owner, 0, -1])   # try to move the owner elsewhere
    return match_of_left


# --------------------------------------------------------------------------
# Segment-based metrics


def segment_based(reference: Iterable[Any], estimated: Iterable[Any],
                  segment_length: float = 1.0, duration: float | None = None) -> dict:
    """Segment-based precision, recall, F1 and error rate (see the module docstring).

    Parameters
    ----------
    reference, estimated : iterable of Event (or what :func:`as_events` takes)
        Events of one recording.
    segment_length : float
        Seconds per segment (> 0).
    duration : float, optional
        Seconds of the recording; default: the last offset of either list.
        There are ``ceil(duration / segment_length)`` segments.

    Returns
    -------
    dict
        The same layout as :func:`event_based`, with counts of (segment,
        class) pairs: ``n_reference`` active in the reference, ``tp`` active
        in both, and so on; ``"parameters"`` holds ``segment_length``,
        ``duration`` and ``n_segments``.

    Raises
    ------
    ConfigError
        ``segment_length`` not > 0, or ``duration`` negative or not finite.
    DataError
        An event is invalid.
    """
    _check_segments(segment_length, duration)
    reference = as_events(reference, "reference")
    estimated = as_events(estimated, "estimated")
    if duration is None:
        duration = max([e.offset for e in reference + estimated], default=0.0)
    n_segments = math.ceil(round(duration / segment_length, _SEGMENT_DECIMALS))
    labels = sorted({e.label for e in reference} | {e.label for e in estimated})
    _check_roll_size(n_segments, len(labels), segment_length, duration)
    class_wise, overall = _segment_counts(
        _activity(reference, labels, n_segments, segment_length),
        _activity(estimated, labels, n_segments, segment_length), labels)
    return {"kind": "segment_based",
            "parameters": {"segment_length": float(segment_length), "duration": float(duration),
                           "n_segments": n_segments},
            "overall": overall,
            "class_wise": class_wise,
            "class_average": _class_average(class_wise)}


def _check_segments(segment_length: float, duration: float | None) -> None:
    if not (math.isfinite(segment_length) and segment_length > 0):
        raise ConfigError(f"segment_length must be a finite number of seconds > 0, "
                          f"got {segment_length}")
    if duration is not None and not (math.isfinite(duration) and duration >= 0):
        raise ConfigError(f"duration must be a finite number of seconds >= 0, got {duration}")


def _check_roll_size(n_segments: int, n_labels: int, segment_length: float,
                     duration: float) -> None:
    """Memory stays bounded: at most :data:`MAX_SEGMENT_CELLS` (segment, class) pairs."""
    if n_segments * max(n_labels, 1) > MAX_SEGMENT_CELLS:
        shortest = duration * max(n_labels, 1) / MAX_SEGMENT_CELLS
        raise ConfigError(f"{n_segments} segments of {segment_length:g} s over {duration:g} s "
                          f"of events ({n_labels} classes) are too many to count; give a "
                          f"segment length of at least {shortest:.3g} s, or check the "
                          "events' offsets")


def _segment_counts(reference_roll: np.ndarray, estimated_roll: np.ndarray,
                    labels: list[str]) -> tuple[dict, dict]:
    """Class-wise rows and the overall row from two (segments, labels) activity rolls."""
    tp = reference_roll & estimated_roll
    fp = estimated_roll & ~reference_roll
    fn = reference_roll & ~estimated_roll
    class_wise = {label: _class_row(int(reference_roll[:, k].sum()),
                                    int(estimated_roll[:, k].sum()), int(tp[:, k].sum()))
                  for k, label in enumerate(labels)}
    fn_per_segment = fn.sum(axis=1)
    fp_per_segment = fp.sum(axis=1)
    overall = _overall_row(
        int(reference_roll.sum()), int(estimated_roll.sum()), int(tp.sum()),
        substitutions=int(np.minimum(fn_per_segment, fp_per_segment).sum()),
        deletions=int(np.maximum(0, fn_per_segment - fp_per_segment).sum()),
        insertions=int(np.maximum(0, fp_per_segment - fn_per_segment).sum()))
    return class_wise, overall


def _activity(events: list[Event], labels: list[str], n_segments: int,
              segment_length: float) -> np.ndarray:
    """Boolean (segments, labels): class ``k`` active somewhere in segment ``s``."""
    roll = np.zeros((n_segments, len(labels)), dtype=bool)
    column = {label: k for k, label in enumerate(labels)}
    for event in events:
        first = math.floor(round(event.onset / segment_length, _SEGMENT_DECIMALS))
        end = math.ceil(round(event.offset / segment_length, _SEGMENT_DECIMALS))
        end = max(end, first + 1)         # a zero-length event marks its own segment
        roll[max(first, 0):min(end, n_segments), column[event.label]] = True
    return roll


# --------------------------------------------------------------------------
# Counts to rates


def _ratio(numerator: float, denominator: float) -> float:
    """IEEE division without the exception: 0/0 is NaN, x/0 is inf."""
    if denominator == 0:
        return math.nan if numerator == 0 else math.inf
    return numerator / denominator


def _class_row(n_reference: int, n_estimated: int, tp: int) -> dict:
    fp, fn = n_estimated - tp, n_reference - tp
    return {"n_reference": n_reference, "n_estimated": n_estimated,
            "tp": tp, "fp": fp, "fn": fn,
            "precision": _ratio(tp, n_estimated),
            "recall": _ratio(tp, n_reference),
            "f1": _ratio(2 * tp, 2 * tp + fp + fn),
            "error_rate": _ratio(fn + fp, n_reference),
            "deletion_rate": _ratio(fn, n_reference),
            "insertion_rate": _ratio(fp, n_reference)}


def _overall_row(n_reference: int, n_estimated: int, tp: int, substitutions: int,
                 deletions: int, insertions: int) -> dict:
    row = _class_row(n_reference, n_estimated, tp)
    row.update(substitutions=substitutions, deletions=deletions, insertions=insertions,
               error_rate=_ratio(substitutions + deletions + insertions, n_reference),
               substitution_rate=_ratio(substitutions, n_reference),
               deletion_rate=_ratio(deletions, n_reference),
               insertion_rate=_ratio(insertions, n_reference))
    return row


_AVERAGED = ("precision", "recall", "f1", "error_rate", "deletion_rate", "insertion_rate")


def _class_average(class_wise: dict) -> dict:
    """Macro average over classes present in the reference, NaN entries skipped."""
    rows = [row for row in class_wise.values() if row["n_reference"] > 0]
    average = {}
    for key in _AVERAGED:
        values = [row[key] for row in rows if not math.isnan(row[key])]
        average[key] = sum(values) / len(values) if values else math.nan
    return average


# --------------------------------------------------------------------------
# Timing bias


def timing_bias(reference: Iterable[Any], detected: Iterable[Any],
                within: float = 1.0) -> tuple[float, float]:
    """Median (reference - detected) onset and offset over same-label pairs.

    A window classifier sees a word in every window that holds it, so its
    events start early and end late by amounts that depend on the model;
    measure them on a recording with known events and pass them back to
    the detector as ``onset_shift`` / ``offset_shift``.

    Parameters
    ----------
    reference, detected : iterable of Event (or what :func:`as_events` takes)
        Events of one recording, times in seconds.
    within : float
        Seconds: each detected event is paired with the same-label reference
        event whose onset is nearest, if it is at most this far.

    Returns
    -------
    tuple of float
        ``(onset bias, offset bias)`` in seconds; ``(0.0, 0.0)`` when no
        event could be paired.
    """
    reference = as_events(reference, "reference")
    onsets, offsets = [], []
    for event in as_events(detected, "detected"):
        near = [r for r in reference if r.label == event.label
                and abs(r.onset - event.onset) <= within]
        if near:
            match = min(near, key=lambda r: abs(r.onset - event.onset))
            onsets.append(match.onset - event.onset)
            offsets.append(match.offset - event.offset)
    if not onsets:
        return 0.0, 0.0
    return float(np.median(onsets)), float(np.median(offsets))


# --------------------------------------------------------------------------
# Report


def format_report(event_result: dict | None, segment_result: dict | None = None) -> str:
    """A plain-text table of :func:`event_based` and/or :func:`segment_based` results.

    One row per class, then the overall (micro) and class-average (macro)
    rows, then the overall error rate split into S, D and I. Percentages for
    precision, recall and F1; ``n/a`` where a value is undefined (NaN).
    """
    if event_result is None and segment_result is None:
        raise ConfigError("format_report needs an event-based or a segment-based result")
    sections = []
    if event_result is not None:
        parameters = event_result["parameters"]
        if parameters["evaluate_offset"]:
            criterion = (f"onset and offset; offset within max(collar, "
                         f"{parameters['percentage_of_length']:.0%} of length)")
        else:
            criterion = "onset only"
        sections.append(_section(f"Event-based metrics ({criterion}; collar "
                                 f"{parameters['t_collar'] * 1000:.0f} ms)", event_result))
    if segment_result is not None:
        parameters = segment_result["parameters"]
        sections.append(_section(
            f"Segment-based metrics ({parameters['segment_length']:g} s segments, "
            f"{parameters['n_segments']} over {parameters['duration']:g} s)", segment_result))
    return "\n\n".join(sections) + "\n"


def _section(title: str, result: dict) -> str:
    names = list(result["class_wise"]) + ["overall (micro)", "class average (macro)"]
    width = max(len(name) for name in names)
    header = (f"{'class':<{width}}  {'Nref':>5} {'Nsys':>5} {'TP':>5} {'FP':>5} {'FN':>5}  "
              f"{'Prec':>6} {'Rec':>6} {'F1':>6}  {'ER':>5} {'Del':>5} {'Ins':>5}")
    lines = [title, "=" * len(title), header, "-" * len(header)]
    for label, row in result["class_wise"].items():
        lines.append(_report_line(label, row, width))
    lines.append("-" * len(header))
    lines.append(_report_line("overall (micro)", result["overall"], width))
    lines.append(_report_line("class average (macro)", result["class_average"], width))
    overall = result["overall"]
    lines.append("")
    lines.append(f"overall ER {_number(overall['error_rate'])} = substitutions "
                 f"{_number(overall['substitution_rate'])} + deletions "
                 f"{_number(overall['deletion_rate'])} + insertions "
                 f"{_number(overall['insertion_rate'])}  "
                 f"(S={overall['substitutions']}, D={overall['deletions']}, "
                 f"I={overall['insertions']}, N={overall['n_reference']})")
    return "\n".join(lines)


def _report_line(name: str, row: dict, width: int) -> str:
    counts = " ".join(f"{row[key]:>5}" if key in row else f"{'':>5}"
                      for key in ("n_reference", "n_estimated", "tp", "fp", "fn"))
    percents = " ".join(_percent(row[key]) for key in ("precision", "recall", "f1"))
    rates = " ".join(_number(row[key]) for key in ("error_rate", "deletion_rate",
                                                   "insertion_rate"))
    return f"{name:<{width}}  {counts}  {percents}  {rates}"


def _percent(value: float) -> str:
    return f"{'n/a':>6}" if math.isnan(value) else f"{value:6.1%}"


def _number(value: float) -> str:
    if math.isnan(value):
        return f"{'n/a':>5}"
    return f"{'inf':>5}" if math.isinf(value) else f"{value:5.2f}"
