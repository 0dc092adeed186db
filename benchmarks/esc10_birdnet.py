"""ESC-10 on BirdNET's embedding, cross-validated per clip, against simpler models.

For each fold present in ../shared/data/esc10_pieces (1, 2, 3, 5): trains
configs/esc10_birdnet.toml with that fold as test (every training clip
trains) and reads its accuracy on the test clips (5 s, judged by the
mean of their sounding 3 s windows). In the same run, on the same folds,
trained on the same training and validation clips:

- BirdNET's embedding without earmark's training: each clip's mean embedding
  (over its sounding windows), a logistic regression; with the config's views
  (``features.playback_rates``), and with the window as recorded only;
- no pretrained network: the mean and spread of each clip's 64 log-mel bands, a
  logistic regression (as benchmarks/esc10_cv.py's reference, on whole clips).

Each run is also exported, and its bundle (onnxruntime, BirdNET beside it in
LiteRT, no torch) judges the test clips. Prints per fold and mean +/- standard
deviation, the ratios, the bundle's size and latency per window, and BirdNET's
time per 3 s window on this machine. Needs ``pip install 'earmark[birdnet]'``.

    python benchmarks/esc10_birdnet.py                          # about 80 minutes on 2 cores
    python benchmarks/esc10_birdnet.py --runs runs/esc10-bird-cv/fold  # crossval runs: ~65
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from earmark import audio
from earmark.config import FeatureConfig, load_config
from earmark.data.manifest import from_csv
from earmark.export import export_run
from earmark.frontend import bird_embedding as bird
from earmark.frontend.module import FrontEnd
from earmark.run_folder import RunFolder
from earmark.windowing import aggregate_windows, cut_window, sounding_windows, window_starts
from esc10_cv import (FOLDS, bundle_figures, fold_run, logistic_regression, print_fold,
                      print_summary)

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "esc10_birdnet.toml"
RATE = 16000


def clip_embedding(birdnet: bird.BirdEmbedding, clip: np.ndarray) -> np.ndarray:
    """The mean of the clip's sounding 3 s windows' embeddings, a second apart."""
    window, hop = bird.window_samples(RATE), bird.hop_samples(RATE)
    windows = np.stack([cut_window(clip, start, window)
                        for start in window_starts(len(clip), window, hop)])
    embeddings = birdnet(windows)[:, 0]
    return aggregate_windows(embeddings, "mean", sounding_windows(windows))


def log_mel_statistics(frontend: FrontEnd, clip: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        levels = frontend(torch.as_tensor(clip[None], dtype=torch.float32))[0, 0]
    return torch.cat([levels.mean(-1), levels.std(-1)]).numpy()


def reference_accuracies(run: Path, birdnet: bird.BirdEmbedding) -> dict[str, float]:
    """Both references trained on the run's training and validation clips, tested on its
    test clips."""
    manifest = from_csv(RunFolder(run).manifest)
    labels = RunFolder(run).read_labels()
    frontend = FrontEnd(FeatureConfig(kind="logmel", n_mels=64, fmin=50.0, fmax=8000.0), RATE)
    clips = {r.path: audio.load(r.path, RATE) for r in manifest}
    views = bird.BirdEmbedding(RATE, max(1, torch.get_num_threads()), tuple(
        load_config(CONFIG).features.playback_rates))
    features = {"BirdNET mean + logistic regression": lambda c: clip_embedding(views, c),
                "BirdNET as recorded only, mean + logistic regression":
                    lambda c: clip_embedding(birdnet, c),
                "log-mel statistics + logistic regression":
                    lambda c: log_mel_statistics(frontend, c)}
    train_rows = [r for r in manifest if r.split in ("train", "validation")]
    test_rows = [r for r in manifest if r.split == "test"]
    accuracies = {}
    for name, compute in features.items():
        table = {path: torch.as_tensor(compute(clip), dtype=torch.float32)
                 for path, clip in clips.items()}
        probabilities = logistic_regression(
            torch.stack([table[r.path] for r in train_rows]), [r.label for r in train_rows],
            torch.stack([table[r.path] for r in test_rows]), labels)
        judged = [labels[int(i)] for i in probabilities.argmax(1)]
        accuracies[name] = float(np.mean([j == r.label for j, r in zip(judged, test_rows)]))
    return accuracies


def window_milliseconds(birdnet: bird.BirdEmbedding) -> float:
    windows = np.zeros((bird.CALL_WINDOWS, bird.window_samples(RATE)), np.float32)
    birdnet(windows)
    started = time.perf_counter()
    birdnet(windows)
    return 1000 * (time.perf_counter() - started) / len(windows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="", help="existing run folders, + fold number")
    args = parser.parse_args()
    birdnet = bird.BirdEmbedding(RATE, threads=max(1, torch.get_num_threads()))
    figures = defaultdict(list)
    with tempfile.TemporaryDirectory() as scratch:
        for fold in FOLDS:
            run = fold_run(CONFIG, fold, args.runs, scratch)
            test = json.loads((run / "eval_test.json").read_text())
            figures["earmark on BirdNET (the config)"].append(test["accuracy"])
            bundle = Path(scratch) / f"bundle{fold}"
            export_run(run, bundle)
            rows = [r for r in from_csv(RunFolder(run).manifest) if r.split == "test"]
            for key, value in bundle_figures(bundle, rows, "").items():
                figures[f"its bundle: {key}"].append(value)
            for name, value in reference_accuracies(run, birdnet).items():
                figures[name].append(value)
            print_fold(fold, figures)
    print_summary(f"ESC-10, {len(FOLDS)} folds of ESC-50, 5 s clips at 16 kHz", figures)
    ours = statistics.mean(figures["earmark on BirdNET (the config)"])
    for name, values in figures.items():
        if "regression" in name:
            print(f"ratio to {name}: {ours / statistics.mean(values):.2f}x")
    print(f"BirdNET: {window_milliseconds(birdnet):.0f} ms a 3 s window on this machine")


if __name__ == "__main__":
    main()
