"""ESC-10 cross-validated per clip, against a simple reference in the same run.

For each fold present in ../shared/data/esc10_pieces (1, 2, 3, 5): trains
configs/esc10.toml with that fold as test (validation: 15% of the training
sources), exports a float and an int8 bundle, and judges every test clip by the
mean of its sounding 1 s pieces, with each bundle (onnxruntime, no torch). The
reference, on the same folds: per piece, the mean and standard deviation of 64
log-mel bands (the same front-end), a multinomial logistic regression, and the
same per-clip judgement. Prints per fold and mean +/- standard deviation, the
ratio, the int8 bundle's size and its latency per window.

    python benchmarks/esc10_cv.py                 # about 25 minutes on 2 cores
    python benchmarks/esc10_cv.py --runs runs/esc10-f   # reuse runs trained with the CLI
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from earmark import audio
from earmark.config import load_config
from earmark.data.manifest import clip_matcher, from_csv
from earmark.export import export_run
from earmark.frontend.module import FrontEnd
from earmark.run_folder import RunFolder
from earmark.runtime import Classifier, load_bundle
from earmark.train import train
from earmark.windowing import aggregate_windows, sounding_windows

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "esc10.toml"
FOLDS = (1, 2, 3, 5)


def is_sounding(path: str) -> bool:
    """The piece holds more than digital silence (the rule windows are judged by)."""
    return bool(sounding_windows(audio.load(path, 16000)[None, :])[0])


def clip_accuracy(rows, probabilities: dict[str, np.ndarray], sounding: dict[str, bool],
                  labels: list[str], pattern: str) -> float:
    """Each clip judged by the mean of its sounding pieces; the share judged right."""
    clip_of = clip_matcher(pattern)
    pieces = defaultdict(list)
    for row in rows:
        pieces[(clip_of(row.path), row.label)].append(row.path)
    right = 0
    for (_, label), paths in pieces.items():
        judged = aggregate_windows(np.stack([probabilities[p] for p in paths]), "mean",
                                   np.array([sounding[p] for p in paths]))
        right += labels[int(judged.argmax())] == label
    return right / len(pieces)


def bundle_figures(bundle: Path, rows, pattern: str) -> dict:
    classifier = Classifier.from_bundle(bundle)
    results = {row.path: classifier.classify_file(row.path) for row in rows}
    probabilities = {p: r.probabilities for p, r in results.items()}
    sounding = {row.path: is_sounding(row.path) for row in rows}
    accuracy = clip_accuracy(rows, probabilities, sounding, classifier.labels, pattern)
    loaded = load_bundle(bundle)
    window = np.zeros((1, loaded.window_samples), np.float32)
    for _ in range(20):
        loaded.predict_proba(window)
    started = time.perf_counter()
    for _ in range(200):
        loaded.predict_proba(window)
    latency = (time.perf_counter() - started) / 200
    size = sum(f.stat().st_size for f in bundle.rglob("*") if f.is_file())
    return {"accuracy": accuracy, "latency_ms": 1000 * latency, "kib": size / 1024}


def reference_accuracy(config, manifest, labels: list[str]) -> float:
    """Log-mel mean and spread per piece, logistic regression, judged per clip."""
    frontend = FrontEnd(config.features, config.data.sample_rate)
    rows = {split: [r for r in manifest if r.split in split] for split in
            (("train", "validation"), ("test",))}

    def features(chosen):
        clips = np.stack([np.resize(audio.load(r.path, 16000), 16000) for r in chosen])
        with torch.no_grad():
            levels = frontend(torch.as_tensor(clips, dtype=torch.float32))[:, 0]
        return torch.cat([levels.mean(-1), levels.std(-1)], dim=-1)

    train_rows = rows[("train", "validation")]
    probabilities = logistic_regression(features(train_rows), [r.label for r in train_rows],
                                        features(rows[("test",)]), labels)
    test = rows[("test",)]
    sounding = {r.path: is_sounding(r.path) for r in test}
    return clip_accuracy(test, {r.path: p for r, p in zip(test, probabilities)}, sounding,
                         labels, config.data.clip_pattern)


def logistic_regression(train_x: torch.Tensor, train_labels: list[str], test_x: torch.Tensor,
                        labels: list[str]) -> np.ndarray:
    """A multinomial logistic regression (standardised inputs, a small L2 penalty, no
    setting chosen on anything): the test rows' class probabilities."""
    mean, spread = train_x.mean(0), train_x.std(0) + 1e-6
    train_x, test_x = (train_x - mean) / spread, (test_x - mean) / spread
    target = torch.as_tensor([labels.index(label) for label in train_labels])
    torch.manual_seed(0)
    model = torch.nn.Linear(train_x.shape[1], len(labels))
    optimiser = torch.optim.LBFGS(model.parameters(), max_iter=500)

    def closure():
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(train_x), target) \
            + 1e-3 * model.weight.pow(2).sum()
        loss.backward()
        return loss

    optimiser.step(closure)
    with torch.no_grad():
        return torch.softmax(model(test_x), -1).numpy()


def fold_run(config_file: Path, fold: int, runs: str, scratch: str) -> Path:
    """The run with ``fold`` as test: ``{runs}{fold}`` when given, else trained now."""
    if runs:
        return Path(f"{runs}{fold}")
    run = Path(scratch) / f"run{fold}"
    config = load_config(config_file)
    config.data.fold = fold
    train(config, run)
    return run


def print_fold(fold: int, figures: dict[str, list[float]]) -> None:
    print(f"fold {fold}: " + ", ".join(f"{k} {v[-1]:.3f}" for k, v in figures.items()),
          flush=True)


def print_summary(title: str, figures: dict[str, list[float]]) -> None:
    """Each figure's mean +/- standard deviation over the folds (population, as the
    README's ESC-10 rows) and its value per fold."""
    print(f"\n{title}")
    width = max(len(key) for key in figures)
    for key, values in figures.items():
        print(f"{key:{width}s} {statistics.mean(values):8.3f} +/- "
              f"{statistics.pstdev(values):.3f}  per fold {[round(v, 3) for v in values]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="", help="existing run folders, + fold number")
    args = parser.parse_args()
    figures = defaultdict(list)
    with tempfile.TemporaryDirectory() as scratch:
        for fold in FOLDS:
            run = fold_run(CONFIG, fold, args.runs, scratch)
            config = load_config(RunFolder(run).config)
            manifest = from_csv(RunFolder(run).manifest)
            labels = RunFolder(run).read_labels()
            test = [r for r in manifest if r.split == "test"]
            for kind, int8 in (("float", False), ("int8", True)):
                bundle = Path(scratch) / f"{kind}{fold}"
                export_run(run, bundle, int8=int8)
                for key, value in bundle_figures(bundle, test, config.data.clip_pattern).items():
                    figures[f"{kind} {key}"].append(value)
            figures["reference accuracy"].append(reference_accuracy(config, manifest, labels))
            print_fold(fold, figures)
    print_summary(f"ESC-10 pieces, {len(FOLDS)} folds, clips judged by their sounding pieces",
                  figures)
    ratio = statistics.mean(figures["float accuracy"]) / statistics.mean(
        figures["reference accuracy"])
    print(f"ratio clip CNN / log-mel statistics + logistic regression: {ratio:.2f}x")


if __name__ == "__main__":
    main()
