"""train.feature_copies: augmented features computed in the first epochs, reused after."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from earmark.errors import ConfigError
from earmark.feature_copies import (MEMORY_LIMIT_BYTES, FeatureBatch, FeatureCopies,
                                    OnceComputedFrontEnd, check_feature_copies)
from earmark.frontend.module import FrontEnd

from conftest import tone_config, write_tone_dataset


class CountingFrontEnd(torch.nn.Module):
    """A front-end that counts the windows it computes."""

    def __init__(self, frontend):
        super().__init__()
        self.frontend = frontend
        self.windows = 0

    def forward(self, waveform, frequency_scale=None):
        self.windows += len(waveform)
        return self.frontend(waveform, frequency_scale=frequency_scale)

    def output_shape(self, samples):
        return self.frontend.output_shape(samples)


def test_epochs_cycle_through_the_copies_computed_first():
    copies = FeatureCopies(2)
    assert [copies.copy_of(epoch) for epoch in range(1, 6)] == [0, 1, 0, 1, 0]
    assert copies.kept(1) is None
    batch = FeatureBatch(torch.zeros(2, 1, 3, 4), torch.tensor([0, 1]))
    copies.keep(1, [batch])
    assert copies.kept(3) == [batch] and copies.kept(2) is None
    batches = [FeatureBatch(torch.full((1, 1, 1, 1), float(i)), torch.tensor([i]))
               for i in range(20)]
    reordered = FeatureCopies.reordered(batches, np.random.default_rng(0))
    assert sorted(int(b.targets) for b in reordered) == list(range(20))
    assert [int(b.targets) for b in reordered] != list(range(20))
    with pytest.raises(ValueError, match="copies"):
        FeatureCopies(0)


def test_what_copies_cannot_honour_is_refused_before_training():
    frontend = FrontEnd(tone_config(".", ".").features, 8000)
    check_feature_copies(0, torch.nn.Linear(2, 2), 10, (1, 2, 3), True)   # off: nothing
    check_feature_copies(3, frontend, 100, (1, 16, 30), False)
    with pytest.raises(ConfigError, match="feature_copies.*learns"):
        check_feature_copies(3, torch.nn.Linear(2, 2), 100, (1, 16, 30), False)
    with pytest.raises(ConfigError, match="teacher"):
        check_feature_copies(3, frontend, 100, (1, 16, 30), True)
    per_copy = MEMORY_LIMIT_BYTES // 4 // 3            # a third of the ceiling a copy
    with pytest.raises(ConfigError, match="use at most 3"):
        check_feature_copies(4, frontend, per_copy // 4800, (1, 40, 120), False)


def test_a_batch_seen_again_is_answered_from_memory():
    counting = CountingFrontEnd(FrontEnd(tone_config(".", ".").features, 8000))
    once = OnceComputedFrontEnd(counting)
    batch = torch.randn(3, 4000)
    first = once(batch)
    again = once(batch.clone())
    assert counting.windows == 3 and torch.equal(first, again)
    other = batch.clone()
    other[1, 7] += 1e-3                                 # one sample differs
    assert not torch.equal(once(other), first)
    assert counting.windows == 6
    assert once(batch[:2]).shape[0] == 2 and counting.windows == 8


def test_later_epochs_train_on_the_kept_copies(tmp_path, monkeypatch):
    import earmark.train as training

    root = write_tone_dataset(tmp_path / "tones")
    per_epoch = []
    real_build, real_epoch = training.build_classifier, training._run_epoch

    def counted(config, n_classes):
        classifier = real_build(config, n_classes)
        classifier.frontend = CountingFrontEnd(classifier.frontend)
        return classifier

    def epoch_counted(context, epoch):
        before = context.classifier.frontend.windows
        result = real_epoch(context, epoch)
        per_epoch.append(context.classifier.frontend.windows - before)
        return result

    monkeypatch.setattr(training, "build_classifier", counted)
    monkeypatch.setattr(training, "_run_epoch", epoch_counted)
    config = tone_config(root, tmp_path / "cache", epochs=10, feature_copies=2)
    summary = training.train(config, tmp_path / "run", progress=False)
    with open(tmp_path / "run" / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    train_windows = int(rows[0]["train_windows"])
    # epoch 1: its training windows and the validation windows; epoch 2: its own training
    # windows; then nothing: the copies and the validation features are kept
    assert per_epoch[0] > per_epoch[1] == train_windows
    assert per_epoch[2:] == [0] * 8
    assert all(int(row["train_windows"]) == train_windows for row in rows)
    assert summary["test_accuracy"] >= 0.8
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["epochs"] == 10


def test_a_training_given_the_copies_another_kept_computes_no_training_features(
        tmp_path, monkeypatch):
    import dataclasses

    import earmark.train as training

    root = write_tone_dataset(tmp_path / "tones")
    computed = []
    real_build = training.build_classifier

    def counted(config, n_classes):
        classifier = real_build(config, n_classes)
        classifier.frontend = CountingFrontEnd(classifier.frontend)
        computed.append(classifier.frontend)
        return classifier

    monkeypatch.setattr(training, "build_classifier", counted)
    config = tone_config(root, tmp_path / "cache", epochs=4, feature_copies=2)
    kept = FeatureCopies(2)

    def windows_computed(run: str, config) -> tuple[dict, int]:
        computed.clear()
        summary = training.train(config, tmp_path / run, progress=False, kept=kept)
        return summary, sum(frontend.windows for frontend in computed)

    first, first_windows = windows_computed("first", config)
    assert kept.kept(1) is not None and kept.kept(2) is not None
    reseeded = dataclasses.replace(config, train=dataclasses.replace(config.train, seed=7))
    second, second_windows = windows_computed("second", reseeded)
    with open(tmp_path / "first" / "metrics.csv") as handle:
        train_windows = int(next(csv.DictReader(handle))["train_windows"])
    assert first_windows > 2 * train_windows        # both copies, validation and test
    # validation and test alone: the training windows' features came from the first
    assert first_windows - second_windows == 2 * train_windows
    assert second["test_accuracy"] >= 0.8 and first["test_accuracy"] >= 0.8
    with pytest.raises(ConfigError, match="kept features hold 2 copies"):
        training.train(tone_config(root, tmp_path / "cache", epochs=3, feature_copies=3),
                       tmp_path / "third", progress=False, kept=kept)


def test_feature_copies_must_not_be_negative(tmp_path):
    with pytest.raises(ConfigError, match="feature_copies"):
        tone_config(tmp_path, tmp_path / "cache", feature_copies=-1)
