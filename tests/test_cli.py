"""The ``earmark`` command: help, each subcommand end to end, and clean errors."""

from __future__ import annotations

import argparse
import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from earmark import audio, cli
from earmark.network import load_trained

from conftest import (CLASS_FREQUENCIES, DATASET_RATE, SPEAKERS_PER_CLASS, TAKES_PER_SPEAKER,
                      TONE_RATE)


def run(argv: list[str]) -> int:
    """``earmark ARGV`` in-process; the exit code whether it returns or exits."""
    try:
        return cli.main(argv)
    except SystemExit as exit:
        return 0 if exit.code is None else exit.code


def subcommands() -> list[str]:
    parser = cli.build_parser()
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return sorted(actions[0].choices)


def copy_run(trained_run: Path, tmp_path: Path) -> Path:
    """A private copy of the session's run, so commands that write into it leave it alone."""
    return Path(shutil.copytree(trained_run, tmp_path / "run"))


def write_config(tmp_path: Path, root: Path, extra: str = "") -> Path:
    path = tmp_path / "experiment.toml"
    path.write_text(f"""
[data]
root = "{root.as_posix()}"
sample_rate = {DATASET_RATE}
clip_seconds = 0.1
hop_seconds = 0.05
cache_dir = "{(tmp_path / 'cache').as_posix()}"
ratios = [0.6, 0.2, 0.2]

[features]
kind = "logmel"
n_mels = 16

[train]
epochs = 1
threads = 1
{extra}
""")
    return path


# ------------------------------------------------------------------------ help
def test_subcommands_are_all_there():
    assert {"train", "evaluate", "prepare", "manifest", "models", "export", "classify",
            "footprint"} <= set(subcommands())


@pytest.mark.parametrize("argv", [["--help"]] + [[name, "--help"] for name in subcommands()],
                         ids=lambda argv: " ".join(argv))
def test_help_exits_zero_and_shows_an_example(argv, capsys):
    assert run(argv) == 0
    out = capsys.readouterr().out
    assert "usage: earmark" in out
    assert "example" in out
    if len(argv) == 2:
        assert f"earmark {argv[0]}" in out.split("example", 1)[1]


def test_no_command_prints_help_and_fails(capsys):
    assert run([]) == 2
    assert "commands" in capsys.readouterr().out


# -------------------------------------------------------------- simple commands
def test_models_lists_the_architectures(capsys):
    assert run(["models"]) == 0
    names = capsys.readouterr().out.split()
    assert "dscnn" in names and "clip_cnn" in names


def test_models_gives_each_architecture_a_summary_and_its_options(capsys):
    assert run(["models"]) == 0
    text = capsys.readouterr().out
    linear = text.split("embedding_linear\n")[1].split("\n")[:2]
    assert "linear probe" in linear[0]
    assert linear[1].strip() == "[model] options: dropout = 0.0"
    assert 'time_padding = "same"' in text and "kernel = [10, 4]" in text   # as TOML writes


def test_a_reader_that_leaves_early_stops_the_output_quietly(monkeypatch):
    class LeftReader:
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            pass

    monkeypatch.setattr("sys.stdout", LeftReader())
    assert run(["models"]) == 141


def test_manifest_writes_a_csv_matching_the_folder(class_folder, tmp_path, capsys):
    out = tmp_path / "x.csv"
    assert run(["manifest", str(class_folder), "--out", str(out)]) == 0
    total = len(CLASS_FREQUENCIES) * SPEAKERS_PER_CLASS * TAKES_PER_SPEAKER
    assert f"{total} recordings" in capsys.readouterr().out
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    expected = {(str(p), p.parent.name) for label in CLASS_FREQUENCIES
                for p in (class_folder / label).glob("*.wav")}
    assert {(row["path"], row["label"]) for row in rows} == expected
    assert len(rows) == total
    for row in rows:     # the group is the speaker hash of the file name
        assert row["group"] == Path(row["path"]).name.split("_nohash_")[0]


def test_prepare_prints_split_counts_per_class(class_folder, tmp_path, capsys):
    config = write_config(tmp_path, class_folder)
    manifest = tmp_path / "split.csv"
    assert run(["prepare", str(config), "--quiet", "--manifest-out", str(manifest)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["class", "train", "validation", "test"]
    rows = {line.split()[0]: [int(n) for n in line.split()[1:]] for line in lines[1:]
            if line.split() and line.split()[0] in CLASS_FREQUENCIES}
    assert set(rows) == set(CLASS_FREQUENCIES)
    for label, counts in rows.items():
        assert sum(counts) == SPEAKERS_PER_CLASS * TAKES_PER_SPEAKER
        assert counts[0] > 0
    # the table agrees with the manifest it wrote
    with open(manifest, newline="") as handle:
        written = list(csv.DictReader(handle))
    for label, counts in rows.items():
        for split, count in zip(("train", "validation", "test"), counts):
            assert count == sum(r["label"] == label and r["split"] == split for r in written)
    assert (tmp_path / "cache").is_dir()


# -------------------------------------------------------------- config errors
def test_an_unknown_config_key_exits_2_naming_it(class_folder, tmp_path, capsys):
    config = write_config(tmp_path, class_folder, extra="epochz = 3")
    assert run(["train", str(config), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "epochz" in err and "epochs" in err
    assert "Traceback" not in err
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_a_bad_set_value_exits_2_with_a_clear_message(class_folder, tmp_path, capsys):
    config = write_config(tmp_path, class_folder)
    code = run(["prepare", str(config), "--quiet", "--set", "train.epochs=abc"])
    assert code == 2
    err = capsys.readouterr().err
    assert "epochs" in err and "abc" in err
    assert "Traceback" not in err


def test_a_set_without_section_exits_2(class_folder, tmp_path, capsys):
    config = write_config(tmp_path, class_folder)
    assert run(["prepare", str(config), "--quiet", "--set", "nosection"]) == 2
    err = capsys.readouterr().err
    assert "nosection" in err and "SECTION.KEY=VALUE" in err


def test_a_good_set_value_is_applied(class_folder, tmp_path, capsys):
    config = write_config(tmp_path, class_folder)
    assert run(["prepare", str(config), "--quiet", "--set", "data.classes=['go', 'yes']"]) == 0
    labels = [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]
              if line.split() and line.split()[0] in CLASS_FREQUENCIES]
    assert labels == ["go", "yes"]


def test_train_into_an_existing_run_needs_resume(trained_run, tmp_path, capsys):
    run_dir = copy_run(trained_run, tmp_path)
    before = (run_dir / "checkpoint.pt").stat().st_mtime_ns
    code = run(["train", str(run_dir / "config.toml"), "--out", str(run_dir), "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert "--resume" in err and "Traceback" not in err
    assert (run_dir / "checkpoint.pt").stat().st_mtime_ns == before


# --------------------------------------------------------- trained model commands
def test_evaluate_json_prints_the_report(trained_run, tmp_path, capsys):
    run_dir = copy_run(trained_run, tmp_path)
    assert run(["evaluate", str(run_dir), "--json", "--quiet"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert 0.0 <= report["accuracy"] <= 1.0
    assert report["accuracy"] > 0.6          # the tones are easy
    assert report["labels"] == json.loads((run_dir / "labels.json").read_text())
    assert report["count"] == sum(map(sum, report["confusion"]))


def test_export_then_classify_writes_json(trained_run, tmp_path, capsys):
    out = tmp_path / "b"
    assert run(["export", str(trained_run), "--out", str(out), "--quiet"]) == 0
    assert "bundle written" in capsys.readouterr().out
    assert (out / "model.onnx").is_file()
    # one window (clip_seconds = 0.5) of a noisy tone like the training data
    rng = np.random.default_rng(3)
    t = np.arange(int(0.5 * TONE_RATE)) / TONE_RATE
    samples = 0.4 * np.sin(2 * np.pi * 2000.0 * t) + 0.05 * rng.standard_normal(len(t))
    clip = tmp_path / "clip.wav"
    soundfile.write(clip, samples.astype(np.float32), TONE_RATE, subtype="FLOAT")
    results = tmp_path / "r.json"
    code = run(["classify", str(out), str(clip), "--output", str(results), "--top-k", "2",
                "--quiet"])
    assert code == 0
    assert "results written" in capsys.readouterr().out
    records = json.loads(results.read_text())
    assert len(records) == 1
    assert Path(records[0]["file"]).name == "clip.wav"
    assert len(records[0]["top"]) == 2
    assert records[0]["top"][0]["probability"] >= records[0]["top"][1]["probability"]
    # the bundle judges the file as the trained torch model does
    _, labels, classifier = load_trained(trained_run)
    with torch.no_grad():
        probabilities = torch.softmax(
            classifier(torch.from_numpy(audio.load(clip, TONE_RATE))[None]), -1)[0]
    assert records[0]["label"] == records[0]["top"][0]["label"] == labels[int(probabilities.argmax())]
    assert records[0]["top"][0]["probability"] == pytest.approx(float(probabilities.max()),
                                                                abs=1e-3)


def test_classify_a_missing_file_fails_with_a_message(bundle, tmp_path, capsys):
    code = run(["classify", str(bundle), str(tmp_path / "absent.wav"), "--quiet"])
    assert code == 1
    assert "absent.wav" in capsys.readouterr().err


def test_footprint_json_has_latency(bundle, capsys):
    assert run(["footprint", str(bundle), "--json", "--runs", "5",
                "--stream-seconds", "2"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["latency_ms_median"] > 0
    assert figures["latency_ms_p95"] >= figures["latency_ms_median"]
    assert figures["size_bytes"] > 0
    assert figures["stream_cpu_seconds_per_hour"] > 0
    assert run(["footprint", str(bundle), "--runs", "2", "--stream-seconds", "1"]) == 0
    assert "stream CPU, 1 thread" in capsys.readouterr().out
    for absurd in ("-1", "nan", "1e9"):
        assert run(["footprint", str(bundle), "--stream-seconds", absurd]) != 0
        assert "--stream-seconds" in capsys.readouterr().err
        assert run(["footprint", str(bundle), "--stream-block-ms", absurd]) != 0
        assert "--stream-block-ms" in capsys.readouterr().err
    assert run(["footprint", str(bundle), "--json", "--runs", "2", "--stream-seconds", "2",
                "--stream-block-ms", "500"]) == 0
    assert json.loads(capsys.readouterr().out)["stream_block_ms"] == 500


def test_prepare_shows_the_table_then_refuses_a_class_training_never_sees(class_folder,
                                                                          tmp_path, capsys):
    """A manifest whose split column leaves 'yes' out of train: the table is printed, and
    prepare fails as training would, naming the class."""
    from earmark.data.manifest import from_folder

    manifest = from_folder(class_folder, "speech_commands")
    lines = ["path,label,group,split"]
    for row in manifest:
        split = "test" if row.label == "yes" else "train"
        lines.append(f"{row.path},{row.label},{row.group},{split}")
    csv_path = tmp_path / "split.csv"
    csv_path.write_text("\n".join(lines) + "\n")
    config = tmp_path / "column.toml"
    config.write_text(f"""
[data]
csv = "{csv_path.as_posix()}"
split = "column"
sample_rate = {DATASET_RATE}
clip_seconds = 0.1
cache_dir = "{(tmp_path / 'cache').as_posix()}"
""")
    assert run(["prepare", str(config), "--quiet"]) == 2
    captured = capsys.readouterr()
    assert captured.out.splitlines()[0].split() == ["class", "train", "validation", "test"]
    assert "'yes'" in captured.err and "no training recordings" in captured.err
