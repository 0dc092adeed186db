"""Scores of an anomaly detector (numpy only): ROC AUC, DCASE's partial AUC, their
harmonic mean, and precision/recall/F1 at a threshold.

``y_true`` is 1 for an anomaly and 0 for a normal recording; scores are higher
for what the detector finds less normal. Two partial AUCs over false-positive
rates 0 to ``max_fpr``: :func:`partial_auc`, the definition in DCASE's task
description (the area divided by ``max_fpr``: 1 is perfect and a random
detector scores ``max_fpr / 2``), and :func:`standardised_partial_auc`,
McClish's standardisation, which scikit-learn's ``roc_auc_score(max_fpr=)``
computes and the DCASE 2020 baseline code reported (a random detector scores
0.5). Compare a figure only with one of the same kind.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from earmark.errors import DataError

#: DCASE task 2's false-positive range for the partial AUC.
DCASE_MAX_FPR = 0.1


def _checked(y_true: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray
             ) -> tuple[np.ndarray, np.ndarray]:
    truth = np.asarray(y_true).astype(int).ravel()
    values = np.asarray(scores, dtype=np.float64).ravel()
    if truth.shape != values.shape:
        raise DataError(f"{len(truth)} truths but {len(values)} scores")
    if not np.all(np.isfinite(values)):
        raise DataError("the scores hold NaN or infinity")
    if not set(np.unique(truth)) <= {0, 1}:
        raise DataError("y_true must hold 0 (normal) and 1 (anomaly) only")
    if truth.sum() == 0 or truth.sum() == len(truth):
        raise DataError("ROC needs both normal and anomalous recordings; "
                        f"got {int(truth.sum())} anomalies of {len(truth)}")
    return truth, values


def roc_curve(y_true, scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(false-positive rates, true-positive rates, thresholds)`` from (0, 0), one point
    per distinct score, a recording flagged when its score is >= the threshold."""
    truth, values = _checked(y_true, scores)
    order = np.argsort(-values, kind="stable")
    values, truth = values[order], truth[order]
    last = np.r_[np.flatnonzero(np.diff(values)), len(values) - 1]   # ends of tied runs
    tps = np.cumsum(truth)[last]
    fps = (last + 1) - tps
    fpr = np.r_[0.0, fps / (len(truth) - truth.sum())]
    tpr = np.r_[0.0, tps / truth.sum()]
    return fpr, tpr, np.r_[np.inf, values[last]]


def roc_auc(y_true, scores) -> float:
    """Area under the ROC curve (ties count half)."""
    fpr, tpr, _ = roc_curve(y_true, scores)
    return float(np.trapezoid(tpr, fpr))


def partial_auc(y_true, scores, max_fpr: float = DCASE_MAX_FPR) -> float:
    """DCASE's pAUC: the ROC area for false-positive rates in [0, max_fpr], over max_fpr."""
    if not 0 < max_fpr <= 1:
        raise DataError(f"max_fpr = {max_fpr} must lie in (0, 1]")
    fpr, tpr, _ = roc_curve(y_true, scores)
    stop = np.searchsorted(fpr, max_fpr, side="right")
    x = np.r_[fpr[:stop], max_fpr]
    y = np.r_[tpr[:stop], np.interp(max_fpr, fpr, tpr)]
    return float(np.trapezoid(y, x) / max_fpr)


def standardised_partial_auc(y_true, scores, max_fpr: float = DCASE_MAX_FPR) -> float:
    """McClish's standardised pAUC (scikit-learn's ``roc_auc_score(max_fpr=)``): 0.5 for
    chance, 1 for perfect."""
    area = partial_auc(y_true, scores, max_fpr) * max_fpr
    chance, perfect = max_fpr * max_fpr / 2, max_fpr
    return float(0.5 * (1 + (area - chance) / (perfect - chance)))


def harmonic_mean(values: Sequence[float]) -> float:
    """DCASE's way of averaging AUCs over machines: the harmonic mean (0 if any is 0)."""
    array = np.asarray(values, dtype=np.float64)
    if len(array) == 0:
        raise DataError("no values to average")
    if np.any(array <= 0):
        return 0.0
    return float(len(array) / np.sum(1.0 / array))


def threshold_for(normal_scores, false_alarm_rate: float) -> float:
    """The score that ``false_alarm_rate`` of the normal scores exceed."""
    values = np.asarray(normal_scores, dtype=np.float64)
    if len(values) == 0 or not np.all(np.isfinite(values)):
        raise DataError("need finite normal scores to set a threshold")
    return float(np.quantile(values, 1.0 - false_alarm_rate))


def detection_report(y_true, scores, threshold: float) -> dict[str, float]:
    """Precision, recall, F1 and false-alarm rate when a score above ``threshold`` flags."""
    truth, values = _checked(y_true, scores)
    flagged = values > threshold
    true_positives = int(np.sum(flagged & (truth == 1)))
    precision = true_positives / max(int(flagged.sum()), 1)
    recall = true_positives / int(truth.sum())
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    false_alarms = int(np.sum(flagged & (truth == 0))) / int(np.sum(truth == 0))
    return {"precision": precision, "recall": recall, "f1": f1,
            "false_alarm_rate": false_alarms, "threshold": float(threshold)}


def anomaly_scores(y_true, scores, threshold: float,
                   max_fpr: float = DCASE_MAX_FPR) -> dict[str, float]:
    """AUC, both pAUCs and the detection report of one set of recordings."""
    truth, values = _checked(y_true, scores)
    return {"auc": roc_auc(truth, values), "pauc": partial_auc(truth, values, max_fpr),
            "pauc_mcclish": standardised_partial_auc(truth, values, max_fpr),
            "normal": int(np.sum(truth == 0)), "anomalous": int(truth.sum()),
            **detection_report(truth, values, threshold)}
