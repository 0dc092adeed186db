"""Judging a clip from several files and windows: silence does not vote, the pieces of one
clip judge it together, validation drawn from training groups, and configs that name a
dataset recipe."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile
import torch

from earmark.config import from_dict
from earmark.data.dataset import read_manifest
from earmark.data.manifest import Manifest, Row, clip_matcher
from earmark.data.splits import split_by_fold, validation_from_training_groups
from earmark.errors import ConfigError, DataError
from earmark.windowing import aggregate_windows, sounding_windows

PIECES = r"^(?P<clip>\d+-\d+-[A-Z]+-\d+)_\d+$"


def test_silent_windows_do_not_vote_unless_all_are_silent():
    windows = np.zeros((3, 100), np.float32)
    windows[0] = 0.1
    assert sounding_windows(windows).tolist() == [True, False, False]
    probabilities = np.array([[0.9, 0.1], [0.1, 0.9], [0.1, 0.9]])
    assert aggregate_windows(probabilities, "mean", sounding_windows(windows)).argmax() == 0
    assert aggregate_windows(probabilities, "mean").argmax() == 1
    silent = sounding_windows(np.zeros((3, 100), np.float32))
    np.testing.assert_allclose(aggregate_windows(probabilities, "vote", silent),
                               aggregate_windows(probabilities, "vote"))
    with pytest.raises(DataError, match="sounding flags"):
        aggregate_windows(probabilities, "mean", np.array([True]))


def test_clip_pattern_joins_the_pieces_of_one_clip():
    clip_of = clip_matcher(PIECES)
    assert clip_of("/d/dog/1-100032-A-0_3.flac") == clip_of("x/1-100032-A-0_0.wav") \
        == "1-100032-A-0"
    assert clip_of("/d/other.wav") == "/d/other.wav"          # no match: its own clip
    assert clip_matcher("")("a/b.wav") == "a/b.wav"
    with pytest.raises(ConfigError, match="named group"):
        clip_matcher(r"\d+")
    with pytest.raises(ConfigError, match="not a valid regex"):
        clip_matcher("(")


def test_validation_from_training_groups_keeps_groups_whole():
    rows = [Row(f"/{label}/{group}_{i}.wav", label, f"{label}{group}", fold=1 + group % 3)
            for label in ("a", "b") for group in range(9) for i in range(3)]
    split = validation_from_training_groups(split_by_fold(Manifest(rows), 3, 1,
                                                          validation_fold=False), 0.25)
    by_group = {}
    for row in split:
        by_group.setdefault(row.group, set()).add(row.split)
    assert all(len(splits) == 1 for splits in by_group.values())
    for label in ("a", "b"):
        assert any(r.split == "validation" and r.label == label for r in split)
        assert any(r.split == "train" and r.label == label for r in split)
    # a validation share of 0 (data.ratios = [1, 0, 0]) trains on every training group
    folded = split_by_fold(Manifest(rows), 3, 1, validation_fold=False)
    kept = validation_from_training_groups(folded, 0.0)
    assert [r.split for r in kept] == [r.split for r in folded]
    assert {r.split for r in kept} == {"train", "test"}


def write_pieces(root, classes=("dog", "rain"), folds=(1, 2, 3), clips=2, rate=8000):
    rng = np.random.default_rng(0)
    for index, label in enumerate(classes):
        for fold in folds:
            for clip in range(clips):
                for piece in range(5):
                    samples = np.zeros(rate, np.float32) if piece == 4 else \
                        (0.2 * np.sin(2 * np.pi * (300 + 900 * index) * np.arange(rate) / rate)
                         + 0.01 * rng.standard_normal(rate)).astype(np.float32)
                    path = root / "esc10_pieces" / label / \
                        f"{fold}-{1000 * fold + clip}-A-{index}_{piece}.flac"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    soundfile.write(path, samples, rate)
    return root


def test_a_config_names_a_dataset_recipe(tmp_path):
    write_pieces(tmp_path)
    config = from_dict({"data": {"dataset": "esc10_pieces", "dataset_root": str(tmp_path),
                                 "split": "kfold", "fold": 1}})
    manifest = read_manifest(config)
    assert len(manifest) == 2 * 3 * 2 * 5 and {r.fold for r in manifest} == {1, 2, 3}
    with pytest.raises(DataError, match="datasets download"):
        read_manifest(from_dict({"data": {"dataset": "esc10_pieces",
                                          "dataset_root": str(tmp_path / "absent")}}))
    with pytest.raises(ConfigError, match="exactly one"):
        read_manifest(from_dict({"data": {"dataset": "esc10_pieces", "root": str(tmp_path)}}))
    with pytest.raises(ConfigError, match="did you mean"):
        read_manifest(from_dict({"data": {"dataset": "esc10_piece"}}))


def test_a_run_is_judged_per_clip(tmp_path):
    from earmark.evaluate import evaluate_run
    from earmark.train import train

    write_pieces(tmp_path)
    config = from_dict({
        "data": {"dataset": "esc10_pieces", "dataset_root": str(tmp_path), "split": "kfold",
                 "fold": 1, "kfold_validation": "groups", "ratios": [0.7, 0.3, 0.0],
                 "clip_pattern": PIECES, "sample_rate": 8000, "clip_seconds": 1.0,
                 "hop_seconds": 0.5, "cache_dir": str(tmp_path / "cache")},
        "features": {"kind": "logmel", "n_mels": 16, "window_ms": 32.0, "hop_ms": 16.0},
        "model": {"name": "dscnn", "channels": 8, "blocks": 1},
        "train": {"epochs": 3, "batch_size": 8, "threads": 1}})
    torch.manual_seed(0)
    train(config, tmp_path / "run", progress=False)
    report = evaluate_run(tmp_path / "run")
    assert report.count == 2 * 2                  # 2 classes x 2 test clips, not 20 pieces
    assert 0.0 <= report.accuracy <= 1.0


def test_download_of_a_layout_on_disk_is_refused_with_advice(capsys):
    from earmark.cli import main

    assert main(["datasets", "download", "esc10_pieces", "--root", "/nonexistent"]) == 2
    assert "datasets manifest esc10_pieces" in capsys.readouterr().err


def test_clips_are_rows_without_a_pattern_and_never_mix_classes():
    from types import SimpleNamespace

    from earmark.evaluate import clip_units

    segments = [Row("/long.wav", "dog", "g", start=0.0, end=1.0),
                Row("/long.wav", "rain", "g", start=1.0, end=2.0),
                Row("/d/1-100-A-0_0.wav", "dog", "h"), Row("/d/1-100-A-0_1.wav", "dog", "h")]
    dataset = SimpleNamespace(manifest=Manifest(segments))
    assert clip_units(dataset, [0, 1, 2, 3], "") == [[0], [1], [2], [3]]   # a segment is a clip
    assert clip_units(dataset, [2, 3], PIECES) == [[2, 3]]
    mixed = SimpleNamespace(manifest=Manifest([segments[2], Row("/d/1-100-A-0_1.wav", "rain",
                                                                "h")]))
    with pytest.raises(DataError, match="different classes"):
        clip_units(mixed, [0, 1], PIECES)


def test_a_dataset_without_a_root_is_looked_for_where_the_cli_downloads_it(tmp_path,
                                                                            monkeypatch):
    write_pieces(tmp_path / "datasets")
    monkeypatch.delenv("EARMARK_DATA", raising=False)
    monkeypatch.chdir(tmp_path)                          # ./datasets, as `datasets download`
    config = from_dict({"data": {"dataset": "esc10_pieces"}})
    assert len(read_manifest(config)) == 60
    monkeypatch.setenv("EARMARK_DATA", str(tmp_path / "elsewhere"))
    with pytest.raises(DataError, match="elsewhere"):
        read_manifest(config)


def test_crossval_keeps_a_datasets_official_folds(tmp_path):
    from earmark.crossval import fold_configs

    write_pieces(tmp_path, folds=(1, 2, 5))
    config = from_dict({"data": {"dataset": "esc10_pieces", "dataset_root": str(tmp_path),
                                 "split": "kfold", "fold": 1, "kfold_validation": "groups",
                                 "ratios": [0.85, 0.15, 0.0]}})
    assert [fold for fold, _ in fold_configs(config)] == [1, 2, 5]
    with pytest.raises(ConfigError, match="deals groups into folds"):
        fold_configs(from_dict({"data": {"dataset": "esc10_pieces", "split": "column",
                                         "dataset_root": str(tmp_path)}}))


def test_speakers_saying_many_words_are_held_out_by_share_not_per_word():
    rows = [Row(f"/{word}/{speaker}_{word}.wav", word, f"s{speaker}")
            for speaker in range(50) for word in ("yes", "no", "up", "down", "left", "right")]
    split = validation_from_training_groups(Manifest(rows).with_splits(["train"] * len(rows)),
                                            0.1, seed=3)
    held = {r.group for r in split if r.split == "validation"}
    assert len(held) == 5                          # 10% of 50 speakers, not 6 x 10%
    assert not held & {r.group for r in split if r.split == "train"}
