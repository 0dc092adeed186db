"""What a bundle costs on a device: parameters, MACs, size, memory, latency (no torch)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from earmark.runtime.bundle import load_bundle

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


def footprint(path: str | os.PathLike, runs: int = 200) -> dict:
    """Measure a bundle: parameters, MACs per window, file size, peak memory, latency.

    Latency is for one window, batch 1, one onnxruntime thread, front-end included.
    Peak memory is the growth of the resident set of a fresh process (Linux)
    from before loading the bundle to the peak of loading it and running one
    inference: the session, its folded constants and buffers.
    """
    bundle = load_bundle(path, threads=1)
    model_path = bundle.model_path
    window = np.random.default_rng(0).standard_normal((1, bundle.window_samples)) \
        .astype(np.float32) * 0.1
    timings = call_milliseconds(lambda: bundle.predict_proba(window), runs)
    memory = _peak_memory(model_path)
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
    }


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


def _peak_memory(model_path: Path) -> dict:
    result = subprocess.run([sys.executable, "-c", _PEAK_MEMORY_PROBE, str(model_path)],
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
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)
