"""`earmark serve` against hostile or careless HTTP clients (issue 15), over real sockets.

Stalled and short bodies, uploads whose header promises more than the
server will decode, files too short to judge, clients that vanish, and a
page that must not reach for another host. Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import soundfile

pytest.importorskip("fastapi")
httpx2 = pytest.importorskip("httpx2")

from earmark.serve import ServeLimits, create_app  # noqa: E402
from earmark.serve import uploads  # noqa: E402
from live_server import LiveServer  # noqa: E402

BUNDLE = Path(__file__).parent / "fixtures" / "bundle_v1"      # 8 kHz tones, loads at once
RATE = 8000


def wav_bytes(samples: np.ndarray, rate: int = RATE) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def clip(seconds: float = 1.0, rate: int = RATE, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    tone = (0.3 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    return tone if channels == 1 else np.repeat(tone[:, None], channels, axis=1)


@contextlib.contextmanager
def serving(**limits):
    with LiveServer(create_app(BUNDLE, ServeLimits(**limits))) as server:
        yield server


def open_upload(port: int, declared: int, body: bytes = b"",
                content_type: str = "audio/wav") -> socket.socket:
    """A raw POST /classify that sends its headers (and ``body``) and then says no more."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    raw.sendall(f"POST /classify?name=stall.wav HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Content-Type: {content_type}\r\nContent-Length: {declared}\r\n\r\n".encode()
                + body)
    return raw


def read_response(raw: socket.socket) -> tuple[int, dict, dict]:
    """Status, headers and JSON body of the one response; the server must then close."""
    data = b""
    while chunk := raw.recv(65536):          # the socket's 10 s timeout bounds the wait
        data += chunk
    raw.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, json.loads(body)


def post(server, content: bytes, name: str = "clip.wav", timeout: float = 10.0):
    return httpx2.post(f"{server.url}/classify?name={name}", content=content, timeout=timeout)


# ----------------------------------------------------------- slow bodies

def test_stalled_uploads_do_not_lock_out_the_others():
    with serving(body_stall_seconds=2.0, body_timeout_seconds=10.0, uploads_in_flight=8,
                 uploads_receiving=16) as server:
        started = time.monotonic()
        stalled = [open_upload(server.port, 100_000) for _ in range(8)]
        assert server.wait_for(lambda: server.get_json("/health")["uploads_receiving"] == 8)
        body = wav_bytes(clip())
        for _ in range(10):
            answer = post(server, body)
            assert answer.status_code == 200, answer.text
        # The normal uploads were judged while the eight stalled ones still held their slots.
        assert server.get_json("/health")["uploads_receiving"] == 8
        for raw in stalled:
            status, headers, error = read_response(raw)
            assert status == 408 and "stalled" in error["error"]
            assert headers["connection"] == "close"
        assert 1.5 < time.monotonic() - started < 9.0
        health = server.get_json("/health")
        assert health["uploads_receiving"] == 0 and health["uploads_waiting"] == 0
        assert health["uploads_classified"] == 10


def test_full_receiving_slots_answer_503_with_retry_after():
    with serving(body_stall_seconds=0.5, uploads_receiving=2) as server:
        stalled = [open_upload(server.port, 100_000) for _ in range(2)]
        assert server.wait_for(lambda: server.get_json("/health")["uploads_receiving"] == 2)
        busy = post(server, wav_bytes(clip()))
        assert busy.status_code == 503 and "try again" in busy.json()["error"]
        assert int(busy.headers["retry-after"]) >= 1
        assert [read_response(raw)[0] for raw in stalled] == [408, 408]
        assert post(server, wav_bytes(clip())).status_code == 200


@pytest.mark.parametrize("content_type, body", [
    ("audio/wav", b"RIFF" + b"\0" * 96),
    ("multipart/form-data; boundary=b",
     b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\nRIFF'),
])
def test_a_body_shorter_than_its_content_length_gets_408_not_a_hang(content_type, body):
    with serving(body_stall_seconds=0.5) as server:
        started = time.monotonic()
        status, _, error = read_response(open_upload(server.port, 10_000, body, content_type))
        assert status == 408 and "Content-Length" in error["error"]
        assert time.monotonic() - started < 5.0
        assert server.wait_for(lambda: server.get_json("/health")["uploads_receiving"] == 0)


def test_the_whole_body_has_a_deadline_too():
    with serving(body_stall_seconds=30.0, body_timeout_seconds=0.5) as server:
        started = time.monotonic()
        status, _, error = read_response(open_upload(server.port, 10_000, b"RIFF"))
        assert status == 408 and "within 0.5 s" in error["error"]
        assert time.monotonic() - started < 5.0


class Lines(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.seen = threading.Event()

    def emit(self, record):
        self.records.append(record)
        self.seen.set()


def test_a_client_that_vanishes_mid_upload_is_one_log_line():
    ours, uvicorn_errors = Lines(), Lines()
    logger = logging.getLogger("earmark.serve")
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(ours)
    logging.getLogger("uvicorn.error").addHandler(uvicorn_errors)
    try:
        with serving() as server:
            open_upload(server.port, 100_000, b"RIFF" + b"\0" * 500).close()
            assert ours.seen.wait(10)
            assert server.wait_for(lambda: server.get_json("/health")["uploads_receiving"] == 0)
            assert post(server, wav_bytes(clip())).status_code == 200
    finally:
        logger.removeHandler(ours)
        logger.setLevel(level)
        logging.getLogger("uvicorn.error").removeHandler(uvicorn_errors)
    [line] = [r for r in ours.records if "went away" in r.getMessage()]
    assert line.exc_info is None and "\n" not in line.getMessage()
    assert not [r for r in uvicorn_errors.records if r.levelno >= logging.ERROR]


# ------------------------------------------------- what the header says

@pytest.fixture(scope="module")
def server():
    with serving() as live:
        yield live


def lying_flac(seconds: float, channels: int, rate: int) -> bytes:
    """A 121-byte FLAC whose STREAMINFO claims ``seconds`` of ``channels`` at ``rate``."""
    buffer = io.BytesIO()
    soundfile.write(buffer, np.zeros((16, channels), np.float32), rate, format="FLAC")
    data = bytearray(buffer.getvalue())
    fields = int.from_bytes(data[18:26], "big")      # rate, channels, bits, total samples
    fields = (fields >> 36 << 36) | int(seconds * rate)
    data[18:26] = fields.to_bytes(8, "big")
    return bytes(data)


def test_a_header_over_the_decoded_budget_gets_413_before_decoding(server, monkeypatch):
    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded a file its header should have refused")

    monkeypatch.setattr(uploads.audio, "read_blocks", no_decoding)
    flac = lying_flac(590, 8, 384_000)               # under 600 s, but 1.8 G samples
    answer = post(server, flac, "huge.flac")
    assert answer.status_code == 413, answer.text
    error = answer.json()["error"]
    assert "huge.flac" in error and "8 channel" in error and "384000 Hz" in error
    assert "budget of 67.1 M samples (256 MiB as float32)" in error


def test_a_small_decoded_budget_refuses_a_real_multichannel_file():
    with serving(max_upload_samples=10_000) as small:
        answer = post(small, wav_bytes(clip(0.5, 48_000, 4), 48_000), "four.wav")
        assert answer.status_code == 413, answer.text
        assert "96 k samples" in answer.json()["error"]
        assert "budget of 10 k samples (40 KB as float32)" in answer.json()["error"]
        assert post(small, wav_bytes(clip(0.5)), "mono.wav").status_code == 200


def test_decoding_goes_in_blocks_of_bounded_size(tmp_path, monkeypatch):
    path = tmp_path / "wide.wav"
    soundfile.write(path, clip(0.5, 384_000, 8), 384_000)
    real, seen = uploads.audio.read_blocks, []

    def spy(path, rate, block_seconds, header=None):
        seen.append(block_seconds)
        return real(path, rate, block_seconds, header=header)

    monkeypatch.setattr(uploads.audio, "read_blocks", spy)
    samples = uploads.decode_upload(path, "wide.wav", RATE, ServeLimits())
    assert len(samples) == RATE // 2
    assert seen and seen[0] * 384_000 * 8 <= uploads.DECODE_BLOCK_SAMPLES


@pytest.mark.parametrize("samples, rate, status, words", [
    (np.zeros(1, np.float32), 192_000, 422, "leave no sample at the model's 8000 Hz"),
    (np.zeros(400, np.float32), 500, 422, "500 Hz"),
])
def test_files_the_server_cannot_judge_are_4xx_not_500(server, samples, rate, status, words):
    answer = post(server, wav_bytes(samples, rate), "odd.wav")
    assert answer.status_code == status, answer.text
    assert words in answer.json()["error"] and "odd.wav" in answer.json()["error"]
    assert post(server, wav_bytes(clip())).status_code == 200


def test_concurrent_uploads_are_all_answered(server):
    body = wav_bytes(clip())
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: post(server, body).status_code, range(12)))
    assert answers == [200] * 12


# --------------------------------------------------------- no other host

def test_docs_are_not_served_and_nothing_refers_to_another_host(server):
    for path in ("/docs", "/redoc", "/docs/oauth2-redirect"):
        assert httpx2.get(server.url + path, timeout=10).status_code == 404, path
    schema = httpx2.get(server.url + "/openapi.json", timeout=10)
    assert schema.status_code == 200 and "/classify" in schema.json()["paths"]
    assert "http://" not in schema.text and "https://" not in schema.text
    page = httpx2.get(server.url + "/", timeout=10)
    assert page.status_code == 200 and "cdn" not in page.text.lower()


# ------------------------------------------------------ serve's options

@pytest.mark.parametrize("option, words", [
    (["--port", "0"], "--port"),
    (["--port", "70000"], "--port"),
    (["--stride-ms", "0"], "--stride-ms"),
    (["--threshold", "2"], "threshold"),
    (["--max-upload-mb", "1e9"], "--max-upload-mb"),
    (["--max-upload-seconds", "-1"], "--max-upload-seconds"),
    (["--max-decoded-mb", "inf"], "--max-decoded-mb"),
    (["--max-uploads-in-flight", "0"], "--max-uploads-in-flight"),
    (["--max-uploads-receiving", "100000"], "--max-uploads-receiving"),
    (["--body-timeout", "0"], "--body-timeout"),
    (["--body-stall-timeout", "nan"], "--body-stall-timeout"),
    (["--max-streams", "100000"], "--max-streams"),
])
def test_serve_refuses_bad_options_before_it_starts(option, words, monkeypatch, capsys):
    import uvicorn

    from earmark.cli import main

    def started(*args, **kwargs):
        raise AssertionError("the server started")

    monkeypatch.setattr(uvicorn, "run", started)
    assert main(["serve", str(BUNDLE), *option]) == 2
    error = capsys.readouterr().err
    assert "error" in error and words in error


def test_serve_options_become_the_servers_limits():
    from earmark.cli import build_parser
    from earmark.cli.streaming import serve_limits

    args = build_parser().parse_args([
        "serve", str(BUNDLE), "--max-upload-mb", "2", "--max-decoded-mb", "1",
        "--max-uploads-in-flight", "3", "--max-uploads-receiving", "5", "--body-timeout", "7",
        "--body-stall-timeout", "1.5", "--max-upload-seconds", "30", "--max-streams", "4"])
    assert serve_limits(args) == ServeLimits(
        max_upload_bytes=2 * 2 ** 20, max_upload_samples=2 ** 18, uploads_in_flight=3,
        uploads_receiving=5, body_timeout_seconds=7.0, body_stall_seconds=1.5,
        max_upload_seconds=30.0, max_streams=4)
    assert serve_limits(build_parser().parse_args(["serve", "b"])) == ServeLimits()


def test_a_bad_stride_is_refused_when_the_app_is_made():
    from earmark.errors import ConfigError

    with pytest.raises(ConfigError, match="stride_ms"):
        create_app(BUNDLE, stride_ms=0)
