"""Classification metrics: confusion matrix and per-class report.

Everything here works on integer class ids (``0 .. n_classes - 1``) and on
numpy arrays of probabilities; the conventions follow scikit-learn's
``classification_report(..., zero_division=0)`` so numbers can be compared
with published results:

- precision, recall and F1 of a class are 0.0 when undefined (no
  predictions of it, no examples of it);
- every class gets a row, even one with no examples (zero support);
- the macro averages (of F1, and the table's macro precision and recall)
  are over the classes that have examples in the evaluation set, like
  balanced accuracy (scikit-learn's ``balanced_accuracy_score``). A class
  absent from the set has no score to average: counting it as 0 would drag
  the average down for a gap in the data, not a fault of the model. Wrong
  predictions of such a class still count, as lost recall of the classes
  they were taken from. Here earmark departs from scikit-learn's
  ``f1_score(average="macro", labels=every_class)``, which averages an
  absent class's 0 in (with a warning); with every class present, as in
  a well-built test split, the two agree.

This module needs only numpy: the deployed runtime may use it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from earmark.errors import DataError


# --------------------------------------------------------------------------
# Confusion matrix


def confusion_matrix(y_true: Sequence[int] | np.ndarray,
                     y_pred: Sequence[int] | np.ndarray,
                     n_classes: int) -> np.ndarray:
    """Count (true class, predicted class) pairs.

    Parameters
    ----------
    y_true, y_pred : sequence of int, shape (examples,)
        Class ids in ``0 .. n_classes - 1``.
    n_classes : int
        Number of classes; fixes the matrix size even when some never occur.

    Returns
    -------
    np.ndarray of int64, shape (n_classes, n_classes)
        ``matrix[t, p]`` = number of examples of class ``t`` predicted as ``p``:
        rows are true classes, columns predicted ones.

    Raises
    ------
    DataError
        On different lengths, non-integer ids or ids out of range.
    """
    if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) \
            or n_classes < 1:
        raise DataError(f"n_classes must be a positive integer, got {n_classes!r}")
    n_classes = int(n_classes)
    true_ids, predicted_ids = _check_ids(y_true, y_pred, n_classes)
    flat = np.bincount(true_ids * n_classes + predicted_ids, minlength=n_classes * n_classes)
    return flat.reshape(n_classes, n_classes).astype(np.int64)


def _check_ids(y_true: Any, y_pred: Any, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Both id arrays as int64, after checking shape, type and range."""
    true_ids = _as_ids("y_true", y_true, n_classes)
    predicted_ids = _as_ids("y_pred", y_pred, n_classes)
    if len(true_ids) != len(predicted_ids):
        raise DataError(f"y_true has {len(true_ids)} entries but y_pred has "
                        f"{len(predicted_ids)}: pass one prediction per example")
    return true_ids, predicted_ids


def _as_ids(name: str, values: Any, n_classes: int) -> np.ndarray:
    ids = np.asarray(values)
    if ids.ndim != 1:
        raise DataError(f"{name} must be a 1-D sequence of class ids, got shape {ids.shape}; "
                        "for probabilities pass probabilities.argmax(axis=1)")
    if ids.size == 0:
        return ids.astype(np.int64)
    if ids.dtype == bool or not np.issubdtype(ids.dtype, np.integer):
        raise DataError(f"{name} must hold integer class ids, got dtype {ids.dtype}; "
                        "map label names to ids first (or take argmax of probabilities)")
    bad = (ids < 0) | (ids >= n_classes)
    if bad.any():
        position = int(np.flatnonzero(bad)[0])
        raise DataError(f"{name}[{position}] = {ids[position]} is not a class id: ids must be "
                        f"in 0..{n_classes - 1} for {n_classes} classes "
                        f"({int(bad.sum())} out of range in all)")
    return ids.astype(np.int64)


# --------------------------------------------------------------------------
# Classification report


@dataclass
class ClassificationReport:
    """Scores of a classifier on one evaluation set.

    Attributes
    ----------
    labels : list of str
        Class names, in class-id order.
    accuracy : float
        Fraction of examples predicted correctly.
    macro_f1 : float
        Unweighted mean of the per-class F1 over the classes with examples
        (support > 0): each of them counts once, absent ones not at all.
    weighted_f1 : float
        Mean of the per-class F1 weighted by support.
    balanced_accuracy : float
        Mean recall over the classes that have examples.
    per_class : list of dict
        One dict per label: ``label``, ``precision``, ``recall``, ``f1``,
        ``support`` (number of true examples).
    confusion : list of list of int
        Rows are true classes, columns predicted ones.
    count : int
        Number of examples scored.
    """

    labels: list[str]
    accuracy: float
    macro_f1: float
    weighted_f1: float
    balanced_accuracy: float
    per_class: list[dict] = field(default_factory=list)
    confusion: list[list[int]] = field(default_factory=list)
    count: int = 0

    def to_dict(self) -> dict:
        """A JSON-ready dict of plain Python types (see :meth:`from_dict`)."""
        return {
            "labels": [str(label) for label in self.labels],
            "accuracy": float(self.accuracy),
            "macro_f1": float(self.macro_f1),
            "weighted_f1": float(self.weighted_f1),
            "balanced_accuracy": float(self.balanced_accuracy),
            "per_class": [_plain_row(row) for row in self.per_class],
            "confusion": [[int(cell) for cell in row] for row in self.confusion],
            "count": int(self.count),
            "accuracy_interval_95": list(self.accuracy_interval()),
        }

    def accuracy_interval(self) -> tuple[float, float]:
        """The accuracy's 95% Wilson interval: what a split of this size can say."""
        if self.count <= 0:
            return (float("nan"), float("nan"))
        return wilson_interval(round(self.accuracy * self.count), self.count)

    @classmethod
    def from_dict(cls, data: dict) -> "ClassificationReport":
        """Rebuild a report from :meth:`to_dict`'s output (e.g. read from JSON)."""
        fields = ("labels", "accuracy", "macro_f1", "weighted_f1", "balanced_accuracy",
                  "per_class", "confusion", "count")
        missing = [name for name in fields if name not in data]
        if missing:
            raise DataError(f"classification report is missing {', '.join(missing)}; "
                            "was it written by ClassificationReport.to_dict()?")
        return cls(
            labels=[str(label) for label in data["labels"]],
            accuracy=float(data["accuracy"]),
            macro_f1=float(data["macro_f1"]),
            weighted_f1=float(data["weighted_f1"]),
            balanced_accuracy=float(data["balanced_accuracy"]),
            per_class=[_plain_row(row) for row in data["per_class"]],
            confusion=[[int(cell) for cell in row] for row in data["confusion"]],
            count=int(data["count"]),
        )

    def to_text(self, digits: int = 3) -> str:
        """An aligned table like scikit-learn's ``classification_report``.

        One row per class (precision, recall, F1, support), then accuracy,
        balanced accuracy, macro average (over the classes with examples)
        and support-weighted average. No trailing newline, so it can be
        printed or embedded as is.
        """
        headers = ("precision", "recall", "f1-score", "support")
        names = [*self.labels, "weighted avg", "balanced accuracy"]
        name_width = max(len(name) for name in names)
        column_width = max(len(header) for header in headers + (f"{0:.{digits}f}",))

        def line(name: str, *cells: str) -> str:
            return (f"{name:>{name_width}} "
                    + " ".join(f"{cell:>{column_width}}" for cell in cells)).rstrip()

        def number(value: float) -> str:
            return f"{value:.{digits}f}"

        rows = [line("", *headers), ""]
        for row in self.per_class:
            rows.append(line(str(row["label"]), number(row["precision"]), number(row["recall"]),
                             number(row["f1"]), str(row["support"])))
        rows.append("")
        blank = ""
        rows.append(line("accuracy", blank, blank, number(self.accuracy), str(self.count)))
        low, high = self.accuracy_interval()
        rows.append(line("95% interval", blank, number(low), number(high), blank))
        rows.append(line("balanced accuracy", blank, blank, number(self.balanced_accuracy),
                         str(self.count)))
        for name, weights in (("macro avg", None), ("weighted avg", "support")):
            averages = [self._average(metric, weights) for metric in ("precision", "recall", "f1")]
            rows.append(line(name, *(number(value) for value in averages), str(self.count)))
        return "\n".join(rows)

    def _average(self, metric: str, weights: str | None) -> float:
        """Macro (``weights=None``: over classes with examples) or support-weighted mean."""
        values = np.array([row[metric] for row in self.per_class], dtype=np.float64)
        support = np.array([row["support"] for row in self.per_class], dtype=np.float64)
        if values.size == 0 or support.sum() <= 0:
            return 0.0
        if weights is None:
            return float(values[support > 0].mean())
        return float((values * support).sum() / support.sum())


def _plain_row(row: dict) -> dict:
    return {
        "label": str(row["label"]),
        "precision": float(row["precision"]),
        "recall": float(row["recall"]),
        "f1": float(row["f1"]),
        "support": int(row["support"]),
    }


def classification_report(y_true: Sequence[int] | np.ndarray,
                          y_pred: Sequence[int] | np.ndarray,
                          labels: Sequence[str]) -> ClassificationReport:
    """Score predicted class ids against true ones.

    Parameters
    ----------
    y_true, y_pred : sequence of int, shape (examples,)
        Class ids; ``i`` stands for ``labels[i]``.
    labels : sequence of str
        Class names in id order; their number fixes the number of classes.

    Returns
    -------
    ClassificationReport
        Every label gets a row; ``macro_f1`` and ``balanced_accuracy``
        average over the labels with examples in ``y_true``.

    Raises
    ------
    DataError
        On no examples, no or duplicate labels, different lengths,
        non-integer ids or ids out of range.
    """
    labels = [str(label) for label in labels]
    if not labels:
        raise DataError("labels is empty: pass the class names in class-id order")
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise DataError(f"labels must be distinct; repeated: {', '.join(duplicates)}")
    matrix = confusion_matrix(y_true, y_pred, len(labels))
    count = int(matrix.sum())
    if count == 0:
        raise DataError("y_true is empty: there are no predictions to score")

    correct = np.diag(matrix).astype(np.float64)
    support = matrix.sum(axis=1).astype(np.float64)      # true examples per class
    predicted = matrix.sum(axis=0).astype(np.float64)    # predictions per class
    precision = _safe_divide(correct, predicted)
    recall = _safe_divide(correct, support)
    f1 = _safe_divide(2 * precision * recall, precision + recall)

    present = support > 0
    per_class = [
        {"label": label, "precision": float(precision[i]), "recall": float(recall[i]),
         "f1": float(f1[i]), "support": int(support[i])}
        for i, label in enumerate(labels)
    ]
    return ClassificationReport(
        labels=labels,
        accuracy=float(correct.sum() / count),
        macro_f1=float(f1[present].mean()),
        weighted_f1=float((f1 * support).sum() / support.sum()),
        balanced_accuracy=float(recall[present].mean()),
        per_class=per_class,
        confusion=matrix.tolist(),
        count=count,
    )


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Element-wise ratio, 0.0 where the denominator is 0 (zero_division=0)."""
    result = np.zeros_like(numerator, dtype=np.float64)
    np.divide(numerator, denominator, out=result, where=denominator > 0)
    return result


def wilson_interval(correct: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """The 95% (``z`` = 1.96) Wilson score interval of an accuracy of ``correct`` of
    ``total``: what one test split of that size can say (279 clips at 90%: 86-93%)."""
    if total <= 0 or not 0 <= correct <= total:
        raise DataError(f"an accuracy needs 0 <= correct <= total and total > 0, got "
                        f"{correct} of {total}")
    share = correct / total
    centre = (share + z * z / (2 * total)) / (1 + z * z / total)
    half = z * np.sqrt(share * (1 - share) / total + z * z / (4 * total * total)) \
        / (1 + z * z / total)
    return float(centre - half), float(centre + half)
