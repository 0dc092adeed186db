"""Anomalous sound detection on the real MIMII fan (../shared/data/mimii_fan): the
recommended method against the DCASE 2020 autoencoder baseline, in one run.

For each of ``--repeats`` splits of the 20 normal clips (``data.split_seed``):
8 normal clips train, 2 set the threshold, the other 10 normals and all 20
abnormal clips test. Both methods see the same split. Printed per method:
AUC and DCASE's pAUC (FPR 0-0.1), mean +/- standard deviation over the splits,
F1 at the stored threshold, and the ratio to the baseline. Then the
robustness of normal sound: the test normals played 12 dB louder, 12 dB
quieter, and with other background noise (../shared/data/background_noise at
10 dB SNR): how many are flagged at the threshold (each split's own).

    python benchmarks/anomaly_mimii.py --repeats 10
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from earmark import audio
from earmark.anomaly.evaluate import evaluate_detector, load_detector
from earmark.anomaly.methods import score_windows
from earmark.anomaly.train import train_anomaly
from earmark.config import load_config
from earmark.windowing import cut_window, window_starts

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "anomaly_fan.toml"
NOISE = ROOT.parent / "shared" / "data" / "background_noise"


def clip_score(scorer, samples: np.ndarray, window: int, hop: int) -> float:
    starts = window_starts(len(samples), window, hop)
    windows = np.stack([cut_window(samples, s, window) for s in starts])
    return float(score_windows(scorer, windows).mean())


def robustness(run: Path, noise: np.ndarray | None) -> dict[str, int]:
    """How many test normals are flagged when louder, quieter, or over other noise."""
    detector = load_detector(run)
    summary = detector.summary
    window, hop, threshold = summary["window_samples"], summary["hop_samples"], summary["threshold"]
    normals = [r for r in detector.manifest if r.split == "test" and r.label == "normal"]
    flagged = {"as recorded": 0, "+12 dB": 0, "-12 dB": 0, "other noise, 10 dB SNR": 0}
    for row in normals:
        clip = audio.load(row.path, summary["sample_rate"])
        variants = {"as recorded": clip, "+12 dB": np.clip(clip * 10 ** (12 / 20), -1, 1),
                    "-12 dB": clip * 10 ** (-12 / 20)}
        if noise is not None:
            piece = np.resize(noise, len(clip))
            gain = np.sqrt(np.mean(clip ** 2) / max(np.mean(piece ** 2), 1e-12)) / 10 ** (10 / 20)
            variants["other noise, 10 dB SNR"] = clip + gain * piece
        for name, samples in variants.items():
            flagged[name] += clip_score(detector.scorer, samples, window, hop) > threshold
    return {name: int(count) for name, count in flagged.items()} | {"normals": len(normals)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--methods", nargs="+", default=["lines", "lines+texture", "autoencoder"],
                        help="anomaly methods; lines+texture = lines with anomaly.texture on")
    args = parser.parse_args()
    torch.set_num_threads(1)
    noise_files = sorted(p for p in NOISE.glob("*") if audio.is_audio_file(p)) if NOISE.is_dir() else []
    noise = audio.load(noise_files[0], 16000) if noise_files else None
    results = {m: {"auc": [], "pauc": [], "pauc_mcclish": [], "f1": [], "seconds": []}
               for m in args.methods}
    flags = {m: [] for m in args.methods}
    with tempfile.TemporaryDirectory() as scratch:
        for seed in range(args.repeats):
            for method in args.methods:
                config = load_config(CONFIG)
                config.anomaly.method = method.split("+")[0]
                config.anomaly.texture = method.endswith("+texture")
                config.data.split_seed = seed
                run = Path(scratch) / f"{method.replace('+', '-')}-{seed}"
                started = time.monotonic()
                train_anomaly(config, run)
                overall = evaluate_detector(run, plots=False)["overall"]
                results[method]["seconds"].append(time.monotonic() - started)
                for key in ("auc", "pauc", "pauc_mcclish", "f1"):
                    results[method][key].append(overall[key])
                flags[method].append(robustness(run, noise))
                print(f"split {seed} {method:14s} AUC {overall['auc']:.3f} "
                      f"pAUC {overall['pauc']:.3f} F1 {overall['f1']:.3f}", flush=True)
    report(results, flags, args.methods)


def report(results: dict, flags: dict, methods: list[str]) -> None:
    def spread(values):
        return f"{statistics.mean(values):.3f} +/- {statistics.pstdev(values):.3f}"

    print(f"\nMIMII fan id_00, {len(results[methods[0]]['auc'])} splits "
          "(train 8 normal, threshold 2 normal, test 10 normal + 20 abnormal)")
    for method in methods:
        r = results[method]
        print(f"{method:14s} AUC {spread(r['auc'])}  pAUC {spread(r['pauc'])}  "
              f"(McClish {spread(r['pauc_mcclish'])})  F1 {spread(r['f1'])}  "
              f"{statistics.mean(r['seconds']):.1f} s a split")
    if "autoencoder" in methods:
        base = results["autoencoder"]
        for method in (m for m in methods if m != "autoencoder"):
            r = results[method]
            print(f"ratio {method}/autoencoder: AUC "
                  f"{statistics.mean(r['auc']) / statistics.mean(base['auc']):.2f}x, pAUC "
                  f"{statistics.mean(r['pauc']) / max(statistics.mean(base['pauc']), 1e-9):.2f}x")
    for method in methods:
        total = {k: sum(f[k] for f in flags[method]) for k in flags[method][0]}
        normals = total.pop("normals")
        print(f"{method:14s} normals flagged: " +
              ", ".join(f"{k} {v}/{normals}" for k, v in total.items()))


if __name__ == "__main__":
    main()
