"""What a careless or hostile input does to training and its run folder (issue 15).

Two trainings into one folder, a resume with changed settings, damaged or
foreign checkpoints, a class with a single recording, and macro-F1 with a
class absent from the evaluation set.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from earmark.cli import main
from earmark.config import to_toml
from earmark.data.manifest import Manifest, Row
from earmark.data.splits import check_trainable, split_by_group
from earmark.errors import ConfigError, DataError
from earmark.metrics.classification import classification_report
from earmark.network import load_trained, read_weights
from earmark.run_folder import RunFolder
from earmark.train import train

from conftest import TONE_RATE, tone_config, write_tone_dataset


@pytest.fixture(scope="module")
def tones(tmp_path_factory) -> Path:
    return write_tone_dataset(tmp_path_factory.mktemp("hostile") / "tones", speakers=6,
                              takes=2)


@pytest.fixture
def two_epoch_run(tones, tmp_path) -> Path:
    """A finished 2-epoch run of its own (tests may damage it)."""
    train(tone_config(tones, tmp_path / "cache", epochs=2), tmp_path / "run", progress=False)
    return tmp_path / "run"


def file_hashes(folder: Path) -> dict[str, str]:
    """Every file below ``folder`` (hidden ones too) -> sha256 of its bytes."""
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


def metrics_rows(run: Path) -> list[dict]:
    with open(run / "metrics.csv") as handle:
        return list(csv.DictReader(handle))


# --------------------------------------------------------------- the folder's lock


def try_lock_in_subprocess(folder: Path) -> subprocess.CompletedProcess:
    code = textwrap.dedent(f"""
        from earmark.run_folder import RunFolder
        with RunFolder({str(folder)!r}).lock():
            print("locked")
    """)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)


def test_a_held_folder_is_refused_to_another_process_which_is_named(tmp_path):
    run = RunFolder(tmp_path / "run")
    with run.lock():
        holder = json.loads(run.lock_file.read_text())
        refused = try_lock_in_subprocess(run.path)
    assert refused.returncode != 0 and "locked" not in refused.stdout
    assert "is being written by another training" in refused.stderr
    assert f"process {holder['pid']} on {holder['host']}" in refused.stderr
    assert "choose another --out folder" in refused.stderr
    # Released: the lock file stays, emptied, and the next process gets the folder.
    assert run.lock_file.read_text() == ""
    assert try_lock_in_subprocess(run.path).stdout.strip() == "locked"


def test_a_second_lock_in_the_same_process_is_refused_and_the_first_kept(tmp_path):
    run = RunFolder(tmp_path / "run")
    with run.lock():
        with pytest.raises(ConfigError, match="being written by another training"):
            with RunFolder(tmp_path / "run").lock():
                pass
        assert run.lock_file.read_text() != ""  # the holder's record survives the refusal
    with run.lock():  # and after the first is released, the folder is free again
        pass


def test_a_lock_is_released_when_the_block_raises(tmp_path):
    run = RunFolder(tmp_path / "run")
    with pytest.raises(RuntimeError):
        with run.lock():
            raise RuntimeError("crash")
    assert try_lock_in_subprocess(run.path).stdout.strip() == "locked"


def test_a_file_in_place_of_the_folder_is_refused(tmp_path):
    (tmp_path / "run").write_text("not a folder")
    with pytest.raises(ConfigError, match="is a file, not a run folder"):
        with RunFolder(tmp_path / "run").lock():
            pass


def test_training_into_a_folder_being_trained_is_refused_at_once(tones, tmp_path):
    config = tone_config(tones, tmp_path / "cache", epochs=2)
    run = RunFolder(tmp_path / "run")
    with run.lock():
        before = file_hashes(run.path)
        with pytest.raises(ConfigError, match="being written by another training"):
            train(config, run.path, progress=False)
        with pytest.raises(ConfigError, match="being written by another training"):
            train(config, run.path, resume=True, progress=False)
        assert file_hashes(run.path) == before


@pytest.fixture
def cli_logging():
    """The CLI points the ``earmark`` logger at stderr alone; put it back afterwards."""
    logger = logging.getLogger("earmark")
    saved = logger.handlers[:], logger.propagate, logger.level
    yield
    logger.handlers[:], logger.propagate, logger.level = saved[0], saved[1], saved[2]


def test_cli_train_into_a_held_folder_exits_2_with_the_message(tones, tmp_path, capsys,
                                                              cli_logging):
    config_file = tmp_path / "tones.toml"
    config_file.write_text(to_toml(tone_config(tones, tmp_path / "cache", epochs=2)))
    run = RunFolder(tmp_path / "run")
    with run.lock():
        code = main(["train", str(config_file), "--out", str(run.path), "-q"])
    assert code == 2
    assert "is being written by another training" in capsys.readouterr().err
    assert not run.config.exists() and not run.checkpoint.exists()


# ----------------------------------------------------------------------- --resume


@pytest.mark.parametrize("change, named", [
    (lambda c: c.model.options.update(channels=32), "model.channels: 16 in the run, 32 now"),
    (lambda c: setattr(c.features, "n_mels", 20), "features.n_mels: 16 in the run, 20 now"),
    (lambda c: setattr(c.data, "split_seed", 3), "data.split_seed: 0 in the run, 3 now"),
    (lambda c: c.model.options.update(dropout=0.5), "model.dropout: not set in the run"),
])
def test_resume_with_changed_fixed_settings_is_refused_and_changes_nothing(
        two_epoch_run, tones, tmp_path, change, named):
    before = file_hashes(two_epoch_run)
    config = tone_config(tones, tmp_path / "cache", epochs=4)
    change(config)
    with pytest.raises(ConfigError) as refused:
        train(config, two_epoch_run, resume=True, progress=False)
    message = str(refused.value)
    assert named in message
    assert "another --out folder" in message and "train.epochs" not in message
    assert file_hashes(two_epoch_run) == before
    load_trained(two_epoch_run)  # still a good run


def test_resume_below_the_epochs_done_is_refused(two_epoch_run, tones, tmp_path):
    before = file_hashes(two_epoch_run)
    with pytest.raises(ConfigError, match="train.epochs = 1 but the run has already "
                                          "trained 2 epochs"):
        train(tone_config(tones, tmp_path / "cache", epochs=1), two_epoch_run, resume=True,
              progress=False)
    assert file_hashes(two_epoch_run) == before


def test_resume_with_edited_labels_is_refused(two_epoch_run, tones, tmp_path):
    labels = json.loads((two_epoch_run / "labels.json").read_text())
    (two_epoch_run / "labels.json").write_text(json.dumps(labels[::-1]))
    before = file_hashes(two_epoch_run)
    with pytest.raises(ConfigError, match="the run's labels .* differ"):
        train(tone_config(tones, tmp_path / "cache", epochs=3), two_epoch_run, resume=True,
              progress=False)
    assert file_hashes(two_epoch_run) == before


def test_resume_with_more_epochs_continues_on_the_stretched_schedule(
        two_epoch_run, tones, tmp_path, caplog):
    first = metrics_rows(two_epoch_run)
    config = tone_config(tones, tmp_path / "cache", epochs=3, batch_size=16)
    with caplog.at_level(logging.INFO, logger="earmark"):
        summary = train(config, two_epoch_run, resume=True, progress=False)
    assert "train.epochs: 2 in the run, 3 now" in caplog.text
    assert "train.batch_size: 8 in the run, 16 now" in caplog.text
    rows = metrics_rows(two_epoch_run)
    assert summary["epochs"] == 3 and len(rows) == 3
    assert rows[:2] == first
    assert "epochs = 3" in (two_epoch_run / "config.toml").read_text()
    # Epoch 3 starts where a straight 3-epoch run with the new settings would be.
    straight = tmp_path / "straight"
    train(config, straight, progress=False)
    assert float(rows[2]["learning_rate"]) == pytest.approx(
        float(metrics_rows(straight)[2]["learning_rate"]), rel=1e-6)
    load_trained(two_epoch_run)


def test_resume_may_change_augmentation(two_epoch_run, tones, tmp_path, caplog):
    config = tone_config(tones, tmp_path / "cache", epochs=2)
    config.augment.gain_db = [-6.0, 6.0]
    with caplog.at_level(logging.INFO, logger="earmark"):
        train(config, two_epoch_run, resume=True, progress=False)
    assert "augment.gain_db: [-3.0, 3.0] in the run, [-6.0, 6.0] now" in caplog.text


# ------------------------------------------------------------- foreign checkpoints


class Trap:
    """Unpickling this would create a file: a test that it is never unpickled."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def damage(path: Path, how: str, marker: Path) -> None:
    if how == "garbage":
        path.write_bytes(b"\x00not a checkpoint\xff" * 50)
    elif how == "truncated":
        path.write_bytes(path.read_bytes()[:200])
    elif how == "empty":
        path.write_bytes(b"")
    else:
        torch.save({"model": Trap(str(marker))}, path)


@pytest.mark.parametrize("how", ["garbage", "truncated", "empty", "pickled object"])
def test_a_foreign_checkpoint_is_a_clear_error_and_never_unpickled(
        two_epoch_run, tones, tmp_path, how):
    marker = tmp_path / "unpickled"
    damage(two_epoch_run / "checkpoint.pt", how, marker)
    before = file_hashes(two_epoch_run)
    with pytest.raises(DataError) as refused:
        train(tone_config(tones, tmp_path / "cache", epochs=3), two_epoch_run, resume=True,
              progress=False)
    message = str(refused.value)
    assert str(two_epoch_run / "checkpoint.pt") in message
    assert "not an earmark checkpoint, or damaged" in message
    assert "never unpickled" in message
    assert "weights_only" not in message and refused.value.__cause__ is None
    assert not marker.exists()
    assert file_hashes(two_epoch_run) == before


@pytest.mark.parametrize("how", ["garbage", "pickled object"])
def test_a_foreign_model_is_a_clear_error_for_evaluate_and_export(two_epoch_run, tmp_path,
                                                                  how):
    marker = tmp_path / "unpickled"
    damage(two_epoch_run / "model.pt", how, marker)
    with pytest.raises(DataError) as refused:
        load_trained(two_epoch_run)
    assert str(two_epoch_run / "model.pt") in str(refused.value)
    assert "weights_only" not in str(refused.value)
    assert not marker.exists()


def test_a_diverged_model_with_nan_weights_is_refused(two_epoch_run):
    weights = torch.load(two_epoch_run / "model.pt", weights_only=True)
    name = next(key for key, value in weights.items() if value.is_floating_point())
    weights[name] = torch.full_like(weights[name], float("nan"))
    torch.save(weights, two_epoch_run / "model.pt")
    with pytest.raises(DataError, match=f"NaN or infinite weights \\({name}\\).*diverged"):
        load_trained(two_epoch_run)


def test_a_checkpoint_of_plain_values_but_no_weights_is_refused(two_epoch_run, tones,
                                                                tmp_path):
    torch.save({"epoch": 2}, two_epoch_run / "checkpoint.pt")
    with pytest.raises(DataError, match="not an earmark checkpoint .*missing or bad: model"):
        train(tone_config(tones, tmp_path / "cache", epochs=3), two_epoch_run, resume=True,
              progress=False)


def test_a_checkpoint_that_does_not_fit_the_config_names_the_weight(two_epoch_run, tones,
                                                                    tmp_path):
    checkpoint = read_weights(two_epoch_run / "checkpoint.pt")
    name, tensor = next(iter(checkpoint["model"].items()))
    checkpoint["model"][name] = torch.zeros(*[n + 1 for n in tensor.shape])
    torch.save(checkpoint, two_epoch_run / "checkpoint.pt")
    before = file_hashes(two_epoch_run)
    with pytest.raises(DataError, match=f"{name}: .* in the checkpoint, .* in the network"):
        train(tone_config(tones, tmp_path / "cache", epochs=3), two_epoch_run, resume=True,
              progress=False)
    assert file_hashes(two_epoch_run) == before


# ----------------------------------------------------------- a class with one recording


def write_rare_class(root: Path, speaker: int = 0) -> None:
    """One recording of a class 'rare' by a speaker who also recorded the others."""
    t = np.arange(int(0.5 * TONE_RATE)) / TONE_RATE
    soundfile.write(root / "rare" / f"{speaker:08x}_nohash_0.wav",
                    (0.4 * np.sin(2 * np.pi * 3000 * t)).astype(np.float32), TONE_RATE)


def test_a_wrong_model_option_is_refused_before_anything_is_written(tones, tmp_path):
    from earmark.config import from_dict, to_dict

    settings = to_dict(tone_config(tones, tmp_path / "cache", epochs=1))
    settings["model"]["bogus"] = 3
    with pytest.raises(ConfigError, match="no option.*bogus"):
        train(from_dict(settings), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists() and not (tmp_path / "cache").exists()


def test_group_split_keeps_a_single_group_class_in_train(caplog):
    rows = [Row(f"{g}_{label}.wav", label, f"spk{g}") for g in range(12)
            for label in ("a", "b")]
    rows.append(Row("spk7_rare.wav", "rare", "spk7"))
    with caplog.at_level(logging.WARNING, logger="earmark"):
        for seed in range(8):
            split = split_by_group(Manifest(rows), [0.6, 0.2, 0.2], seed)
            assert {row.split for row in split if row.group == "spk7"} == {"train"}
            assert {row.split for row in split} == {"train", "validation", "test"}
    assert "'rare'" in caplog.text and "kept in train" in caplog.text


def test_a_split_without_training_recordings_of_a_class_is_refused():
    rows = [Row("1.wav", "a", "g1", "train"), Row("2.wav", "b", "g2", "train"),
            Row("3.wav", "rare", "g3", "test"), Row("4.wav", "a", "g3", "test"),
            Row("5.wav", "c", "g4", "validation"), Row("6.wav", "c", "g5", "test")]
    with pytest.raises(DataError) as refused:
        check_trainable(Manifest(rows), ["a", "b", "c", "rare"])
    message = str(refused.value)
    assert "'rare' (1 recording, in test)" in message
    assert "'c' (2 recordings: 1 in test, 1 in validation)" in message
    assert "data.classes" in message and "'a'" not in message


def test_training_refuses_a_class_only_in_test_before_writing(tones, tmp_path):
    rows = [{"path": str(path), "label": path.parent.name, "split": "train"}
            for path in sorted(tones.glob("*/0000000[0-3]_nohash_*.wav"))]
    rows += [{"path": str(path), "label": path.parent.name, "split": "test"}
             for path in sorted(tones.glob("*/0000000[45]_nohash_*.wav"))]
    rows[-1]["label"] = "rare"
    manifest = tmp_path / "manifest.csv"
    with open(manifest, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "label", "split"])
        writer.writeheader()
        writer.writerows(rows)
    config = tone_config(tones, tmp_path / "cache", epochs=2)
    config.data.root, config.data.csv, config.data.split = "", str(manifest), "column"
    with pytest.raises(DataError, match="no training recordings for class 'rare' "
                                        r"\(1 recording, in test\)"):
        train(config, tmp_path / "run", progress=False)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [".lock"]


def test_a_one_recording_class_trains_and_is_scored_where_present(tmp_path):
    root = write_tone_dataset(tmp_path / "tones", speakers=6, takes=2)
    (root / "rare").mkdir()
    write_rare_class(root)
    config = tone_config(root, tmp_path / "cache", epochs=2)
    with pytest.warns(UserWarning) as warned:
        train(config, tmp_path / "run", progress=False)
    messages = " ".join(str(warning.message) for warning in warned)
    for split in ("validation", "test"):
        assert f"class 'rare' has no recordings in the {split} split" in messages
    assert "in the train split" not in messages
    with open(tmp_path / "run" / "manifest.csv") as handle:
        rare = [row for row in csv.DictReader(handle) if row["label"] == "rare"]
    assert [row["split"] for row in rare] == ["train"]
    report = json.loads((tmp_path / "run" / "eval_test.json").read_text())
    rows = {row["label"]: row for row in report["per_class"]}
    assert rows["rare"]["support"] == 0  # listed, but not averaged
    present = [row["f1"] for row in report["per_class"] if row["support"] > 0]
    assert report["macro_f1"] == pytest.approx(np.mean(present))


def test_macro_f1_averages_the_classes_present():
    # b is absent from the set but predicted once: its F1 row is 0 with support 0,
    # and the wrong prediction costs a's recall (2/3) instead.
    report = classification_report([0, 0, 0, 2], [0, 0, 1, 2], ["a", "b", "c"])
    f1 = {row["label"]: row["f1"] for row in report.per_class}
    assert f1 == {"a": pytest.approx(0.8), "b": 0.0, "c": 1.0}
    assert report.macro_f1 == pytest.approx((0.8 + 1.0) / 2)
    assert report.labels == ["a", "b", "c"]


# --------------------------------------------------------------- what a run may write over

def test_training_into_a_project_folder_changes_nothing_there(tones, tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "config.toml").write_text("# my notes\n[data]\n")
    (project / "recordings").mkdir()
    before = file_hashes(project)
    with pytest.raises(ConfigError, match="holds files that are no earmark run's "
                                          r"\(recordings\)"):
        train(tone_config(tones, tmp_path / "cache", epochs=1), project, progress=False)
    assert file_hashes(project) == {**before, ".lock": file_hashes(project)[".lock"]}


def test_a_run_of_the_other_kind_is_never_written_over(tmp_path):
    classifier, anomaly = RunFolder(tmp_path / "classifier"), RunFolder(tmp_path / "anomaly")
    for run, marker in ((classifier, "labels.json"), (anomaly, "scorer.json")):
        run.path.mkdir()
        (run.path / marker).write_text("{}")
    with pytest.raises(ConfigError, match="already holds a classifier training run"):
        classifier.refuse_other_contents("anomaly")
    classifier.refuse_other_contents("classifier")        # its own kind: --resume decides
    for kind in ("classifier", "anomaly"):
        with pytest.raises(ConfigError, match="already holds an anomaly run"):
            anomaly.refuse_other_contents(kind)
    with pytest.raises(DataError, match="is an anomaly run.*earmark anomaly evaluate"):
        anomaly.require_trained()                         # what evaluate and export ask
    started = RunFolder(tmp_path / "started")             # stopped before its labels
    started.path.mkdir()
    for name in ("config.toml", "manifest.csv", ".lock"):
        (started.path / name).write_text("")
    started.refuse_other_contents("classifier")


def test_a_finished_fold_is_reused_only_with_its_own_settings(two_epoch_run, tones, tmp_path):
    from earmark.resume import check_reusable

    same = tone_config(tones, tmp_path / "other-cache", epochs=2)    # the cache may move
    check_reusable(RunFolder(two_epoch_run), same, "fold 0", "remove it")
    same.data.folds = 4
    with pytest.raises(ConfigError, match=r"fold 0 trained with other settings \(data.folds: "
                                          r"5 in the run, 4 now\); remove it"):
        check_reusable(RunFolder(two_epoch_run), same, "fold 0", "remove it")


@pytest.mark.parametrize("argv, option", [
    (["prepare", "CONFIG", "--manifest-out", "CONFIG"], "--manifest-out"),
    (["datasets", "manifest", "fsdd", "--root", ".", "--out", "CONFIG"], "--out"),
])
def test_manifest_outputs_must_be_csv_files(tmp_path, capsys, argv, option):
    config = tmp_path / "config.toml"
    config.write_text("[data]\n")
    argv = [str(config) if item == "CONFIG" else item for item in argv]
    assert main(argv) == 2
    assert f"{option} {config}: the name must end in .csv" in capsys.readouterr().err
    assert config.read_text() == "[data]\n"


# --------------------------------------------------------------- numbers and manifests

@pytest.mark.parametrize("section, key, value, named", [
    ("data", "ratios", [float("nan"), 0.5, 0.5], "data.ratios"),
    ("data", "ratios", [1e308, 1e308, 1e308], "data.ratios"),
    ("data", "clip_seconds", float("nan"), "data.clip_seconds"),
    ("data", "clip_seconds", 1e9, "data.clip_seconds"),
    ("data", "hop_seconds", 1e-6, "data.hop_seconds"),
    ("train", "label_smoothing", 2.0, "train.label_smoothing"),
    ("train", "weight_decay", float("nan"), "train.weight_decay"),
    ("train", "seed", -1, "train.seed"),
])
def test_numbers_no_training_can_use_are_refused_by_name(tones, tmp_path, section, key, value,
                                                         named):
    from earmark.config import from_dict, to_dict

    raw = to_dict(tone_config(tones, tmp_path / "cache"))
    raw[section][key] = value
    with pytest.raises(ConfigError, match=named):
        from_dict(raw)


def write_manifest(path: Path, rows: list[str]) -> Path:
    path.write_text("path,label,group,start,end\n" + "\n".join(rows) + "\n")
    return path


def test_a_manifest_lists_each_recording_once_with_finite_times(tmp_path):
    from earmark.data.manifest import from_csv

    twice = write_manifest(tmp_path / "twice.csv", ["a.wav,yes,s1,,", "b.wav,no,s2,,",
                                                     "a.wav,yes,s1x,,"])
    with pytest.raises(DataError, match=r"a.wav is listed twice \(labels 'yes' and 'yes', "
                                        r"groups 's1' and 's1x'\)"):
        from_csv(twice)
    stretches = write_manifest(tmp_path / "stretches.csv", ["a.wav,yes,s1,0,1",
                                                            "a.wav,no,s1,1,2"])
    assert len(from_csv(stretches)) == 2                    # two stretches of one file
    nan = write_manifest(tmp_path / "nan.csv", ["a.wav,yes,s1,nan,nan"])
    with pytest.raises(DataError, match="column 'start' = 'nan' must be a finite number"):
        from_csv(nan)
    latin = tmp_path / "latin.csv"
    latin.write_bytes(b"path,label\ncaf\xe9.wav,yes\n")
    with pytest.raises(DataError, match="not UTF-8 text.*save the manifest as UTF-8"):
        from_csv(latin)


def test_crossval_with_more_folds_than_speakers_writes_nothing(tones, tmp_path):
    from earmark.crossval import cross_validate

    config = tone_config(tones, tmp_path / "cache", epochs=1)
    with pytest.raises(DataError, match="1000 folds need at least 1000 groups.*give fewer "
                                        "--folds"):
        cross_validate(config, tmp_path / "cv", folds=1000)
    assert not (tmp_path / "cv").exists()
