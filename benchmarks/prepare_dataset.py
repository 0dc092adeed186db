"""Preparing the keyword dataset: earmark's decode-once cache vs librosa.load per file.

Times, in the same run, on ../shared/data/speech_commands_v2_test (2,850 FLAC files):
  1. librosa.load(path, sr=16000) for every file (the usual tutorial loop);
  2. earmark's cold build of the memory-mapped store (decode + resample, all cores);
  3. re-opening the store when nothing changed (what every later run pays);
  4. one epoch's worth of reading every clip from each: librosa again vs the map.
Prints seconds and the ratio to librosa. Every file is read once before the
timings, and librosa loads one file first, so neither side pays for the disk
or for start-up: the cold build's gain is then all cores decoding at once
(each file costs about the same to decode either way: libsndfile under both),
and every later run's gain is not decoding at all.

    python benchmarks/prepare_dataset.py [--data DIR] [--limit N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from earmark.data.cache import build_store
from earmark.data.manifest import from_folder

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "speech_commands_v2_test"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="folder per class")
    parser.add_argument("--limit", type=int, default=0, help="use only the first N files")
    args = parser.parse_args()
    import librosa

    manifest = from_folder(args.data)
    if args.limit:
        manifest.rows = manifest.rows[:args.limit]
    paths = [row.path for row in manifest]
    print(f"{len(paths)} files from {args.data}")
    for path in paths:                      # into the page cache: time decoding, not the disk
        Path(path).read_bytes()
    librosa.load(paths[0], sr=16000)        # librosa's lazy imports and JIT: not per file

    started = time.perf_counter()
    reference = [librosa.load(path, sr=16000)[0] for path in paths]
    librosa_seconds = time.perf_counter() - started

    with tempfile.TemporaryDirectory() as cache:
        started = time.perf_counter()
        store = build_store(manifest, 16000, cache, progress=False)
        cold = time.perf_counter() - started
        started = time.perf_counter()
        store = build_store(manifest, 16000, cache, progress=False)
        warm = time.perf_counter() - started
        started = time.perf_counter()
        total = sum(float(np.asarray(store.recording(i)).sum()) for i in range(len(store)))
        read_all = time.perf_counter() - started
        worst = max(float(np.abs(store.recording(i) - reference[i]).max())
                    for i in range(len(store)))
    del total

    rows = [("librosa.load, every file", librosa_seconds),
            ("earmark cold build (decode once)", cold),
            ("earmark reopen, nothing changed", warm),
            ("earmark read every clip from the map", read_all)]
    print(f"\n{'step':<40}{'seconds':>10}{'x faster than librosa':>24}")
    for name, seconds in rows:
        print(f"{name:<40}{seconds:>10.3f}{librosa_seconds / max(seconds, 1e-9):>24.1f}")
    print(f"\nsamples identical to librosa's: max |diff| = {worst:.2e}")
    print(f"first preparation: {librosa_seconds / cold:.1f}x faster; every later epoch or run: "
          f"{librosa_seconds / max(warm + read_all, 1e-9):.0f}x faster")


if __name__ == "__main__":
    main()
