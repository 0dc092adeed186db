"""Figures for reports: confusion matrix, training curves, spectrogram.

Each function draws one figure and writes it to a file (PNG, or SVG/PDF by
the path's suffix) atomically: the image is rendered in memory and then
moved into place, so a failed plot never leaves a partial or stray file.

matplotlib is imported inside the functions, so ``import earmark.plots`` is
cheap. Figures are drawn on matplotlib's Agg canvas directly, without
pyplot: no display is needed, the process-wide backend is left alone (a
notebook using earmark keeps its inline plots) and no figure is left
registered in pyplot's global list to leak memory.
"""

from __future__ import annotations

import io
import math
import os
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from earmark.atomic import write_bytes
from earmark.errors import ConfigError, DataError
from earmark.events import Event

#: The picture formats written, by the path's suffix.
IMAGE_SUFFIXES = (".png", ".svg", ".pdf")

#: Resolution of the written images, in dots per inch.
DPI = 120

#: Cells get text up to this many classes; beyond it they are too small to read.
MAX_ANNOTATED_CLASSES = 40

#: With more classes than this, cells show only the percentage, not the count.
MAX_CLASSES_WITH_COUNTS = 15


def plot_confusion_matrix(confusion: Sequence[Sequence[int]] | np.ndarray,
                          labels: Sequence[str],
                          path: str | os.PathLike,
                          title: str = "",
                          normalize: bool = True,
                          show_counts: bool | None = None) -> Path:
    """Draw a confusion matrix as a heat map.

    Parameters
    ----------
    confusion : array-like of int, shape (classes, classes)
        Rows are true classes, columns predicted ones (as
        :func:`earmark.metrics.classification.confusion_matrix` returns).
    labels : sequence of str
        Class names, one per row.
    path : str or os.PathLike
        Where to write the image; the suffix picks the format (``.png``).
    title : str
        Figure title; a default one is used when empty.
    normalize : bool
        True: colour and label each cell by its share of the true class (a
        row sums to 100 %), which makes rare and common classes comparable.
        False: colour and label by raw count.
    show_counts : bool or None
        With ``normalize``, also print the count under each percentage.
        None: only when there are at most 15 classes (room to read them).

    Returns
    -------
    Path
        The written file.
    """
    matrix = np.asarray(confusion)
    labels = [str(label) for label in labels]
    _check_confusion(matrix, labels)
    fmt = _image_format(path)
    n_classes = len(labels)
    if show_counts is None:
        show_counts = n_classes <= MAX_CLASSES_WITH_COUNTS
    counts, support, values = _confusion_values(matrix, normalize)
    side, cell_inches = _confusion_size(n_classes)
    figure = _new_figure((side + 1.2, side))
    axes = figure.add_subplot()
    vmax = _draw_heat_map(figure, axes, values, counts, normalize)
    _label_classes(axes, labels)
    if n_classes <= MAX_ANNOTATED_CLASSES:
        font_size = float(np.clip(cell_inches * 72 * 0.28, 4.5, 10.5))
        _annotate_cells(axes, values, counts, support, vmax, normalize, show_counts, font_size)
    axes.set_title(_confusion_title(counts, title, normalize))
    return _save(figure, path, fmt)


def _check_confusion(matrix: np.ndarray, labels: list[str]) -> None:
    """Raise DataError unless ``matrix`` is square non-negative counts, one label a row."""
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] == 0:
        raise DataError(f"confusion matrix must be square and non-empty, got shape {matrix.shape}")
    if len(labels) != matrix.shape[0]:
        raise DataError(f"{len(labels)} labels for a {matrix.shape[0]}-class confusion matrix: "
                        "pass one label per row")
    if not np.issubdtype(matrix.dtype, np.number) or (matrix < 0).any():
        raise DataError("confusion matrix must hold non-negative counts")


def _confusion_values(matrix: np.ndarray,
                      normalize: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(counts, support, values)``: counts as float, examples per true class
    (classes, 1), and what the cells show: % of the row, or the counts."""
    counts = matrix.astype(np.float64)
    support = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, support, out=np.zeros_like(counts), where=support > 0)
    return counts, support, shares * 100 if normalize else counts


def _confusion_size(n_classes: int) -> tuple[float, float]:
    """``(side, cell)`` in inches: cells keep a readable size as classes are added,
    and the figure grows instead (within 4.5 to 24 inches)."""
    cell_inches = 0.55 if n_classes <= 20 else 0.42
    side = float(np.clip(2.6 + cell_inches * n_classes, 4.5, 24.0))
    return side, (side - 2.6) / n_classes


def _draw_heat_map(figure: Any, axes: Any, values: np.ndarray, counts: np.ndarray,
                   normalize: bool) -> float:
    """The cells in blues with a colour bar; returns the value drawn darkest."""
    from matplotlib import ticker

    vmax = 100.0 if normalize else max(float(counts.max()), 1.0)
    image = axes.imshow(values, cmap="Blues", vmin=0.0, vmax=vmax, interpolation="nearest")
    colorbar = figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
    colorbar.set_label("share of the true class (%)" if normalize else "examples")
    if not normalize:
        colorbar.ax.yaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    return vmax


def _label_classes(axes: Any, labels: list[str]) -> None:
    """Class names on both axes (slanted when long or many), a white grid between cells."""
    n_classes = len(labels)
    positions = np.arange(n_classes)
    longest = max(len(label) for label in labels)
    rotate = n_classes > 6 or longest > 6
    label_size = 10 if n_classes <= 20 else 8
    axes.set_xticks(positions)
    axes.set_yticks(positions)
    axes.set_xticklabels(labels, rotation=45 if rotate else 0,
                         ha="right" if rotate else "center",
                         rotation_mode="anchor", fontsize=label_size)
    axes.set_yticklabels(labels, fontsize=label_size)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    # Thin white grid between cells keeps neighbouring rows apart at a glance.
    axes.set_xticks(positions[:-1] + 0.5, minor=True)
    axes.set_yticks(positions[:-1] + 0.5, minor=True)
    axes.grid(which="minor", color="white", linewidth=1.0)
    axes.tick_params(which="minor", length=0)


def _confusion_title(counts: np.ndarray, title: str, normalize: bool) -> str:
    """The heading (``title`` or a default), then the examples and the accuracy."""
    total = int(counts.sum())
    correct = int(np.trace(counts))
    accuracy = correct / total if total else 0.0
    heading = title or ("Confusion matrix (row-normalised)" if normalize else "Confusion matrix")
    return f"{heading}\n{total} examples, accuracy {accuracy:.1%}"


def _annotate_cells(axes: Any, values: np.ndarray, counts: np.ndarray, support: np.ndarray,
                    vmax: float, normalize: bool, show_counts: bool, font_size: float) -> None:
    n_classes = len(values)
    for row in range(n_classes):
        for column in range(n_classes):
            count = int(counts[row, column])
            if normalize:
                if support[row, 0] == 0:
                    text = "–"       # no examples of this class: no share to show
                elif count == 0:
                    text = "0"       # a bare 0 keeps empty cells quiet
                else:
                    text = _percent(values[row, column])
                    if show_counts:
                        text += f"\n{count}"
            else:
                text = str(count)
            dark = values[row, column] > 0.55 * vmax
            axes.text(column, row, text, ha="center", va="center", fontsize=font_size,
                      color="white" if dark else "#1a1a1a")


def _percent(value: float) -> str:
    """A share as text: whole percent, one decimal below 10 % so 0.4 % is not 0 %."""
    return f"{value:.1f}%" if value < 9.95 else f"{value:.0f}%"


def plot_training_curves(history: Sequence[dict], path: str | os.PathLike,
                         title: str = "", monitor: str = "val_accuracy") -> Path:
    """Draw loss and accuracy against epoch, training and validation.

    Parameters
    ----------
    history : sequence of dict
        One row per epoch, e.g. ``{"epoch": 1, "train_loss": 0.9,
        "val_loss": 1.1, "train_accuracy": 0.6, "val_accuracy": 0.5,
        "learning_rate": 1e-3}``. Any key but ``epoch`` may be missing or
        None; a missing ``epoch`` is taken as the row's position (from 1).
    path : str or os.PathLike
        Where to write the image; the suffix picks the format (``.png``).
    title : str
        Figure title; a default one is used when empty.
    monitor : str
        The validation value whose best epoch is marked on both panels:
        lowest for a name containing "loss", highest otherwise (the first
        such epoch on a tie). The default matches earmark.train, which keeps
        the checkpoint of the best validation accuracy. When it was never
        recorded, ``val_accuracy`` then ``val_loss`` is tried.

    Returns
    -------
    Path
        The written file.
    """
    rows = list(history)
    if not rows:
        raise DataError("training history is empty: there is nothing to plot")
    if not all(isinstance(row, dict) for row in rows):
        raise DataError("training history must be a list of dicts, one per epoch")
    fmt = _image_format(path)
    series = _history_series(rows)
    figure = _new_figure((11.0, 4.4))
    loss_axes, accuracy_axes = figure.subplots(1, 2, sharex=True)
    _draw_curves(loss_axes, "loss", series)
    _draw_curves(accuracy_axes, "accuracy", series)
    _maybe_log_scale(loss_axes, [series("train_loss")[1], series("val_loss")[1]])
    best = _best_epoch(series, monitor)
    if best is not None:
        _mark_best_epoch(loss_axes, accuracy_axes, *best)
    for axes in (loss_axes, accuracy_axes):
        if axes.get_legend_handles_labels()[0]:
            axes.legend(loc="best", fontsize=9)
    figure.suptitle(title or f"Training curves ({len(rows)} epochs)")
    return _save(figure, path, fmt)


#: A history's recorded values of one key: ``series(key) -> (epochs, values)``.
Series = Callable[[str], tuple[np.ndarray, np.ndarray]]


def _history_series(rows: list[dict]) -> Series:
    """Look-up of recorded values by key; a row without ``epoch`` is epoch position + 1."""
    epochs = np.array([_number(row.get("epoch"), default=position + 1)
                       for position, row in enumerate(rows)], dtype=np.float64)

    def series(key: str) -> tuple[np.ndarray, np.ndarray]:
        """Epochs and values where ``key`` was recorded."""
        values = np.array([_number(row.get(key)) for row in rows], dtype=np.float64)
        kept = np.isfinite(values)
        return epochs[kept], values[kept]

    return series


def _draw_curves(axes: Any, name: str, series: Series) -> None:
    """One panel: ``train_<name>`` solid, ``val_<name>`` dashed, against epoch."""
    from matplotlib import ticker

    drawn = False
    for split, style in (("train", "-"), ("val", "--")):
        x, y = series(f"{split}_{name}")
        if len(x):
            axes.plot(x, y, style, marker="o", markersize=3 if len(x) < 60 else 0,
                      color="tab:blue" if split == "train" else "tab:orange",
                      label="training" if split == "train" else "validation")
            drawn = True
    if not drawn:
        axes.text(0.5, 0.5, f"no {name} recorded", transform=axes.transAxes,
                  ha="center", va="center", color="grey")
    axes.set_title(name.capitalize())
    axes.set_xlabel("epoch")
    axes.set_ylabel(name)
    axes.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    axes.grid(alpha=0.3)


def _mark_best_epoch(loss_axes: Any, accuracy_axes: Any, epoch: float, key: str,
                     value: float) -> None:
    """A dotted line at the best epoch on both panels, a star on the value's own panel."""
    for axes in (loss_axes, accuracy_axes):
        axes.axvline(epoch, color="tab:green", linestyle=":", linewidth=1.5,
                     label=f"best epoch {epoch:g} ({key} {value:.4g})")
    marked = loss_axes if "loss" in key else accuracy_axes
    marked.plot([epoch], [value], marker="*", markersize=13, color="tab:green",
                linestyle="none")


def _number(value: Any, default: float = np.nan) -> float:
    """A recorded value as float; None, missing or non-numeric gives ``default``."""
    if value is None or isinstance(value, bool):
        return default
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def _best_epoch(series: Series, monitor: str) -> tuple[float, str, float] | None:
    """(epoch, key, value) of the best validation value, or None if none recorded."""
    fallbacks = [monitor] + [key for key in ("val_accuracy", "val_loss") if key != monitor]
    for key in fallbacks:
        x, y = series(key)
        if len(x):
            index = int(np.argmin(y) if "loss" in key else np.argmax(y))
            return float(x[index]), key, float(y[index])
    return None


def _maybe_log_scale(axes: Any, value_sets: list[np.ndarray]) -> None:
    """Use a log scale when the loss spans more than ~1.5 decades: late epochs stay visible."""
    values = np.concatenate(value_sets) if value_sets else np.empty(0)
    if len(values) and (values > 0).all() and values.max() / values.min() > 30:
        from matplotlib import ticker

        axes.set_yscale("log")
        # Plain numbers (0.1, not 10^-1), and 2x and 5x ticks labelled too:
        # decade labels alone are too sparse to read values off.
        axes.yaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
        axes.yaxis.set_minor_formatter(ticker.FuncFormatter(
            lambda value, _: f"{value:g}" if round(value / 10 ** np.floor(np.log10(value)))
            in (2, 5) else ""))


def plot_spectrogram(features: np.ndarray, path: str | os.PathLike, sample_rate: int,
                     hop_length: int, title: str = "", y_label: str = "mel band",
                     is_power: bool = False, top_db: float | None = 80.0,
                     frequencies: np.ndarray | None = None, start: float = 0.0) -> Path:
    """Draw a (log-)spectrogram or feature matrix with time in seconds.

    Parameters
    ----------
    features : np.ndarray, shape (bands, frames)
        Values in dB (``is_power=False``) or power (converted with
        ``10 * log10``); band 0 is drawn at the bottom.
    path : str or os.PathLike
        Where to write the image; the suffix picks the format (``.png``).
    sample_rate : int
        Sample rate of the audio the features came from, in Hz.
    hop_length : int
        Samples between frames; frame ``i`` is drawn at ``start + i *
        hop_length / sample_rate`` seconds.
    title : str
        Figure title; a default one is used when empty.
    y_label : str
        Name of the rows (e.g. "mel band", "MFCC", "frequency bin").
    is_power : bool
        True when ``features`` are power values rather than dB.
    top_db : float or None
        Colours span at most this many dB below the maximum, so that
        near-silent bins do not wash the picture out. None: full range.
    frequencies : np.ndarray or None
        The frequency of each band in Hz (ascending): the vertical axis is
        then labelled in Hz (at round values, for mel bands too).
    start : float
        Time of the first frame, in seconds. Spans over two minutes are
        labelled as clock time (m:ss or h:mm:ss).

    Returns
    -------
    Path
        The written file.
    """
    values = np.asarray(features, dtype=np.float64)
    _check_spectrogram(values, sample_rate, hop_length)
    fmt = _image_format(path)
    values = 10.0 * np.log10(np.maximum(values, 1e-10)) if is_power else values
    bands, frames = values.shape
    frame_seconds = hop_length / sample_rate
    extent = (start - 0.5 * frame_seconds, start + (frames - 0.5) * frame_seconds,  # pixel
              -0.5, bands - 0.5)                               # edges half a frame around
    figure = _new_figure((float(np.clip(4.0 + frames / 60, 6.0, 14.0)), 4.0))
    axes = figure.add_subplot()
    vmin, vmax = _colour_range(values, top_db)
    image = axes.imshow(values, origin="lower", aspect="auto", extent=extent, cmap="magma",
                        vmin=vmin, vmax=vmax, interpolation="nearest")
    figure.colorbar(image, ax=axes, pad=0.02).set_label("dB")
    duration = frames * frame_seconds
    axes.set_xlabel(_time_axis(axes, duration))
    axes.set_ylabel(y_label if frequencies is None else "frequency (Hz)")
    if frequencies is not None:
        _label_frequencies(axes, np.asarray(frequencies, dtype=np.float64))
    axes.set_title(title or f"Spectrogram ({bands} × {frames}, {duration:.2f} s)")
    return _save(figure, path, fmt)


def _label_frequencies(axes: Any, frequencies: np.ndarray) -> None:
    """Ticks at round frequencies placed on the band rows (linear or mel spaced)."""
    low, high = float(frequencies[0]), float(frequencies[-1])
    steps = [mantissa * 10 ** exponent for exponent in range(0, 6) for mantissa in (1, 2, 5)]
    if np.allclose(np.diff(frequencies), frequencies[1] - frequencies[0]):    # linear
        step = next(s for s in steps if (high - low) / s <= 8)
        ticks = np.arange(np.ceil(low / step) * step, high + 1e-9, step)
    else:
        ticks = np.array([s for s in steps if low <= s <= high])
    positions = np.interp(ticks, frequencies, np.arange(len(frequencies)))
    kept = []                       # from the top down, at least 1/14 of the height apart
    for index in range(len(ticks) - 1, -1, -1):
        if not kept or positions[kept[-1]] - positions[index] >= len(frequencies) / 14:
            kept.append(index)
    kept.reverse()
    axes.set_yticks(positions[kept], [f"{t / 1000:g}k" if t >= 1000 else f"{t:g}"
                                      for t in ticks[kept]])


def _time_axis(axes: Any, duration: float) -> str:
    """Clock-time tick labels (m:ss, h:mm:ss) for spans over two minutes; the axis label."""
    if duration <= 120:
        return "time (s)"
    from matplotlib import ticker

    def clock(value: float, _position: Any) -> str:
        whole = int(round(value))
        hours, rest = divmod(whole, 3600)
        return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if duration > 3600 else \
            f"{whole // 60}:{whole % 60:02d}"

    axes.xaxis.set_major_formatter(ticker.FuncFormatter(clock))
    steps = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600]
    axes.xaxis.set_major_locator(ticker.MultipleLocator(
        next((s for s in steps if duration / s <= 12), steps[-1])))
    return "time (h:mm:ss)" if duration > 3600 else "time (m:ss)"


def _check_spectrogram(values: np.ndarray, sample_rate: int, hop_length: int) -> None:
    """Raise DataError on a non-(bands, frames) or non-finite array, ConfigError on
    a non-positive rate or hop."""
    if values.ndim != 2 or 0 in values.shape:
        raise DataError(f"features must have shape (bands, frames), got {values.shape}")
    if not np.isfinite(values).all():
        raise DataError("features contain NaN or infinity; check the front-end output")
    if sample_rate <= 0 or hop_length <= 0:
        raise ConfigError(f"sample_rate ({sample_rate}) and hop_length ({hop_length}) "
                          "must be positive")


def _colour_range(decibels: np.ndarray, top_db: float | None) -> tuple[float, float]:
    """``(vmin, vmax)`` in dB: the maximum, and at most ``top_db`` below it (None: the
    minimum); a flat picture gets a 1 dB range so that the colour map is defined."""
    vmax = float(decibels.max())
    vmin = float(decibels.min()) if top_db is None else max(float(decibels.min()), vmax - top_db)
    return vmin, vmax if vmax > vmin else vmin + 1.0


def plot_tradeoff(thresholds: Sequence[float], correct_rates: Sequence[float],
                  false_alarms_per_hour: Sequence[float], path: str | os.PathLike,
                  chosen: float | None = None, title: str = "") -> Path:
    """Correct-word rate against false alarms per hour, one point per threshold."""
    fmt = _image_format(path)
    figure = _new_figure((6.4, 4.6))
    axes = figure.add_subplot()
    axes.plot(false_alarms_per_hour, np.asarray(correct_rates) * 100, "o-", markersize=3)
    for threshold, x, y in zip(thresholds, false_alarms_per_hour, correct_rates):
        if chosen is not None and np.isclose(threshold, chosen):
            axes.plot([x], [y * 100], "r*", markersize=14,
                      label=f"chosen threshold {threshold:.2f}")
    axes.set_xlabel("false alarms per hour (wrong + false positives)")
    axes.set_ylabel("words recognised correctly (%)")
    axes.set_title(title or "Detection trade-off over thresholds")
    axes.grid(True, alpha=0.3)
    if chosen is not None:
        axes.legend(loc="lower right")
    return _save(figure, path, fmt)


def plot_threshold_sweep(result: dict, path: str | os.PathLike) -> Path:
    """False alarms per hour (with their 95% interval) against the threshold, the miss
    rate beside them where recordings of the phrase were given, the chosen threshold
    marked (``result``: :func:`earmark.calibrate.report`)."""
    fmt = _image_format(path)
    rows = result["sweep"]
    thresholds = np.array([row["threshold"] for row in rows])
    figure = _new_figure((7.0, 4.4))
    axes = figure.add_subplot()
    low, high = np.array([row["false_alarms_per_hour_95"] for row in rows]).T
    axes.fill_between(thresholds, low, high, alpha=0.25, label="95% interval")
    axes.plot(thresholds, [row["false_alarms_per_hour"] for row in rows], "o-", markersize=2,
              label="false alarms per hour")
    axes.axhline(result["budget_per_hour"], color="grey", linestyle=":", label="budget")
    axes.set_yscale("symlog", linthresh=1.0)
    axes.set_ylim(bottom=0)
    axes.set_xscale("logit")        # the low false-alarm rates live near 1
    axes.set_xlabel("detection threshold")
    axes.set_ylabel("false alarms per hour")
    if result["positives"]:
        misses = axes.twinx()
        misses.plot(thresholds, [100 * row["miss_rate"] for row in rows], "-", color="C3",
                    label="missed (%)")
        misses.set_ylabel("recordings of the phrase missed (%)", color="C3")
    if result["chosen"] is not None:
        axes.axvline(result["chosen"]["threshold"], color="C2", label="chosen threshold")
    axes.set_title(f"{result['negative_hours']:.2f} h of negative recordings")
    axes.grid(True, alpha=0.3)
    axes.legend(loc="upper center", fontsize="small")
    return _save(figure, path, fmt)


def plot_events(spectrogram_db: np.ndarray, seconds_per_frame: float, sample_rate: int,
                centres: np.ndarray, probabilities: np.ndarray, labels: Sequence[str],
                events: Sequence[Event], path: str | os.PathLike, title: str = "",
                hidden: Sequence[str] = ("_silence_", "_unknown_")) -> Path:
    """Spectrogram, class probabilities over time, and the detected events under them.

    ``spectrogram_db`` is (bins, frames) in dB, ``seconds_per_frame`` apart, up
    to ``sample_rate / 2`` Hz; ``probabilities`` is (windows, labels), placed
    at ``centres`` (s); ``events`` have times in seconds. Labels in
    ``hidden`` get no probability curve. Returns the written image's path.
    """
    fmt = _image_format(path)
    duration = spectrogram_db.shape[1] * seconds_per_frame
    figure = _new_figure((min(24.0, 8.0 + duration / 30), 7.5))
    top, middle, bottom = figure.subplots(3, 1, sharex=True,
                                          gridspec_kw={"height_ratios": [3, 2, 1.2]})
    ceiling = float(spectrogram_db.max())
    image = top.imshow(spectrogram_db, origin="lower", aspect="auto", cmap="magma",
                       extent=(0, duration, 0, sample_rate / 2000), vmin=ceiling - 80,
                       vmax=ceiling)
    figure.colorbar(image, ax=top, label="dB", pad=0.01)
    top.set_ylabel("kHz")
    top.set_title(title or "Sound events")
    shown = [i for i, label in enumerate(labels) if label not in hidden]
    colours = {labels[i]: f"C{n % 10}" for n, i in enumerate(shown)}
    for i in shown:
        middle.plot(centres, probabilities[:, i], color=colours[labels[i]], label=labels[i],
                    linewidth=1)
    middle.set_ylim(0, 1.02)
    middle.set_ylabel("probability")
    middle.grid(True, alpha=0.3)
    if shown:
        middle.legend(loc="upper right", fontsize=7, ncol=min(6, len(shown)))
    rows = {label: n for n, label in enumerate(sorted({e.label for e in events}))}
    for event in events:
        bottom.barh(rows[event.label], event.offset - event.onset, left=event.onset, height=0.8,
                    color=colours.get(event.label, "grey"), alpha=0.8)
    bottom.set_yticks(list(rows.values()), list(rows.keys()), fontsize=7)
    bottom.set_xlabel("time (s)")
    bottom.set_xlim(0, duration)
    bottom.set_ylabel("events")
    return _save(figure, path, fmt)


def plot_anomaly_timeline(centres: np.ndarray, scores: np.ndarray, on: float,
                          alarms: Sequence[Event], path: str | os.PathLike, title: str = "",
                          off: float | None = None, smoothed: np.ndarray | None = None,
                          duration: float | None = None) -> Path:
    """An anomaly monitor's score timeline: window scores at their ``centres`` (s), the
    ``on`` (and ``off``) level, the ``smoothed`` track if given, and the alarms shaded."""
    fmt = _image_format(path)
    centres, scores = np.asarray(centres, dtype=float), np.asarray(scores, dtype=float)
    if centres.shape != scores.shape or centres.ndim != 1 or not np.isfinite(scores).all():
        raise DataError(f"anomaly timeline: need finite scores, one per window centre; got "
                        f"shapes {centres.shape} and {scores.shape}")
    end = duration if duration is not None else float(centres.max(initial=0.0))
    figure = _new_figure((min(24.0, 8.0 + end / 60), 3.6))
    axes = figure.subplots()
    for alarm in alarms:
        axes.axvspan(alarm.onset, alarm.offset, color="tab:red", alpha=0.2, linewidth=0)
    axes.plot(centres, scores, color="tab:blue" if smoothed is None else "0.6",
              linewidth=0.8, label="window score")
    if smoothed is not None:
        axes.plot(centres, smoothed, color="tab:blue", linewidth=1.2, label="smoothed")
    axes.axhline(on, color="tab:red", linestyle="--", linewidth=1, label=f"on {on:.4g}")
    if off is not None and off != on:
        axes.axhline(off, color="tab:orange", linestyle=":", linewidth=1,
                     label=f"off {off:.4g}")
    axes.set_xlim(0, max(end, 1e-3))
    axes.set_xlabel(_time_axis(axes, end))
    axes.set_ylabel("anomaly score")
    axes.set_title(title or f"Anomaly score: {len(alarms)} alarm(s) shaded")
    axes.grid(True, alpha=0.3)
    axes.legend(loc="upper right", fontsize=7)
    return _save(figure, path, fmt)


#: The deepest level range a monitoring picture draws (dB).
LEVEL_SPAN_DB = 100.0
#: More seconds than this are drawn as the range of the seconds in each column.
SECOND_COLUMNS = 3000


def plot_monitor(second_levels: np.ndarray, interval_edges: np.ndarray,
                 interval_levels: dict[str, np.ndarray], dominant: Sequence[str],
                 labels: Sequence[str], path: str | os.PathLike, unit: str = "dBFS",
                 file_starts: Sequence[float] = (), title: str = "") -> Path:
    """A level timeline a person reads at a glance, with the dominant source beneath.

    ``second_levels`` is each second's LAeq (drawn thin and grey);
    ``interval_edges`` the ``intervals + 1`` boundaries (s) and
    ``interval_levels`` their ``LAeq`` (a bold step line) and, when given,
    ``LA10`` and ``LA90`` (a band between them); ``dominant`` names each
    interval's dominant source, drawn as a coloured strip under the levels
    (each of ``labels`` keeps its colour). ``file_starts`` (s) are marked
    with dotted lines. A day of seconds fits on one page.
    """
    fmt = _image_format(path)
    edges = np.asarray(interval_edges, dtype=np.float64)
    figure = _new_figure((14.0, 5.6))
    top, strip = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [5, 1]})
    _draw_seconds(top, np.asarray(second_levels, dtype=np.float64))
    if "LA10" in interval_levels and "LA90" in interval_levels:      # over the seconds
        top.fill_between(edges, _stepped(interval_levels["LA90"]),
                         _stepped(interval_levels["LA10"]), step="post", color="tab:blue",
                         alpha=0.35, linewidth=0, label="LA90 to LA10", zorder=2)
    top.step(edges, _stepped(interval_levels["LAeq"]), where="post", color="tab:blue",
             linewidth=2, label=f"LAeq per {_span_words(edges)}", zorder=3)
    for start in list(file_starts)[1:]:
        top.axvline(start, color="0.3", linestyle=":", linewidth=0.8)
    top.set_ylim(*_level_range(np.asarray(second_levels, dtype=np.float64), interval_levels))
    top.set_ylabel(f"A-weighted level ({unit})")
    top.grid(True, alpha=0.3)
    top.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8, frameon=False)
    top.set_title(title or "Sound levels and sources")
    colours = {label: _source_colour(index) for index, label in enumerate(labels)}
    for label in dict.fromkeys(dominant):
        spans = _runs_of(label, dominant, edges)
        strip.broken_barh(spans, (0, 1), color=colours.get(label, "grey"), label=label)
    strip.set_yticks([])
    strip.set_ylabel("source", rotation=0, ha="right", va="center")
    strip.set_xlim(edges[0], edges[-1])
    strip.legend(loc="center left", bbox_to_anchor=(1.005, 0.5), fontsize=8, frameon=False,
                 ncol=1 + len(set(dominant)) // 4)
    strip.set_xlabel(_time_axis(strip, float(edges[-1] - edges[0])))
    return _save(figure, path, fmt)


def _draw_seconds(axes, levels: np.ndarray) -> None:
    """Each second's LAeq as a thin line; a long timeline (more seconds than the page has
    pixels) as the range of the seconds in each of :data:`SECOND_COLUMNS` columns, which
    shows the same and draws (and holds) a fraction of the points."""
    if len(levels) <= SECOND_COLUMNS:
        axes.plot(np.arange(len(levels)) + 0.5, levels, color="0.75", linewidth=0.5,
                  label="LAeq per second", zorder=1)
        return
    per = int(math.ceil(len(levels) / SECOND_COLUMNS))
    padded = np.pad(levels, (0, -len(levels) % per), constant_values=np.nan)
    columns = padded.reshape(-1, per)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)       # a column of NaN: a gap
        low, high = np.nanmin(columns, axis=1), np.nanmax(columns, axis=1)
    starts = np.arange(len(columns)) * per
    axes.fill_between(np.append(starts, len(levels)), np.append(low, low[-1:]),
                      np.append(high, high[-1:]), step="post", color="0.75", linewidth=0,
                      label=f"LAeq per second (range in {per} s)", zorder=1)


def _runs_of(label: str, dominant: Sequence[str], edges: np.ndarray) -> list[tuple]:
    """``(start, width)`` of each run of consecutive intervals whose source is ``label``."""
    spans: list[tuple] = []
    for index, name in enumerate(dominant):
        if name != label:
            continue
        if spans and spans[-1][0] + spans[-1][1] == edges[index]:
            spans[-1] = (spans[-1][0], edges[index + 1] - spans[-1][0])
        else:
            spans.append((edges[index], edges[index + 1] - edges[index]))
    return spans


def _level_range(seconds: np.ndarray, intervals: dict[str, np.ndarray]) -> tuple[float, float]:
    """The dB range worth drawing: from 10 dB under the quietest interval's LA90 (quieter
    seconds run off the bottom) to the loudest, at most :data:`LEVEL_SPAN_DB` deep (digital
    silence, at -197 dBFS, would squash everything else into a line)."""
    values = np.concatenate([seconds] + [np.asarray(v, dtype=np.float64)
                                         for v in intervals.values()])
    values = values[np.isfinite(values)]
    if values.size == 0:
        return -100.0, 0.0
    floor = np.asarray(intervals.get("LA90", intervals["LAeq"]), dtype=np.float64)
    floor = floor[np.isfinite(floor)]            # a file under 0.1 s has no LA90
    top = float(values.max()) + 3
    bottom = float(floor.min() if floor.size else values.min()) - 10
    return max(bottom, top - LEVEL_SPAN_DB), top


def _stepped(values: np.ndarray) -> np.ndarray:
    """Per-interval values with the last repeated, for ``step(where="post")`` over edges."""
    values = np.asarray(values, dtype=np.float64)
    return np.append(values, values[-1:]) if len(values) else values


def _span_words(edges: np.ndarray) -> str:
    """The interval's length in words: "60 s", "15 min", "1 h"."""
    length = float(edges[1] - edges[0]) if len(edges) > 1 else 0.0
    if length >= 3600 and length % 3600 == 0:
        return f"{length / 3600:g} h"
    if length >= 60 and length % 60 == 0:
        return f"{length / 60:g} min"
    return f"{length:g} s"


def _source_colour(index: int) -> Any:
    """A distinct colour per class index (tab10, then tab20's lighter shades)."""
    from matplotlib import colormaps

    if index < 10:
        return colormaps["tab10"](index)
    return colormaps["tab20"]((2 * (index - 10) + 1) % 20)


# --------------------------------------------------------------------------
# Shared plumbing


def plot_roc(truth: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray,
             path: str | os.PathLike, title: str = "") -> Path:
    """An anomaly detector's ROC curve, with AUC and DCASE's pAUC (FPR 0-0.1) shaded."""
    from earmark.metrics.anomaly import DCASE_MAX_FPR, partial_auc, roc_auc, roc_curve

    fmt = _image_format(path)
    fpr, tpr, _ = roc_curve(truth, scores)
    figure = _new_figure((4.8, 4.4))
    axes = figure.subplots()
    axes.plot(fpr, tpr, drawstyle="steps-post", color="tab:blue")
    axes.plot([0, 1], [0, 1], ls=":", color="grey")
    axes.axvspan(0, DCASE_MAX_FPR, color="tab:orange", alpha=0.15, label="pAUC range")
    axes.set(xlabel="false-positive rate (normal flagged)", xlim=(0, 1), ylim=(0, 1.01),
             ylabel="true-positive rate (anomaly found)",
             title=f"{title} AUC {roc_auc(truth, scores):.3f}, "
                   f"pAUC {partial_auc(truth, scores):.3f}".strip())
    axes.legend(loc="lower right")
    return _save(figure, path, fmt)


def plot_score_histogram(truth: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray,
                         threshold: float, path: str | os.PathLike, title: str = "") -> Path:
    """Anomaly scores of normal and anomalous recordings, with the decision threshold."""
    fmt = _image_format(path)
    truth, scores = np.asarray(truth).astype(bool), np.asarray(scores, dtype=float)
    edges = np.histogram_bin_edges(np.r_[scores, threshold], bins=30)
    figure = _new_figure((6.0, 3.6))
    axes = figure.subplots()
    axes.hist(scores[~truth], bins=edges, alpha=0.6, color="tab:green",
              label=f"normal ({int((~truth).sum())})")
    axes.hist(scores[truth], bins=edges, alpha=0.6, color="tab:red",
              label=f"anomaly ({int(truth.sum())})")
    axes.axvline(threshold, color="black", ls="--", label=f"threshold {threshold:.3g}")
    axes.set(xlabel="anomaly score", ylabel="recordings", title=title)
    axes.legend()
    return _save(figure, path, fmt)


def plot_robustness(report: dict, path: str | os.PathLike) -> Path:
    """Accuracy under each corruption of the robustness suite (one bar each, coloured by
    family), against the clean accuracy and its 95% interval."""
    fmt = _image_format(path)
    rows = report["corruptions"]
    clean = report["clean"]
    figure = _new_figure((7.5, 0.9 + 0.24 * max(len(rows), 1)))
    axes = figure.subplots()
    families = list(dict.fromkeys(row["family"] for row in rows))
    colours = [_source_colour(families.index(row["family"])) for row in rows]
    positions = np.arange(len(rows))[::-1]
    axes.barh(positions, [100 * row["accuracy"] for row in rows], color=colours, height=0.7)
    low, high = clean["interval_95"]
    axes.axvspan(100 * low, 100 * high, color="0.85", zorder=0,
                 label="clean, 95% interval")
    axes.axvline(100 * clean["accuracy"], color="black", linewidth=1.2,
                 label=f"clean {100 * clean['accuracy']:.1f}%")
    axes.axvline(100 * report["mean_corrupted_accuracy"], color="tab:red", linestyle="--",
                 label=f"mean corrupted {100 * report['mean_corrupted_accuracy']:.1f}%")
    axes.set_yticks(positions, [f"{row['family']} {row['severity']}" for row in rows],
                    fontsize=7)
    axes.set_xlim(0, 100)
    axes.set_xlabel(f"accuracy (%), {clean['clips']} clips")
    axes.set_title(f"Robustness: {report['model']}", fontsize=9)
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)
    return _save(figure, path, fmt)


def _new_figure(size: tuple[float, float]) -> Any:
    """A figure on an Agg canvas, outside pyplot (so nothing global to close)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=size, dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _image_format(path: str | os.PathLike) -> str:
    """The image format named by the path's suffix; checked before any drawing."""
    suffix = Path(path).suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise ConfigError(f"{path}: cannot tell the image format from the suffix; "
                          f"end the name in {', '.join(IMAGE_SUFFIXES)}")
    return suffix.lstrip(".")


def _save(figure: Any, path: str | os.PathLike, fmt: str) -> Path:
    """Render to memory, then write atomically; release the figure either way."""
    buffer = io.BytesIO()
    try:
        # "tight" as a safety net: no label is ever cut at the edge of the image.
        figure.savefig(buffer, format=fmt, dpi=DPI, bbox_inches="tight", pad_inches=0.1)
    finally:
        figure.clear()
    return write_bytes(path, buffer.getvalue())
