"""`earmark serve`: the HTTP API and the websocket stream, in-process and over real sockets."""

from __future__ import annotations

import base64
import io
import json
import re
import socket
from pathlib import Path

import numpy as np
import pytest
import soundfile
from websockets.sync.client import connect

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient  # noqa: E402
from starlette.websockets import WebSocketDisconnect  # noqa: E402

from earmark.runtime import load_bundle  # noqa: E402
from earmark.runtime.stream import StreamEngine  # noqa: E402
from earmark.serve import ServeLimits, create_app  # noqa: E402
from conftest import TONE_FREQUENCIES, TONE_RATE  # noqa: E402
from live_server import LiveServer  # noqa: E402


def tone_stream(label: str, rate: int = TONE_RATE, seed: int = 0) -> np.ndarray:
    """0.5 s of noise, 1 s of the class's tone over noise, 1 s of noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(rate) / rate
    noise = lambda n: 0.05 * rng.standard_normal(n)  # noqa: E731
    tone = 0.4 * np.sin(2 * np.pi * TONE_FREQUENCIES[label] * t) + noise(rate)
    return np.concatenate([noise(rate // 2), tone, noise(rate)]).astype(np.float32)


def wav_bytes(samples: np.ndarray, rate: int = TONE_RATE, subtype: str = "PCM_16") -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, format="WAV", subtype=subtype)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def client(bundle):
    return TestClient(create_app(bundle, ServeLimits(max_upload_bytes=400_000,
                                                     max_upload_seconds=20.0, max_streams=3)))


# ------------------------------------------------------------------- HTTP

def test_health_and_model_describe_the_bundle(client, bundle):
    assert client.get("/health").json()["status"] == "ok"
    model = client.get("/model").json()
    assert model["labels"] == load_bundle(bundle).labels
    assert model["sample_rate"] == TONE_RATE and model["window_seconds"] == 0.5
    assert model["stream"]["incremental"] is True
    assert model["limits"]["max_upload_bytes"] == 400_000


def test_page_and_its_assets_are_served_locally(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    for asset in ("/static/app.js", "/static/worklet.js", "/static/style.css"):
        assert asset in page.text or asset == "/static/worklet.js"
        assert client.get(asset).status_code == 200, asset
    assert "https://" not in page.text and "http://" not in page.text   # no CDN
    static = Path(create_app.__code__.co_filename).parent / "static"
    for asset in static.iterdir():                 # nothing fetched from elsewhere
        text = asset.read_text()
        assert not re.search(r"""(from|import\(|src=|href=|url\()\s*['"(]?https?:""", text), asset
        if asset.suffix == ".js":
            for module in re.findall(r"""from\s+['"]\./([\w.]+)['"]""", text):
                assert client.get(f"/static/{module}").status_code == 200, module


@pytest.mark.parametrize("label", ["high", "low"])
def test_classify_a_multipart_upload(client, label):
    response = client.post("/classify?spectrogram=1",
                           files={"file": (f"{label}.wav", wav_bytes(tone_stream(label)),
                                           "audio/wav")})
    assert response.status_code == 200, response.text
    record = response.json()
    assert record["file"] == f"{label}.wav" and abs(record["duration"] - 2.5) < 0.01
    windows = record["windows"]
    assert len(windows) >= 4 and windows[1]["end"] == pytest.approx(windows[1]["start"] + 0.5)
    assert any(w["label"] == label for w in windows)
    picture = record["spectrogram"]
    levels = np.frombuffer(base64.b64decode(picture["data"]), dtype=np.uint8)
    assert levels.size == picture["columns"] * picture["n_mels"] > 0
    assert levels.max() == 255 and levels.min() < 128


def test_classify_a_raw_body_at_another_rate(client):
    samples = tone_stream("high", rate=44100)
    flac = io.BytesIO()
    soundfile.write(flac, samples, 44100, format="FLAC")
    response = client.post("/classify?name=high.flac&windows=0&top=2", content=flac.getvalue(),
                           headers={"content-type": "audio/flac"})
    assert response.status_code == 200, response.text
    record = response.json()
    assert len(record["top"]) == 2 and "windows" not in record
    assert record["file"] == "high.flac"


def test_hear_returns_the_models_log_mel_as_sound(client):
    """The live page's "hear what the model hears": a WAV at the model's rate of at most
    the last HEAR_SECONDS of the upload, with its spectral convergence in a header."""
    from earmark.serve.app import HEAR_SECONDS

    long_upload = np.concatenate([tone_stream("high")] * 5)           # 12.5 s
    response = client.post("/hear?name=live.wav", content=wav_bytes(long_upload),
                           headers={"content-type": "audio/wav"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "audio/wav"
    samples, rate = soundfile.read(io.BytesIO(response.content))
    assert rate == TONE_RATE and len(samples) == int(HEAR_SECONDS * TONE_RATE)
    assert 0 < float(response.headers["x-spectral-convergence"]) < 1
    refused = client.post("/hear", files={"file": ("notes.txt", b"not audio", "audio/wav")})
    assert refused.status_code == 415 and "notes.txt" in refused.json()["error"]


@pytest.mark.parametrize("body, name, status, words", [
    (b"this is not audio at all", "notes.txt", 415, "cannot read audio header"),
    (b"", "empty.wav", 400, "empty"),
    (b"RIFF\x24\x00\x00\x00WAVEfmt ", "cut.wav", 415, "cut.wav"),
])
def test_classify_refuses_what_is_not_audio(client, body, name, status, words):
    response = client.post("/classify", files={"file": (name, body, "audio/wav")})
    assert response.status_code == status, response.text
    assert words in response.json()["error"]


def test_classify_refuses_a_truncated_wav(client):
    whole = wav_bytes(tone_stream("mid"))
    response = client.post("/classify", files={"file": ("cut.wav", whole[:len(whole) // 2],
                                                        "audio/wav")})
    assert response.status_code == 422
    assert "cut.wav" in response.json()["error"] and "truncated" in response.json()["error"]


def test_classify_refuses_nan_samples(client):
    samples = tone_stream("mid")
    samples[100:200] = np.nan
    response = client.post("/classify", files={"file": ("nan.wav",
                                                        wav_bytes(samples, subtype="FLOAT"),
                                                        "audio/wav")})
    assert response.status_code == 422
    assert "nan.wav" in response.json()["error"] and "NaN" in response.json()["error"]


def test_classify_refuses_huge_and_long_uploads(client):
    huge = client.post("/classify", files={"file": ("big.raw", b"\0" * 500_000, "audio/wav")})
    assert huge.status_code == 413 and "400 KB" in huge.json()["error"]
    long = wav_bytes(np.zeros(TONE_RATE * 25, dtype=np.float32), subtype="PCM_U8")
    too_long = client.post("/classify", files={"file": ("long.wav", long, "audio/wav")})
    assert too_long.status_code == 413 and "25 s" in too_long.json()["error"]


def test_classify_refuses_bad_parameters_and_missing_file(client):
    assert client.post("/classify?top=99", content=b"x").status_code == 422
    no_file = client.post("/classify", files={"other": ("a.wav", b"RIFF", "audio/wav")})
    assert no_file.status_code == 400 and "'file'" in no_file.json()["error"]
    assert client.post("/classify?spectrogram=maybe", content=b"x").status_code == 422
    assert client.get("/nowhere").json() == {"error": "Not Found"}


# -------------------------------------------------------------- websocket

def stream_over_websocket(client, samples: np.ndarray, query: str, block: int = 400,
                          dtype=np.float32):
    with client.websocket_connect(f"/stream?{query}") as ws:
        ready = ws.receive_json()
        results = []
        for start in range(0, len(samples), block):
            ws.send_bytes(samples[start:start + block].astype(dtype).tobytes())
            results.append(ws.receive_json())
        ws.send_text(json.dumps({"type": "stop"}))
        end = ws.receive_json()
    return ready, results, end


def test_stream_gives_the_engines_scores_and_detections(client, bundle):
    samples = tone_stream("high")
    ready, results, end = stream_over_websocket(client, samples, f"rate={TONE_RATE}")
    assert ready["type"] == "ready" and ready["model_rate"] == TONE_RATE
    engine = StreamEngine(load_bundle(bundle), input_rate=TONE_RATE)
    expected = list(engine.run([samples]))
    strides = [s for r in results for s in r["strides"]]
    assert len(strides) == len(expected)
    np.testing.assert_allclose([s["scores"] for s in strides],
                               [e.scores for e in expected], atol=1e-3)
    detections = [d for r in results for d in r["detections"]] + end["detections"]
    assert [d["label"] for d in detections] == ["high"]
    assert end["type"] == "end" and end["audio_s"] == pytest.approx(2.5)
    columns = sum(r["columns"] for r in results)
    assert abs(columns - 250) <= 3               # 100 columns per second
    assert all(r["latency_ms"] >= 0 for r in results)


def test_stream_resamples_16_bit_input(client):
    samples = tone_stream("low", rate=16000)
    pcm = np.round(samples * 32767)
    ready, results, end = stream_over_websocket(client, pcm, "rate=16000&format=s16",
                                                block=1000, dtype="<i2")
    assert ready["format"] == "s16le" and ready["input_rate"] == 16000
    detections = [d["label"] for r in results for d in r["detections"]] + \
        [d["label"] for d in end["detections"]]
    assert detections == ["low"]


@pytest.mark.parametrize("query, message, code", [
    ("rate=fast", b"", 1008),
    ("rate=16000&format=mp3", b"", 1008),
    ("rate=16000&colour=red", b"", 1008),
    ("rate=8000&format=s16le", b"\x01\x02\x03", 1003),         # half a sample
    ("rate=8000&format=f32le", np.full(100, np.nan, np.float32).tobytes(), 1003),
    ("rate=8000&format=f32le", np.zeros(80_000, np.float32).tobytes(), 1009),   # 10 s block
    ("rate=8000", "hello", 1008),
    ("rate=8000&format=f32le", np.full(100, 3e38, np.float32).tobytes(), 1003),   # not [-1, 1]
    ("rate=8000&" + "\u00e9" * 80 + "=1", b"", 1008),      # a reason over 123 bytes of UTF-8
])
def test_stream_errors_are_explained_and_close_the_stream(client, query, message, code):
    with client.websocket_connect(f"/stream?{query}") as ws:
        first = ws.receive_json()
        if first["type"] == "ready":
            if isinstance(message, str):
                ws.send_text(message)
            else:
                ws.send_bytes(message)
            first = ws.receive_json()
        assert first["type"] == "error" and len(first["error"]) > 10
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
        assert closed.value.code == code
    assert client.get("/health").json()["streams_open"] == 0


def test_a_failure_inside_the_engine_ends_that_stream_only(client, monkeypatch):
    from earmark.serve.streaming import StreamSession

    def broken(self, data):
        raise RuntimeError("a bug")

    monkeypatch.setattr(StreamSession, "on_block", broken)
    with client.websocket_connect("/stream") as ws:
        ws.receive_json()
        ws.send_bytes(np.zeros(100, np.float32).tobytes())
        assert "internal error" in ws.receive_json()["error"]
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
        assert closed.value.code == 1011
    monkeypatch.undo()
    assert stream_over_websocket(client, tone_stream("mid"), f"rate={TONE_RATE}")[1]


def test_uploads_beyond_the_queue_get_503_and_chunked_multipart_411(client):
    state = client.app.state.earmark
    state.uploads_waiting = state.limits.uploads_in_flight
    try:
        busy = client.post("/classify", content=b"RIFF")
    finally:
        state.uploads_waiting = 0
    assert busy.status_code == 503 and "busy" in busy.json()["error"]
    assert busy.headers["retry-after"] == "1"

    def body():
        yield b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\r\n"
        yield wav_bytes(tone_stream("mid")) + b"\r\n--b--\r\n"

    chunked = client.post("/classify", content=body(),
                          headers={"content-type": "multipart/form-data; boundary=b"})
    assert chunked.status_code == 411 and "Content-Length" in chunked.json()["error"]


def test_streams_beyond_the_limit_are_refused_politely(client):
    with client.websocket_connect("/stream") as a, client.websocket_connect("/stream") as b, \
            client.websocket_connect("/stream") as c:
        for ws in (a, b, c):
            assert ws.receive_json()["type"] == "ready"
        with client.websocket_connect("/stream") as refused:
            assert "try again" in refused.receive_json()["error"]
            with pytest.raises(WebSocketDisconnect) as closed:
                refused.receive_json()
            assert closed.value.code == 1013
    _, results, _ = stream_over_websocket(client, tone_stream("mid"), f"rate={TONE_RATE}")
    assert results


# ------------------------------------------------------ a real server

@pytest.fixture(scope="module")
def server(bundle):
    with LiveServer(create_app(bundle, ServeLimits(idle_seconds=2.0))) as live:
        yield live


def test_a_client_that_dies_mid_block_does_not_hurt_the_server(server):
    raw = socket.create_connection(("127.0.0.1", server.port))
    raw.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                b"Sec-WebSocket-Version: 13\r\n\r\n")
    assert b"101" in raw.recv(4096).split(b"\r\n")[0]
    # A masked binary frame announcing 4000 bytes, of which 10 arrive; then the line drops.
    raw.sendall(bytes([0x82, 0xFE]) + (4000).to_bytes(2, "big") + b"\0\0\0\0" + b"\1" * 10)
    raw.close()
    assert server.wait_for(lambda: server.get_json("/health")["streams_open"] == 0)
    with connect(f"ws://127.0.0.1:{server.port}/stream?rate={TONE_RATE}") as ws:
        assert json.loads(ws.recv())["type"] == "ready"
        ws.send(tone_stream("high")[:4800].tobytes())
        assert len(json.loads(ws.recv())["strides"]) > 0
    assert server.get_json("/health")["streams_served"] >= 2


def test_a_silent_stream_is_closed_after_the_idle_time(server):
    with connect(f"ws://127.0.0.1:{server.port}/stream") as ws:
        assert json.loads(ws.recv())["type"] == "ready"
        assert "no audio" in json.loads(ws.recv(timeout=10))["error"]


def test_a_long_non_ascii_refusal_still_closes_cleanly(server):
    from urllib.parse import quote

    from websockets.exceptions import ConnectionClosed

    with connect(f"ws://127.0.0.1:{server.port}/stream?{quote('é' * 80)}=1") as ws:
        assert "unknown query parameter" in json.loads(ws.recv(timeout=10))["error"]
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
