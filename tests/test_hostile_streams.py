"""Live streams given hostile or careless input: absurd rates and channel counts, bursts of
audio, smoother settings out of range, damaged stream graphs, oversized websocket frames.

Each is refused early, with a message that names the option, field or file, or is taken
in bounded pieces, so no input makes ``listen`` or ``serve`` eat the machine.
"""

from __future__ import annotations

import io
import json
import shutil
import struct
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile

from earmark.cli import main
from earmark.errors import ConfigError, DataError
from earmark.runtime import load_bundle
from earmark.runtime.smoother import SmootherConfig
from earmark.runtime.sources import MicrophoneSource, PcmSource
from earmark.runtime.stream import MAX_STRIDES_PER_CALL, StreamEngine, StreamGraphs

#: A small streamable tone model (valid-padded DS-CNN with a network step, 8 kHz).
BUNDLE_V1 = Path(__file__).parent / "fixtures" / "bundle_v1"
RATE = 8000
FREQUENCIES = (300.0, 900.0, 2000.0)


def tone_stream(seconds: float, rate: int, seed: int = 0) -> np.ndarray:
    """2 s of noise, then 1 s of a tone over noise, in turn through the classes' tones."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    frequency = np.array(FREQUENCIES)[(t // 3).astype(int) % len(FREQUENCIES)]
    tone = np.where(t % 3 >= 2, 0.4 * np.sin(2 * np.pi * frequency * t), 0.0)
    return (tone + 0.05 * rng.standard_normal(len(t))).astype(np.float32)


@pytest.fixture
def stdin(monkeypatch):
    """Standard input holding 1 s of random 16-bit PCM; ``.buffer.tell()`` says what was read."""
    fake = io.TextIOWrapper(io.BytesIO(np.random.default_rng(1).bytes(2 * RATE)))
    monkeypatch.setattr(sys, "stdin", fake)
    return fake


# ------------------------------------------------------------ rates and channels

@pytest.mark.parametrize("option, value", [("--rate", "1"), ("--rate", "16"), ("--rate", "0"),
                                           ("--rate", "-16000"), ("--channels", "0"),
                                           ("--channels", "-1"), ("--channels", "65"),
                                           ("--block-ms", "0"), ("--block-ms", "nan"),
                                           ("--block-ms", "20000")])
def test_listen_refuses_absurd_rates_and_channels_before_reading(stdin, capsys, option, value):
    code = main(["listen", str(BUNDLE_V1), "--stdin", option, value])
    err = capsys.readouterr().err
    assert code == 2
    assert f"earmark: error: {option}" in err and value in err
    assert "Traceback" not in err
    assert stdin.buffer.tell() == 0                       # refused before any audio was read


@pytest.mark.parametrize("option, value", [("--stride-ms", "0"), ("--stride-ms", "-20"),
                                           ("--threshold", "2"), ("--threshold", "nan"),
                                           ("--window-ms", "0"), ("--min-count", "0"),
                                           ("--suppression-ms", "-1")])
def test_listen_refuses_smoothing_options_out_of_range(stdin, capsys, option, value):
    assert main(["listen", str(BUNDLE_V1), "--stdin", option, value]) == 2
    assert f"earmark: error: {option}" in capsys.readouterr().err
    assert stdin.buffer.tell() == 0


@pytest.mark.parametrize("option, value", [("--stride-ms", "0"), ("--threshold", "2")])
def test_serve_refuses_to_start_on_a_bad_smoothing_option(monkeypatch, capsys, option, value):
    import uvicorn

    def never(*args, **kwargs):
        raise AssertionError("the server started")

    monkeypatch.setattr(uvicorn, "run", never)
    assert main(["serve", str(BUNDLE_V1), option, value]) == 2
    assert f"earmark: error: {option}" in capsys.readouterr().err


@pytest.mark.parametrize("option, value", [("--minutes", "0"), ("--minutes", "1e9"),
                                           ("--noise-volume", "-1"), ("--threshold", "2"),
                                           ("--stride-ms", "0")])
def test_stream_test_refuses_bad_numbers_before_building_streams(tmp_path, capsys, option, value):
    out = tmp_path / "out"
    assert main(["stream-test", str(BUNDLE_V1), "--run", str(tmp_path / "no-run"),
                 "--out", str(out), option, value]) == 2
    assert f"earmark: error: {option}" in capsys.readouterr().err
    assert not out.exists()


def test_the_new_checks_of_input_limits():
    from earmark.input_limits import check_fraction, check_non_negative, check_stride_ms

    assert check_fraction(0, "--threshold") == 0.0 and check_fraction("1", "--threshold") == 1.0
    assert check_non_negative(0, "--suppression-ms") == 0.0
    assert check_stride_ms("20", "--stride-ms") == 20.0
    for check, bad in ((check_fraction, 1.01), (check_fraction, -0.1), (check_non_negative, -1),
                       (check_non_negative, float("inf")), (check_stride_ms, 0),
                       (check_stride_ms, 60_001)):
        with pytest.raises(ConfigError, match="--option"):
            check(bad, "--option")


def test_listen_with_a_good_rate_still_runs(stdin, capsys):
    assert main(["listen", str(BUNDLE_V1), "--stdin", "--rate", "16000", "--json"]) == 0
    assert "heard 0.5 s of audio" in capsys.readouterr().err   # 1 s of bytes = 0.5 s at 16 kHz


def test_a_wav_whose_header_says_1_hz_is_refused(tmp_path, capsys):
    path = tmp_path / "one_hertz.wav"
    soundfile.write(path, tone_stream(2.0, RATE), RATE, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    assert data[24:28] == struct.pack("<I", RATE)        # the fmt chunk's rate and byte rate
    data[24:32] = struct.pack("<II", 1, 2)
    path.write_bytes(bytes(data))
    assert main(["listen", str(BUNDLE_V1), "--file", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "1 Hz" in err and "Traceback" not in err


def test_sources_and_engine_check_rates_and_channels_themselves(monkeypatch):
    with pytest.raises(ConfigError, match="PCM stream's sample rate"):
        PcmSource(1, stream=io.BytesIO(b""))
    with pytest.raises(ConfigError, match="PCM stream's channels"):
        PcmSource(RATE, channels=0, stream=io.BytesIO(b""))
    with pytest.raises(ConfigError, match="input_rate"):
        StreamEngine(load_bundle(BUNDLE_V1), input_rate=0)
    # The microphone's numbers are checked before the device (or PortAudio) is touched.
    monkeypatch.setitem(sys.modules, "sounddevice", None)
    with pytest.raises(ConfigError, match="microphone's sample rate"):
        MicrophoneSource(sample_rate=-16000)
    with pytest.raises(ConfigError, match="microphone's channels"):
        MicrophoneSource(channels=-1)


def test_smoother_and_stride_out_of_range_are_refused():
    with pytest.raises(ConfigError, match="detection_threshold"):
        SmootherConfig(detection_threshold=2)
    with pytest.raises(ConfigError, match="average_window_ms"):
        SmootherConfig(average_window_ms=1e12)       # its results would be kept for ever
    with pytest.raises(ConfigError, match="suppression_ms"):
        SmootherConfig(suppression_ms=-1)
    bundle = load_bundle(BUNDLE_V1)
    for stride in (0, -20, float("nan"), 1e9):
        with pytest.raises(ConfigError, match="stride_ms"):
            StreamEngine(bundle, stride_ms=stride)
    assert SmootherConfig(detection_threshold=0.0).detection_threshold == 0.0   # sweeps start at 0


# ------------------------------------------------------------ bursts

class CountingSession:
    """Stands in for an onnxruntime session: records the batch of every call."""

    def __init__(self, session, axis: int):
        self.session, self.axis, self.sizes = session, axis, []

    def get_inputs(self):
        return self.session.get_inputs()

    def run(self, outputs, feed):
        self.sizes.append(next(iter(feed.values())).shape[self.axis])
        return self.session.run(outputs, feed)


@pytest.mark.parametrize("stepped", [True, False])
def test_a_minute_in_one_block_takes_bounded_calls_and_memory(stepped):
    bundle = load_bundle(BUNDLE_V1)
    signal = tone_stream(60.0, 16000)                    # resampled to the model's 8 kHz
    graphs = StreamGraphs(bundle)
    session = "step_session" if stepped else "window_session"
    counter = CountingSession(getattr(graphs, session), axis=1 if stepped else 0)
    setattr(graphs, session, counter)
    engine = StreamEngine(bundle, input_rate=16000, graphs=graphs, stepped_network=stepped)
    assert engine.network_stepped == stepped
    tracemalloc.start()
    try:
        burst = engine.process(signal) + engine.finish()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # One call used to take the whole minute (3750 frames, 7-12 MiB traced); now slices.
    assert peak < 4 * 2 ** 20, f"{peak / 2 ** 20:.1f} MiB traced"
    per_call = (engine.slice_samples // engine.frame_hop + 2 if stepped
                else MAX_STRIDES_PER_CALL + 1)
    assert len(counter.sizes) > 5 and max(counter.sizes) <= per_call
    small = StreamEngine(bundle, input_rate=16000, stepped_network=stepped)
    blocks = [r for start in range(0, len(signal), 1600)
              for r in small.process(signal[start:start + 1600])] + small.finish()
    assert [r.time_ms for r in burst] == [r.time_ms for r in blocks]
    assert len(burst) > 3000
    np.testing.assert_allclose([r.scores for r in burst], [r.scores for r in blocks], atol=1e-5)
    heard = [(r.detection.label, r.time_ms) for r in burst if r.detection]
    assert heard == [(r.detection.label, r.time_ms) for r in blocks if r.detection]
    assert len(heard) >= 10 and {"low", "mid"} <= {label for label, _ in heard}


def test_the_whole_window_engine_slices_a_burst_too():
    bundle = load_bundle(BUNDLE_V1)
    signal = tone_stream(20.0, RATE)
    engine = StreamEngine(bundle, incremental=False)
    tracemalloc.start()
    try:
        burst = engine.process(signal)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # Before: every window of the block stacked at once (20 MiB for these 20 s).
    assert peak < 8 * 2 ** 20, f"{peak / 2 ** 20:.1f} MiB traced"
    small = StreamEngine(bundle, incremental=False)
    blocks = [r for start in range(0, len(signal), 800)
              for r in small.process(signal[start:start + 800])]
    assert len(burst) == len(blocks) > 1000
    np.testing.assert_allclose([r.scores for r in burst], [r.scores for r in blocks], atol=1e-6)


# ------------------------------------------------------------ damaged stream graphs

@pytest.mark.parametrize("graph", ["frames", "window", "step"])
@pytest.mark.parametrize("damage", ["garbage", "another graph"])
def test_a_damaged_stream_graph_is_a_data_error_naming_it(tmp_path, graph, damage):
    bundle_path = tmp_path / "bundle"
    shutil.copytree(BUNDLE_V1, bundle_path)
    victim = bundle_path / "stream" / f"{graph}.onnx"
    if damage == "garbage":
        victim.write_bytes(np.random.default_rng(2).bytes(3000))
    else:                                      # a loadable ONNX model, but not this graph
        shutil.copy(bundle_path / "model.onnx", victim)
    bundle = load_bundle(bundle_path)
    with pytest.raises(DataError) as refused:
        StreamEngine(bundle)
    assert str(victim) in str(refused.value) and "re-export" in str(refused.value)


def test_listen_and_serve_report_a_damaged_stream_graph(tmp_path, stdin, capsys):
    pytest.importorskip("fastapi")
    from earmark.serve import create_app

    bundle_path = tmp_path / "bundle"
    shutil.copytree(BUNDLE_V1, bundle_path)
    victim = bundle_path / "stream" / "window.onnx"
    victim.write_bytes(b"\x08\x07not an onnx graph")
    assert main(["listen", str(bundle_path), "--stdin"]) == 2
    err = capsys.readouterr().err
    assert str(victim) in err and "re-export" in err and "Traceback" not in err
    with pytest.raises(DataError, match="window.onnx"):
        create_app(bundle_path)


# ------------------------------------------------------------ the websocket

@pytest.fixture(scope="module")
def client():
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from earmark.serve import create_app
    return TestClient(create_app(BUNDLE_V1))


@pytest.mark.parametrize("rate", ["1", "0", "-16000", "16000.5", "nan", "1e9"])
def test_the_stream_refuses_absurd_rates(client, rate):
    from starlette.websockets import WebSocketDisconnect

    with client.websocket_connect(f"/stream?rate={rate}") as ws:
        error = ws.receive_json()
        assert error["type"] == "error" and "the rate query parameter" in error["error"]
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
        assert closed.value.code == 1008


def test_oversized_frames_get_1009_with_a_reason_and_the_server_goes_on():
    pytest.importorskip("fastapi")
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    from earmark.serve import ServeLimits, create_app
    from earmark.serve.streaming import websocket_max_size
    from live_server import LiveServer

    limits = ServeLimits()
    most = websocket_max_size(limits)
    # As `earmark serve` runs it: uvicorn refuses what no stream may send.
    with LiveServer(create_app(BUNDLE_V1, limits), ws_max_size=most) as server:
        url = f"ws://127.0.0.1:{server.port}/stream?rate={RATE}"
        for size, words in ((most // 2, "larger than"), (17 * 2 ** 20, "exceeds limit")):
            with connect(url, max_size=None) as ws:
                assert json.loads(ws.recv(timeout=10))["type"] == "ready"
                with pytest.raises(ConnectionClosed) as closed:
                    ws.send(bytes(size))
                    while True:                  # the stream's own error, then the close
                        ws.recv(timeout=10)
            assert closed.value.rcvd is not None, f"{size} bytes: closed without a code"
            assert closed.value.rcvd.code == 1009 and words in closed.value.rcvd.reason
        assert server.wait_for(lambda: server.get_json("/health")["streams_open"] == 0)
        with connect(url) as ws:
            assert json.loads(ws.recv(timeout=10))["type"] == "ready"
            ws.send(tone_stream(1.0, RATE).tobytes())
            assert json.loads(ws.recv(timeout=10))["strides"]
