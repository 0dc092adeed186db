"""End-to-end training on a tiny synthetic dataset: outputs, learning, resume."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import soundfile
import torch

from earmark.errors import ConfigError, DataError
from earmark.evaluate import evaluate_folder, evaluate_run
from earmark.train import train

from conftest import TONE_FREQUENCIES, TONE_RATE, tone_config, write_tone_dataset


@pytest.fixture
def tone_dataset(tmp_path):
    return write_tone_dataset(tmp_path / "tones")


def small_config(root, tmp_path, **train):
    return tone_config(root, tmp_path / "cache", **train)


def test_training_learns_and_writes_its_outputs(trained_run):
    run = trained_run
    summary = json.loads((run / "summary.json").read_text())
    assert summary["test_accuracy"] >= 0.8
    for name in ("config.toml", "manifest.csv", "labels.json", "model.pt", "checkpoint.pt",
                 "metrics.csv", "training_curves.png", "eval_test.json",
                 "eval_test_confusion.png", "summary.json"):
        assert (run / name).is_file(), name
    assert (run / "reports" / "validation_epoch_003_confusion.png").is_file()
    assert any((run / "tensorboard").iterdir())
    with open(run / "metrics.csv") as handle:
        assert len(list(csv.DictReader(handle))) == 15
    assert json.loads((run / "labels.json").read_text()) == sorted([*TONE_FREQUENCIES,
                                                                     "_silence_"])


def test_evaluate_run_reproduces_the_training_report(trained_run):
    summary = json.loads((trained_run / "summary.json").read_text())
    report = evaluate_run(trained_run, "test", progress=False)
    assert report.accuracy == pytest.approx(summary["test_accuracy"])
    saved = json.loads((trained_run / "eval_test.json").read_text())
    assert saved["confusion"] == report.confusion


def test_a_run_scores_a_folder_it_has_never_seen(trained_run, tmp_path, capsys):
    from earmark.cli import main

    run = shutil.copytree(trained_run, tmp_path / "run")     # the shared run stays unwritten
    other = write_tone_dataset(tmp_path / "other", speakers=4, takes=2, seed=7)
    shutil.rmtree(other / "mid")                             # a class it lacks is no matter
    report = evaluate_folder(run, other, "on_other", progress=False)
    assert report.count == 3 * 4 * 2
    assert report.labels == json.loads((run / "labels.json").read_text())
    assert report.accuracy >= 0.8
    assert (run / "eval_on_other_confusion.png").is_file()
    assert main(["evaluate", str(run), "--on", str(other), "--json", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["count"] == report.count
    (other / "low").rename(other / "beep")
    with pytest.raises(DataError, match="beep"):
        evaluate_folder(run, other, progress=False)
    with pytest.raises(DataError, match="no such folder"):
        evaluate_folder(run, tmp_path / "absent", progress=False)


def gapped_clips(tmp_path, monkeypatch, **train):
    """3 s clips (sound, 1.4 s of zeros, sound, zeros) of two classes and one of silence:
    their dataset, every index, the silent ones and the config."""
    from earmark.data import dataset as datasets
    from earmark.data.dataset import load_manifest, open_dataset

    monkeypatch.setattr(datasets, "SPAN_CHUNK", 1000)       # the span found across chunks
    rng = np.random.default_rng(0)
    sound = int(0.3 * TONE_RATE)
    for label in ("a", "b"):
        (tmp_path / "clips" / label).mkdir(parents=True)
        for take in range(6):
            clip = np.zeros(3 * TONE_RATE, np.float32)
            clip[:sound] = 0.3 * rng.standard_normal(sound)
            clip[2 * sound + TONE_RATE * 7 // 5:][:sound] = 0.3 * rng.standard_normal(sound)
            soundfile.write(tmp_path / "clips" / label / f"{take:08x}_nohash_0.wav", clip,
                            TONE_RATE)
    soundfile.write(tmp_path / "clips" / "a" / "0000000f_nohash_0.wav",
                    np.zeros(3 * TONE_RATE, np.float32), TONE_RATE)      # all silence
    config = small_config(tmp_path / "clips", tmp_path, **train)
    dataset = open_dataset(config, load_manifest(config), progress=False)
    indices = list(range(len(dataset.manifest.rows)))        # every split's recordings
    silent = [i for i in indices if dataset.sounding_span(i) == (0, -1)]
    assert len(silent) == 1
    return dataset, indices, silent, config


def test_training_crops_are_not_digital_silence(tmp_path, monkeypatch):
    from earmark.train import _training_windows
    from earmark.windowing import sounding_windows

    dataset, indices, silent, config = gapped_clips(tmp_path, monkeypatch)
    jobs = _training_windows(dataset, indices, config, np.random.default_rng(1))
    assert len(jobs) == 6 * len(indices)       # one per window length of each recording
    window = int(config.data.clip_seconds * TONE_RATE)
    crops = np.stack([dataset.store.window(i, s, window) for i, s in jobs if i not in silent])
    assert sounding_windows(crops).all()
    silent_starts = {s for i, s in jobs if i in silent}      # anywhere, as before
    assert len(silent_starts) > 1


def test_grid_training_windows_are_the_sounding_windows_a_clip_is_judged_by(tmp_path,
                                                                             monkeypatch):
    from earmark.train import _training_windows
    from earmark.windowing import sounding_windows, window_starts

    dataset, indices, silent, config = gapped_clips(tmp_path, monkeypatch, windows="grid")
    window, hop = int(0.5 * TONE_RATE), int(0.25 * TONE_RATE)
    grid = window_starts(3 * TONE_RATE, window, hop)              # 11 windows a clip
    first = _training_windows(dataset, indices, config, np.random.default_rng(1))
    again = _training_windows(dataset, indices, config, np.random.default_rng(2))
    assert sorted(first) == sorted(again) and first != again        # the same, reordered
    for index in indices:
        starts = sorted(s for i, s in first if i == index)
        sounding = sounding_windows(np.stack([dataset.store.window(index, s, window)
                                              for s in grid]))
        if index in silent:                       # all silence: every window, as judged
            assert starts == list(grid)
        else:                                     # the gap's and the tail's windows left out
            assert starts == list(grid[sounding]) and 0 < len(starts) < len(grid)


def test_a_run_on_the_grid_trains_every_epoch_on_each_clips_judged_windows(tone_dataset,
                                                                            tmp_path):
    from earmark.windowing import window_starts

    config = small_config(tone_dataset, tmp_path, epochs=2, windows="grid", batch_size=7)
    train(config, tmp_path / "run", progress=False)
    with open(tmp_path / "run" / "manifest.csv") as handle:
        rows = [row for row in csv.DictReader(handle) if row["split"] == "train"]
    window, hop = int(0.5 * TONE_RATE), int(0.25 * TONE_RATE)     # every window sounds
    judged = sum(len(window_starts(soundfile.info(row["path"]).frames, window, hop))
                 for row in rows)
    assert judged > len(rows)            # random crops would take one from each 0.4-0.6 s
    with open(tmp_path / "run" / "metrics.csv") as handle:
        assert [int(e["train_windows"]) for e in csv.DictReader(handle)] == [judged] * 2


def test_resume_after_a_kill_continues_exactly(tone_dataset, tmp_path, monkeypatch):
    config = small_config(tone_dataset, tmp_path, epochs=4)
    train(config, tmp_path / "straight", progress=False)

    import earmark.train as training
    real_save = training._save_checkpoint

    def save_then_die(path, context, state):
        real_save(path, context, state)
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


@pytest.mark.parametrize("select, rows, best", [
    # (accuracy, loss) per epoch; the epoch kept
    ("accuracy", [(0.8, 0.5), (0.9, 0.6), (0.9, 0.4), (0.7, 0.2)], 3),
    ("loss", [(0.8, 0.5), (0.9, 0.6), (0.9, 0.4), (0.7, 0.2)], 4),
    ("last", [(0.8, 0.5), (0.9, 0.6), (0.9, 0.4), (0.7, 0.9)], 4),
])
def test_the_epoch_kept_follows_select_epoch(select, rows, best):
    from earmark.train import TrainState

    state = TrainState()
    for epoch, (accuracy, loss) in enumerate(rows, start=1):
        if state.improves(accuracy, loss, select):
            state.best_score, state.best_loss, state.best_epoch = accuracy, loss, epoch
    assert state.best_epoch == best


def test_select_epoch_is_checked(tone_dataset, tmp_path):
    with pytest.raises(ConfigError, match="select_epoch"):
        small_config(tone_dataset, tmp_path, select_epoch="best")
    with pytest.raises(ConfigError, match="patience"):
        small_config(tone_dataset, tmp_path, select_epoch="last", patience=3)


def test_a_first_epoch_without_a_finite_loss_is_still_kept():
    from earmark.train import TrainState

    assert TrainState().improves(0.5, float("nan"), "loss")


@pytest.mark.parametrize("select, level", [("accuracy", "WARNING"), ("loss", "WARNING"),
                                           ("last", "INFO")])
def test_no_validation_split_warns_only_when_an_epoch_is_to_be_chosen(select, level, caplog):
    from earmark.train import _say_validation_is_training

    with caplog.at_level("INFO", logger="earmark"):
        _say_validation_is_training(select)
    assert [record.levelname for record in caplog.records] == [level]
    assert "training recordings" in caplog.text
