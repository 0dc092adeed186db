"""Event detection on a 1-hour recording: real-time factor and memory.

Writes an hour of background noise with tones (8 kHz or the bundle's rate)
to a temporary FLAC, runs `earmark detect`'s pipeline on it (read in blocks),
and prints the wall time, the real-time factor (audio seconds per second of
processing) and the peak Python memory against the size of the decoded file.

    python benchmarks/detect_long.py --bundle bundles/keywords [--minutes 60]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import soundfile

from earmark.runtime import load_bundle
from earmark.runtime.detect import DetectionSettings, detect_events


def write_long_file(path: Path, minutes: float, rate: int) -> None:
    rng = np.random.default_rng(0)
    with soundfile.SoundFile(path, "w", rate, 1, subtype="PCM_16", format="FLAC") as sink:
        for _ in range(int(minutes * 6)):                 # 10 s blocks
            block = 0.02 * rng.standard_normal(10 * rate)
            t = np.arange(rate) / rate
            block[2 * rate:3 * rate] += 0.3 * np.sin(2 * np.pi * 440 * t)
            sink.write(block.astype(np.float32))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", default="bundles/keywords")
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--hop", type=float, default=0.1)
    args = parser.parse_args()
    bundle = load_bundle(args.bundle)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "long.flac"
        write_long_file(path, args.minutes, bundle.sample_rate)
        tracemalloc.start()
        started = time.perf_counter()
        events, result = detect_events(bundle, path, DetectionSettings(window_hop_seconds=args.hop))
        seconds = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    decoded = args.minutes * 60 * bundle.sample_rate * 4
    print(f"{args.minutes:g} min at {bundle.sample_rate} Hz, hop {args.hop} s: "
          f"{len(result.window_starts)} windows, {len(events)} events")
    print(f"wall {seconds:.1f} s, real-time factor {args.minutes * 60 / seconds:.0f}x "
          f"faster than real time")
    print(f"peak Python memory {peak / 2**20:.1f} MiB vs {decoded / 2**20:.0f} MiB to hold "
          f"the decoded file ({decoded / peak:.0f}x less)")


if __name__ == "__main__":
    main()
