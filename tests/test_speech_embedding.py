"""The pretrained speech embedding (features.kind = "embedding"): the graphs as openWakeWord
computes them, each frame from its own samples, a model on top trained, exported, streamed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from earmark.config import FeatureConfig
from earmark.errors import AudioError, ConfigError
from earmark.export.embedding_graph import features_graph
from earmark.frontend import sliding_embedding as sliding
from earmark.frontend import speech_embedding as embedding
from earmark.frontend.embedding_module import EmbeddingFrontEnd

from conftest import train_pattern_run

RATE = 16000


def voiced(seconds: float, seed: int, level: float = 0.1) -> np.ndarray:
    """Noise with harmonic bursts: a spectrum that moves, as speech does."""
    rng = np.random.default_rng(seed)
    samples = 0.01 * rng.standard_normal(int(seconds * RATE))
    t = np.arange(3000) / RATE
    for _ in range(int(seconds * 5)):
        start = int(rng.integers(0, len(samples) - 3000))
        pitch = rng.uniform(90, 250)
        samples[start:start + 3000] += sum(np.sin(2 * np.pi * k * pitch * t) / k
                                           for k in range(1, 8)) * 0.2
    return (level * samples / np.abs(samples).max()).astype(np.float32)


@pytest.fixture(scope="module")
def speech_embedding() -> sliding.SpeechEmbedding:
    return sliding.SpeechEmbedding(threads=1)


def test_the_shipped_graphs_are_checked(tmp_path, monkeypatch):
    assert set(embedding.model_files()) == {"mel", "embedding"}
    damaged = tmp_path / "pretrained"
    damaged.mkdir()
    for file, _ in embedding.FILES.values():
        (damaged / file).write_bytes(b"not onnx")
    monkeypatch.setattr(embedding.resources, "files", lambda package: tmp_path)
    embedding.model_files.cache_clear()
    try:
        with pytest.raises(ConfigError, match="damaged.*reinstall earmark"):
            embedding.model_files()
    finally:
        embedding.model_files.cache_clear()


def test_the_geometry_counts_frames_and_columns():
    assert embedding.mel_frame_count(511) == 0 and embedding.mel_frame_count(512) == 1
    assert embedding.embedding_count(embedding.WINDOW_SAMPLES - 1) == 0
    assert embedding.embedding_count(embedding.WINDOW_SAMPLES) == 1
    assert embedding.embedding_count(embedding.WINDOW_SAMPLES + 3 * 1280) == 4
    assert embedding.embedding_count(RATE * 2) == 16        # openWakeWord's 16 columns


def test_the_embedding_is_openwakewords(speech_embedding):
    pytest.importorskip("openwakeword")
    from openwakeword.utils import AudioFeatures

    clip = voiced(2.0, seed=1)
    ours = speech_embedding(clip[None])[0]
    theirs = AudioFeatures(inference_framework="onnx").embed_clips(
        (clip * 32767).astype(np.int16)[None], batch_size=1)[0]
    assert ours.shape == theirs.shape == (16, 96)
    # 16-bit rounding of their input is the only difference where no floor binds.
    assert np.abs(ours - theirs).max() < 0.02 * np.abs(theirs).max()


def test_each_frame_depends_on_its_own_samples_only(speech_embedding):
    quiet, loud = voiced(1.5, seed=2, level=0.001), voiced(1.5, seed=3, level=0.9)
    quiet[:4000] = 0.0                                       # digital silence: at the floor
    alone = speech_embedding.mel(quiet[None])
    batched = speech_embedding.mel(np.stack([loud, quiet]))
    np.testing.assert_array_equal(batched[1], alone[0])
    assert alone.min() == pytest.approx(embedding.FLOOR_DB / 10 + 2)
    part = speech_embedding.mel(quiet[None, 1600:1600 + embedding.WINDOW_SAMPLES])
    np.testing.assert_allclose(part[0], alone[0, 10:10 + 76], atol=1e-5)


def test_a_batch_is_embedded_in_bounded_chunks_with_the_same_columns(speech_embedding,
                                                                      monkeypatch):
    clips = np.stack([voiced(1.5, seed=s, level=0.3) for s in range(3)])   # 3 x 9 columns
    whole = speech_embedding(clips)
    calls = []
    real_run = speech_embedding._embedding.run

    class Counting:
        def run(self, names, feeds):
            calls.append(len(next(iter(feeds.values()))))
            return real_run(names, feeds)

    frames = embedding.mel_frame_count(clips.shape[1])
    monkeypatch.setattr(sliding, "EMBED_CHUNK_FRAMES", 2 * frames)
    monkeypatch.setattr(speech_embedding, "_embedding", Counting())
    chunked = speech_embedding(clips)
    assert calls == [2, 1]                                  # clips per call
    np.testing.assert_allclose(chunked, whole, atol=1e-5)


def test_the_bundle_graph_computes_the_same_columns(speech_embedding):
    session = onnxruntime.InferenceSession(features_graph().SerializeToString(),
                                           providers=["CPUExecutionProvider"])
    clips = np.stack([voiced(2.0, seed=4), voiced(2.0, seed=5, level=0.01)])
    exported = session.run(None, {"waveform": clips})[0]
    assert exported.shape == (2, 96, 16)
    np.testing.assert_allclose(exported, speech_embedding(clips).transpose(0, 2, 1), atol=1e-4)
    # A stream's frames: one column per 1,280 samples after the first window.
    long = voiced(4.0, seed=6)[None, :embedding.WINDOW_SAMPLES + 20 * 1280]
    assert session.run(None, {"waveform": long})[0].shape == (1, 96, 21)


def test_the_front_end_module_and_what_it_refuses():
    frontend = EmbeddingFrontEnd(FeatureConfig(kind="embedding"), RATE)
    assert frontend.output_shape(RATE * 2) == (1, 96, 16)
    features = frontend(torch.from_numpy(np.stack([voiced(1.2, 7), voiced(1.2, 8)])))
    assert features.shape == (2, 1, 96, embedding.embedding_count(int(1.2 * RATE)))
    with pytest.raises(ConfigError, match="sample_rate = 16000"):
        EmbeddingFrontEnd(FeatureConfig(kind="embedding"), 8000)
    with pytest.raises(ConfigError, match="deltas"):
        EmbeddingFrontEnd(FeatureConfig(kind="embedding", deltas=1), RATE)
    with pytest.raises(ConfigError, match="takes no n_mels, fmax"):
        EmbeddingFrontEnd(FeatureConfig(kind="embedding", n_mels=32, fmax=3800.0), RATE)
    with pytest.raises(AudioError, match="NaN"):
        frontend(torch.full((1, RATE), float("nan")))
    with pytest.raises(ConfigError, match="clip_seconds"):
        frontend.output_shape(RATE // 2)
    with pytest.raises(ConfigError, match="frequency_warp"):
        frontend(torch.zeros(1, RATE * 2), frequency_scale=torch.ones(1))


def assert_streams_as_it_judges_windows(bundle, stride_ms: int) -> None:
    """Every stride's scores, the front-end stepped or not, in blocks of 1/13 of the audio,
    of 20 ms and of all of it, are the bundle's scores of the window ending there."""
    from earmark.runtime.stream import StreamEngine

    audio, window = voiced(4.0, seed=9), bundle.window_samples
    for stepped in (True, False):
        engine = StreamEngine(bundle, stride_ms=stride_ms, stepped_frames=stepped)
        assert engine.incremental and engine.frames_stepped == stepped
        results = [r for block in np.array_split(audio, 13) for r in engine.process(block)]
        ends = [round(r.time_ms * RATE / 1000) for r in results]
        whole = bundle.predict_proba(np.stack([audio[end - window:end] for end in ends]))
        np.testing.assert_allclose(np.stack([r.scores for r in results]), whole, atol=1e-4)
    # in blocks of 20 ms (several calls a column) and of 4 s (many columns a call)
    for blocks in (len(audio) // 320, 1):
        engine = StreamEngine(bundle, stride_ms=stride_ms)
        scores = [r.scores for block in np.array_split(audio, blocks)
                  for r in engine.process(block)]
        np.testing.assert_allclose(np.stack(scores), whole, atol=1e-4)


def test_the_first_blocks_as_a_front_end(speech_embedding):
    config = FeatureConfig(kind="embedding", embedding_blocks=2)
    frontend = EmbeddingFrontEnd(config, RATE)
    assert frontend.output_shape(int(1.5 * RATE)) == (1, 384, 67)   # 48 x 8 every 20 ms
    assert (frontend.window_length, frontend.hop_length) == (512 + 13 * 160, 320)
    clips = np.stack([voiced(1.2, 7), voiced(1.2, 8)])
    features = frontend(torch.from_numpy(clips))
    expected = sliding.SpeechEmbedding(threads=1, blocks=2)(clips).transpose(0, 2, 1)
    np.testing.assert_allclose(features[:, 0].numpy(), expected, atol=1e-5)
    whole = speech_embedding(clips)          # the whole embedding: 96 numbers a column
    assert whole.shape[2] == 96 and features.shape[2] == 384
    with pytest.raises(ConfigError, match="blocks 1 to 5"):
        EmbeddingFrontEnd(FeatureConfig(kind="embedding", embedding_blocks=6), RATE)


@pytest.mark.slow
def test_a_run_on_the_first_blocks_exports_and_streams(tmp_path: Path):
    from earmark.export import export_run
    from earmark.runtime import load_bundle

    run = train_pattern_run(tmp_path / "run", {"kind": "embedding", "embedding_blocks": 2},
                            {"name": "column_cnn", "width": 8, "blocks": 1},
                            epochs=3, ratios=[0.5, 0.25, 0.25], speakers=6, takes=3)
    export_run(run, tmp_path / "bundle")
    record = json.loads((tmp_path / "bundle" / "earmark.json").read_text())
    assert record["features"]["embedding_blocks"] == 2
    assert record["parity"]["max_abs_diff"] < 1e-4
    stream = record["stream"]
    assert (stream["frames_per_window"], stream["frame_hop_samples"],
            stream["frame_samples"]) == (embedding.depth(2).count(RATE), 320, 512 + 13 * 160)
    assert len(stream["frames_step"]["states"]) == 4        # its time convolutions
    # the first two blocks cost less than the whole embedding, the mel the same
    assert sliding.macs(RATE, 2) < 0.8 * sliding.macs(RATE)
    assert_streams_as_it_judges_windows(load_bundle(tmp_path / "bundle", threads=1),
                                        stride_ms=40)


@pytest.fixture(scope="module")
def embedding_run(tmp_path_factory) -> Path:
    return train_pattern_run(tmp_path_factory.mktemp("embedding"), {"kind": "embedding"},
                             {"name": "embedding_mlp", "hidden": 16, "column_width": 8},
                             epochs=4, ratios=[0.5, 0.25, 0.25], speakers=6, takes=3)


@pytest.mark.slow
def test_a_run_exports_to_a_bundle_that_streams_as_it_judges_windows(embedding_run: Path,
                                                                     tmp_path: Path):
    from earmark.export import export_run
    from earmark.runtime import load_bundle
    from earmark.runtime.stream import StreamEngine

    export_run(embedding_run, tmp_path / "bundle")
    record = json.loads((tmp_path / "bundle" / "earmark.json").read_text())
    assert record["features"]["kind"] == "embedding"
    assert record["parity"]["max_abs_diff"] < 1e-4
    # the slid embedding's convolutions count: 42 million for the first column, under
    # 6 million for each later one (3 columns a second)
    assert record["macs_per_window"] == pytest.approx(sliding.macs(RATE), rel=0.05)
    assert 42e6 + 2 * 5e6 < sliding.macs(RATE) < 42e6 + 2 * 6e6 + 3e7
    stream = record["stream"]
    assert {key: stream[key] for key in ("frames_per_window", "frame_hop_samples",
                                         "frame_samples", "incremental")} == {
        "frames_per_window": 3, "frame_hop_samples": 1280,
        "frame_samples": embedding.WINDOW_SAMPLES, "incremental": True}
    assert stream["frames_step"]["context_samples"] == 512 - 160
    assert len(stream["frames_step"]["states"]) == 11       # one per time convolution
    # what a person hears of it: the embedding's mel stage (32 bands, 60-3,800 Hz)
    from earmark.runtime.hear import bundle_front_end

    heard, rate = bundle_front_end(tmp_path / "bundle")
    assert (heard.kind, heard.n_mels, heard.fmax, rate) == ("logmel", 32, 3800.0, RATE)
    bundle = load_bundle(tmp_path / "bundle", threads=1)
    assert_streams_as_it_judges_windows(bundle, stride_ms=80)
    # a step that is another graph (here the window's) is refused, naming file and field
    import shutil

    from earmark.errors import DataError

    step = tmp_path / "bundle" / "stream" / "frames_step.onnx"
    shutil.copy(tmp_path / "bundle" / "stream" / "window.onnx", step)
    with pytest.raises(DataError, match=r"frames_step\.onnx does not belong .*"
                                        r"'stream\.files_sha256'"):
        StreamEngine(load_bundle(tmp_path / "bundle"), stride_ms=80)
    # exported before stream graphs were hashed: their shapes still give it away
    metadata_path = tmp_path / "bundle" / "earmark.json"
    metadata = json.loads(metadata_path.read_text())
    del metadata["stream"]["files_sha256"]
    metadata_path.write_text(json.dumps(metadata))
    with pytest.raises(DataError, match=r"frames_step\.onnx: takes .*'stream\.frames_step'"):
        StreamEngine(load_bundle(tmp_path / "bundle"), stride_ms=80)


@pytest.mark.slow
def test_a_run_on_the_int8_embedding_trains_and_deploys_on_the_same_columns(tmp_path: Path):
    from earmark.export import export_run
    from earmark.frontend.embedding_int8 import DESCRIPTION
    from earmark.runtime import load_bundle

    run = train_pattern_run(tmp_path / "run", {"kind": "embedding", "embedding_int8": True},
                            {"name": "embedding_mlp", "hidden": 16, "column_width": 8},
                            epochs=2, ratios=[0.5, 0.25, 0.25], speakers=6, takes=3)
    export_run(run, tmp_path / "bundle")
    record = json.loads((tmp_path / "bundle" / "earmark.json").read_text())
    assert record["features"]["embedding_int8"] is True
    assert record["quantization"] == DESCRIPTION
    assert list(record["export_quality"]) == ["embedding_int8"]
    # the bundle computes the columns the model trained on: parity with the torch model
    assert record["parity"]["max_abs_diff"] < 1e-4
    for graph in ("model.onnx", "stream/frames.onnx", "stream/frames_step.onnx"):
        kinds = [n.op_type for n in onnx.load(str(tmp_path / "bundle" / graph)).graph.node]
        assert kinds.count("QLinearConv") == 19, graph
    assert_streams_as_it_judges_windows(load_bundle(tmp_path / "bundle", threads=1),
                                        stride_ms=80)


@pytest.mark.slow
def test_int8_and_litert_are_refused_for_the_pretrained_embedding(embedding_run: Path,
                                                                  tmp_path: Path):
    from earmark.export import export_run
    from earmark.export.parity import ExportError

    with pytest.raises(ExportError, match="leave out --int8 .* features.embedding_int8 = true"):
        export_run(embedding_run, tmp_path / "bundle", int8=True)
    pytest.importorskip("litert_torch")
    from earmark.export.litert import export_litert

    with pytest.raises(ExportError, match="--target onnx"):
        export_litert(embedding_run, tmp_path / "bundle")
    assert not (tmp_path / "bundle").exists()
