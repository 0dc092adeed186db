"""CPU cost of streaming recognition: seconds of CPU per hour of audio at a 20 ms stride.

Runs the same bundle over the same audio, on one thread, in the same run:
the incremental engine (only new front-end frames each hop; with a
valid-padded DS-CNN, each layer's new column once per frame too; with the
speech embedding, each new column from its new samples and the network's
states), the same with the whole window's network run at every stride (and
each embedding column from all its samples), and the reference that
recomputes the whole window (features and network) at every stride. Prints
each and the ratio to the reference. Each figure is the least of
``--repeats`` runs, taken in turns (every engine once, then again), so a
busy spell of a shared host slows one run of each rather than one engine.

    earmark export runs/keywords --out bundles/keywords        # once
    python benchmarks/stream_cost.py --bundle bundles/keywords [--minutes 2] [--repeats 3]
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


#: (name, incremental, network stepped, front-end stepped)
VARIANTS = [("recompute the window each stride", False, False, False),
            ("new frames, whole-window network", True, False, False),
            ("new frames from new samples (states)", True, False, True),
            ("new frames, network stepped per frame", True, True, False)]
#: Audio block sizes: 20 ms, what `earmark listen` reads from a microphone (50 ms),
#: and from a file or stdin (100 ms). The stride is the same for all. Longer blocks
#: (`--blocks-ms 100 320 640`, `earmark listen --block-ms`) cost less and delay
#: each detection by up to a block.
BLOCKS_MS = (20, 50, 100)


def engine_for(bundle, stride_ms: float, variant: tuple) -> StreamEngine:
    _, incremental, network, frames = variant
    return StreamEngine(bundle, stride_ms=stride_ms, incremental=incremental,
                        stepped_network=network, stepped_frames=frames)


def available_variants(bundle, stride_ms: float) -> list[tuple]:
    """The engines this bundle can run (the stepped network, or front-end, only where it was
    exported)."""
    variants = []
    for variant in VARIANTS:
        engine = engine_for(bundle, stride_ms, variant)
        name, _, network, frames = variant
        if network and not engine.network_stepped:
            print(f"({name}: not available, the bundle has no network step; export a "
                  "DS-CNN with model.time_padding = \"valid\")")
        elif frames and not engine.frames_stepped:
            print(f"({name}: not available, the bundle's front-end has no step with states; "
                  "the speech embedding's bundles have one)")
        else:
            variants.append(variant)
    return variants


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", default="bundles/keywords", help="a keyword bundle")
    parser.add_argument("--minutes", type=float, default=2.0, help="audio to stream")
    parser.add_argument("--repeats", type=int, default=3, help="runs per figure (least kept)")
    parser.add_argument("--stride-ms", type=float, default=20.0)
    parser.add_argument("--blocks-ms", type=int, nargs="+", default=list(BLOCKS_MS),
                        help="block sizes to measure (default 20 50 100)")
    args = parser.parse_args()
    bundle = load_bundle(args.bundle, threads=1)
    rate = bundle.sample_rate
    rng = np.random.default_rng(0)
    signal = (0.05 * rng.standard_normal(int(args.minutes * 60 * rate))).astype(np.float32)
    hours = args.minutes / 60
    variants = available_variants(bundle, args.stride_ms)
    table = {}
    for _ in range(args.repeats):
        for variant in variants:
            name = variant[0]
            for block_ms in args.blocks_ms:
                engine = engine_for(bundle, args.stride_ms, variant)
                seconds, _ = cpu_seconds(engine, signal, rate * block_ms // 1000)
                table[name, block_ms] = min(table.get((name, block_ms), np.inf), seconds / hours)
    print(f"{args.minutes:g} min of audio, {bundle.window_samples / rate:.2f} s window, "
          f"stride {engine.stride_ms:.0f} ms, 1 thread, least of {args.repeats} runs; "
          "CPU seconds per hour of audio")
    print(f"{'engine':<40}" + "".join(f"{f'{b} ms blocks':>16}" for b in args.blocks_ms))
    names = [variant[0] for variant in variants]
    for name in names:
        print(f"{name:<40}" + "".join(f"{table[name, b]:>16.1f}" for b in args.blocks_ms))
    best = names[-1]                    # the engine `earmark listen` runs
    print(f"\n{best}, ratio to recomputing:  " + "  ".join(
        f"{b} ms blocks {table[VARIANTS[0][0], b] / table[best, b]:.1f}x "
        f"({table[best, b]:.1f} s/h)" for b in args.blocks_ms))


if __name__ == "__main__":
    main()
