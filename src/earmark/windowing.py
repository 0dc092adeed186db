"""Analysis windows of recordings: where to cut them, and how to judge a recording from
its windows' probabilities (numpy only; shared by training, evaluation and the runtime).

A recording of ``length`` samples is judged from windows of ``window``
samples every ``hop`` samples. The first starts at 0; the last one covers the
end (zero-padded past it); a recording shorter than one window gives one
window with the recording in its middle (zero-padded on both sides, the start
negative): training places such a recording anywhere in its window, so the
middle is where a model has heard it most on average, and a model that hears
where a sound lies in its window (the speech embedding reads 0.78 s columns in
order) misjudges a short word pressed against the window's start. Training,
evaluation and the deployed runtime all call :func:`window_starts` and
:func:`cut_window`, so they cut the same way, and :func:`aggregate_windows`
(mean or vote), so they judge the same way.

Windows of digital silence (:func:`sounding_windows`: RMS below
:data:`SILENT_WINDOW_DBFS`, such as the zeros a dataset padded its short
clips with, or the padding past a recording's end) do not take part in the
judgement, unless every window of the recording is silent.
"""

from __future__ import annotations

import math
from typing import Any, Hashable, Sequence

import numpy as np

from earmark.errors import ConfigError, DataError

#: Methods :func:`aggregate_windows` understands.
AGGREGATION_METHODS = ("mean", "vote")

#: A window quieter than this (RMS, dB re full scale) is silence: it does not judge.
SILENT_WINDOW_DBFS = -90.0

#: How far a tied vote is moved towards the class with the higher mean
#: probability, so that ``argmax`` of the result names the winner; large
#: enough to survive a cast to float32.
_TIE_NUDGE = 1e-6


def window_starts(length: int, window: int, hop: int) -> np.ndarray:
    """Start samples of the windows covering ``length`` samples (one start at or below
    0, centring the recording, when it is no longer than a window)."""
    if window <= 0 or hop <= 0:
        raise ValueError(f"window and hop must be positive, got {window} and {hop}")
    if length <= window:
        return np.array([-((window - length) // 2)], dtype=np.int64)
    count = 1 + math.ceil((length - window) / hop)
    return np.arange(count, dtype=np.int64) * hop


def cut_window(samples: np.ndarray, start: int, window: int) -> np.ndarray:
    """``window`` float32 samples of ``samples`` from ``start`` (which may be negative),
    zeros where the recording has none."""
    out = np.zeros(window, dtype=np.float32)
    begin = max(start, 0)
    piece = samples[begin:max(start + window, 0)]
    out[begin - start:begin - start + len(piece)] = piece
    return out


def sounding_windows(windows: np.ndarray) -> np.ndarray:
    """``(windows,)`` bool: which windows ``(windows, samples)`` hold more than silence."""
    windows = np.asarray(windows, dtype=np.float32)
    power = np.einsum("ij,ij->i", windows, windows) / max(windows.shape[-1], 1)   # no copies
    return power > 10.0 ** (SILENT_WINDOW_DBFS / 10.0)


def judging_windows(sounding: np.ndarray) -> np.ndarray:
    """``(windows,)`` bool: the windows that judge a recording, given which of them sound
    (:func:`sounding_windows`): those, or every window when none does."""
    sounding = np.asarray(sounding, dtype=bool)
    return sounding if sounding.any() else np.ones_like(sounding)


def aggregate_windows(probabilities: np.ndarray, method: str = "mean",
                      sounding: np.ndarray | None = None) -> np.ndarray:
    """Combine the class probabilities of a recording's windows into one vector.

    Parameters
    ----------
    probabilities : np.ndarray, shape (windows, classes)
        One row of class probabilities per analysis window.
    method : {"mean", "vote"}
        ``"mean"``: the mean probability of each class over the windows.
        ``"vote"``: each window votes for its most probable class; the result
        is the fraction of votes each class got. A tie between the leading
        classes goes to the one with the higher mean probability: it gets
        1e-6 more of the vote (taken from the others in the tie), so that
        ``argmax`` of the result names it.
    sounding : np.ndarray of bool, shape (windows,), optional
        :func:`sounding_windows`: only these windows judge, unless none does.

    Returns
    -------
    np.ndarray of float64, shape (classes,)
        Sums to 1 when each window's probabilities do (``"vote"``: always).

    Raises
    ------
    DataError
        When ``probabilities`` is not a non-empty 2-D array of finite numbers.
    ConfigError
        On an unknown ``method``.
    """
    if method not in AGGREGATION_METHODS:
        raise ConfigError(f"unknown aggregation method {method!r}; "
                          f"use one of {', '.join(AGGREGATION_METHODS)}")
    probabilities = _check_probabilities(probabilities)
    if sounding is not None:
        sounding = np.asarray(sounding, dtype=bool)
        if sounding.shape != (len(probabilities),):
            raise DataError(f"{len(probabilities)} windows but {sounding.shape} sounding flags")
        probabilities = probabilities[judging_windows(sounding)]
    mean = probabilities.mean(axis=0)
    if method == "mean":
        return mean

    windows, classes = probabilities.shape
    votes = np.bincount(probabilities.argmax(axis=1), minlength=classes)
    fractions = votes / windows
    tied = np.flatnonzero(votes == votes.max())
    if len(tied) > 1:
        winner = tied[np.argmax(mean[tied])]
        others = tied[tied != winner]
        fractions[winner] += _TIE_NUDGE
        fractions[others] -= _TIE_NUDGE / len(others)
    return fractions


def _check_probabilities(probabilities: Any) -> np.ndarray:
    array = np.asarray(probabilities)
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise DataError(f"window probabilities must have shape (windows, classes) with at "
                        f"least one window and one class, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.number) or array.dtype == bool:
        raise DataError(f"window probabilities must be numbers, got dtype {array.dtype}")
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        raise DataError("window probabilities contain NaN or infinity; "
                        "check the model output before aggregating")
    return array


def group_by_recording(window_probs: np.ndarray,
                       recording_ids: Sequence[Hashable],
                       method: str = "mean") -> tuple[list, np.ndarray]:
    """Aggregate the windows of many recordings, one vector per recording.

    Parameters
    ----------
    window_probs : np.ndarray, shape (windows, classes)
        Probabilities of every window of every recording, in any order.
    recording_ids : sequence of hashable, length windows
        Which recording each window was cut from.
    method : {"mean", "vote"}
        See :func:`aggregate_windows`.

    Returns
    -------
    recordings : list
        Recording ids in order of first appearance in ``recording_ids``.
    probabilities : np.ndarray of float64, shape (len(recordings), classes)
        Row ``i`` aggregates the windows of ``recordings[i]``.
    """
    window_probs = _check_probabilities(window_probs)
    recording_ids = list(recording_ids)
    if len(recording_ids) != len(window_probs):
        raise DataError(f"{len(window_probs)} windows of probabilities but "
                        f"{len(recording_ids)} recording ids: pass one id per window")
    windows_of: dict[Hashable, list[int]] = {}
    for position, recording in enumerate(recording_ids):
        windows_of.setdefault(recording, []).append(position)
    recordings = list(windows_of)
    aggregated = np.stack([aggregate_windows(window_probs[windows_of[recording]], method)
                           for recording in recordings])
    return recordings, aggregated
