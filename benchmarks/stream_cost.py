"""CPU cost of streaming recognition: seconds of CPU per hour of audio at a 20 ms stride.

Runs the same bundle over the same audio, on one thread, in the same run:
the incremental engine (only new front-end frames each hop; with a
valid-padded DS-CNN, each layer's new column once per frame too), the same
with the whole window's network run at every stride, and the reference that
recomputes the whole window (features and network) at every stride. Prints
each and the ratio to the reference.

    earmark export runs/keywords --out bundles/keywords        # once
    python benchmarks/stream_cost.py --bundle bundles/keywords [--minutes 5]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from earmark.runtime import load_bundle
from earmark.runtime.stream import StreamEngine


def cpu_seconds(engine: StreamEngine, signal: np.ndarray, block: int) -> tuple[float, int]:
    started = time.process_time()
    strides = 0
    for start in range(0, len(signal), block):
        strides += len(engine.process(signal[start:start + block]))
    return time.process_time() - started, strides


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", default="bundles/keywords", help="a keyword bundle")
    parser.add_argument("--minutes", type=float, default=5.0, help="audio to stream")
    parser.add_argument("--stride-ms", type=float, default=20.0)
    args = parser.parse_args()
    bundle = load_bundle(args.bundle, threads=1)
    rate = bundle.sample_rate
    rng = np.random.default_rng(0)
    signal = (0.05 * rng.standard_normal(int(args.minutes * 60 * rate))).astype(np.float32)
    block = rate // 50                                   # 20 ms blocks, as from a microphone
    hours = args.minutes / 60
    rows = []
    variants = [("recompute the window each stride", False, False),
                ("new frames, whole-window network", True, False),
                ("new frames, network stepped per frame", True, True)]
    for name, incremental, stepped in variants:
        engine = StreamEngine(bundle, stride_ms=args.stride_ms, incremental=incremental,
                              stepped_network=stepped)
        if stepped and not engine.network_stepped:
            print(f"({name}: not available, the bundle has no network step; export a "
                  "DS-CNN with model.time_padding = \"valid\")")
            continue
        seconds, strides = cpu_seconds(engine, signal, block)
        rows.append((name, seconds / hours, strides, engine.stride_ms))
    print(f"{args.minutes:g} min of audio, {bundle.window_samples / rate:.2f} s window, "
          f"1 thread")
    print(f"{'engine':<36}{'stride ms':>10}{'strides':>10}{'CPU s / hour':>14}")
    for name, per_hour, strides, stride in rows:
        print(f"{name:<36}{stride:>10.0f}{strides:>10}{per_hour:>14.1f}")
    reference, best = rows[0][1], rows[-1]
    print(f"\n{best[0]}: {reference / best[1]:.1f}x less CPU than recomputing; "
          f"{best[1]:.1f} s per hour of audio = {best[1] / 36:.2f}% of one core")


if __name__ == "__main__":
    main()
