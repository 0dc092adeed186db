"""Distillation (``train.teacher``): the teacher's config, the blended targets, and a
student that learns from the teacher alone."""

from __future__ import annotations

import contextlib
import dataclasses
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from earmark.config import from_dict, to_toml
from earmark.distill import distillation_loss, softened, teacher_config
from earmark.errors import ConfigError, DataError
from earmark.train import train

from conftest import tone_config, write_tone_dataset

#: A teacher for the tone student: another architecture on other features.
TEACHER_TOML = """
[features]
kind = "mfcc"
n_mels = 20
n_mfcc = 10
window_ms = 32.0
hop_ms = 16.0

[model]
name = "dscnn"
channels = 24
blocks = 2

[train]
epochs = 10
batch_size = 8
learning_rate = 0.01
threads = 1
"""


def student(root: Path, tmp_path: Path, teacher: Path, **train_settings):
    config = tone_config(root, tmp_path / "cache", **{"epochs": 10, **train_settings})
    config.train.teacher = str(teacher)
    return config


def write_teacher(path: Path, text: str = TEACHER_TOML) -> Path:
    path.write_text(text)
    return path


@contextlib.contextmanager
def killed_at_the_first_checkpoint():
    """Training dies (KeyboardInterrupt) right after it writes its first checkpoint."""
    import earmark.train as training

    real_save = training._save_checkpoint

    def save_then_die(path, context, state):
        real_save(path, context, state)
        raise KeyboardInterrupt("killed after the first epoch")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(training, "_save_checkpoint", save_then_die)
        with pytest.raises(KeyboardInterrupt):
            yield


def test_the_distillation_loss_weighs_labels_and_the_softened_teacher():
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.0, 1.0, 0.2]], requires_grad=True)
    labels = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    teacher = softened(torch.tensor([[4.0, 1.0, -2.0], [0.0, 3.0, 0.0]]), 2.0)

    def cross_entropy(scores, targets):
        return -(targets * F.log_softmax(scores, dim=1)).sum(dim=1).mean()

    label_loss = cross_entropy(logits, labels)
    assert distillation_loss(label_loss, logits, teacher, 0.0, 2.0, cross_entropy) is label_loss
    both = distillation_loss(label_loss, logits, teacher, 0.25, 2.0, cross_entropy)
    expected = 0.75 * label_loss + 0.25 * 4.0 * cross_entropy(logits / 2, teacher)
    assert both.item() == pytest.approx(expected.item())
    # the teacher's term is least where the student's softened scores are the teacher's
    (gradient,) = torch.autograd.grad(
        distillation_loss(label_loss, logits, softened(logits.detach(), 2.0), 1.0, 2.0,
                          cross_entropy), logits)
    assert torch.allclose(gradient, torch.zeros_like(gradient), atol=1e-6)

    def entropy(p):
        return float(-(p * p.log()).sum())

    raw = torch.tensor([[4.0, 1.0, -2.0]])
    assert entropy(softened(raw, 4.0)) > entropy(softened(raw, 1.0))   # T spreads scores


def test_the_teacher_learns_from_the_students_data(tmp_path):
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    teacher_file = write_teacher(folder / "teacher.toml")
    config = from_dict({"data": {"root": "recordings", "extra_train": ["more.csv"],
                                 "fold": 3, "split": "kfold"},
                        "train": {"teacher": "elsewhere/teacher.toml"}},
                       base_dir=str(tmp_path))
    teacher = teacher_config(config)
    assert teacher.model.options == {"channels": 24, "blocks": 2}
    assert teacher.features.kind == "mfcc"
    assert teacher.data.root == str(tmp_path / "recordings")
    assert teacher.data.extra_train == [str(tmp_path / "more.csv")]
    assert teacher.data.fold == 3 and teacher.data.split == "kfold"
    assert teacher.base_dir == str(folder)
    # the run's config.toml names the teacher by its absolute path
    assert f'teacher = "{teacher_file}"' in to_toml(config)
    no_teacher = dataclasses.replace(config, train=dataclasses.replace(config.train, teacher=""))
    assert teacher_config(no_teacher) is None


@pytest.mark.parametrize("text, message", [
    (None, "no such file"),
    ("[data]\nroot = 'x'\n", r"student's \[data\]"),
    ("[data]\nclip_seconds = 2.0\nfold = 1\n", "may only set clip_seconds"),
    ("[data]\nclip_seconds = 0.5\n", r"shorter than the student's window \(1.0 s\)"),
    ("[data]\nclip_seconds = -2.0\n", "clip_seconds"),
    ("[train]\nteacher = 'another.toml'\n", "teacher of its own"),
    ("[model\n", "not valid TOML"),
    ("[train]\nepoch = 3\n", "did you mean 'epochs'"),
    ("[model]\nname = 'dscnn'\nchanels = 3\n", r"teacher.toml \(the teacher\).*chanels"),
])
def test_a_wrong_teacher_file_is_refused_by_name(tmp_path, text, message):
    teacher = tmp_path / "teacher.toml"
    if text is not None:
        teacher.write_text(text)
    config = from_dict({"train": {"teacher": str(teacher)}})
    with pytest.raises(ConfigError, match=message):
        teacher_config(config)


@pytest.mark.parametrize("key, value", [("distill_weight", 1.5), ("distill_weight", -0.1),
                                        ("distill_temperature", 0.0)])
def test_distillation_settings_are_checked(key, value):
    with pytest.raises(ConfigError, match=key):
        from_dict({"train": {key: value}})


def test_a_teacher_may_hear_a_longer_window_with_the_students_in_its_middle(tmp_path):
    from earmark.distill import Teacher, centred

    teacher_file = write_teacher(tmp_path / "teacher.toml",
                                 "[data]\nclip_seconds = 2.0\n" + TEACHER_TOML)
    config = from_dict({"data": {"root": "recordings", "clip_seconds": 1.0, "fold": 2},
                        "train": {"teacher": str(teacher_file)}}, base_dir=str(tmp_path))
    teacher = teacher_config(config)
    assert teacher.data.clip_seconds == 2.0
    assert teacher.data.fold == 2 and teacher.data.root == str(tmp_path / "recordings")

    batch = torch.arange(1.0, 8.0).repeat(2, 1)                 # two windows of 7 samples
    padded = centred(batch, 12)
    # placed where a 7-sample recording lies in a 12-sample window (windowing's start)
    from earmark.windowing import window_starts
    left = -int(window_starts(7, 12, 4)[0])
    assert padded.shape == (2, 12) and left == 2
    assert torch.equal(padded[:, left:left + 7], batch)
    assert padded[:, :left].abs().sum() == 0 and padded[:, left + 7:].abs().sum() == 0
    assert centred(batch, 7) is batch and centred(batch, 5) is batch

    heard = []

    class Recording(torch.nn.Module):
        def forward(self, waveform):
            heard.append(waveform.shape[-1])
            return waveform[:, :2]

    Teacher(Recording(), ["a", "b"], 0.5, 1.0, window=12).scores(batch)
    assert heard == [12]


def test_a_student_is_taught_by_a_teacher_of_a_longer_window(tmp_path, monkeypatch):
    import earmark.distill as distill

    heard = []
    real_centred = distill.centred

    def listening(waveform, window):
        heard.append((waveform.shape[-1], real_centred(waveform, window).shape[-1]))
        return real_centred(waveform, window)

    monkeypatch.setattr(distill, "centred", listening)
    root = write_tone_dataset(tmp_path / "tones", speakers=6, takes=2)
    config = student(root, tmp_path, tmp_path / "teacher.toml", epochs=1)
    longer = 2 * config.data.clip_seconds
    write_teacher(tmp_path / "teacher.toml", f"[data]\nclip_seconds = {longer}\n"
                  + TEACHER_TOML.replace("epochs = 10", "epochs = 1"))
    summary = train(config, tmp_path / "run", progress=False)
    assert f"clip_seconds = {longer}" in (tmp_path / "run" / "teacher" / "config.toml").read_text()
    assert "test_accuracy" in summary["teacher"]
    rate = config.data.sample_rate
    assert heard and set(heard) == {(round(config.data.clip_seconds * rate), round(longer * rate))}


def test_a_student_learns_from_the_teacher_alone(tmp_path):
    """With distill_weight = 1 the labels never reach the student: it can only learn
    the classes from the teacher's scores, in the right order."""
    root = write_tone_dataset(tmp_path / "tones")
    teacher_file = write_teacher(tmp_path / "teacher.toml")
    config = student(root, tmp_path, teacher_file, distill_weight=1.0,
                     distill_temperature=1.0)
    summary = train(config, tmp_path / "run", progress=False)
    teacher_summary = json.loads((tmp_path / "run" / "teacher" / "summary.json").read_text())
    assert teacher_summary["test_accuracy"] >= 0.8
    assert summary["test_accuracy"] >= 0.8
    assert summary["teacher"]["test_accuracy"] == teacher_summary["test_accuracy"]
    teacher_config_file = (tmp_path / "run" / "teacher" / "config.toml").read_text()
    assert "channels = 24" in teacher_config_file
    assert f'root = "{root}"' in teacher_config_file


def test_a_finished_teacher_is_reused_and_a_changed_one_refused(tmp_path):
    root = write_tone_dataset(tmp_path / "tones", speakers=6, takes=2)
    teacher_file = write_teacher(tmp_path / "teacher.toml")
    config = student(root, tmp_path, teacher_file, epochs=2)
    run = tmp_path / "run"
    train(config, run, progress=False)
    weights = (run / "teacher" / "model.pt").stat().st_mtime_ns
    # the student again (say, more epochs): the teacher is kept as it is
    config.train.epochs = 3
    train(config, run, resume=True, progress=False)
    assert (run / "teacher" / "model.pt").stat().st_mtime_ns == weights
    write_teacher(teacher_file, TEACHER_TOML.replace("channels = 24", "channels = 32"))
    config.train.epochs = 4
    with pytest.raises(ConfigError, match="teacher trained with other settings"):
        train(config, run, resume=True, progress=False)


def test_an_unfinished_teacher_needs_resume(tmp_path):
    root = write_tone_dataset(tmp_path / "tones", speakers=6, takes=2)
    teacher_file = write_teacher(tmp_path / "teacher.toml")
    config = student(root, tmp_path, teacher_file, epochs=2)
    with killed_at_the_first_checkpoint():                 # the teacher's first epoch
        train(config, tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "checkpoint.pt").exists()
    with pytest.raises(ConfigError, match="teacher already holds a training run"):
        train(config, tmp_path / "run", progress=False)
    summary = train(config, tmp_path / "run", resume=True, progress=False)
    assert summary["teacher"]["epochs"] == 10


def test_each_fold_of_a_crossval_trains_its_own_teacher(tmp_path):
    """A teacher never hears the speakers its student is tested on."""
    from earmark.config import load_config
    from earmark.crossval import cross_validate, crossval_table
    from earmark.data.manifest import from_csv

    root = write_tone_dataset(tmp_path / "tones", speakers=6, takes=2)
    teacher_file = write_teacher(tmp_path / "teacher.toml",
                                 TEACHER_TOML.replace("epochs = 10", "epochs = 2"))
    config = student(root, tmp_path, teacher_file, epochs=2)
    report = cross_validate(config, tmp_path / "cv", folds=2)
    for fold in (0, 1):
        run = tmp_path / "cv" / f"fold{fold}"
        assert load_config(run / "teacher" / "config.toml").data.fold == fold

        def tested(folder):
            return {row.group for row in from_csv(folder / "manifest.csv")
                    if row.split == "test"}

        assert tested(run / "teacher") == tested(run) and tested(run)
    teachers = [row["teacher_accuracy"] for row in report["folds"]]
    assert report["mean_teacher_accuracy"] == pytest.approx(sum(teachers) / 2)
    assert "teacher (train.teacher" in crossval_table(report)


def test_the_teacher_hears_the_windows_as_recorded(tmp_path, monkeypatch):
    """The student hears every window 20 dB down; the teacher hears it as recorded."""
    from earmark.distill import Teacher

    root = write_tone_dataset(tmp_path / "tones", speakers=6, takes=2)
    teacher_file = write_teacher(tmp_path / "teacher.toml",
                                 TEACHER_TOML.replace("epochs = 10", "epochs = 1"))
    config = student(root, tmp_path, teacher_file, epochs=1)
    config.augment.gain_db = [-20.0, -20.0]
    config.augment.mixup_alpha = 0.4               # the teacher's scores are mixed too
    heard = []
    real_scores = Teacher.scores

    def listening(self, waveform, windows=None):
        heard.append(float(waveform.abs().max()))
        return real_scores(self, waveform, windows)

    monkeypatch.setattr(Teacher, "scores", listening)
    train(config, tmp_path / "run", progress=False)
    assert heard and min(heard) > 0.3              # tones at 0.4, not 0.04


def test_a_student_resumed_with_another_cache_keeps_its_teacher(tmp_path):
    root = write_tone_dataset(tmp_path / "tones", speakers=6, takes=2)
    teacher_file = write_teacher(tmp_path / "teacher.toml",
                                 TEACHER_TOML.replace("epochs = 10", "epochs = 1"))
    config = student(root, tmp_path, teacher_file, epochs=1)
    train(config, tmp_path / "run", progress=False)
    config.data.cache_dir = str(tmp_path / "another-cache")
    config.data.skip_bad_files = True
    config.train.epochs = 2
    assert train(config, tmp_path / "run", resume=True, progress=False)["epochs"] == 2


def test_a_teacher_that_heard_held_out_recordings_is_refused(tmp_path):
    from earmark.data.manifest import Row
    from earmark.distill import check_split

    student_rows = [Row("a.wav", "x", "s1", "train"), Row("b.wav", "x", "s2", "test")]
    check_split([Row("a.wav", "x", "s1", "train"), Row("b.wav", "x", "s2", "test")],
                student_rows, "RUN/teacher")
    with pytest.raises(DataError, match="b.wav"):
        check_split([Row("a.wav", "x", "s1", "train"), Row("b.wav", "x", "s2", "train")],
                    student_rows, "RUN/teacher")


def test_the_teacher_scores_each_window_once(monkeypatch):
    import earmark.distill as distill

    calls = []

    class Counting(torch.nn.Module):
        def forward(self, waveform):
            calls.append(len(waveform))
            return waveform[:, :3] * 10

    monkeypatch.setattr(distill, "REMEMBERED_WINDOWS", 3)
    teacher = distill.Teacher(Counting(), ["a", "b", "c"], 0.5, 2.0)
    batch = torch.randn(4, 8)
    batch[3] = batch[0]                                        # the same window twice
    windows = [(0, 0), (1, 0), (1, -5), (0, 0)]
    first = teacher.scores(batch, windows)
    assert torch.allclose(first, softened(batch[:, :3] * 10, 2.0))
    assert calls == [4]
    again = teacher.scores(batch.flip(0), [(1, -5), (2, 0)])   # (1, -5) is not heard again
    assert torch.equal(again[0], first[2]) and calls == [4, 1]
    teacher.scores(batch[:1], [(0, 0)])                        # the oldest was let go
    assert calls == [4, 1, 1]


def test_a_crossval_resumes_a_fold_stopped_in_its_teachers_training(tmp_path):
    from earmark.crossval import cross_validate

    root = write_tone_dataset(tmp_path / "tones", speakers=6, takes=2)
    teacher_file = write_teacher(tmp_path / "teacher.toml",
                                 TEACHER_TOML.replace("epochs = 10", "epochs = 2"))
    config = student(root, tmp_path, teacher_file, epochs=1)
    with killed_at_the_first_checkpoint():                 # fold 0's teacher, epoch 1
        cross_validate(config, tmp_path / "cv", folds=2)
    report = cross_validate(config, tmp_path / "cv", folds=2)
    assert [row["fold"] for row in report["folds"]] == [0, 1]
    teacher_rows = (tmp_path / "cv" / "fold0" / "teacher" / "metrics.csv").read_text()
    assert len(teacher_rows.strip().splitlines()) == 1 + 2     # epoch 1 kept, 2 trained
