"""`earmark monitor` over a day of audio: wall time, real-time factor, peak memory.

Builds ``--hours`` of audio (24 by default) from the real ESC-10 recordings in
``../shared/data/esc10_pieces`` (1 s pieces at 16 kHz, shuffled, under a slow
day-and-night gain curve) as a folder of ``--file-minutes`` FLAC files, then
runs `earmark monitor` on the folder in a child process and prints its wall
time, real-time factor and peak resident memory (``ru_maxrss`` of that process,
from ``os.wait4``) next to the size of the decoded audio. Side by side, the
whole span's LAeq from an independent reference: librosa's A-weighting curve
applied in the spectrum of each minute (numpy FFT), the energy mean over all.

    python benchmarks/monitor_day.py                      # 24 h: about 1.4 G samples
    python benchmarks/monitor_day.py --hours 0.5 --file-minutes 10 --out day/
    python benchmarks/monitor_day.py --bundle bundles/esc10   # sources an ESC-10 model names

Without ``--bundle`` the monitor runs the 8 kHz tone model of
``tests/fixtures/bundle_v1``: right for timing (the model's share of the work
is there), meaningless for the sources it names.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile

REPO = Path(__file__).resolve().parents[1]
PIECES = REPO.parent / "shared" / "data" / "esc10_pieces"
FIXTURE_BUNDLE = REPO / "tests" / "fixtures" / "bundle_v1"
RATE = 16000


def load_pieces(folder: Path) -> list[np.ndarray]:
    """Every piece as int16, cut or zero-padded to exactly 1 s (they hold 15356 to 16347
    samples): about 50 MB for the 1600 pieces."""
    pieces = []
    for path in sorted(folder.glob("*/*.flac")):
        samples = soundfile.read(path, dtype="int16")[0][:RATE]
        pieces.append(np.pad(samples, (0, RATE - len(samples))))
    return pieces


def day_gain_db(hour: float) -> float:
    """Quiet at night, busy by day: -18 dB at 3 am, 0 dB at 3 pm."""
    return -9.0 - 9.0 * math.cos(2 * math.pi * (hour - 3.0) / 24.0)


def write_day(folder: Path, pieces: list[np.ndarray], hours: float,
              file_minutes: float) -> list[Path]:
    """``hours`` of shuffled pieces as FLAC files of ``file_minutes``, named in order."""
    rng = np.random.default_rng(0)
    total, per_file = int(hours * 3600), int(file_minutes * 60)
    paths, second = [], 0
    while second < total:
        path = folder / f"day_{second // 3600:02d}h{second % 3600 // 60:02d}m.flac"
        length = min(per_file, total - second)
        with soundfile.SoundFile(path, "w", RATE, 1, format="FLAC", subtype="PCM_16") as sink:
            for offset in range(0, length, 60):            # a minute at a time, one gain
                gain = 10 ** (day_gain_db((second + offset) / 3600) / 20)
                chosen = rng.integers(0, len(pieces), min(60, length - offset))
                minute = np.concatenate([pieces[i] for i in chosen]).astype(np.float32)
                sink.write(minute * (gain / 32768))
        paths.append(path)
        second += length
    return paths


def run_monitor(bundle: Path, folder: Path, out: Path, interval: int) -> tuple[float, int]:
    """`earmark monitor` in a child process: ``(wall seconds, peak RSS in bytes)``."""
    command = [sys.executable, "-m", "earmark", "monitor", str(bundle), str(folder),
               "--out", str(out), "--interval", str(interval), "--plot", "-q"]
    started = time.perf_counter()
    child = subprocess.Popen(command)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"earmark monitor failed: {' '.join(command)}")
    return wall, usage.ru_maxrss * 1024                        # kilobytes on Linux


def reference_laeq(paths: list[Path]) -> float | None:
    """The whole span's LAeq in dBFS from librosa's A-weighting in each minute's spectrum;
    None without librosa."""
    try:
        import librosa
    except ImportError:
        return None
    energy, count = 0.0, 0
    for path in paths:
        for block in soundfile.blocks(str(path), blocksize=60 * RATE, dtype="float64"):
            spectrum = np.fft.rfft(block)
            with np.errstate(divide="ignore"):                # 0 Hz: -inf dB, weight 0
                weights = 10 ** (librosa.A_weighting(np.fft.rfftfreq(len(block), 1 / RATE),
                                                     min_db=None) / 10)
            power = np.abs(spectrum) ** 2 * weights
            power[1:(len(block) + 1) // 2] *= 2                 # the negative frequencies
            energy += power.sum() / len(block)                  # Parseval: sum of squares
            count += len(block)
    return 10 * math.log10(energy / count / 0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--file-minutes", type=float, default=60.0)
    parser.add_argument("--bundle", type=Path, default=FIXTURE_BUNDLE)
    parser.add_argument("--interval", type=int, default=60)
    parser.add_argument("--out", type=Path, help="keep the recordings, reports and picture here")
    parser.add_argument("--data", type=Path, default=PIECES)
    args = parser.parse_args()
    if not any(args.data.glob("*/*.flac")):
        print(f"skipped: no ESC-10 pieces in {args.data} (see its README)")
        return
    with tempfile.TemporaryDirectory() as scratch:
        root = args.out or Path(scratch)
        folder, reports = root / "recordings", root / "reports"
        folder.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        paths = write_day(folder, load_pieces(args.data), args.hours, args.file_minutes)
        print(f"built {args.hours:g} h as {len(paths)} FLAC file(s) in "
              f"{time.perf_counter() - started:.0f} s")
        (root / "minute").mkdir(exist_ok=True)
        write_day(root / "minute", load_pieces(args.data)[:60], 1 / 60, 1)
        _, baseline = run_monitor(args.bundle, root / "minute", root / "minute_reports", 60)
        report(args, paths, reports, *run_monitor(args.bundle, folder, reports, args.interval),
               baseline)


def report(args, paths: list[Path], reports: Path, wall: float, peak: int,
           baseline: int) -> None:
    seconds = args.hours * 3600
    decoded = seconds * RATE * 4
    summary = json.loads((reports / "summary.json").read_text())
    print(f"monitor: {len(summary['intervals'])} intervals of {args.interval} s, "
          f"{summary['events']} events, bundle {args.bundle}")
    print(f"wall {wall:.1f} s for {seconds:.0f} s of audio: real-time factor "
          f"{seconds / wall:.0f}x faster than real time ({wall / args.hours:.0f} s per hour)")
    print(f"peak memory (ru_maxrss) {peak / 2**20:.0f} MiB ({baseline / 2**20:.0f} MiB for one "
          f"minute of audio: libraries, model, plot) vs {decoded / 2**20:.0f} MiB to hold the "
          f"decoded audio")
    started = time.perf_counter()
    reference = reference_laeq(paths)
    ours = summary["overall"]["LAeq"]
    if reference is None:
        print(f"LAeq {ours:.2f} dBFS (no librosa for the reference)")
    else:
        print(f"LAeq {ours:.2f} dBFS, reference (librosa A-weighting per minute) "
              f"{reference:.2f} dBFS: difference {ours - reference:+.3f} dB (reference "
              f"pass {time.perf_counter() - started:.0f} s)")
    if args.out:
        print(f"picture: {reports / 'monitor.png'}")


if __name__ == "__main__":
    main()
