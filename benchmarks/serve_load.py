"""Load test of `earmark serve`: many websocket streams of real-time audio at once.

Starts `earmark serve BUNDLE` as its own process, opens ``--streams``
websocket streams that each send 40 ms float32 blocks at 48 kHz (what the
live page sends) paced in real time for ``--seconds``, and reports:

- errors and dropped blocks (blocks sent without a result back);
- per-block processing latency on the server (median, p95, max) and the
  round trip seen by the clients;
- the server's memory (RSS every 0.5 s: after start-up, at a sixth of the
  run, at the end, and the peak) and its CPU time;
- the reference, measured in the same run: one in-process StreamEngine on
  the same audio, so the server's CPU per stream-hour reads as a ratio.

    python benchmarks/serve_load.py --bundle bundles/keywords --streams 20 --seconds 60
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
from websockets.asyncio.client import connect

from earmark import audio
from earmark.runtime import load_bundle
from earmark.runtime.stream import StreamEngine

RATE = 48000
BLOCK = RATE * 40 // 1000
SPEECH = Path(__file__).resolve().parents[1] / "../shared/data/speech_commands_v2_test"


def speech_loop(seconds: float) -> np.ndarray:
    """Spoken words one after another with pauses (real recordings when present)."""
    rng = np.random.default_rng(0)
    clips = sorted(SPEECH.glob("*/*.flac"))
    pieces, total = [], 0
    while total < seconds * RATE:
        if clips:
            clip = audio.load(clips[int(rng.integers(len(clips)))], RATE)
        else:
            clip = 0.1 * rng.standard_normal(RATE).astype(np.float32)
        pause = 0.005 * rng.standard_normal(int(rng.uniform(0.3, 1.0) * RATE))
        pieces += [clip, pause.astype(np.float32)]
        total += len(clip) + len(pause)
    return np.concatenate(pieces)[:int(seconds * RATE)]


class ServerProcess:
    """`earmark serve` in a child process; its RSS sampled in the background."""

    def __init__(self, bundle: str, streams: int):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        command = [str(Path(sys.executable).with_name("earmark")), "serve", bundle,
                   "--port", str(self.port), "--max-streams", str(streams + 4)]
        self.process = subprocess.Popen(command)
        self.rss: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._wait_until_up()
        threading.Thread(target=self._sample_memory, daemon=True).start()

    def _wait_until_up(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=1)
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("the server did not start")

    def _sample_memory(self) -> None:
        started = time.monotonic()
        while not self._stop.wait(0.5):
            self.rss.append((time.monotonic() - started, _status_kib("VmRSS", self.process.pid)))

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> float:
        """Stop sampling and the server; its peak RSS in MiB."""
        self._stop.set()
        peak = _status_kib("VmHWM", self.process.pid) / 1024
        self.process.terminate()
        self.process.wait(timeout=20)
        return peak


def _status_kib(key: str, pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return float(line.split()[1])
    return float("nan")


async def one_stream(port: int, signal: np.ndarray, seconds: float, offset: int) -> dict:
    """Send real-time blocks; collect latencies, results and errors."""
    url = f"ws://127.0.0.1:{port}/stream?rate={RATE}&format=f32le"
    sent_at: dict[int, float] = {}
    stats = {"sent": 0, "results": 0, "errors": [], "server_ms": [], "round_trip_ms": [],
             "detections": 0}
    async with connect(url, max_size=2 ** 22) as ws:
        ready = json.loads(await ws.recv())
        if ready.get("type") != "ready":
            stats["errors"].append(ready)
            return stats
        receiver = asyncio.create_task(_receive(ws, sent_at, stats))
        start = time.monotonic()
        blocks = int(seconds * RATE / BLOCK)
        for index in range(blocks):
            await asyncio.sleep(max(0.0, start + index * BLOCK / RATE - time.monotonic()))
            begin = (offset + index * BLOCK) % (len(signal) - BLOCK)
            sent_at[index] = time.monotonic()
            await ws.send(signal[begin:begin + BLOCK].tobytes())
            stats["sent"] += 1
        await ws.send(json.dumps({"type": "stop"}))
        await receiver
    return stats


async def _receive(ws, sent_at: dict[int, float], stats: dict) -> None:
    async for text in ws:
        message = json.loads(text)
        if message["type"] == "result":
            stats["results"] += 1
            stats["server_ms"].append(message["latency_ms"])
            stats["round_trip_ms"].append(1000 * (time.monotonic() - sent_at[message["block"]]))
            stats["detections"] += len(message["detections"])
        elif message["type"] == "error":
            stats["errors"].append(message["error"])
        elif message["type"] == "end":
            return


async def run_streams(port: int, signal: np.ndarray, streams: int, seconds: float) -> list:
    spacing = len(signal) // max(streams, 1)
    return await asyncio.gather(*(one_stream(port, signal, seconds, i * spacing)
                                  for i in range(streams)), return_exceptions=True)


def reference_cpu_per_hour(bundle_path: str, signal: np.ndarray, seconds: float) -> float:
    """One in-process engine (no server, no spectrogram) on the same blocks."""
    engine = StreamEngine(load_bundle(bundle_path, threads=1), input_rate=RATE)
    blocks = int(seconds * RATE / BLOCK)
    started = time.process_time()
    for index in range(blocks):
        begin = (index * BLOCK) % (len(signal) - BLOCK)
        engine.process(signal[begin:begin + BLOCK])
    return (time.process_time() - started) / (seconds / 3600)


def percentiles(values: list[float]) -> str:
    if not values:
        return "n/a"
    median, p95, top = np.percentile(values, [50, 95, 100])
    return f"median {median:.1f} ms, p95 {p95:.1f} ms, max {top:.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", default="bundles/keywords", help="a keyword bundle")
    parser.add_argument("--streams", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    signal = speech_loop(min(args.seconds, 120.0) + 5)
    server = ServerProcess(args.bundle, args.streams)
    rss_before = _status_kib("VmRSS", server.process.pid) / 1024
    cpu_before = server.cpu_seconds()
    results = asyncio.run(run_streams(server.port, signal, args.streams, args.seconds))
    cpu = server.cpu_seconds() - cpu_before
    samples = list(server.rss)
    peak = server.stop()
    failures = [r for r in results if isinstance(r, BaseException)]
    results = [r for r in results if not isinstance(r, BaseException)]
    sent = sum(r["sent"] for r in results)
    received = sum(r["results"] for r in results)
    errors = [e for r in results for e in r["errors"]] + [repr(f) for f in failures]
    reference = reference_cpu_per_hour(args.bundle, signal, min(args.seconds, 60.0))
    per_stream_hour = cpu / (args.streams * args.seconds / 3600)
    early = np.mean([rss for t, rss in samples if t < args.seconds / 6 + 1]) / 1024
    late = np.mean([rss for t, rss in samples[-6:]]) / 1024
    print(f"{args.streams} streams x {args.seconds:g} s of 48 kHz float32 in 40 ms blocks, "
          f"real time, against one `earmark serve` ({args.bundle}) on this machine")
    print(f"blocks sent {sent}, results {received}, dropped {sent - received}, "
          f"errors {len(errors)}{': ' + str(errors[:3]) if errors else ''}")
    print(f"detections {sum(r['detections'] for r in results)}")
    print(f"server processing per block: "
          f"{percentiles([v for r in results for v in r['server_ms']])}")
    print(f"client round trip per block: "
          f"{percentiles([v for r in results for v in r['round_trip_ms']])}")
    print(f"server RSS: {rss_before:.0f} MiB idle, {early:.0f} MiB early in the run, "
          f"{late:.0f} MiB at the end, peak {peak:.0f} MiB")
    print(f"server CPU: {cpu:.1f} s for {args.streams * args.seconds / 60:.0f} stream-minutes "
          f"= {per_stream_hour:.0f} s per stream-hour; in-process engine alone (reference, "
          f"same audio): {reference:.0f} s per hour -> server costs "
          f"{per_stream_hour / reference:.2f}x the bare engine; "
          f"{cpu / args.seconds:.2f} of 2 cores busy")


if __name__ == "__main__":
    main()
