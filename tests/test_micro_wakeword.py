"""Wake words for microWakeWord and ESPHome: the micro front-end, the causal TCN and its
stream step, the state moved into graph variables, the export run in LiteRT,
TFLite-Micro and pymicro-wakeword (a client nobody here wrote)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

pytest.importorskip("pymicro_features")

from earmark.config import FeatureConfig  # noqa: E402  (after the skip)
from earmark.errors import ConfigError  # noqa: E402
from earmark.frontend import micro  # noqa: E402
from earmark.frontend.micro_module import MicroFrontEnd  # noqa: E402
from earmark.models.tcn import CausalTCN  # noqa: E402
from earmark.models.tcn_stream import TCNStream  # noqa: E402

from conftest import pattern_clip, train_pattern_run  # noqa: E402

RATE = 16000


def speechlike(seconds: float, seed: int) -> np.ndarray:
    """Noise with a few loud tone bursts: features that move."""
    rng = np.random.default_rng(seed)
    samples = 0.02 * rng.standard_normal(int(seconds * RATE))
    for _ in range(int(seconds * 4)):
        start = int(rng.integers(0, len(samples) - 2000))
        t = np.arange(2000) / RATE
        samples[start:start + 2000] += 0.4 * np.sin(2 * np.pi * rng.uniform(200, 4000) * t)
    return samples.astype(np.float32)


def random_tcn(frames: int, channels: int = 12, seed: int = 0) -> CausalTCN:
    """A small two-class TCN with random weights and batch-norm statistics (eval mode)."""
    torch.manual_seed(seed)
    model = CausalTCN((1, micro.CHANNELS, frames), 2, channels=channels, dilations=(1, 2, 4))
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm1d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
    return model.eval()


def test_micro_features_are_the_ones_pymicro_wakeword_computes():
    wakeword = pytest.importorskip("pymicro_wakeword")
    samples = speechlike(2.0, 0)
    ours = micro.micro_features(samples)
    theirs = wakeword.MicroWakeWordFeatures()
    pcm = micro.to_pcm(samples)
    expected = np.concatenate([f.reshape(1, -1) for f in theirs.process_streaming(pcm)])
    assert ours.shape == (micro.frame_count(len(samples)), micro.CHANNELS) == expected.shape
    np.testing.assert_array_equal(ours, expected)
    assert 0.0 <= ours.min() and ours.max() <= micro.FEATURE_MAX
    # Fed in odd blocks, a running front-end gives the same frames.
    running = micro.MicroFeatures()
    pieces = [running.push(samples[a:b]) for a, b in [(0, 333), (333, 7000), (7000, None)]]
    np.testing.assert_array_equal(np.concatenate(pieces), ours)


def test_the_micro_front_end_module_and_what_it_refuses():
    frontend = MicroFrontEnd(FeatureConfig(kind="micro"), RATE)
    batch = torch.from_numpy(np.stack([speechlike(1.0, 1), speechlike(1.0, 2)]))
    features = frontend(batch)
    assert features.shape == (2, 1, 40, micro.frame_count(RATE))
    assert features.shape[1:] == frontend.output_shape(RATE)
    np.testing.assert_array_equal(features[1, 0].T.numpy(),
                                  micro.micro_features(batch[1].numpy()))
    for config, rate, words in [(FeatureConfig(kind="micro"), 8000, "sample_rate = 16000"),
                                (FeatureConfig(kind="micro", window_ms=25.0), RATE, "window_ms"),
                                (FeatureConfig(kind="micro", n_mels=64), RATE, "n_mels"),
                                (FeatureConfig(kind="micro", deltas=1), RATE, "deltas")]:
        with pytest.raises(ConfigError, match=words):
            MicroFrontEnd(config, rate)
    with pytest.raises(ConfigError, match="frequency_warp"):
        frontend(batch, frequency_scale=torch.ones(2))


def stream_through(step: TCNStream, windows: torch.Tensor, fresh: bool) -> list[float]:
    """The step's last probability for each window, fed three frames a call (zero frames
    first to a multiple of three), from fresh states or one running stream."""
    results, states = [], step.zero_states()
    with torch.no_grad():
        for window in windows:
            states = step.zero_states() if fresh else states
            frames = torch.cat([torch.zeros((-len(window)) % 3, micro.CHANNELS), window])
            for start in range(0, len(frames), 3):
                probability, *states = step(frames[None, start:start + 3], *states)
            results.append(float(probability))
    return results


def test_the_stream_step_gives_the_window_models_scores():
    model = random_tcn(frames=98)
    window = model.receptive_frames
    windows = torch.rand(4, window, micro.CHANNELS) * micro.FEATURE_MAX
    with torch.no_grad():
        expected = torch.softmax(model(windows.transpose(1, 2).unsqueeze(1)), 1)[:, 1]
    step = TCNStream(model, target=1)
    assert [tuple(s.shape) for s in step.zero_states()][0] == (1, 2, micro.CHANNELS)
    for fresh in (True, False):     # a running stream forgets what its window no longer sees
        np.testing.assert_allclose(stream_through(step, windows, fresh), expected.numpy(),
                                   rtol=1e-4, atol=1e-6)
    assert expected.std() > 1e-3          # the scores differ: the comparison can fail


@pytest.fixture(scope="module")
def streaming_file(tmp_path_factory) -> tuple[Path, CausalTCN, np.ndarray]:
    """A random TCN's int8 streaming file, calibrated on the features of noisy bursts."""
    pytest.importorskip("litert_torch")
    from earmark.export.micro_wakeword import streaming_tflite

    model = random_tcn(frames=98)
    window = model.receptive_frames
    calibration = np.stack([micro.micro_features(speechlike(1.2, seed))[-window:]
                            for seed in range(12)])
    scratch = tmp_path_factory.mktemp("stream")
    path = scratch / "wake.tflite"
    path.write_bytes(streaming_tflite(TCNStream(model, 0), calibration, scratch))
    return path, model, scratch


def test_the_state_lives_in_the_graph_and_matches_the_stateless_step(streaming_file):
    """Variables in, explicit states out: call for call the same int8 results."""
    from ai_edge_litert.interpreter import Interpreter

    from earmark.runtime.micro_wakeword import StreamingTFLite

    path, model, scratch = streaming_file
    stream = StreamingTFLite.load(path)
    details = stream.model.io_description()
    assert details["input"]["shape"] == [1, 3, 40] and details["input"]["dtype"] == "int8"
    # microWakeWord's input range: pymicro-wakeword quantizes without clipping.
    assert details["input"]["scale"] == pytest.approx(micro.FEATURE_MAX / 255)
    assert details["input"]["zero_point"] == -128 and details["output"]["shape"] == [1, 1]
    stateless = Interpreter(model_path=str(scratch / "step_compact.tflite"))
    runner = stateless.get_signature_runner()
    inputs = runner.get_input_details()
    names = sorted(inputs, key=lambda n: int(n.split("_")[-1]))
    states = {name: np.full(inputs[name]["shape"], inputs[name]["quantization"][1], np.int8)
              for name in names[1:]}
    features = micro.micro_features(speechlike(2.0, 7))
    for start in range(0, len(features) - 2, 3):
        frames = features[None, start:start + 3]
        scale, zero = inputs[names[0]]["quantization"]
        quantized = np.clip(np.round(frames / scale) + zero, -128, 127).astype(np.int8)
        outputs = runner(**{names[0]: quantized}, **states)
        states = {name: outputs[f"output_{name.split('_')[-1]}"] for name in names[1:]}
        ours = stream(frames[0])
        theirs = (float(outputs["output_0"].reshape(-1)[0]) + 128) / 256
        assert ours == pytest.approx(theirs, abs=1e-6)


def test_pymicro_wakeword_and_tflite_micro_run_the_file(streaming_file, tmp_path: Path):
    wakeword = pytest.importorskip("pymicro_wakeword")
    from earmark.export.micro_wakeword import manifest
    from earmark.runtime.litert_model import tensor_arena_bytes
    from earmark.runtime.micro_wakeword import StreamingTFLite

    path, _, _ = streaming_file
    arena = tensor_arena_bytes(path.read_bytes())
    if arena is not None:            # tflite-micro installed: it runs there too
        assert 1000 < arena < 200_000
    (tmp_path / path.name).write_bytes(path.read_bytes())
    config = tmp_path / "wake.json"            # one call per average: every probability
    config.write_text(json.dumps(manifest("wake", "wake", 0.5, 1, arena)))
    detector = wakeword.MicroWakeWord.from_config(config)
    samples = speechlike(3.0, 3)
    frames = list(wakeword.MicroWakeWordFeatures().process_streaming(micro.to_pcm(samples)))
    # pymicro-wakeword answers at every third frame (a call), 0.0 in between.
    theirs = [detector.process_streaming_prob(frame) for frame in frames][2::3]
    ours = StreamingTFLite.load(path)
    features = micro.micro_features(samples)
    expected = [ours(features[start:start + 3]) for start in range(0, 3 * len(theirs), 3)]
    # Two TFLite builds (theirs, LiteRT) round a few int8 steps differently.
    np.testing.assert_allclose(theirs, expected, atol=4 / 256)
    assert np.mean(np.abs(np.subtract(theirs, expected))) < 1 / 256
    assert np.std(expected) > 0.002          # the state moves the probability


@pytest.fixture(scope="module")
def micro_run(tmp_path_factory) -> Path:
    return train_pattern_run(tmp_path_factory.mktemp("micro"), {"kind": "micro"},
                             {"name": "tcn", "channels": 12, "dilations": [1, 2, 4]},
                             epochs=10, ratios=[0.6, 0.2, 0.2])


@pytest.mark.slow
def test_export_micro_writes_what_esphome_and_pymicro_wakeword_read(micro_run: Path,
                                                                    tmp_path: Path,
                                                                    monkeypatch, capsys):
    pytest.importorskip("litert_torch")
    wakeword = pytest.importorskip("pymicro_wakeword")
    from earmark.cli import main
    from earmark.export import micro_wakeword as export
    from earmark.runtime.micro_wakeword import MicroWindowModel, StreamingTFLite

    monkeypatch.setattr(export, "CALIBRATION_CALLS", 150)
    out = tmp_path / "wake-micro"
    assert main(["export", str(micro_run), "--out", str(out), "--target", "micro",
                 "--cutoff", "0.7", "-q"]) == 0
    assert "streaming int8 .tflite" in capsys.readouterr().out
    manifest = json.loads((out / "wake.json").read_text())
    assert manifest["version"] == 2 and manifest["type"] == "micro"
    assert manifest["model"] == "wake.tflite" and manifest["wake_word"] == "Wake"
    assert manifest["micro"]["probability_cutoff"] == 0.7
    assert manifest["micro"]["feature_step_size"] == 10
    described = json.loads((out / "earmark_micro.json").read_text())
    figures = described["figures"]
    assert figures["window_float"]["accuracy"] >= 0.8            # it learned the order
    # What ESPHome's micro_wake_word loads: its operators only, a uint8 probability.
    from earmark.export.esphome_ops import ESPHOME_OPERATORS, ESPHOME_VARIABLES
    from earmark.flatbuffer import operator_names, read_model

    tree, schema = read_model((out / "wake.tflite").read_bytes())
    assert operator_names(tree, schema) <= ESPHOME_OPERATORS
    assert {"VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE", "CALL_ONCE"} <= \
        operator_names(tree, schema)
    assert sum(op.builtinOptionsType == schema.BuiltinOptions.VarHandleOptions
               for op in tree.subgraphs[0].operators) <= ESPHOME_VARIABLES
    assert StreamingTFLite.load(out / "wake.tflite").model.io_description()["output"][
        "dtype"] == "uint8"
    assert figures["stream_int8"]["agreement_at_cutoff"] >= 0.9
    assert abs(figures["stream_int8"]["accuracy"] - figures["window_float"]["accuracy"]) <= 0.1
    if figures.get("tensor_arena_bytes"):
        assert manifest["micro"]["tensor_arena_size"] == figures["tensor_arena_bytes"]
    header = (out / "micro" / "earmark_model.h").read_text()
    assert "#define EARMARK_FRAMES_PER_CALL 3" in header
    compiler = shutil.which("c++")
    if compiler:                                     # ready for a TFLite-Micro project
        subprocess.run([compiler, "-std=c++17", "-c", str(out / "micro" / "earmark_model.cc"),
                        "-o", str(tmp_path / "model.o")], check=True)
    # pymicro-wakeword and earmark's runtime wake on a stream of the pattern, not on noise.
    window = MicroWindowModel.load(out)
    detector = wakeword.MicroWakeWord.from_config(out / "wake.json")
    rng = np.random.default_rng(5)
    for pattern, expected in (((500.0, 1500.0), True), (None, False)):
        stream = np.concatenate([pattern_clip(pattern, rng) for _ in range(6)])
        detector.reset()
        features = wakeword.MicroWakeWordFeatures()
        answers = [detector.process_streaming(frame)
                   for frame in features.process_streaming(micro.to_pcm(stream))]
        woke = any(answers[100:])         # ESPHome, too, ignores the first 100 frames (1 s)
        ours = window.detections(stream, cutoff=0.7)
        assert (woke, bool(ours)) == (expected, expected), pattern
    assert StreamingTFLite.load(out / "wake.tflite").latency_ms(runs=20) < 50


def test_export_micro_refuses_a_model_of_another_front_end(trained_run: Path, tmp_path: Path):
    pytest.importorskip("litert_torch")
    from earmark.export.micro_wakeword import export_micro
    from earmark.export.parity import ExportError

    with pytest.raises(ExportError, match=r"micro front-end.*logmel.*--target litert"):
        export_micro(trained_run, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_the_wake_word_class_is_found_or_asked_for():
    from earmark.export.micro_wakeword import wake_word_class

    assert wake_word_class(["view_glass", "_unknown_", "_silence_"], None) == 0
    assert wake_word_class(["yes", "no", "_unknown_"], "no") == 1
    with pytest.raises(ConfigError, match="--wake-word"):
        wake_word_class(["yes", "no", "_unknown_"], None)
    for label in ("maybe", "_unknown_"):
        with pytest.raises(ConfigError, match="not a word class"):
            wake_word_class(["yes", "no", "_unknown_"], label)


@pytest.mark.slow
def test_wakeword_target_micro_calibrates_the_manifests_cutoff(tmp_path: Path, monkeypatch,
                                                               capsys):
    pytest.importorskip("litert_torch")
    from conftest import write_noise

    from earmark.cli import main
    from earmark.export import micro_wakeword as export

    monkeypatch.setattr(export, "CALIBRATION_CALLS", 100)
    for index in range(8):
        write_noise(tmp_path / "negatives" / f"room{index}.wav", 3.0, RATE, seed=index)
    out = tmp_path / "run"
    assert main(["wakeword", "hello there", "--out", str(out), "--negatives",
                 str(tmp_path / "negatives"), "--takes", "30", "--hard-negatives", "30",
                 "--sentences", "6", "--epochs", "2", "--conversation-minutes", "1", "--target", "micro", "-q"]) == 0
    assert "microWakeWord files" in capsys.readouterr().out
    card = json.loads((out / "card.json").read_text())
    manifest = json.loads((out / "micro" / "hello_there.json").read_text())
    assert manifest["micro"]["probability_cutoff"] == round(card["threshold"], 4)
    assert json.loads((out / "micro" / "earmark_micro.json").read_text())[
        "probability_cutoff"] == card["threshold"]
    assert f"EARMARK_PROBABILITY_CUTOFF {card['threshold']!r}f" in \
        (out / "micro" / "micro" / "earmark_model.h").read_text()
    assert card["model_bytes"] == (out / "micro" / "hello_there.tflite").stat().st_size
    assert not (out / "bundle").exists()


@pytest.mark.slow
def test_a_micro_run_is_refused_by_the_graph_targets_and_footprint_reads_its_file(
        micro_run: Path, streaming_file, tmp_path: Path, capsys):
    from earmark.cli import main

    for target in ("onnx", "litert"):
        assert main(["export", str(micro_run), "--out", str(tmp_path / target), "--target",
                     target]) == 2
        assert "--target micro" in capsys.readouterr().err
        assert not (tmp_path / target).exists()
    path, _, _ = streaming_file
    assert main(["footprint", str(path), "--json", "--runs", "5"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["input"]["shape"] == [1, 3, 40] and figures["flash_bytes"] == \
        path.stat().st_size


def test_decoded_16_bit_audio_goes_back_to_its_own_samples():
    pcm = np.random.default_rng(0).integers(-32768, 32768, 16000).astype("<i2")
    assert micro.to_pcm(pcm.astype(np.float32) / 32768.0) == pcm.tobytes()
    assert micro.to_pcm(np.array([2.0, -2.0, np.nan], np.float32)) == \
        np.array([32767, -32768, 0], "<i2").tobytes()


def test_only_two_class_tcns_on_the_micro_front_end_export(tmp_path: Path):
    from types import SimpleNamespace

    from earmark.export.micro_wakeword import streamable_model
    from earmark.export.parity import ExportError

    config = SimpleNamespace(features=FeatureConfig(kind="micro"),
                             model=SimpleNamespace(name="tcn"))
    three = CausalTCN((1, 40, 98), 3, channels=8, dilations=(1, 2))
    with pytest.raises(ExportError, match="two classes"):
        streamable_model(config, SimpleNamespace(model=three))
    two = CausalTCN((1, 40, 98), 2, channels=8, dilations=(1, 2))
    assert streamable_model(config, SimpleNamespace(model=two)) is two


def test_a_damaged_export_description_is_named(tmp_path: Path):
    from earmark.runtime.micro_wakeword import MicroWindowModel, read_description

    with pytest.raises(ConfigError, match="no earmark_micro.json"):
        read_description(tmp_path)
    for text in ("{", json.dumps({"labels": ["wake", "_unknown_"], "target": 5,
                                  "window_frames": 98, "sliding_window_size": 5,
                                  "probability_cutoff": 0.9, "model": "wake.tflite"}),
                 json.dumps({"labels": ["wake"]})):
        (tmp_path / "earmark_micro.json").write_text(text)
        with pytest.raises(ConfigError, match="earmark_micro.json"):
            MicroWindowModel.load(tmp_path)
