"""The streaming engine: incremental frames agree with whole windows, any block size or rate."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import soundfile
import soxr

from conftest import TONE_RATE
from earmark.cli import main
from earmark.runtime import load_bundle
from earmark.runtime.smoother import SmootherConfig
from earmark.runtime.sources import ArraySource, FileSource, PcmSource, Recorder
from earmark.runtime.stream import StreamEngine


def tone_sequence(rate: int = TONE_RATE) -> np.ndarray:
    """Silence, a low tone, silence, a high tone, silence (noisy, like the training data)."""
    rng = np.random.default_rng(7)
    pieces = []
    for frequency, seconds in ((None, 1.0), (300, 1.0), (None, 1.5), (2000, 1.0), (None, 1.0)):
        t = np.arange(int(seconds * rate)) / rate
        signal = 0.4 * np.sin(2 * np.pi * frequency * t) if frequency else 0 * t
        pieces.append(signal + 0.05 * rng.standard_normal(len(t)))
    return np.concatenate(pieces).astype(np.float32)


def run(engine: StreamEngine, signal: np.ndarray, block_sizes) -> list:
    results, start, i = [], 0, 0
    while start < len(signal):
        size = block_sizes[i % len(block_sizes)]
        results.extend(engine.process(signal[start:start + size]))
        start += size
        i += 1
    return results


@pytest.mark.parametrize("block_sizes", [[4000], [1], [37, 512, 3, 1999], [100000]])
def test_incremental_scores_equal_the_whole_window_model(bundle, block_sizes):
    loaded = load_bundle(bundle)
    signal = tone_sequence()
    engine = StreamEngine(loaded, stride_ms=20)
    assert engine.incremental
    results = run(engine, signal, block_sizes if block_sizes != [1] else [1] * 7 + [3001])
    window = loaded.window_samples
    assert len(results) == (len(signal) - window) // engine.stride_samples + 1
    for result in results[::5]:
        end = int(round(result.time_ms * TONE_RATE / 1000))
        expected = loaded.predict_proba(signal[end - window:end][None, :])[0]
        np.testing.assert_allclose(result.scores, expected, atol=1e-5)


def test_incremental_and_recomputing_engines_agree_at_another_input_rate(bundle):
    loaded = load_bundle(bundle)
    signal_16k = soxr.resample(tone_sequence(), TONE_RATE, 16000).astype(np.float32)
    # 32 ms = two front-end hops: both engines can stride exactly the same.
    fast = run(StreamEngine(loaded, stride_ms=32, input_rate=16000), signal_16k, [333, 4096])
    slow = run(StreamEngine(loaded, stride_ms=32, input_rate=16000, incremental=False),
               signal_16k, [1000])
    assert len(fast) == len(slow) > 0
    np.testing.assert_allclose(np.stack([r.scores for r in fast]),
                               np.stack([r.scores for r in slow]), atol=1e-5)


def test_each_tone_is_reported_once_at_the_right_time(bundle):
    loaded = load_bundle(bundle)
    engine = StreamEngine(loaded, smoother=SmootherConfig())
    detections = [r.detection for r in run(engine, tone_sequence(), [800]) if r.detection]
    labels = [d.label for d in detections]
    assert labels == ["low", "high"]
    low, high = detections
    assert 1000 < low.time_ms < 2600 and 3500 < high.time_ms < 5100


def test_listeners_get_every_block_and_every_result(bundle):
    loaded = load_bundle(bundle)
    signal = tone_sequence()
    microphone = ArraySource((signal[i:i + 700] for i in range(0, len(signal), 700)), TONE_RATE)
    recorder = Recorder(microphone)
    seen_blocks, seen_results = [], []
    recorder.add_listener(lambda block: seen_blocks.append(len(block)))
    engine = StreamEngine(loaded)
    engine.add_listener(seen_results.append)
    iterated = list(engine.run(recorder))
    assert sum(seen_blocks) == len(signal)
    assert len(seen_results) == len(iterated) > 0


def test_file_and_pcm_sources_give_the_same_samples(tmp_path):
    signal = tone_sequence()
    path = tmp_path / "stream.wav"
    soundfile.write(path, signal, TONE_RATE, subtype="PCM_16")
    from_file = np.concatenate(list(FileSource(path, block_ms=30).blocks()))
    pcm = (np.clip(signal, -1, 1) * 32767).astype("<i2")
    stereo = np.repeat(pcm[:, None], 2, axis=1).tobytes()
    from_pcm = np.concatenate(list(PcmSource(TONE_RATE, "s16le", channels=2, block_ms=13,
                                             stream=io.BytesIO(stereo)).blocks()))
    np.testing.assert_allclose(from_file, from_pcm, atol=1e-4)


def test_truncated_pcm_frame_is_an_error():
    from earmark.errors import AudioError
    source = PcmSource(8000, "s16le", channels=2, stream=io.BytesIO(b"\x01\x02\x03"))
    with pytest.raises(AudioError, match="ended inside a frame"):
        list(source.blocks())


def test_listen_command_prints_json_detections(bundle, tmp_path, capsys):
    path = tmp_path / "stream.wav"
    soundfile.write(path, tone_sequence(), TONE_RATE)
    assert main(["listen", str(bundle), "--file", str(path), "--json"]) == 0
    captured = capsys.readouterr()
    lines = [json.loads(line) for line in captured.out.splitlines()]
    assert [line["label"] for line in lines] == ["low", "high"]
    assert all(0.5 <= line["score"] <= 1.0 for line in lines)
    assert "listening (" not in captured.err               # no banner with --json
    assert "2 command(s): low x1, high x1" in captured.err


def test_listen_in_longer_blocks_hears_the_same_commands(bundle, tmp_path, capsys):
    path = tmp_path / "stream.wav"
    soundfile.write(path, tone_sequence(), TONE_RATE)
    heard = {}
    for block_ms in ("20", "700"):
        assert main(["listen", str(bundle), "--file", str(path), "--json",
                     "--block-ms", block_ms]) == 0
        heard[block_ms] = [(line["label"], line["time"])
                           for line in map(json.loads, capsys.readouterr().out.splitlines())]
    assert [label for label, _ in heard["20"]] == ["low", "high"]
    assert heard["700"] == heard["20"]          # the same strides, handed over later


def test_listen_command_prints_text_detections(bundle, tmp_path, capsys):
    path = tmp_path / "stream.wav"
    soundfile.write(path, tone_sequence(), TONE_RATE)
    assert main(["listen", str(bundle), "--file", str(path)]) == 0
    captured = capsys.readouterr()
    assert [line.split()[2] for line in captured.out.splitlines()] == ["low", "high"]
    assert captured.err.startswith(f"listening ({TONE_RATE} Hz model, input {TONE_RATE} Hz, "
                                   "stride 16 ms, threshold ")


class FakeSoundDevice:
    """Stands in for the sounddevice module: an 'input device' that plays a signal."""

    def __init__(self, signal: np.ndarray, rate: int):
        self.signal, self.rate, self.opened = signal, rate, []

    def query_devices(self, device=None, kind=None):
        if kind == "input":
            return {"name": "fake mic", "default_samplerate": self.rate,
                    "max_input_channels": 2}
        return [{"name": "fake mic", "default_samplerate": self.rate, "max_input_channels": 2}]

    def InputStream(self, samplerate, device, channels, dtype, blocksize):  # noqa: N802
        fake = self
        fake.opened.append((samplerate, channels, blocksize))

        class Stream:
            position = 0

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return False

            def read(self, frames):
                if self.position >= len(fake.signal):
                    raise KeyboardInterrupt          # the user presses Ctrl-C
                chunk = fake.signal[self.position:self.position + frames]
                self.position += frames
                return np.repeat(chunk[:, None], channels, axis=1), False

        return Stream()


def test_microphone_path_with_a_stand_in_device(bundle, monkeypatch, capsys):
    import sys
    from earmark.runtime.listen import format_detection, listen
    from earmark.runtime.sources import MicrophoneSource
    rate = 16000                                        # the 'mic' runs at another rate
    signal = soxr.resample(tone_sequence(), TONE_RATE, rate).astype(np.float32)
    fake = FakeSoundDevice(signal, rate)
    monkeypatch.setitem(sys.modules, "sounddevice", fake)
    source = MicrophoneSource(channels=2)
    assert source.sample_rate == rate
    engine = StreamEngine(load_bundle(bundle), input_rate=source.sample_rate,
                          smoother=SmootherConfig())
    lines = []
    summary = listen(engine, source,
                     lambda detection: lines.append(json.loads(format_detection(detection, True))))
    assert [line["label"] for line in lines] == ["low", "high"]
    assert summary.counts == {"low": 1, "high": 1}
    assert summary.to_text().endswith("2 command(s): low x1, high x1")
    assert capsys.readouterr().out == ""                # the library prints nothing
    assert fake.opened == [(rate, 2, 800)]


def test_missing_portaudio_says_how_to_install_it(monkeypatch):
    import sys
    from earmark.errors import EarmarkError
    from earmark.runtime.sources import MicrophoneSource
    monkeypatch.setitem(sys.modules, "sounddevice", None)
    with pytest.raises(EarmarkError, match="apt-get install libportaudio2"):
        MicrophoneSource()


# ------------------------------------------------- a network stepped one frame at a time

@pytest.fixture(scope="module", params=["mean", "flatten"])
def stepped_bundle(tmp_path_factory, request):
    """A valid-padded DS-CNN on tones (mean or positional pooling), exported with its step."""
    from conftest import tone_config, write_tone_dataset
    from earmark.config import to_dict, from_dict
    from earmark.export import export_run
    from earmark.train import train

    base = tmp_path_factory.mktemp("stepped")
    raw = to_dict(tone_config(write_tone_dataset(base / "tones"), base / "cache", epochs=4))
    raw["model"]["time_padding"] = "valid"
    raw["model"]["time_pooling"] = request.param
    train(from_dict(raw), base / "run", progress=False)
    export_run(base / "run", base / "bundle", progress=False)
    return base / "bundle"


def test_the_export_carries_a_network_step(stepped_bundle):
    bundle = load_bundle(stepped_bundle)
    network = bundle.metadata.stream.network
    assert (stepped_bundle / "stream" / "step.onnx").is_file()
    assert network.columns >= 1
    assert set(network.states) == {"recent", "histories", "columns"}
    # The step carries the front-end tables as formulas, not numbers: it stays small.
    assert (stepped_bundle / "stream" / "step.onnx").stat().st_size < 2 * (
        stepped_bundle / "model.onnx").stat().st_size


@pytest.mark.parametrize("blocks, stride_ms", [([997], 16.0), ([128, 3, 4001], 32.0)])
def test_stepped_network_scores_equal_the_whole_window_model(stepped_bundle, blocks, stride_ms):
    bundle = load_bundle(stepped_bundle)
    signal = tone_sequence()
    stepped_engine = StreamEngine(bundle, stride_ms=stride_ms)
    whole_engine = StreamEngine(bundle, stride_ms=stride_ms, stepped_network=False)
    assert stepped_engine.network_stepped and not whole_engine.network_stepped
    stepped = run(stepped_engine, signal, blocks)
    whole = run(whole_engine, signal, [4000])
    assert len(stepped) == len(whole) > 100
    np.testing.assert_allclose([r.scores for r in stepped], [r.scores for r in whole],
                               atol=2e-5)
    window = bundle.window_samples
    ends = [round(r.time_ms * TONE_RATE / 1000) for r in stepped[::25]]
    direct = bundle.predict_proba(np.stack([signal[end - window:end] for end in ends]))
    np.testing.assert_allclose([r.scores for r in stepped[::25]], direct, atol=2e-5)
