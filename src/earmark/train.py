"""The training loop: from an experiment config to a run folder with a trained model.

A run folder holds everything needed to reproduce or continue the run::

    config.toml        the resolved config (absolute paths)
    manifest.csv       every recording with its split
    labels.json        class order
    checkpoint.pt      last epoch (weights, optimizer, schedule, history) for --resume
    model.pt           best weights on validation (state dict only)
    metrics.csv        one row per epoch
    tensorboard/       the same curves for TensorBoard
    reports/           validation report + confusion PNG every k epochs
    training_curves.png
    eval_validation.*, eval_test.*   final reports of the best model

Randomness is derived from ``(seed, epoch)``, so a resumed run continues
exactly as an uninterrupted one would.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from earmark.atomic import write_bytes, write_json, write_text
from earmark.augment import (NoiseBank, WaveformAugmenter, frequency_warp_factors, mixup,
                             spec_augment)
from earmark.config import ExperimentConfig, to_toml
from earmark.data.dataset import Dataset, load_manifest, open_dataset
from earmark.data.manifest import from_csv
from earmark.errors import ConfigError, DataError
from earmark.evaluate import predict, report_for, write_report
from earmark.models import count_parameters
from earmark.network import WaveformClassifier, build_classifier, window_samples


@dataclass
class TrainState:
    """What a checkpoint holds besides the weights."""

    epoch: int = 0                       #: epochs finished
    best_epoch: int = 0
    best_score: float = -math.inf
    best_loss: float = math.inf          #: breaks ties: small validation sets tie often
    history: list[dict] = field(default_factory=list)

    def improves(self, accuracy: float, loss: float) -> bool:
        """Better validation accuracy, or the same accuracy at a lower loss."""
        return accuracy > self.best_score or (accuracy == self.best_score
                                              and loss < self.best_loss)


def train(config: ExperimentConfig, run_dir: str | Path, resume: bool = False,
          progress: bool = True) -> dict:
    """Train, keep the best weights on validation, and report validation and test.

    Returns a summary dict (also written as ``RUN/summary.json``).
    """
    run_dir = Path(run_dir)
    _check_run_dir(run_dir, resume)
    device = _device(config.train.device)
    torch.set_num_threads(config.train.threads or os.cpu_count() or 1)
    dataset = _prepare_data(config, run_dir, resume, progress)
    train_indices = dataset.indices("train")
    if not train_indices:
        raise DataError("the train split is empty; check data.split and data.ratios")
    validation_indices = dataset.indices("validation") or train_indices

    torch.manual_seed(config.train.seed)
    classifier = build_classifier(config, len(dataset.labels)).to(device)
    # Depthwise convolutions run about 1.5x faster channels-last on CPU.
    classifier.model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(classifier.parameters(), lr=config.train.learning_rate,
                                  weight_decay=config.train.weight_decay)
    steps_per_epoch = math.ceil(_epoch_size(dataset, train_indices, config)
                                / config.train.batch_size)
    scheduler = _scheduler(optimizer, config, steps_per_epoch)
    state = TrainState()
    if resume and (run_dir / "checkpoint.pt").is_file():
        state = _load_checkpoint(run_dir / "checkpoint.pt", classifier, optimizer, scheduler)
        print(f"resuming after epoch {state.epoch} (best {state.best_score:.4f} "
              f"at epoch {state.best_epoch})")
    print(f"{config.model.name}: {count_parameters(classifier):,} parameters; "
          f"{len(train_indices)} train / {len(dataset.indices('validation'))} validation / "
          f"{len(dataset.indices('test'))} test recordings; {len(dataset.labels)} classes; "
          f"device {device}")

    augmenter = WaveformAugmenter(config.augment, config.data.sample_rate, _noise_bank(config))
    class_weights = _class_weights(dataset, train_indices, config).to(device)
    writer = _tensorboard(run_dir)
    started = time.monotonic()
    for epoch in range(state.epoch + 1, config.train.epochs + 1):
        torch.manual_seed(config.train.seed * 100003 + epoch)
        generator = torch.Generator().manual_seed(config.train.seed * 100003 + epoch)
        rng = np.random.default_rng([config.train.seed, epoch])
        row = {"epoch": epoch, "learning_rate": optimizer.param_groups[0]["lr"]}
        row.update(_train_epoch(classifier, dataset, train_indices, config, augmenter,
                                class_weights, optimizer, scheduler, generator, rng, device,
                                progress, epoch))
        report, val_loss = _validate(classifier, dataset, validation_indices, config, device)
        row.update(val_loss=val_loss, val_accuracy=report.accuracy, val_macro_f1=report.macro_f1,
                   seconds=round(time.monotonic() - started, 1))
        state.history.append(row)
        state.epoch = epoch
        improved = state.improves(report.accuracy, val_loss)
        if improved:
            state.best_score, state.best_loss, state.best_epoch = report.accuracy, val_loss, epoch
            _save_atomic(classifier.state_dict(), run_dir / "model.pt")
        _log_epoch(row, improved, writer, run_dir, state)
        if epoch % max(config.train.report_every, 1) == 0 or epoch == config.train.epochs:
            write_report(report, run_dir / "reports" / f"validation_epoch_{epoch:03d}",
                         f"validation, epoch {epoch}")
        _save_checkpoint(run_dir / "checkpoint.pt", classifier, optimizer, scheduler, state)
        if config.train.patience and epoch - state.best_epoch >= config.train.patience:
            print(f"early stopping: no gain for {config.train.patience} epochs")
            break
    if writer is not None:
        writer.close()
    return _finish(run_dir, config, dataset, device, state, time.monotonic() - started)


def _check_run_dir(run_dir: Path, resume: bool) -> None:
    if (run_dir / "checkpoint.pt").is_file() and not resume:
        raise ConfigError(f"{run_dir} already holds a training run; pass --resume to "
                          "continue it, or choose another --out folder")
    run_dir.mkdir(parents=True, exist_ok=True)


def _device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device = 'cuda' but no CUDA device is available; use 'auto'")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _prepare_data(config: ExperimentConfig, run_dir: Path, resume: bool,
                  progress: bool) -> Dataset:
    """Split, decode, and record the config, manifest and labels in the run folder."""
    manifest_path = run_dir / "manifest.csv"
    if resume and manifest_path.is_file():
        manifest = from_csv(manifest_path)
    else:
        manifest = load_manifest(config)
    dataset = open_dataset(config, manifest, progress=progress)
    if resume and (run_dir / "labels.json").is_file():
        dataset.labels = json.loads((run_dir / "labels.json").read_text())
    write_text(run_dir / "config.toml", to_toml(config))
    dataset.manifest.to_csv(manifest_path)
    write_json(run_dir / "labels.json", dataset.labels)
    return dataset


def _noise_bank(config: ExperimentConfig) -> NoiseBank | None:
    if not config.augment.noise_dir or config.augment.noise_probability <= 0:
        return None
    return NoiseBank.from_folder(config.resolve(config.augment.noise_dir), config.data.sample_rate)


def _epoch_size(dataset: Dataset, indices: list[int], config: ExperimentConfig) -> int:
    return len(_training_windows(dataset, indices, config, np.random.default_rng(0)))


def _training_windows(dataset: Dataset, indices: list[int], config: ExperimentConfig,
                      rng: np.random.Generator) -> list[tuple[int, int]]:
    """Random windows for one epoch: about one per window-length of each recording.

    A recording shorter than the window is placed at a random offset in it;
    a longer one gives several random crops.
    """
    window = window_samples(config)
    planned = sum(max(1, round(int(dataset.store.lengths[i]) / window)) for i in indices)
    if config.train.balance == "sampler":
        indices = _balanced_draw(dataset, indices, rng)
    jobs = []
    for index in indices:
        length = int(dataset.store.lengths[index])
        crops = max(1, round(length / window))
        if length <= window:
            starts = -rng.integers(0, window - length + 1, size=crops)
        else:
            starts = rng.integers(0, length - window + 1, size=crops)
        jobs.extend((index, int(s)) for s in starts)
    # A balanced draw can pick longer recordings: keep the planned epoch size,
    # which the learning-rate schedule was built for.
    order = rng.permutation(len(jobs))[:planned]
    return [jobs[i] for i in order]


def _balanced_draw(dataset: Dataset, indices: list[int], rng: np.random.Generator) -> list[int]:
    """Draw as many recordings as there are, each class equally likely."""
    targets = np.array(dataset.targets(indices))
    counts = np.bincount(targets, minlength=len(dataset.labels)).astype(float)
    weights = 1.0 / counts[targets]
    chosen = rng.choice(len(indices), size=len(indices), p=weights / weights.sum())
    return [indices[i] for i in chosen]


def _class_weights(dataset: Dataset, indices: list[int], config: ExperimentConfig) -> torch.Tensor:
    """Inverse-frequency loss weights (mean 1), or all ones."""
    n_classes = len(dataset.labels)
    if config.train.balance != "weights":
        return torch.ones(n_classes)
    counts = np.bincount(dataset.targets(indices), minlength=n_classes).astype(np.float64)
    weights = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / n_classes, 0.0)
    return torch.tensor(weights / weights[counts > 0].mean(), dtype=torch.float32)


def _scheduler(optimizer, config: ExperimentConfig, steps_per_epoch: int):
    total = max(1, steps_per_epoch * config.train.epochs)
    if config.train.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=config.train.learning_rate, total_steps=total, pct_start=0.15)
    if config.train.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)


def _train_epoch(classifier: WaveformClassifier, dataset: Dataset, indices: list[int],
                 config: ExperimentConfig, augmenter: WaveformAugmenter,
                 class_weights: torch.Tensor, optimizer, scheduler, generator: torch.Generator,
                 rng: np.random.Generator, device: torch.device, progress: bool,
                 epoch: int) -> dict:
    classifier.train()
    window = window_samples(config)
    jobs = _training_windows(dataset, indices, config, rng)
    label_id = {label: i for i, label in enumerate(dataset.labels)}
    rows = dataset.manifest.rows
    n_classes = len(dataset.labels)
    total_loss, correct, seen = 0.0, 0, 0
    batches = range(0, len(jobs), config.train.batch_size)
    for begin in tqdm(batches, desc=f"epoch {epoch}", unit="batch", leave=False,
                      disable=not progress):
        chunk = jobs[begin:begin + config.train.batch_size]
        waveform = torch.from_numpy(np.stack([dataset.store.window(i, s, window)
                                              for i, s in chunk]))
        targets = torch.tensor([label_id[rows[i].label] for i, _ in chunk])
        waveform = augmenter(waveform, generator).to(device)
        targets = targets.to(device)
        with torch.no_grad():
            warp = frequency_warp_factors(len(chunk), tuple(config.augment.frequency_warp),
                                          generator, device)
            features = classifier.frontend(waveform, frequency_scale=warp)
            features = spec_augment(features, config.augment.time_masks,
                                    config.augment.time_mask_frames, config.augment.freq_masks,
                                    config.augment.freq_mask_bands, generator)
        soft = F.one_hot(targets, n_classes).float()
        soft = soft * (1 - config.train.label_smoothing) + config.train.label_smoothing / n_classes
        features, soft = mixup(features, soft, config.augment.mixup_alpha, generator)
        logits = classifier.model(features.contiguous(memory_format=torch.channels_last))
        loss = _weighted_soft_cross_entropy(logits, soft, class_weights)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        total_loss += float(loss.detach()) * len(chunk)
        correct += int((logits.argmax(dim=1) == targets).sum())
        seen += len(chunk)
    return {"train_loss": total_loss / seen, "train_accuracy": correct / seen}


def _weighted_soft_cross_entropy(logits: torch.Tensor, soft_targets: torch.Tensor,
                                 class_weights: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against soft targets, each example weighted by its classes' weights."""
    per_example = -(soft_targets * F.log_softmax(logits, dim=1)).sum(dim=1)
    weights = soft_targets @ class_weights
    return (per_example * weights).sum() / weights.sum().clamp_min(1e-8)


def _validate(classifier: WaveformClassifier, dataset: Dataset, indices: list[int],
              config: ExperimentConfig, device: torch.device):
    predictions = predict(classifier, dataset, indices, config, device)
    targets = np.array(dataset.targets(indices))
    chosen = predictions.probabilities[np.arange(len(targets)), targets]
    loss = float(-np.log(np.clip(chosen, 1e-8, 1.0)).mean())
    return report_for(predictions, dataset), loss


def _tensorboard(run_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional at run time
        return None
    return SummaryWriter(log_dir=str(run_dir / "tensorboard"))


def _log_epoch(row: dict, improved: bool, writer, run_dir: Path, state: TrainState) -> None:
    print(f"epoch {row['epoch']:3d}  loss {row['train_loss']:.3f}  "
          f"train {row['train_accuracy']:.3f}  val loss {row['val_loss']:.3f}  "
          f"val acc {row['val_accuracy']:.3f}  f1 {row['val_macro_f1']:.3f}  "
          f"lr {row['learning_rate']:.2e}  {row['seconds']:.0f}s" + ("  *" if improved else ""),
          flush=True)
    if writer is not None:
        for key, value in row.items():
            if key != "epoch":
                writer.add_scalar(key, value, row["epoch"])
        writer.flush()
    buffer = io.StringIO()
    fields = list(state.history[0])
    csv_writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    csv_writer.writeheader()
    csv_writer.writerows(state.history)
    write_text(run_dir / "metrics.csv", buffer.getvalue())


def _save_atomic(obj, path: Path) -> None:
    """torch.save to memory, then an atomic write: a kill never leaves half a file."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    write_bytes(path, buffer.getvalue())


def _save_checkpoint(path: Path, classifier, optimizer, scheduler, state: TrainState) -> None:
    _save_atomic({
        "model": classifier.state_dict(), "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(), "epoch": state.epoch,
        "best_epoch": state.best_epoch, "best_score": state.best_score,
        "best_loss": state.best_loss, "history": json.dumps(state.history),
    }, path)


def _load_checkpoint(path: Path, classifier, optimizer, scheduler) -> TrainState:
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    classifier.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    scheduler.load_state_dict(checkpoint["scheduler"])
    return TrainState(epoch=int(checkpoint["epoch"]), best_epoch=int(checkpoint["best_epoch"]),
                      best_score=float(checkpoint["best_score"]),
                      best_loss=float(checkpoint.get("best_loss", math.inf)),
                      history=json.loads(checkpoint["history"]))


def _finish(run_dir: Path, config: ExperimentConfig, dataset: Dataset, device: torch.device,
            state: TrainState, seconds: float) -> dict:
    """Restore the best weights, report validation and test, draw the curves."""
    from earmark.plots import plot_training_curves

    classifier = build_classifier(config, len(dataset.labels)).to(device)
    classifier.load_state_dict(torch.load(run_dir / "model.pt", map_location=device,
                                          weights_only=True))
    summary = {"best_epoch": state.best_epoch, "epochs": state.epoch,
               "parameters": count_parameters(classifier), "train_seconds": round(seconds, 1)}
    for split in ("validation", "test"):
        indices = dataset.indices(split)
        if indices:
            report = report_for(predict(classifier, dataset, indices, config, device), dataset)
            write_report(report, run_dir / f"eval_{split}", f"{run_dir.name}: {split} split")
            summary[f"{split}_accuracy"] = report.accuracy
            summary[f"{split}_macro_f1"] = report.macro_f1
            print(f"\n{split} ({len(indices)} recordings):\n{report.to_text()}")
    plot_training_curves(state.history, run_dir / "training_curves.png")
    write_json(run_dir / "summary.json", summary)
    print(f"best epoch {state.best_epoch}; outputs in {run_dir}")
    return summary
