"""What a bundle costs on a device: parameters, MACs, size, memory, latency, and CPU time
of a stream (no torch)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from earmark.runtime.bundle import Bundle, load_bundle
from earmark.runtime.smoother import SmootherConfig, stored_settings
from earmark.runtime.stream import StreamEngine

#: Audio streamed to measure a stream's CPU time: long enough to be steady, short to wait.
STREAM_SECONDS = 60.0
#: The blocks it arrives in (what ``earmark listen`` reads from a file).
STREAM_BLOCK_SECONDS = 0.1

_PEAK_MEMORY_PROBE = """
import json, resource, sys
import numpy as np
from earmark.runtime.bundle import load_bundle

def status(key):
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(key + ":"):
                return int(line.split()[1])

before = status("VmRSS")
with open("/proc/self/clear_refs", "w") as handle:
    handle.write("5")                    # restart the peak (VmHWM) from here
bundle = load_bundle(sys.argv[1], threads=1)
bundle.predict_proba(np.zeros((1, bundle.window_samples), dtype=np.float32))
json.dump({"baseline_kib": before, "peak_kib": status("VmHWM")}, sys.stdout)
"""


def footprint(path: str | os.PathLike, runs: int = 200,
              stream_seconds: float = STREAM_SECONDS,
              stream_block_seconds: float = STREAM_BLOCK_SECONDS) -> dict:
    """Measure a bundle: parameters, MACs per window, file size, peak memory, latency, and
    the CPU time of streaming it.

    Latency is for one window, batch 1, one onnxruntime thread, front-end included.
    Peak memory is the growth of the resident set of a fresh process (Linux)
    from before loading the bundle to the peak of loading it and running one
    inference: the session, its folded constants and buffers. The stream's CPU
    time is :func:`stream_cpu_seconds` over ``stream_seconds`` of noise in blocks of
    ``stream_block_seconds``, per hour of audio (0: not measured).
    """
    bundle = load_bundle(path, threads=1)
    model_path = bundle.model_path
    window = np.random.default_rng(0).standard_normal((1, bundle.window_samples)) \
        .astype(np.float32) * 0.1
    timings = call_milliseconds(lambda: bundle.predict_proba(window), runs)
    memory = _peak_memory(bundle.path)       # as given: a folder loads its earmark.json too
    return {
        "bundle": str(bundle.path),
        "quantization": bundle.metadata.quantization,
        "parameters": bundle.metadata.parameters,
        "graph_constants": count_constants(model_path),
        "macs_per_window": bundle.metadata.macs_per_window,
        "size_bytes": model_path.stat().st_size,
        "peak_memory_kib": memory["peak_kib"] - memory["baseline_kib"],
        "latency_ms_median": float(np.median(timings)),
        "latency_ms_p95": float(np.percentile(timings, 95)),
        "window_seconds": bundle.window_samples / bundle.sample_rate,
        **(stream_cpu_seconds(bundle, stream_seconds, stream_block_seconds)
           if stream_seconds > 0 else {}),
    }


def stream_cpu_seconds(bundle: Bundle, seconds: float = STREAM_SECONDS,
                       block_seconds: float = STREAM_BLOCK_SECONDS) -> dict:
    """CPU seconds per hour of audio of ``earmark listen``'s engine on this bundle: one
    onnxruntime thread, blocks of noise ``block_seconds`` long (100 ms, as listen reads a
    file), at the stride the bundle stores (20 ms otherwise); only new frames computed
    where the bundle has stream graphs."""
    stored = bundle.metadata.detection or {}
    engine = StreamEngine(bundle, stride_ms=float(stored.get("stride_ms", 20.0)),
                          smoother=SmootherConfig(**stored_settings(stored)))
    block = max(1, int(block_seconds * bundle.sample_rate))
    blocks = max(1, int(seconds / block_seconds))
    # Ten seconds of noise, played over and over: memory stays flat however long.
    noise = (0.05 * np.random.default_rng(0).standard_normal((min(blocks, 100), block))
             ).astype(np.float32)
    started = time.process_time()
    for index in range(blocks):
        engine.process(noise[index % len(noise)])
    cpu = time.process_time() - started
    return {"stream_cpu_seconds_per_hour": cpu * 3600 / (blocks * block / bundle.sample_rate),
            "stream_stride_ms": engine.stride_ms, "stream_incremental": engine.incremental,
            "stream_block_ms": 1000.0 * block / bundle.sample_rate}


def call_milliseconds(call: Callable[[], object], runs: int) -> np.ndarray:
    """Milliseconds each of ``runs`` calls took, after one untimed warm-up call."""
    call()
    timings = np.empty(runs)
    for run in range(runs):
        started = time.perf_counter()
        call()
        timings[run] = (time.perf_counter() - started) * 1000
    return timings


def count_constants(model_path: Path) -> int | None:
    """Numbers stored in the graph's initializers (weights, scales, small front-end constants).

    Needs the ``onnx`` package (installed with ``earmark[train]``); None without it.
    """
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        return None
    model = onnx.load(str(model_path))
    return int(sum(np.prod(numpy_helper.to_array(t).shape) for t in model.graph.initializer))


def _peak_memory(bundle_path: Path) -> dict:
    result = subprocess.run([sys.executable, "-c", _PEAK_MEMORY_PROBE, str(bundle_path)],
                            capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def format_footprint(figures: dict) -> str:
    """A short human-readable table."""
    macs = figures["macs_per_window"]
    rows = [
        ("bundle", figures["bundle"]),
        ("quantization", figures["quantization"]),
        ("trained parameters", f"{figures['parameters']:,}" if figures["parameters"] else "?"),
        ("numbers stored in the graph", f"{figures['graph_constants']:,}"
         if figures["graph_constants"] is not None else "unknown (needs onnx)"),
        ("MACs per window", f"{macs:,}" if macs else "unknown"),
        ("file size", f"{figures['size_bytes'] / 1024:.1f} KiB"),
        ("peak memory (1 inference)", f"{figures['peak_memory_kib'] / 1024:.1f} MiB"),
        ("latency, 1 thread (median / p95)",
         f"{figures['latency_ms_median']:.3f} / {figures['latency_ms_p95']:.3f} ms "
         f"per {figures['window_seconds']:.2f} s window"),
    ]
    if "stream_cpu_seconds_per_hour" in figures:
        rows.append(("stream CPU, 1 thread", f"{figures['stream_cpu_seconds_per_hour']:.1f} s "
                     f"per hour of audio ({figures['stream_stride_ms']:.0f} ms stride, "
                     f"{figures['stream_block_ms']:.0f} ms blocks, "
                     + ("new frames only)" if figures["stream_incremental"]
                        else "whole windows)")))
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)
