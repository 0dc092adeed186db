"""Export: one ONNX bundle from waveform to probabilities, parity with torch, int8."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch

from earmark.export import export_run
from earmark.network import load_trained
from earmark.runtime import load_bundle
from earmark.runtime.footprint import footprint
from earmark.runtime.metadata import file_sha256


def test_bundle_holds_graph_and_metadata(bundle, trained_run):
    metadata = json.loads((bundle / "earmark.json").read_text())
    assert metadata["labels"] == json.loads((trained_run / "labels.json").read_text())
    assert metadata["sample_rate"] == 8000
    assert metadata["window_samples"] == 4000 and metadata["hop_samples"] == 2000
    assert metadata["parity"]["max_abs_diff"] <= 1e-4
    assert metadata["parity"]["top1_agreement"] == 1.0
    assert metadata["features"]["kind"] == "logmel"
    assert metadata["macs_per_window"] > 0 and metadata["parameters"] > 0
    graph = onnx.load(str(bundle / "model.onnx"))
    assert [i.name for i in graph.graph.input] == ["waveform"]
    assert [o.name for o in graph.graph.output] == ["probabilities"]
    embedded = {p.key: p.value for p in graph.metadata_props}
    assert json.loads(embedded["earmark"])["labels"] == metadata["labels"]
    loaded = load_bundle(bundle).metadata             # the contract reads back what was written
    assert loaded.to_json() == metadata
    assert loaded.header_json() == json.loads(embedded["earmark"])
    stream_files = sorted(f"stream/{path.name}" for path in (bundle / "stream").glob("*.onnx"))
    assert stream_files and sorted(metadata["stream"]["files_sha256"]) == stream_files
    assert all(metadata["stream"]["files_sha256"][name] == file_sha256(bundle / name)
               for name in stream_files)


def test_onnxruntime_matches_torch_on_new_audio(bundle, trained_run):
    _, _, classifier = load_trained(trained_run)
    rng = np.random.default_rng(5)
    waveforms = (0.3 * rng.standard_normal((7, 4000))).astype(np.float32)
    loaded = load_bundle(bundle)
    with torch.no_grad():
        expected = torch.softmax(classifier(torch.from_numpy(waveforms)), -1).numpy()
    assert np.abs(loaded.predict_proba(waveforms) - expected).max() <= 1e-4


def test_single_onnx_file_loads_without_the_json(bundle, tmp_path):
    lone = tmp_path / "model.onnx"
    lone.write_bytes((bundle / "model.onnx").read_bytes())
    loaded = load_bundle(lone)
    assert loaded.labels == json.loads((bundle / "earmark.json").read_text())["labels"]


def test_int8_bundle_is_smaller_and_keeps_accuracy(trained_run, bundle, tmp_path):
    result = export_run(trained_run, tmp_path / "int8", int8=True, progress=False)
    quality = result.metadata.export_quality
    assert quality["int8"]["accuracy"] >= quality["float32"]["accuracy"] - 0.1
    assert "int8" in result.metadata.quantization
    graph = onnx.load(str(tmp_path / "int8" / "model.onnx"))
    assert any(node.op_type == "QuantizeLinear" for node in graph.graph.node)
    float_weights = onnx.load(str(bundle / "model.onnx"))
    assert graph.ByteSize() < float_weights.ByteSize()


def test_export_replaces_an_old_bundle_but_not_a_foreign_folder(trained_run, tmp_path):
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "keep.jpg").write_bytes(b"x")
    from earmark.errors import EarmarkError
    with pytest.raises(EarmarkError, match="not an earmark bundle"):
        export_run(trained_run, foreign, progress=False)
    assert (foreign / "keep.jpg").is_file()


def test_runtime_runs_with_torch_unavailable(bundle, tmp_path):
    """A deployment has no torch: block its import and classify a file."""
    import soundfile
    clip = tmp_path / "tone.wav"
    t = np.arange(16000) / 16000                       # another rate: resampled on the fly
    noise = 0.05 * np.random.default_rng(1).standard_normal(len(t))
    soundfile.write(clip, (0.4 * np.sin(2 * np.pi * 300 * t) + noise).astype(np.float32), 16000)
    script = (
        "import sys; sys.modules['torch'] = None\n"
        "from earmark.runtime import Classifier\n"
        f"result = Classifier.from_bundle({str(bundle)!r}).classify_file({str(clip)!r})\n"
        "assert 'torch' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
        "print(result.label)\n")
    output = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert output.returncode == 0, output.stderr
    assert output.stdout.strip() == "low"


def test_footprint_measures_the_bundle(bundle):
    figures = footprint(bundle, runs=20, stream_seconds=3)
    assert figures["size_bytes"] == (bundle / "model.onnx").stat().st_size
    assert 0 < figures["latency_ms_median"] <= figures["latency_ms_p95"]
    assert figures["peak_memory_kib"] > 0
    assert figures["macs_per_window"] > 0
    # a stream computes new frames only: far less than a window's latency every stride
    assert figures["stream_incremental"] and 0 < figures["stream_stride_ms"] <= 20.0
    strides_per_hour = 3600 * 1000 / figures["stream_stride_ms"]
    assert 0 < figures["stream_cpu_seconds_per_hour"] < (
        strides_per_hour * figures["latency_ms_median"] / 1000)
    assert "stream_cpu_seconds_per_hour" not in footprint(bundle, runs=2, stream_seconds=0)


def test_export_needs_only_the_run_folder(tmp_path):
    """Training keeps real windows for the parity check and int8 calibration: a copy of
    the run folder exports with the recordings and the decoded cache gone."""
    import shutil

    from conftest import tone_config, write_tone_dataset
    from earmark.run_folder import RunFolder
    from earmark.train import train

    root = write_tone_dataset(tmp_path / "tones", speakers=5, takes=2)
    train(tone_config(root, tmp_path / "cache", epochs=2), tmp_path / "run", progress=False)
    kept = RunFolder(tmp_path / "run").read_export_windows()
    assert kept is not None and kept.validation.shape[1] == 4000
    assert len(kept.validation) == len(kept.validation_targets) and len(kept.calibration) > 0
    shutil.copytree(tmp_path / "run", tmp_path / "elsewhere" / "run")
    shutil.rmtree(tmp_path / "tones")
    shutil.rmtree(tmp_path / "cache")
    shutil.rmtree(tmp_path / "run")
    result = export_run(tmp_path / "elsewhere" / "run", tmp_path / "bundle", int8=True,
                        progress=False)
    assert result.metadata.parity["windows"] == len(kept.validation)
    assert result.metadata.parity["max_abs_diff"] <= 1e-4
    assert "int8" in result.metadata.export_quality
    assert load_bundle(tmp_path / "bundle").labels == RunFolder(
        tmp_path / "elsewhere" / "run").read_labels()


def test_a_run_without_kept_windows_is_exported_from_its_recordings(trained_run, tmp_path):
    """Runs trained before training kept export windows still export (from the data)."""
    import shutil

    old = tmp_path / "old-run"
    shutil.copytree(trained_run, old)
    (old / "export_windows.npz").unlink()
    result = export_run(old, tmp_path / "bundle", progress=False)
    assert result.metadata.parity["max_abs_diff"] <= 1e-4
    assert result.metadata.parity["windows"] > 0


def test_a_damaged_windows_file_is_named(trained_run, tmp_path):
    import shutil

    from earmark.errors import DataError

    damaged = tmp_path / "run"
    shutil.copytree(trained_run, damaged)
    (damaged / "export_windows.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="export_windows.npz"):
        export_run(damaged, tmp_path / "bundle", progress=False)


def test_a_linear_probe_trained_without_validation_exports_and_judges_as_the_run(tmp_path):
    """embedding_linear on log-mel columns, every training recording trains (a validation
    share of 0): its standardisation (the training windows' mean and spread) travels in
    the graph."""
    from conftest import train_pattern_run

    run = train_pattern_run(tmp_path, {"kind": "logmel", "n_mels": 16},
                            {"name": "embedding_linear"}, epochs=6, ratios=[0.75, 0.0, 0.25])
    summary = json.loads((run / "summary.json").read_text())
    assert "validation_accuracy" not in summary and summary["test_accuracy"] >= 0.8
    export_run(run, tmp_path / "bundle")
    record = json.loads((tmp_path / "bundle" / "earmark.json").read_text())
    assert record["model"]["name"] == "embedding_linear"
    assert record["parity"]["max_abs_diff"] < 1e-4 and record["parity"]["top1_agreement"] == 1.0
    statistics = torch.load(run / "model.pt", weights_only=True)
    variances = [v for k, v in statistics.items() if k.endswith("standardise.running_var")]
    assert len(variances) == 1 and not torch.allclose(variances[0], torch.ones_like(variances[0]))
