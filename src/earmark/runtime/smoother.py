"""Turn a stream of per-window class scores into commands.

A keyword model run every 20-30 ms over the last second of audio gives a
probability per class at each step. Acting on every step would report a
word dozens of times and fire on one-step blips, so the :class:`Smoother`
keeps the results of the last ``average_window_ms``, averages them per
class, and reports a :class:`Detection` when the averaged top class is a
command that is confident enough and not a repeat. This follows the
``RecognizeCommands`` smoother of TensorFlow's Speech Commands example,
with one deliberate change to its gating (see *Repeats* below).

    >>> smoother = Smoother(labels, SmootherConfig())
    >>> for time_ms, scores in stream:          # scores: (classes,) probabilities
    ...     detection = smoother.update(scores, time_ms)
    ...     if detection:
    ...         print(detection.label, detection.time_ms)

:func:`detect` does the same for a whole recorded stream at once
(vectorised; :func:`earmark.metrics.streaming.sweep_thresholds` uses it).

Time stamps
-----------
``time_ms`` is whatever clock the caller uses, in milliseconds, fed in
non-decreasing order. Stamp each result with the *end* of the analysis
window it came from (the time the audio has been heard up to): then a
detection's time is the moment it could have been acted on, and
detection time minus the word's end is the reaction latency.

When a detection fires
----------------------
At each step, once at least ``minimum_count`` results are in the window
(results older than ``time_ms - average_window_ms`` are dropped), the class
with the highest average is the *top label*. A detection fires when all
of these hold:

1. the top label is not ``silence_label``, nor ``unknown_label`` unless
   ``report_unknown``;
2. its averaged score is ``>= detection_threshold``;
3. at least ``min_gap_ms`` have passed since the last detection;
4. it differs from the last detected label, **or** more than
   ``suppression_ms`` have passed since that detection.

Repeats. The reference requires a new label *and* the end of the
suppression time; taken literally its Python version can never report the
same word twice in a row ("yes ... yes"). Here the same word, held or said
again, is reported again only after ``suppression_ms`` (a word held for
4 s with the defaults fires 3 times, 1.5 s apart), while a *different*
word may fire as soon as it wins the window: the averaging window already
keeps one word from flickering into the next, because a new label must
out-average the old one over the whole window. Set ``min_gap_ms`` to
``suppression_ms`` to get the reference's "one command per suppression
period, whatever its label". Results with silence or a below-threshold
top label do not reset anything: a word repeated within ``suppression_ms``
is reported once.

Defaults and how to tune them
-----------------------------
The defaults assume a model that outputs probabilities (softmax) over a
1 s window at a 20-30 ms stride:

- ``average_window_ms=500`` and ``detection_threshold=0.5``. A word's
  averaged score is roughly the fraction of the window during which the
  model was sure of it, and it must also out-average silence, so on a
  quiet background a word needs about half the window, 250 ms, of
  confident results (8-12 steps) to fire. A spoken keyword keeps a 1 s
  model window confident for about 300-800 ms, so 250 ms catches short
  words while shorter bursts never fire; the 0.5 threshold then rejects
  a top label that only wins with spread-out, unsure scores (a class with
  >= 0.5 of the probability is the top one). The reference's 1000 ms /
  0.2 on the same model would need 500 ms of certainty just to beat
  silence and miss short words; its 0.2 only matters when silence itself
  is unlikely (noise, other speech).
- ``suppression_ms=1500``: after a detection the same word stays above the
  threshold for up to ~1.25 s (the rest of its confident stretch plus the
  time the window takes to forget it), so 1.5 s is the shortest safe
  value.
- ``minimum_count=5``: the average over a nearly empty window (the stream's
  start, after a gap) is as noisy as one result; 5 results is about a
  quarter of a 500 ms window at 20-30 ms, the reference's other guard.

Tuning:

- *Threshold*: raising it lowers false alarms and misses more words (and
  fires a little later); pick it on a labelled stream with
  :func:`earmark.metrics.streaming.sweep_thresholds` and
  :func:`~earmark.metrics.streaming.pick_threshold` for a target number of
  false alarms per hour.
- *Window length vs latency*: a detection needs confident results over
  about half the window (``window x threshold`` with the default 0.5), so
  a longer window fires later and misses short words; a shorter one
  reacts faster but smooths less (shorter bursts get through). Keep half
  the window below the shortest time your model stays sure of a word.
- *Suppression vs repeated words*: a shorter suppression lets a user say
  the same word twice in quick succession ("up, up") but risks reporting
  one long word twice; keep it above the time a word stays confident
  (about the model's window length).
- *Minimum count vs stride*: it is a count of results, so scale it with
  the stride: about ``average_window_ms / (4 x stride_ms)``; at a 100 ms
  stride 2 is enough, at 10 ms use ~12.

Nothing here imports torch: numpy and the standard library only.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from earmark.errors import ConfigError, EarmarkError
from earmark.input_limits import check_count, check_fraction, check_non_negative, check_positive

#: Re-add the window from scratch this often, so that the running sum's
#: rounding errors (add now, subtract later) cannot build up on long streams.
_RESUM_EVERY = 4096
#: The longest averaging window, in ms: the window's results are kept in memory, so
#: its length bounds what a stream holds however long it runs.
MAX_AVERAGE_WINDOW_MS = 60_000


class StreamError(EarmarkError, ValueError):
    """Stream results are unusable: out of time order or the wrong shape."""


@dataclass
class SmootherConfig:
    """How per-step class scores become detections (see the module docs).

    Attributes
    ----------
    average_window_ms : int
        Results older than this (relative to the newest) are dropped
        before averaging, in milliseconds; above 0, at most
        :data:`MAX_AVERAGE_WINDOW_MS`.
    detection_threshold : float
        The averaged score the top label needs, ``>=``; a probability, in
        ``[0, 1]``.
    suppression_ms : int
        The same label is not reported again until more than this many
        milliseconds after its last detection.
    minimum_count : int
        No detection while fewer results than this are in the window.
    min_gap_ms : int
        Milliseconds between any two detections, whatever their labels;
        0 lets a different word fire as soon as it wins the window.
    silence_label, unknown_label : str
        Labels that are never reported (unknown only unless
        ``report_unknown``); absent labels are simply never matched.
    report_unknown : bool
        Report ``unknown_label`` like a command.

    Raises
    ------
    ConfigError
        A number out of range (:func:`check_smoother_settings`).
    """

    average_window_ms: int = 500
    detection_threshold: float = 0.5
    suppression_ms: int = 1500
    minimum_count: int = 5
    min_gap_ms: int = 0
    silence_label: str = "_silence_"
    unknown_label: str = "_unknown_"
    report_unknown: bool = False

    def __post_init__(self) -> None:
        check_smoother_settings(vars(self))


def stored_settings(detection: Mapping[str, Any] | None) -> dict[str, Any]:
    """The :class:`SmootherConfig` fields a bundle's ``detection`` stores (``earmark.json``,
    written by a calibration or, for a bundle that streams whole windows, by its export)."""
    stored = {key: value for key, value in (detection or {}).items()
              if key in ("average_window_ms", "detection_threshold", "suppression_ms",
                         "minimum_count")}
    if "minimum_count" in stored:
        stored["minimum_count"] = int(stored["minimum_count"])
    return stored


def check_smoother_settings(settings: Mapping[str, Any],
                            names: Mapping[str, str] | None = None) -> None:
    """Check the numbers of a :class:`SmootherConfig` (through :mod:`earmark.input_limits`).

    The one set of rules for every way the settings arrive: ``SmootherConfig``
    runs it on its fields, the command line on its options before anything
    starts (a server that would close every stream refuses to start).

    Parameters
    ----------
    settings : mapping
        ``average_window_ms``, ``detection_threshold``, ``suppression_ms``,
        ``minimum_count`` and ``min_gap_ms`` (absent ones are not checked).
    names : mapping, optional
        What to call each setting in messages (``{"detection_threshold":
        "--threshold"}``); the field's own name otherwise.

    Raises
    ------
    ConfigError
        A setting outside its range, naming it and what is allowed.
    """
    checks = {"average_window_ms": lambda value, what: check_positive(
                  value, what, maximum=MAX_AVERAGE_WINDOW_MS),
              "detection_threshold": check_fraction,
              "suppression_ms": check_non_negative,
              "min_gap_ms": check_non_negative,
              "minimum_count": check_count}
    names = names or {}
    for field, check in checks.items():
        if field in settings:
            check(settings[field], names.get(field, field))


@dataclass
class Detection:
    """A command heard: its label, averaged score and when it fired (ms)."""

    label: str
    score: float
    time_ms: float


def checked_labels(labels: Sequence[str]) -> list[str]:
    """The class names as a list of strings; a :class:`ConfigError` if empty or repeated."""
    labels = [str(label) for label in labels]
    if not labels:
        raise ConfigError("labels is empty: pass the model's class names in output order")
    if len(set(labels)) != len(labels):
        raise ConfigError(f"labels must be unique, got {labels}")
    return labels


def _reportable(labels: list[str], config: SmootherConfig) -> np.ndarray:
    """Which class ids may be reported: not silence, not unknown unless asked."""
    reportable = np.array([label != config.silence_label for label in labels])
    if not config.report_unknown:
        reportable &= np.array([label != config.unknown_label for label in labels])
    return reportable


def _may_fire(label: int, time_ms: float, last_label: int, last_time: float | None,
              config: SmootherConfig) -> bool:
    """Rules 3 and 4 of the module docs: gaps and same-label suppression."""
    if last_time is None:
        return True
    since = time_ms - last_time
    if since < config.min_gap_ms:
        return False
    return label != last_label or since > config.suppression_ms


class Smoother:
    """Average recent results and report commands, one result at a time.

    Parameters
    ----------
    labels : sequence of str
        The class names, in the order of the score vectors.
    config : SmootherConfig, optional
        Window, threshold, suppression...; the defaults when omitted.

    After each :meth:`update`, ``top_label`` and ``top_score`` hold the
    window's current averaged winner (``None`` and 0.0 while fewer than
    ``minimum_count`` results are in the window), for live displays.
    """

    def __init__(self, labels: Sequence[str], config: SmootherConfig | None = None):
        self.labels = checked_labels(labels)
        self.config = config if config is not None else SmootherConfig()
        self._reportable = _reportable(self.labels, self.config).tolist()
        self.reset()

    def reset(self) -> None:
        """Forget all results and the last detection (a new stream)."""
        self._window: deque[tuple[float, np.ndarray]] = deque()
        self._sum = np.zeros(len(self.labels), dtype=np.float64)
        self._updates = 0
        self._last_time: float | None = None
        self._last_label = -1
        self.top_label: str | None = None
        self.top_score = 0.0

    def update(self, scores: np.ndarray, time_ms: float) -> Detection | None:
        """Add the result at ``time_ms`` and return a detection if one fires.

        Parameters
        ----------
        scores : array, shape (classes,)
            The model's scores (probabilities) for this step.
        time_ms : int or float
            When this result was produced, in milliseconds; never earlier
            than the previous one.

        Raises
        ------
        StreamError
            Scores of the wrong shape, or a time earlier than the last one.
        """
        scores = np.asarray(scores, dtype=np.float64)
        if scores.shape != (len(self.labels),):
            raise StreamError(f"scores must have shape ({len(self.labels)},) to match the "
                              f"labels, got {scores.shape}")
        window = self._window
        if window and time_ms < window[-1][0]:
            raise StreamError(f"results must come in time order: got time {time_ms} ms after "
                              f"{window[-1][0]} ms; call reset() to start a new stream")
        window.append((time_ms, scores))
        self._sum += scores
        oldest_kept = time_ms - self.config.average_window_ms
        while window[0][0] < oldest_kept:
            self._sum -= window.popleft()[1]
        self._updates += 1
        if self._updates % _RESUM_EVERY == 0:
            self._sum = np.sum([s for _, s in window], axis=0, dtype=np.float64)

        if len(window) < self.config.minimum_count:
            self.top_label, self.top_score = None, 0.0
            return None
        top = int(np.argmax(self._sum))
        score = float(self._sum[top]) / len(window)
        self.top_label, self.top_score = self.labels[top], score
        if (not self._reportable[top] or score < self.config.detection_threshold
                or not _may_fire(top, time_ms, self._last_label, self._last_time, self.config)):
            return None
        self._last_label, self._last_time = top, time_ms
        return Detection(self.labels[top], score, time_ms)


# --------------------------------------------------------------------------
# A whole stream at once


@dataclass
class WindowTops:
    """Each step's averaged winner over a whole stream (see :func:`window_tops`)."""

    times_ms: np.ndarray     #: (steps,) as given
    top: np.ndarray          #: (steps,) class id with the highest window average
    score: np.ndarray        #: (steps,) that average
    ready: np.ndarray        #: (steps,) bool: at least minimum_count results in the window


def _check_stream(times_ms, scores, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    times = np.asarray(times_ms)
    scores = np.asarray(scores, dtype=np.float64)
    if times.ndim != 1 or scores.ndim != 2 or scores.shape != (len(times), n_classes):
        raise StreamError(f"need times_ms of shape (steps,) and scores of shape (steps, "
                          f"{n_classes}), got {times.shape} and {scores.shape}")
    backwards = np.flatnonzero(np.diff(times) < 0)
    if backwards.size:
        i = int(backwards[0]) + 1
        raise StreamError(f"times_ms must not decrease: step {i} is at {times[i]} ms, "
                          f"after {times[i - 1]} ms")
    return times, scores


def window_tops(times_ms, scores, config: SmootherConfig) -> WindowTops:
    """The averaged top label at every step, as :class:`Smoother` sees it.

    Vectorised with a cumulative sum: the window of step ``i`` holds the
    steps ``j <= i`` with ``times_ms[j] >= times_ms[i] - average_window_ms``.
    It does not depend on the threshold or suppression, so a threshold
    sweep computes it once.
    """
    n_classes = np.shape(scores)[1] if np.ndim(scores) == 2 else -1
    times, scores = _check_stream(times_ms, scores, n_classes)
    steps = len(times)
    first = np.searchsorted(times, times - config.average_window_ms, side="left")
    counts = np.arange(steps) - first + 1
    running = np.zeros((steps + 1, scores.shape[1]), dtype=np.float64)
    np.cumsum(scores, axis=0, out=running[1:])
    averages = (running[1:] - running[first]) / counts[:, None]
    top = np.argmax(averages, axis=1)
    return WindowTops(times, top, averages[np.arange(steps), top],
                      counts >= config.minimum_count)


def gate(tops: WindowTops, labels: Sequence[str], config: SmootherConfig) -> list[Detection]:
    """Apply threshold, suppression and gap rules to precomputed window tops.

    Only the steps that pass the threshold are visited in Python, so this
    is cheap enough to repeat for many thresholds.
    """
    labels = checked_labels(labels)
    reportable = _reportable(labels, config)
    candidates = np.flatnonzero(tops.ready & reportable[tops.top]
                                & (tops.score >= config.detection_threshold))
    detections = []
    last_label, last_time = -1, None
    for i, top, time_ms in zip(candidates.tolist(), tops.top[candidates].tolist(),
                               tops.times_ms[candidates].tolist()):
        if _may_fire(top, time_ms, last_label, last_time, config):
            last_label, last_time = top, time_ms
            detections.append(Detection(labels[top], float(tops.score[i]), time_ms))
    return detections


def detect(times_ms, scores, labels: Sequence[str],
           config: SmootherConfig | None = None) -> list[Detection]:
    """All detections of a recorded stream, as a fresh :class:`Smoother` would give.

    Parameters
    ----------
    times_ms : array, shape (steps,)
        Each result's time in milliseconds, non-decreasing.
    scores : array, shape (steps, classes)
        The model's scores per step.
    labels : sequence of str
        The class names, in column order.
    config : SmootherConfig, optional
    """
    config = config if config is not None else SmootherConfig()
    labels = checked_labels(labels)
    _check_stream(times_ms, scores, len(labels))
    return gate(window_tops(times_ms, scores, config), labels, config)
