"""Scaling out: training samples per second on 1 and N processes (torchrun, DDP), and
preparation files per second on 1 and N Ray workers, each ratio measured in the same run.

Training: configs/keywords.toml on ../shared/data/speech_commands_v2_test, a few
epochs, the same global batch; one process with all the machine's cores, then N
processes with cores/N threads each (gloo on CPU, NCCL with --device cuda: one
GPU per process), with batch norm as the config's default leaves it (per process
at 32 a process) and synchronised. The figure is training windows per second over the epochs after
the first (validation included, start-up and decoding excluded), from the runs'
metrics.csv.

Preparation: the same 2,850 files decoded and resampled into a sharded store by a
local Ray instance with 1 CPU, then N CPUs (a fresh cache each time; files read
once before, so the disk is not timed), next to the default local thread pool.

    python benchmarks/scale_out.py                  # 1 vs 2 processes / workers, CPU
    python benchmarks/scale_out.py --processes 4 --device cuda   # on a 4-GPU machine
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "keywords.toml"
DATA = ROOT.parent / "shared" / "data" / "speech_commands_v2_test"


def train_rate(processes: int, epochs: int, device: str, folder: Path,
               sync: str = "auto") -> float:
    """Training windows per second over epochs 2.. of a run on ``processes`` processes."""
    out = folder / f"train-{processes}-{sync}"
    cores = os.cpu_count() or 1
    threads = max(1, cores // processes) if device == "cpu" else 1
    command = ["-m", "earmark", "train", str(CONFIG), "--out", str(out), "-q",
               "--set", f"train.epochs={epochs}", "--set", f"train.device={device}",
               "--set", f"train.threads={threads}", "--set", f"train.sync_batchnorm={sync}",
               "--set", f"data.cache_dir={folder / 'cache'}"]
    if processes > 1:
        command = ["-m", "torch.distributed.run", "--standalone",
                   f"--nproc-per-node={processes}", *command]
    subprocess.run([sys.executable, *command], check=True,
                   env={**os.environ, "OMP_NUM_THREADS": str(threads)})
    with open(out / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    windows = sum(float(row["train_windows"]) for row in rows[1:])
    return windows / (float(rows[-1]["seconds"]) - float(rows[0]["seconds"]))


def prepare_rate(manifest, engine: str, cpus: int, folder: Path) -> float:
    """Files per second of a cold preparation into a fresh cache."""
    from earmark.data.cache import build_store
    from earmark.data.ray_prepare import prepare_on_ray, ray_session

    cache = folder / f"cache-{engine}-{cpus}"
    if engine == "local":
        started = time.perf_counter()
        build_store(manifest, 16000, cache, workers=cpus, progress=False)
        return len(manifest) / (time.perf_counter() - started)
    with ray_session(cpus=cpus):                 # start-up not timed
        started = time.perf_counter()
        prepare_on_ray(manifest, 16000, cache, per_shard=100, progress=False)
        return len(manifest) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", type=int, default=2, help="N (default 2)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument("--skip-preparation", action="store_true")
    args = parser.parse_args()
    n = args.processes
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        if not args.skip_training:
            one, many, synced = (train_rate(p, args.epochs, args.device, folder, sync)
                                 for p, sync in ((1, "auto"), (n, "auto"), (n, "always")))
            print(f"training ({args.device}, keyword DS-CNN, global batch 64): 1 process "
                  f"{one:.0f} windows/s, {n} processes {many:.0f} windows/s, ratio "
                  f"{many / one:.2f}x; with batch norm synchronised {synced:.0f} windows/s, "
                  f"{synced / one:.2f}x")
        if not args.skip_preparation:
            from earmark.data.manifest import from_folder

            manifest = from_folder(DATA)
            for row in manifest:
                Path(row.path).read_bytes()      # into the page cache
            local = prepare_rate(manifest, "local", n, folder)
            one, many = (prepare_rate(manifest, "ray", c, folder) for c in (1, n))
            print(f"preparation of {len(manifest)} files: ray 1 worker {one:.0f} files/s, "
                  f"{n} workers {many:.0f} files/s, ratio {many / one:.2f}x; local thread "
                  f"pool ({n} threads) {local:.0f} files/s, ray {n} / local "
                  f"{many / local:.2f}x")


if __name__ == "__main__":
    main()
