"""Tests for earmark.plots: each figure is a real, readable image file."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from earmark import atomic
from earmark.errors import ConfigError, DataError, OutputError
from earmark.plots import DPI, plot_confusion_matrix, plot_spectrogram, plot_training_curves

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) in pixels, after checking the file is a PNG that reads back."""
    from matplotlib import image

    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    pixels = image.imread(path)
    assert pixels.shape[:2] == (height, width)
    # Not a blank canvas: a figure has both dark (text) and light pixels.
    assert pixels[..., :3].min() < 0.2 and pixels[..., :3].max() > 0.9
    return width, height


def confusion_for(n_classes: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    matrix = rng.integers(0, 5, size=(n_classes, n_classes))
    matrix[np.diag_indices(n_classes)] += 40
    return matrix


def test_confusion_matrix_two_classes(tmp_path):
    path = plot_confusion_matrix([[40, 3], [7, 50]], ["dog", "cat"], tmp_path / "cm.png",
                                 title="Two classes")
    assert path == tmp_path / "cm.png"
    width, height = png_size(path)
    assert 300 < width < 1500 and 300 < height < 1500
    assert os.listdir(tmp_path) == ["cm.png"]


def test_confusion_matrix_grows_with_classes(tmp_path):
    labels = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go",
              "_silence_", "_unknown_"]
    small = png_size(plot_confusion_matrix(confusion_for(2), ["a", "b"], tmp_path / "2.png"))
    large = png_size(plot_confusion_matrix(confusion_for(12), labels, tmp_path / "12.png"))
    assert large[0] > small[0] and large[1] > small[1]
    # Sized for about half an inch per class.
    assert large[0] >= 12 * 0.5 * DPI


def test_confusion_matrix_counts_and_empty_rows(tmp_path):
    # Class "c" has no examples (an all-zero row): must not divide by zero.
    matrix = np.array([[5, 1, 0], [2, 8, 0], [0, 0, 0]])
    png_size(plot_confusion_matrix(matrix, ["a", "b", "c"], tmp_path / "norm.png"))
    png_size(plot_confusion_matrix(matrix, ["a", "b", "c"], tmp_path / "raw.png",
                                   normalize=False))
    png_size(plot_confusion_matrix(np.zeros((2, 2), int), ["a", "b"], tmp_path / "zero.png"))


@pytest.mark.parametrize("matrix, labels", [
    ([[1, 2], [3, 4]], ["a", "b", "c"]),
    ([[1, 2, 3]], ["a"]),
    ([[1, -2], [3, 4]], ["a", "b"]),
])
def test_confusion_matrix_rejects_bad_input_and_writes_nothing(tmp_path, matrix, labels):
    with pytest.raises(DataError):
        plot_confusion_matrix(matrix, labels, tmp_path / "cm.png")
    assert os.listdir(tmp_path) == []


def test_unknown_image_suffix_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=".png"):
        plot_confusion_matrix([[1]], ["a"], tmp_path / "cm.jpeg")
    assert os.listdir(tmp_path) == []


def test_failed_save_leaves_old_image_and_no_temp(tmp_path, monkeypatch):
    path = plot_confusion_matrix([[1, 0], [0, 1]], ["a", "b"], tmp_path / "cm.png")
    before = path.read_bytes()

    def refuse(source, destination):
        raise OSError("simulated failure")

    monkeypatch.setattr(atomic.os, "replace", refuse)
    with pytest.raises(OutputError, match=f"cannot write {path}: simulated"):
        plot_confusion_matrix([[5, 5], [5, 5]], ["a", "b"], path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["cm.png"]


def full_history(epochs: int = 12) -> list[dict]:
    rows = []
    for epoch in range(1, epochs + 1):
        rows.append({
            "epoch": epoch,
            "train_loss": 2.0 / epoch,
            "val_loss": 2.0 / epoch + 0.02 * max(0, epoch - 8) ** 2,  # best at epoch 8
            "train_accuracy": 1 - 0.5 / epoch,
            "val_accuracy": 0.9 - 0.5 / epoch,
            "learning_rate": 1e-3,
        })
    return rows


def test_training_curves(tmp_path):
    width, height = png_size(plot_training_curves(full_history(), tmp_path / "curves.png"))
    assert width > height > 300  # two panels side by side
    assert os.listdir(tmp_path) == ["curves.png"]


def test_training_curves_with_gaps_and_missing_keys(tmp_path):
    history = full_history(6)
    history[2]["val_loss"] = None            # validation skipped this epoch
    del history[3]["val_accuracy"]
    for row in history:
        row.pop("train_accuracy")             # never recorded
    png_size(plot_training_curves(history, tmp_path / "gaps.png",
                                  monitor="val_loss"))

    only_train = [{"epoch": 1, "train_loss": 1.0}, {"epoch": 2, "train_loss": 0.7}]
    png_size(plot_training_curves(only_train, tmp_path / "train_only.png"))

    no_epochs = [{"train_loss": 1.0, "val_loss": None}, {"train_loss": 0.5}]
    png_size(plot_training_curves(no_epochs, tmp_path / "no_epoch.png"))


def test_training_curves_single_epoch(tmp_path):
    png_size(plot_training_curves(full_history(1), tmp_path / "one.png"))


@pytest.mark.parametrize("history", [[], [1, 2]])
def test_training_curves_reject_bad_history(tmp_path, history):
    with pytest.raises(DataError):
        plot_training_curves(history, tmp_path / "curves.png")
    assert os.listdir(tmp_path) == []


def test_spectrogram(tmp_path):
    rng = np.random.default_rng(0)
    power = rng.random((40, 101)) ** 2 * 1e-3
    power[10:15, 30:60] += 1.0
    short = png_size(plot_spectrogram(power, tmp_path / "power.png", sample_rate=16000,
                                      hop_length=160, is_power=True, title="1 s of noise"))
    decibels = 10 * np.log10(power + 1e-10)
    long = png_size(plot_spectrogram(np.tile(decibels, 8), tmp_path / "db.png",
                                     sample_rate=16000, hop_length=160, y_label="MFCC"))
    assert long[0] > short[0]  # wider for a longer recording
    assert sorted(os.listdir(tmp_path)) == ["db.png", "power.png"]


def test_spectrogram_constant_input(tmp_path):
    png_size(plot_spectrogram(np.zeros((8, 20)), tmp_path / "flat.png", 8000, 80))


@pytest.mark.parametrize("features, sample_rate, hop_length, error", [
    (np.zeros(10), 16000, 160, DataError),
    (np.zeros((4, 0)), 16000, 160, DataError),
    (np.full((4, 4), np.nan), 16000, 160, DataError),
    (np.zeros((4, 4)), 0, 160, ConfigError),
    (np.zeros((4, 4)), 16000, -1, ConfigError),
])
def test_spectrogram_rejects_bad_input(tmp_path, features, sample_rate, hop_length, error):
    with pytest.raises(error):
        plot_spectrogram(features, tmp_path / "spec.png", sample_rate, hop_length)
    assert os.listdir(tmp_path) == []


def test_svg_output(tmp_path):
    path = plot_confusion_matrix([[1, 0], [0, 1]], ["a", "b"], tmp_path / "cm.svg")
    assert b"<svg" in path.read_bytes()[:2000]


def test_import_is_cheap_and_pyplot_is_never_used(tmp_path):
    # Importing earmark.plots must not load matplotlib; plotting must not go
    # through pyplot (no global figure list to leak into, no display needed).
    code = (
        "import sys, earmark.plots as plots\n"
        "assert 'matplotlib' not in sys.modules, 'matplotlib imported eagerly'\n"
        f"plots.plot_confusion_matrix([[1, 0], [0, 1]], ['a', 'b'], {str(tmp_path / 'x.png')!r})\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot was used'\n"
    )
    environment = {**os.environ, "MPLBACKEND": "", "DISPLAY": ""}
    subprocess.run([sys.executable, "-c", code], check=True, env=environment)
    assert (tmp_path / "x.png").stat().st_size > 0


def test_best_epoch_choice():
    # The mark drawn on the curves: highest val_accuracy by default (what
    # earmark.train keeps), lowest for a loss, first epoch on a tie, and a
    # fallback when the monitored value was never recorded.
    from earmark.plots import _best_epoch

    rows = {"val_accuracy": ([1, 2, 3, 4], [0.5, 0.8, 0.8, 0.7]),
            "val_loss": ([1, 2, 3, 4], [1.0, 0.6, 0.4, 0.5])}

    def series(key):
        epochs, values = rows.get(key, ([], []))
        return np.array(epochs, float), np.array(values, float)

    assert _best_epoch(series, "val_accuracy") == (2.0, "val_accuracy", 0.8)
    assert _best_epoch(series, "val_loss") == (3.0, "val_loss", 0.4)
    assert _best_epoch(series, "val_macro_f1") == (2.0, "val_accuracy", 0.8)
    rows.pop("val_accuracy")
    assert _best_epoch(series, "val_accuracy") == (3.0, "val_loss", 0.4)
    rows.clear()
    assert _best_epoch(series, "val_accuracy") is None
