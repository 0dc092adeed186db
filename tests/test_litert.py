"""`earmark export --target litert`: LiteRT files checked in LiteRT's and TFLite-Micro's own
interpreters, C source that compiles, `earmark footprint` of a .tflite file."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("litert_torch")
pytest.importorskip("ai_edge_litert")

from earmark.cli import main  # noqa: E402  (after the skips)
from earmark.errors import ConfigError  # noqa: E402
from earmark.runtime import load_bundle  # noqa: E402
from earmark.runtime.litert_model import (LiteRTModel, dequantize, quantize,  # noqa: E402
                                          tensor_arena_bytes)


@pytest.fixture(scope="module")
def int8_export(trained_run: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("litert") / "tones"
    assert main(["export", str(trained_run), "--out", str(out), "--target", "litert", "--int8",
                 "-q"]) == 0
    return out


def test_int8_export_runs_in_litert_next_to_the_onnx_bundle(int8_export: Path, trained_run):
    litert = int8_export / "litert"
    figures = json.loads((litert / "litert.json").read_text())
    assert load_bundle(int8_export).labels == figures["labels"]      # the ONNX bundle beside
    whole, network = figures["model.tflite"], figures["network_int8.tflite"]
    assert whole["input"]["dtype"] == "float32" and whole["input"]["shape"][1] == \
        figures["window_samples"]
    assert network["input"]["dtype"] == network["output"]["dtype"] == "int8"
    for row in (whole, network):
        assert row["agreement_with_onnx"] >= 0.9
        assert abs(row["accuracy"] - figures["onnx"]["accuracy"]) <= 0.1
    assert network["size_bytes"] < figures["onnx"]["size_bytes"]
    # The file answers the same in a fresh interpreter as the export measured.
    windows = np.load(trained_run / "export_windows.npz")
    scores = LiteRTModel.load(litert / "model.tflite").predict(windows["validation"])
    assert float((scores.argmax(1) == windows["validation_targets"]).mean()) == \
        pytest.approx(whole["accuracy"])
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=0.02)


def test_the_microcontroller_model_runs_in_tflite_micro_and_its_c_source_compiles(
        int8_export: Path, tmp_path: Path):
    pytest.importorskip("tflite_micro")
    litert = int8_export / "litert"
    figures = json.loads((litert / "litert.json").read_text())
    model = (litert / "network_int8.tflite").read_bytes()
    arena = figures["tensor_arena_bytes"]
    assert 0 < arena == tensor_arena_bytes(model)
    header = (litert / "micro" / "earmark_model.h").read_text()
    source = (litert / "micro" / "earmark_model.cc").read_text()
    assert f"#define EARMARK_TENSOR_ARENA_BYTES {arena}" in header
    assert f"#define EARMARK_CLASS_COUNT {len(figures['labels'])}" in header
    scale = float(re.search(r"EARMARK_INPUT_SCALE ([0-9.e-]+)f", header).group(1))
    assert scale == pytest.approx(figures["network_int8.tflite"]["input"]["scale"])
    assert f"earmark_model_len = {len(model)};" in source
    array = re.search(r"earmark_model\[\] = \{(.*?)\};", source, re.S).group(1)
    assert bytes(int(b, 16) for b in re.findall(r"0x([0-9a-f]{2})", array)) == model
    compiler = shutil.which("c++") or shutil.which("cc")
    if compiler is None:
        pytest.skip("no C compiler")
    subprocess.run([compiler, "-std=c++17", "-c", str(litert / "micro" / "earmark_model.cc"),
                    "-o", str(tmp_path / "model.o")], check=True)
    assert (tmp_path / "model.o").stat().st_size > len(model)


def test_a_float_export_reproduces_the_bundle(trained_run: Path, tmp_path: Path):
    assert main(["export", str(trained_run), "--out", str(tmp_path / "float"), "--target",
                 "litert", "-q"]) == 0
    figures = json.loads((tmp_path / "float" / "litert" / "litert.json").read_text())
    assert "network_int8.tflite" not in figures
    assert figures["model.tflite"]["agreement_with_onnx"] >= 0.99
    assert figures["model.tflite"]["max_abs_difference"] < 1e-3


def test_the_image_front_end_and_its_cnn_export_too(tmp_path: Path):
    """spectrogram128 + spectrogram_cnn: the quantizer writes its larger weights after the
    flatbuffer, which the stripped file must carry inline."""
    from conftest import tone_config, write_tone_dataset
    from earmark.config import from_dict, to_dict
    from earmark.train import train

    settings = to_dict(tone_config(write_tone_dataset(tmp_path / "tones", speakers=4, takes=2),
                                   tmp_path / "cache", epochs=1))
    settings["features"] = {"kind": "spectrogram128"}
    settings["model"] = {"name": "spectrogram_cnn"}
    train(from_dict(settings), tmp_path / "run", progress=False)
    assert main(["export", str(tmp_path / "run"), "--out", str(tmp_path / "edge"), "--target",
                 "litert", "--int8", "-q"]) == 0
    figures = json.loads((tmp_path / "edge" / "litert" / "litert.json").read_text())
    assert figures["network_int8.tflite"]["input"]["shape"] == [1, 1, 128, 128]
    assert figures["network_int8.tflite"]["agreement_with_onnx"] >= 0.8


def test_footprint_of_a_tflite_file(int8_export: Path, capsys):
    path = int8_export / "litert" / "network_int8.tflite"
    assert main(["footprint", str(path), "--json", "--runs", "5"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["flash_bytes"] == path.stat().st_size
    assert figures["input"]["dtype"] == "int8"
    assert main(["footprint", str(int8_export / "missing.tflite")]) == 2
    assert "no such file" in capsys.readouterr().err
    (int8_export.parent / "folder.tflite").mkdir()
    assert main(["footprint", str(int8_export.parent / "folder.tflite")]) == 2
    assert "a folder" in capsys.readouterr().err
    assert main(["footprint", str(path), "--runs", "0"]) == 2
    assert "--runs 0" in capsys.readouterr().err
    (int8_export.parent / "junk.tflite").write_bytes(b"not a model")
    assert main(["footprint", str(int8_export.parent / "junk.tflite")]) == 2
    assert "not a LiteRT model" in capsys.readouterr().err


def test_too_few_calibration_windows_are_refused(trained_run: Path, tmp_path: Path, capsys):
    assert main(["export", str(trained_run), "--out", str(tmp_path / "x"), "--target",
                 "litert", "--int8", "--calibration", "0"]) == 2
    assert "--calibration 0" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_quantized_inputs_and_outputs_round_trip():
    details = {"dtype": np.int8, "quantization": (0.5, 3)}
    values = np.array([-70.0, -1.0, 0.0, 1.26, 70.0], dtype=np.float32)
    quantized = quantize(values, details)
    assert quantized.dtype == np.int8 and quantized.tolist() == [-128, 1, 3, 6, 127]
    np.testing.assert_allclose(dequantize(quantized, details), [-65.5, -1.0, 0.0, 1.5, 62.0])


def test_the_edge_extra_missing_is_named(monkeypatch):
    from earmark.export.litert import require_converter

    monkeypatch.setitem(sys.modules, "litert_torch", None)     # as if not installed
    with pytest.raises(ConfigError, match=r"pip install 'earmark\[edge\]'"):
        require_converter()
