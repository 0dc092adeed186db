"""The offline demo end to end, at a reduced size."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("espeakng_loader")


@pytest.mark.slow
def test_demo_runs_every_step_and_reports(tmp_path, capsys):
    from earmark.cli import main

    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--takes", "16", "--epochs", "2", "--quiet"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert 0.0 <= report["test_accuracy"] <= 1.0
    assert report["stream"]["words"] > 0
    for path in ("data/manifest.csv", "run/model.pt", "run/eval_test_confusion.png",
                 "bundle/model.onnx", "bundle/stream/frames.onnx", "stream/tradeoff.png",
                 "stream/truth.csv"):
        assert (out / path).is_file(), path
    printed = capsys.readouterr().out
    assert "held-out voices: accuracy" in printed and "stream (" in printed
