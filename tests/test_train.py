"""End-to-end training on a tiny synthetic dataset: outputs, learning, resume."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import soundfile
import torch

from earmark.config import from_dict
from earmark.errors import ConfigError
from earmark.evaluate import evaluate_run
from earmark.train import train

RATE = 8000
FREQUENCIES = {"low": 300.0, "mid": 900.0, "high": 2000.0}


@pytest.fixture
def tone_dataset(tmp_path):
    """Three classes of noisy tones, 8 speakers each, Speech Commands-style names."""
    rng = np.random.default_rng(0)
    root = tmp_path / "tones"
    for label, frequency in FREQUENCIES.items():
        (root / label).mkdir(parents=True)
        for speaker in range(10):
            for take in range(3):
                seconds = rng.uniform(0.4, 0.6)
                t = np.arange(int(seconds * RATE)) / RATE
                pitch = frequency * rng.uniform(0.95, 1.05)
                clip = 0.4 * np.sin(2 * np.pi * pitch * t) + 0.05 * rng.standard_normal(len(t))
                name = f"{speaker:08x}_nohash_{take}.wav"
                soundfile.write(root / label / name, clip.astype(np.float32), RATE)
    return root


def small_config(root, tmp_path, **train):
    return from_dict({
        "data": {"root": str(root), "sample_rate": RATE, "clip_seconds": 0.5,
                 "cache_dir": str(tmp_path / "cache"), "ratios": [0.6, 0.2, 0.2]},
        "features": {"kind": "logmel", "n_mels": 16, "window_ms": 32.0, "hop_ms": 16.0},
        "model": {"name": "dscnn", "channels": 16, "blocks": 2},
        "augment": {"shift_ms": 20.0, "gain_db": [-3.0, 3.0]},
        "train": {"epochs": 15, "batch_size": 8, "learning_rate": 0.01, "threads": 1,
                  "report_every": 3, **train},
    })


def test_training_learns_and_writes_its_outputs(tone_dataset, tmp_path):
    run = tmp_path / "run"
    summary = train(small_config(tone_dataset, tmp_path), run, progress=False)
    assert summary["test_accuracy"] >= 0.8
    for name in ("config.toml", "manifest.csv", "labels.json", "model.pt", "checkpoint.pt",
                 "metrics.csv", "training_curves.png", "eval_test.json",
                 "eval_test_confusion.png", "summary.json"):
        assert (run / name).is_file(), name
    assert (run / "reports" / "validation_epoch_003_confusion.png").is_file()
    assert any((run / "tensorboard").iterdir())
    with open(run / "metrics.csv") as handle:
        assert len(list(csv.DictReader(handle))) == 15
    report = evaluate_run(run, "test", progress=False)
    assert report.accuracy == pytest.approx(summary["test_accuracy"])
    assert json.loads((run / "labels.json").read_text()) == sorted(FREQUENCIES)


def test_resume_after_a_kill_continues_exactly(tone_dataset, tmp_path, monkeypatch):
    config = small_config(tone_dataset, tmp_path, epochs=4)
    train(config, tmp_path / "straight", progress=False)

    import earmark.train as training
    real_save = training._save_checkpoint

    def save_then_die(path, classifier, optimizer, scheduler, state):
        real_save(path, classifier, optimizer, scheduler, state)
        if state.epoch == 2:
            raise KeyboardInterrupt("killed")

    monkeypatch.setattr(training, "_save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "killed", progress=False)
    monkeypatch.setattr(training, "_save_checkpoint", real_save)
    with pytest.raises(ConfigError, match="--resume"):
        train(config, tmp_path / "killed", progress=False)
    train(config, tmp_path / "killed", resume=True, progress=False)

    def losses(run):
        with open(run / "metrics.csv") as handle:
            return [(row["train_loss"], row["val_loss"]) for row in csv.DictReader(handle)]

    assert losses(tmp_path / "killed") == losses(tmp_path / "straight")
    straight = torch.load(tmp_path / "straight" / "model.pt", weights_only=True)
    resumed = torch.load(tmp_path / "killed" / "model.pt", weights_only=True)
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)


def test_balanced_sampler_and_cosine_schedule_run(tone_dataset, tmp_path):
    config = small_config(tone_dataset, tmp_path, epochs=2, balance="sampler",
                          schedule="cosine")
    summary = train(config, tmp_path / "run", progress=False)
    assert summary["epochs"] == 2
