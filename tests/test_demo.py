"""The offline demo end to end, at a reduced size."""

from __future__ import annotations

import json

import pytest

from conftest import write_tone

pytest.importorskip("espeakng_loader")


@pytest.mark.slow
@pytest.mark.parametrize("model", ["embedding", "dscnn"])
def test_demo_runs_every_step_and_reports(model, tmp_path, capsys):
    from earmark.cli import main

    real = tmp_path / "real"            # stands for real people saying two of the words
    for word in ("yes", "no"):
        (real / word).mkdir(parents=True)
        write_tone(real / word / "take.wav", 1.0, 16000, 440.0)
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--takes", "16", "--epochs", "2", "--model", model,
                 "--real", str(real), "--quiet"]) == 0
    report = json.loads((out / "report.json").read_text())
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
