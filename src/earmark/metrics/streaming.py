"""Score a streaming run against the words actually spoken, and pick a threshold.

The counts follow ``StreamingAccuracyStats`` of TensorFlow's Speech
Commands example (matched, correct, wrong, false positive, as fractions of
the ground-truth words), with a matching rule that never credits one
spoken word twice.

    >>> score = score_stream(truth, detections, duration_s=600.0)
    >>> print(score.to_text())
    >>> sweep = sweep_thresholds(times_ms, scores, labels, SmootherConfig(),
    ...                          truth, 600.0, np.arange(0.3, 0.95, 0.05))
    >>> threshold = pick_threshold(sweep, max_false_alarms_per_hour=2.0)

Which time is matched
---------------------
Ground truth is a list of ``(label, time_ms)``; detections are
:class:`~earmark.runtime.smoother.Detection` objects (or ``(label,
time_ms)`` pairs) on the same clock. A detection can match a spoken word
whose time lies within ``time_tolerance_ms`` of it, before or after:
``|truth_time - detection_time| <= time_tolerance_ms``. Any consistent
time works; the reference uses the word's start. We recommend the word's
*end* with detections stamped at the end of the model's window (see
:mod:`earmark.runtime.smoother`): a detection then comes a few hundred
ms after the word, the default 750 ms tolerance covers that reaction
time, and ``latencies_ms`` are true reaction times. With start times the
latencies include the word's length: widen the tolerance by it (~1000 ms
and more).

Matching rule
-------------
Detections are taken in time order, in two passes:

1. *Correct*: each detection takes the earliest not-yet-matched word with
   the **same label** within tolerance.
2. *Wrong*: each detection still unmatched takes the earliest
   not-yet-matched word of **any** label within tolerance (it necessarily
   has another label).

Detections left over are *false positives*; words never matched are
*missed*. Each word is matched at most once, so a word reported twice
gives one correct detection and one false positive (the reference counts
the second one as wrong and the word as matched twice). Taking the
earliest candidate, rather than the closest, matches as many detections as
possible when detections lag their words; the correct pass first means a
stray wrong label next to a correctly detected word does not steal its
credit.

Silence and unknown words
-------------------------
``_silence_`` entries (in ground truth or detections) are not words and
are dropped. ``_unknown_`` ground-truth entries are non-keyword speech. A
keyword detected on one is always *wrong* (the device acted on a word that
was not a command). With ``expect_unknown=True`` (a smoother run with
``report_unknown``) unknown words are words to find like any other:
counted in ``truth_words``, correct when detected as ``_unknown_``, missed
otherwise. With ``expect_unknown=False`` (the default, matching
``report_unknown=False``) they are distractors: not counted in
``truth_words``, never missed, and ``_unknown_`` detections are ignored.

False alarms
------------
``false_alarms = wrong + false_positives``: every detection of a command
that was not said (a wrong label is a false alarm for the label reported).
``false_alarms_per_hour`` divides it by the stream's duration.

Spans
-----
:func:`score_spans` scores one word by spans instead, as Picovoice's
wake-word benchmark does: a detection anywhere in a span (a recording of
the phrase and the 0.5 s after it) finds it, one in no span is a false
alarm.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from earmark.errors import EarmarkError
from earmark.runtime.smoother import (SmootherConfig, StreamError, checked_labels, gate,
                                      window_tops)


#: Thresholds a wake word's sweep tries: every 0.01 from 0.30 to 0.89, then finer towards 1,
#: where the low false-alarm rates live.
WAKE_THRESHOLDS = tuple(np.unique(np.round(np.concatenate(
    [np.arange(0.30, 0.90, 0.01), 1.0 - np.geomspace(0.1, 0.0005, 24)]), 5)).tolist())


class ThresholdError(EarmarkError, ValueError):
    """No threshold in a sweep meets the requested false-alarm rate."""


@dataclass
class StreamScore:
    """How a detection run compares with the words spoken (see the module docs).

    Invariants: ``truth_words == matched + missed`` and
    ``detections == correct + wrong + false_positives``. ``matched`` can be
    smaller than ``correct + wrong`` by the keywords fired on unknown words
    when those are distractors (``expect_unknown=False``).
    """

    truth_words: int                #: ground-truth words to find
    detections: int                 #: detections scored
    matched: int                    #: truth words matched by any detection
    correct: int                    #: detections matched to a word of their label
    wrong: int                      #: detections matched to a word of another label
    false_positives: int            #: detections matched to no word
    missed: int                     #: truth words never matched
    duration_s: float               #: length of the stream, seconds
    time_tolerance_ms: float
    #: detection time minus word time for each correct detection, in time order
    latencies_ms: list[float] = field(default_factory=list)

    def _rate(self, count: int) -> float:
        return count / self.truth_words if self.truth_words else math.nan

    @property
    def matched_rate(self) -> float:
        """Fraction of truth words matched (NaN without truth words)."""
        return self._rate(self.matched)

    @property
    def correct_rate(self) -> float:
        """Correct detections per truth word."""
        return self._rate(self.correct)

    @property
    def wrong_rate(self) -> float:
        """Wrong detections per truth word."""
        return self._rate(self.wrong)

    @property
    def false_positive_rate(self) -> float:
        """False positives per truth word (can exceed 1)."""
        return self._rate(self.false_positives)

    @property
    def missed_rate(self) -> float:
        """Fraction of truth words missed."""
        return self._rate(self.missed)

    @property
    def false_alarms(self) -> int:
        """Detections of a command that was not said: wrong + false positives."""
        return self.wrong + self.false_positives

    @property
    def false_alarms_per_hour(self) -> float:
        """``false_alarms`` per hour of stream."""
        return self.false_alarms / (self.duration_s / 3600.0)

    @property
    def median_latency_ms(self) -> float:
        """Median of ``latencies_ms`` (NaN without correct detections)."""
        return float(np.median(self.latencies_ms)) if self.latencies_ms else math.nan

    def to_dict(self) -> dict:
        """Counts, rates and latencies as plain JSON-ready values (NaN -> None)."""
        def clean(value):
            return None if isinstance(value, float) and math.isnan(value) else value

        record = {name: getattr(self, name) for name in (
            "truth_words", "detections", "matched", "correct", "wrong",
            "false_positives", "missed", "duration_s", "time_tolerance_ms")}
        for name in ("matched_rate", "correct_rate", "wrong_rate", "false_positive_rate",
                     "missed_rate", "false_alarms", "false_alarms_per_hour",
                     "median_latency_ms"):
            record[name] = clean(getattr(self, name))
        record["latencies_ms"] = list(self.latencies_ms)
        return record

    def to_text(self) -> str:
        """Two lines for a terminal or a log."""
        def pct(rate: float) -> str:
            return "n/a" if math.isnan(rate) else f"{100 * rate:.1f}%"

        latency = ("n/a" if math.isnan(self.median_latency_ms)
                   else f"{self.median_latency_ms:.0f} ms")
        return (f"{self.truth_words} words, {self.detections} detections in "
                f"{self.duration_s:.1f} s: {pct(self.matched_rate)} matched, "
                f"{pct(self.correct_rate)} correct, {pct(self.wrong_rate)} wrong, "
                f"{pct(self.false_positive_rate)} false positive, "
                f"{pct(self.missed_rate)} missed\n"
                f"{self.false_alarms} false alarms ({self.false_alarms_per_hour:.2f}/hour), "
                f"median latency {latency} (tolerance {self.time_tolerance_ms:g} ms)")


def _pairs(items: Iterable, what: str) -> list[tuple[str, float]]:
    """(label, time_ms) pairs from Detection-like objects or tuples."""
    pairs = []
    for item in items:
        if hasattr(item, "label") and hasattr(item, "time_ms"):
            label, time_ms = item.label, item.time_ms
        else:
            try:
                label, time_ms = item
            except (TypeError, ValueError):
                raise EarmarkError(f"each {what} entry must be (label, time_ms) or have "
                                   f".label and .time_ms, got {item!r}") from None
        pairs.append((str(label), float(time_ms)))
    return pairs


def _match(detections: list[tuple[str, float]], truth: list[tuple[str, float]],
           taken: list[bool], tolerance: float, same_label: bool) -> list[int | None]:
    """For each detection, the index of the earliest free word within tolerance.

    Both lists are sorted by time. Because later detections only look at
    later times, a word that falls behind one detection's window is out of
    every later one's, so one pointer per label (or one for all) suffices.
    """
    pointers: dict[str | None, int] = {}
    by_label: dict[str | None, list[int]] = {}
    for index, (label, _) in enumerate(truth):
        if not taken[index]:
            by_label.setdefault(label if same_label else None, []).append(index)
    found: list[int | None] = []
    for label, time_ms in detections:
        key = label if same_label else None
        candidates = by_label.get(key, [])
        position = pointers.get(key, 0)
        while position < len(candidates) and truth[candidates[position]][1] < time_ms - tolerance:
            position += 1
        if position < len(candidates) and truth[candidates[position]][1] <= time_ms + tolerance:
            found.append(candidates[position])
            taken[candidates[position]] = True
            position += 1
        else:
            found.append(None)
        pointers[key] = position
    return found


def score_stream(truth: Iterable, detections: Iterable, duration_s: float,
                 time_tolerance_ms: float = 750, *, expect_unknown: bool = False,
                 unknown_label: str = "_unknown_",
                 silence_label: str = "_silence_") -> StreamScore:
    """Count correct, wrong, false-positive and missed words of a stream.

    Parameters
    ----------
    truth : iterable of (label, time_ms)
        The words spoken, any order; ``_unknown_`` for non-keywords.
    detections : iterable of Detection or (label, time_ms)
        What the smoother reported, any order.
    duration_s : float
        Length of the stream in seconds (for false alarms per hour).
    time_tolerance_ms : float
        Largest ``|word time - detection time|`` that still matches, ms.
    expect_unknown : bool
        Whether unknown words are to be found (see the module docs).
    unknown_label, silence_label : str

    Returns
    -------
    StreamScore
    """
    if not duration_s > 0:
        raise EarmarkError(f"duration_s must be > 0 seconds, got {duration_s}")
    if not time_tolerance_ms >= 0:
        raise EarmarkError(f"time_tolerance_ms must be >= 0, got {time_tolerance_ms}")
    words = sorted((pair for pair in _pairs(truth, "truth") if pair[0] != silence_label),
                   key=lambda pair: pair[1])
    heard = sorted((pair for pair in _pairs(detections, "detection")
                    if pair[0] != silence_label
                    and (expect_unknown or pair[0] != unknown_label)),
                   key=lambda pair: pair[1])
    counted = [expect_unknown or label != unknown_label for label, _ in words]

    taken = [False] * len(words)
    correct_of = _match(heard, words, taken, time_tolerance_ms, same_label=True)
    left = [i for i, index in enumerate(correct_of) if index is None]
    wrong_of = _match([heard[i] for i in left], words, taken, time_tolerance_ms,
                      same_label=False)

    correct = len(heard) - len(left)
    wrong = sum(index is not None for index in wrong_of)
    truth_words = sum(counted)
    matched = sum(t and c for t, c in zip(taken, counted))
    latencies = [heard[i][1] - words[index][1]
                 for i, index in enumerate(correct_of) if index is not None]
    return StreamScore(truth_words=truth_words, detections=len(heard), matched=matched,
                       correct=correct, wrong=wrong,
                       false_positives=len(left) - wrong, missed=truth_words - matched,
                       duration_s=float(duration_s), time_tolerance_ms=time_tolerance_ms,
                       latencies_ms=latencies)


@dataclass
class SpanScore:
    """Detections against the spans of the words to find (see :func:`score_spans`)."""

    spans: int                      #: words to find
    found: int                      #: spans holding at least one detection
    false_alarms: int               #: detections in no span
    duration_s: float
    #: in each found span, its first detection minus the span's reference time
    latencies_ms: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def missed_rate(self) -> float:
        """Fraction of spans without a detection (NaN without spans)."""
        return 1.0 - self.found / self.spans if self.spans else math.nan

    @property
    def false_alarms_per_hour(self) -> float:
        return self.false_alarms / (self.duration_s / 3600.0)


def score_spans(spans: Sequence[tuple[float, float]], detections_ms: Iterable[float],
                duration_s: float, reference_ms: Sequence[float] | None = None) -> SpanScore:
    """Score detections of one word by spans, as Picovoice's wake-word benchmark does.

    A span (``(start_ms, end_ms)``, inclusive) is found when a detection lies
    in it; a detection in no span is a false alarm; further detections in a
    found span count as neither. The benchmark's span runs from the start of a
    recording of the phrase to 0.5 s after the recording ends, silence
    included, so an engine is not charged for answering late within it.
    ``reference_ms`` (one time per span, say the end of its speech) gives the
    latencies.

    Raises
    ------
    EarmarkError
        Spans that are unsorted, overlapping or empty, a reference list of
        another length, or ``duration_s`` not above 0.
    """
    if not duration_s > 0:
        raise EarmarkError(f"duration_s must be > 0 seconds, got {duration_s}")
    bounds = np.asarray(spans, dtype=float).reshape(-1, 2)
    if len(bounds) and (np.any(bounds[:, 1] < bounds[:, 0])
                        or np.any(bounds[1:, 0] <= bounds[:-1, 1])):
        raise EarmarkError("spans must be (start_ms, end_ms) pairs in time order, none "
                           "overlapping the next")
    if reference_ms is not None and len(reference_ms) != len(bounds):
        raise EarmarkError(f"{len(reference_ms)} reference times for {len(bounds)} spans")
    times = np.sort(np.asarray(list(detections_ms), dtype=float))
    if not len(bounds):
        return SpanScore(0, 0, len(times), float(duration_s))
    index = np.searchsorted(bounds[:, 0], times, side="right") - 1
    inside = (index >= 0) & (times <= bounds[np.maximum(index, 0), 1])
    found, first = np.unique(index[inside], return_index=True)
    latencies = (times[inside][first] - np.asarray(reference_ms, dtype=float)[found]
                 if reference_ms is not None else np.zeros(0))
    return SpanScore(len(bounds), len(found), int(np.sum(~inside)), float(duration_s),
                     latencies)


def sweep_thresholds(times_ms, scores, labels: Sequence[str], config: SmootherConfig,
                     truth: Iterable, duration_s: float, thresholds: Iterable[float],
                     time_tolerance_ms: float = 750) -> list[tuple[float, StreamScore]]:
    """Score a recorded stream of model outputs at several detection thresholds.

    The window averages are computed once (they do not depend on the
    threshold); each threshold then re-applies the smoother's gating and
    scores the detections. Unknown words are expected when
    ``config.report_unknown`` is set.

    Parameters
    ----------
    times_ms : array, shape (steps,)
        Time of each result in ms (non-decreasing).
    scores : array, shape (steps, classes)
        The model's scores per step.
    labels : sequence of str
        Class names in column order.
    config : SmootherConfig
        Everything but the threshold.
    truth : iterable of (label, time_ms)
    duration_s : float
    thresholds : iterable of float
    time_tolerance_ms : float

    Returns
    -------
    list of (threshold, StreamScore), in the order of ``thresholds``.

    Notes
    -----
    Detections fall as the threshold rises: each threshold's candidates
    are a subset of a lower one's. With ``min_gap_ms > 0`` this can fail
    by a detection or two, because removing an early detection can let
    two later ones through the gap.
    """
    labels = checked_labels(labels)
    truth = _pairs(truth, "truth")
    if np.ndim(scores) != 2 or np.shape(scores)[1] != len(labels):
        raise StreamError(f"scores must have shape (steps, {len(labels)}) to match the "
                          f"labels, got {np.shape(scores)}")
    tops = window_tops(times_ms, scores, config)
    results = []
    for threshold in thresholds:
        run_config = dataclasses.replace(config, detection_threshold=float(threshold))
        detections = gate(tops, labels, run_config)
        results.append((float(threshold), score_stream(
            truth, detections, duration_s, time_tolerance_ms,
            expect_unknown=config.report_unknown, unknown_label=config.unknown_label,
            silence_label=config.silence_label)))
    return results


def pick_threshold(sweep: Sequence[tuple[float, StreamScore]],
                   max_false_alarms_per_hour: float) -> float:
    """The threshold with the most correct detections within a false-alarm budget.

    Among the sweep's thresholds whose ``false_alarms_per_hour`` is at most
    ``max_false_alarms_per_hour``, the one with the highest correct rate;
    on a tie, the higher threshold (fewer false alarms for the same hits).

    Raises
    ------
    ThresholdError
        When no threshold in the sweep is within the budget.
    """
    allowed = [(score.correct, threshold) for threshold, score in sweep
               if score.false_alarms_per_hour <= max_false_alarms_per_hour]
    if not allowed:
        if not sweep:
            raise ThresholdError("the sweep is empty: pass at least one threshold")
        threshold = fewest_false_alarms(sweep)
        fewest = dict(sweep)[threshold].false_alarms_per_hour
        raise ThresholdError(
            f"no threshold keeps false alarms at or below {max_false_alarms_per_hour}/hour; "
            f"the fewest were {fewest:.2f}/hour at threshold {threshold}: sweep higher "
            f"thresholds, lengthen suppression_ms, or allow more false alarms")
    return max(allowed)[1]


def fewest_false_alarms(sweep: Sequence[tuple[float, StreamScore]]) -> float:
    """The sweep's threshold with the fewest false alarms per hour (the higher on a tie):
    the best a model can do when none meets the budget."""
    threshold, _ = min(sweep, key=lambda item: (item[1].false_alarms_per_hour, -item[0]))
    return threshold


def poisson_interval(count: int, tail: float = 0.025) -> tuple[float, float]:
    """The exact (Garwood) 95% interval of a Poisson mean from ``count`` events.

    ``lower`` solves P(X >= count) = ``tail``, ``upper`` P(X <= count) = ``tail``
    (found by bisection on the Poisson distribution); ``(0, 3.69)`` for none.
    A false-alarm count over a few hours of audio says little: this says how little.
    """
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
        raise EarmarkError(f"count must be a whole number >= 0, got {count!r}")
    upper = _bisect(lambda mean: _poisson_cdf(count, mean) - tail, count + 50 + 10 * count)
    if count == 0:
        return 0.0, upper
    lower = _bisect(lambda mean: tail - (1 - _poisson_cdf(count - 1, mean)), count + 1)
    return lower, upper


def _poisson_cdf(count: int, mean: float) -> float:
    """P(X <= count) for a Poisson mean, summed in log space."""
    if mean == 0:
        return 1.0
    terms = [k * math.log(mean) - mean - math.lgamma(k + 1) for k in range(count + 1)]
    return float(min(1.0, sum(math.exp(t) for t in terms)))


def _bisect(falling, high: float, steps: int = 80) -> float:
    """The root in [0, high] of a function that falls from positive to negative."""
    low = 0.0
    for _ in range(steps):
        middle = (low + high) / 2
        if falling(middle) > 0:
            low = middle
        else:
            high = middle
    return (low + high) / 2
