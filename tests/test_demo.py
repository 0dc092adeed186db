"""The offline demo end to end, at a reduced size."""

from __future__ import annotations

import json

import pytest

from conftest import write_tone

pytest.importorskip("espeakng_loader")


@pytest.mark.slow
@pytest.mark.parametrize("model, voices", [("embedding", None), ("dscnn", [])])
def test_demo_runs_every_step_and_reports(model, voices, tmp_path, capsys):
    from earmark.cli import main
    from earmark.data.voices import available_voices

    real = tmp_path / "real"            # stands for real people saying two of the words
    for word in ("yes", "no"):
        (real / word).mkdir(parents=True)
        write_tone(real / word / "take.wav", 1.0, 16000, 440.0)
    out = tmp_path / "demo"
    chosen = [] if voices is None else ["--voices", *voices]
    assert main(["demo", "--out", str(out), "--takes", "16", "--epochs", "2", "--model", model,
                 "--real", str(real), "--quiet", *chosen]) == 0
    report = json.loads((out / "report.json").read_text())
    installed = sorted({voice.engine for voice in available_voices()})
    assert report["voices"] == ["espeak-ng", *(installed if voices is None else [])]
    assert 0.0 <= report["test_accuracy"] <= 1.0
    assert report["stream"]["words"] > 0
    assert report["real_speakers"]["clips"] == 2
    for path in ("data/manifest.csv", "run/model.pt", "run/eval_test_confusion.png",
                 "bundle/model.onnx", "bundle/stream/frames.onnx", "stream/tradeoff.png",
                 "stream/truth.csv", "run/eval_real_speakers_confusion.png"):
        assert (out / path).is_file(), path
    printed = capsys.readouterr().out
    assert "held-out voices: accuracy" in printed and "stream (" in printed
    assert "real speakers (2 recordings" in printed


def test_demo_refuses_a_missing_real_folder_before_it_starts(tmp_path, capsys):
    from earmark.cli import main

    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--real", str(tmp_path / "absent")]) == 2
    assert "absent: no such folder" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("model, epochs, copies, trained, window", [
    ("embedding", 0, 8, 40, 1.5), ("embedding", 2, 2, 2, 1.5), ("dscnn", 0, 0, 24, 1.0)])
def test_the_embedding_demo_keeps_a_few_augmented_copies(tmp_path, model, epochs, copies,
                                                         trained, window):
    from earmark.demo import DemoSize, demo_config

    config = demo_config(tmp_path, tmp_path / "noise", DemoSize(epochs=epochs, model=model), 0)
    assert config.train.feature_copies == copies
    assert config.train.epochs == trained
    assert config.data.clip_seconds == window     # the embedding hears each word inside 1.5 s
