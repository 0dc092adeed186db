"""The training loop: from an experiment config to a run folder with a trained model.

The run folder's files are listed in :mod:`earmark.run_folder`. Besides the
weights, training keeps real validation and training windows there
(``export_windows.npz``), so a run can be exported where its recordings are
absent.

Randomness is derived from ``(seed, epoch)``, so a resumed run continues
exactly as an uninterrupted one would.

A training holds the run folder's lock (:meth:`RunFolder.lock`) from start
to end, so a second training into the same folder is refused at once.
``--resume`` first checks the new config against the run
(:func:`earmark.resume.check_resume`) and writes nothing when it does not fit.

Started by ``torchrun`` on several processes (:mod:`earmark.parallel`), the
same loop trains data-parallel: ``train.batch_size`` is the global batch,
each process takes its share of every batch of the same epoch plan, gradients
are averaged (``DistributedDataParallel``), batch norm is synchronised when
each process's share is small (``train.sync_batchnorm``), the loss is
normalised over the global batch, validation is split over the
processes by clip and gathered, and only rank 0 locks and writes the run
folder. A one-process run is a world of one and talks to nothing.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import math
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from earmark.atomic import write_json, write_text
from earmark.augment import (NoiseBank, RoomBank, WaveformAugmenter, frequency_warp_factors,
                             mixup, spec_augment)
from earmark.config import ExperimentConfig, to_toml
from earmark.data.dataset import (Dataset, class_labels, export_windows, load_manifest,
                                  open_dataset)
from earmark.data.manifest import from_csv
from earmark.data.splits import check_trainable
from earmark.distill import Teacher, check_split, teacher_config
from earmark.errors import ConfigError, DataError
from earmark.evaluate import Predictions, clip_units, predict, report_for, write_report
from earmark.feature_copies import (FeatureBatch, FeatureCopies, OnceComputedFrontEnd,
                                    check_feature_copies)
from earmark.models import count_parameters
from earmark.network import (WaveformClassifier, build_classifier, load_trained, read_weights,
                             window_hop_samples, window_samples, write_weights)
from earmark.parallel import processes as parallel
from earmark.parallel.batchnorm import should_synchronize, synchronize_batchnorm
from earmark.parallel.processes import Processes
from earmark.progress import Progress, ProgressLike, as_progress
from earmark.resume import Resumption, check_resume, check_reusable
from earmark.run_folder import RunFolder
from earmark.windowing import sounding_windows

logger = logging.getLogger(__name__)

#: Times a training crop of digital silence is drawn again before it is kept.
SILENT_REDRAWS = 8

#: The settings the learning-rate schedule is built from: when a resumed run changes
#: one, the schedule is rebuilt for the new settings and brought to the run's step.
SCHEDULE_SETTINGS = ("train.epochs", "train.batch_size", "train.learning_rate",
                     "train.schedule")

@dataclass
class TrainState:
    """What a checkpoint holds besides the weights."""

    epoch: int = 0                       #: epochs finished
    best_epoch: int = 0
    best_score: float = -math.inf
    best_loss: float = math.inf          #: breaks ties: small validation sets tie often
    history: list[dict] = field(default_factory=list)

    def improves(self, accuracy: float, loss: float, select: str = "accuracy") -> bool:
        """By ``select`` (``train.select_epoch``): better validation accuracy, or the same
        at a lower loss; a lower validation loss; or any later epoch."""
        if select == "last" or self.best_epoch == 0:    # the first epoch is kept whatever
            return True
        if select == "loss":
            return loss < self.best_loss
        return accuracy > self.best_score or (accuracy == self.best_score
                                              and loss < self.best_loss)


@dataclass
class EpochContext:
    """What every epoch of one training run works with."""

    classifier: WaveformClassifier
    dataset: Dataset
    train_indices: list[int]
    validation_indices: list[int]
    config: ExperimentConfig
    augmenter: WaveformAugmenter
    class_weights: torch.Tensor
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    steps_per_epoch: int
    device: torch.device
    progress: Progress
    processes: Processes = field(default_factory=Processes)
    #: what a training step runs: ``classifier.model``, wrapped for data parallelism
    model: torch.nn.Module | None = None
    #: with ``train.teacher``: the trained teacher whose scores join the targets
    teacher: Teacher | None = None
    #: with ``train.feature_copies``: the kept training batches, and the network whose
    #: front-end computes each validation batch once
    feature_copies: FeatureCopies | None = None
    validation_classifier: WaveformClassifier | None = None

    @property
    def trained(self) -> torch.nn.Module:
        return self.model if self.model is not None else self.classifier.model

    @property
    def validator(self) -> WaveformClassifier:
        """The network validation runs: the trained one, its front-end's answers kept."""
        chosen = self.validation_classifier
        return chosen if chosen is not None else self.classifier


def train(config: ExperimentConfig, run_dir: str | Path, resume: bool = False,
          progress: ProgressLike = None, kept: FeatureCopies | None = None) -> dict:
    """Train, keep the best weights on validation, and report validation and test.

    Parameters
    ----------
    run_dir : str or Path
        The run folder; it is locked for the whole run.
    resume : bool
        Continue the run in ``run_dir`` from its checkpoint. The config must
        keep the run's network, data and split settings (``train.epochs`` may
        grow); it is checked before anything in the folder is written.
    progress : Progress, optional
        Told of decoding and of each epoch's batches (the CLI draws bars).
    kept : FeatureCopies, optional
        With ``train.feature_copies``: the copies an earlier training of the same data,
        split, front-end and augmentation kept (this one reuses them, and keeps in it
        what it computes), so trainings that differ in their seed alone compute the
        front-end once.

    Returns a summary dict (also written as ``RUN/summary.json``).

    Raises
    ------
    ConfigError
        When another training holds the folder, when it holds a run and
        ``resume`` is not set, or when a resume changes a fixed setting.
    DataError
        On unusable data (a class with no training recordings, ...) or a
        damaged run folder.
    """
    run = RunFolder(run_dir)
    build_classifier(config, 2)        # a wrong [model] option: refused before any work
    teacher_setup = teacher_config(config)    # checked as early, the teacher's too
    processes = parallel.from_environment()
    try:
        device = parallel.start(processes, config.train.device)
        parallel.local_batch_size(config.train.batch_size, processes)
        with run.lock() if processes.is_main else contextlib.nullcontext():
            _check_run_dir(run, resume)
            resumption = check_resume(run, config) if resume else None
            teacher = None
            if teacher_setup is not None:
                teacher = _trained_teacher(run, config, teacher_setup, resume, progress,
                                           processes, device)
            return _train_in(run, config, resumption, progress, processes, device, teacher,
                             kept)
    finally:
        parallel.stop(processes)


def _trained_teacher(run: RunFolder, config: ExperimentConfig, setup: ExperimentConfig,
                     resume: bool, progress: ProgressLike, processes: Processes,
                     device: torch.device) -> Teacher:
    """The teacher ``train.teacher`` describes (``setup``), trained into ``RUN/teacher``
    unless it is finished there, with the student's distillation settings.

    A finished teacher is reused when it was trained from ``setup``; an unfinished
    one is continued with ``resume`` (and refused without it, like any run).
    """
    folder = run.teacher
    if folder.summary.is_file():
        check_reusable(folder, setup, "a teacher", "train into another --out folder, or "
                       "remove that teacher to train it again")
        logger.info("reusing the finished teacher in %s", folder.path)
    else:
        _check_run_dir(folder, resume)
        resumption = check_resume(folder, setup) if resume else None
        logger.info("training the teacher (%s on %s features) into %s", setup.model.name,
                    setup.features.kind, folder.path)
        _train_in(folder, setup, resumption, progress, processes, device)
    parallel.barrier(processes)
    _, labels, classifier = load_trained(folder.path)
    return Teacher(classifier.to(device), labels, config.train.distill_weight,
                   config.train.distill_temperature,
                   window=window_samples(setup))


def _train_in(run: RunFolder, config: ExperimentConfig, resumption: Resumption | None,
              progress: ProgressLike, processes: Processes, device: torch.device,
              teacher: Teacher | None = None, kept: FeatureCopies | None = None) -> dict:
    """The run itself, once the folder is locked and a resume checked."""
    torch.set_num_threads(config.train.threads
                          or max(1, (os.cpu_count() or 1) // processes.local_world_size))
    progress = progress if processes.is_main else None
    dataset = _prepare_data(config, run, resumption is not None, progress, processes)
    if teacher is not None:
        if teacher.labels != dataset.labels:
            raise DataError(f"{run.teacher.path}: the teacher's classes {teacher.labels} "
                            f"differ from the run's {dataset.labels}; remove the teacher "
                            "folder to train it again")
        check_split(from_csv(run.teacher.manifest).rows, dataset.manifest.rows,
                    str(run.teacher.path))
    context = _epoch_context(config, dataset, device, as_progress(progress), processes)
    context.teacher = teacher
    _keep_features(context, kept)
    state = TrainState()
    if resumption is not None and resumption.checkpoint is not None:
        state = _restore(resumption, context)
        logger.info("resuming after epoch %d (best %.4f at epoch %d)", state.epoch,
                    state.best_score, state.best_epoch)
    _log_start(context)
    writer = _tensorboard(run) if processes.is_main else None
    started = time.monotonic()
    for epoch in range(state.epoch + 1, config.train.epochs + 1):
        row, report = _run_epoch(context, epoch)
        row["seconds"] = round(time.monotonic() - started, 1)
        _record_epoch(run, context, state, row, report, writer)
        if config.train.patience and epoch - state.best_epoch >= config.train.patience:
            logger.info("early stopping: no gain for %d epochs", config.train.patience)
            break
    if writer is not None:
        writer.close()
    if not processes.is_main:
        return {}
    teacher_summary = run.teacher.read_summary() if teacher is not None else {}
    return _finish(run, config, dataset, device, state, time.monotonic() - started,
                   teacher_summary)


def _epoch_context(config: ExperimentConfig, dataset: Dataset, device: torch.device,
                   progress: Progress, processes: Processes = Processes()) -> EpochContext:
    """The network (seeded), optimizer, schedule, augmentation and loss weights."""
    train_indices = dataset.indices("train")
    if not train_indices:
        raise DataError("the train split is empty; check data.split and data.ratios")
    if not dataset.indices("validation"):
        _say_validation_is_training(config.train.select_epoch)
    torch.manual_seed(config.train.seed)
    classifier = build_classifier(config, len(dataset.labels)).to(device)
    model = None
    local_batch = parallel.local_batch_size(config.train.batch_size, processes)
    if processes.distributed and should_synchronize(config.train.sync_batchnorm, local_batch):
        classifier.model = synchronize_batchnorm(classifier.model, device)
    # Depthwise convolutions run about 1.5x faster channels-last on CPU.
    classifier.model.to(memory_format=torch.channels_last)
    if processes.distributed:
        model = torch.nn.parallel.DistributedDataParallel(
            classifier.model, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = torch.optim.AdamW(classifier.parameters(), lr=config.train.learning_rate,
                                  weight_decay=config.train.weight_decay)
    steps_per_epoch = math.ceil(_shared_size(_epoch_size(dataset, train_indices, config),
                                             config.train.batch_size, processes)
                                / config.train.batch_size)
    return EpochContext(
        classifier=classifier, dataset=dataset, train_indices=train_indices,
        validation_indices=dataset.indices("validation") or train_indices, config=config,
        augmenter=WaveformAugmenter(config.augment, config.data.sample_rate,
                                    _noise_bank(config), _room_bank(config)),
        class_weights=_class_weights(dataset, train_indices, config).to(device),
        optimizer=optimizer, scheduler=_scheduler(optimizer, config, steps_per_epoch),
        steps_per_epoch=steps_per_epoch, device=device, progress=progress,
        processes=processes, model=model)


def _keep_features(context: EpochContext, kept: FeatureCopies | None = None) -> None:
    """With ``train.feature_copies``: checked, then the copies' store (``kept`` where an
    earlier training gives one) and the validator."""
    config, classifier = context.config, context.classifier
    copies = config.train.feature_copies
    check_feature_copies(copies, classifier.frontend,
                         context.steps_per_epoch * config.train.batch_size,
                         tuple(classifier.frontend.output_shape(window_samples(config))),
                         context.teacher is not None)
    if kept is not None and kept.copies != copies:
        raise ConfigError(f"train.feature_copies = {copies}, but the kept features hold "
                          f"{kept.copies} copies: keep the setting of the training that "
                          "kept them")
    if copies:
        context.feature_copies = kept if kept is not None else FeatureCopies(copies)
        context.validation_classifier = WaveformClassifier(
            OnceComputedFrontEnd(classifier.frontend), classifier.model)
        logger.info("the features of %s over the training windows are kept and reused from "
                    "epoch %d on", "one pass" if copies == 1 else f"{copies} passes", copies + 1)


def _say_validation_is_training(select_epoch: str) -> None:
    """No validation split: a warning when an epoch is to be chosen on it, a note when the
    last one is kept anyway."""
    if select_epoch == "last":
        logger.info("no validation split: the last epoch is kept, and the validation "
                    "figures are the training recordings'")
        return
    logger.warning("the validation split is empty: epochs are judged, and the best one "
                   "chosen, on the training recordings themselves (the validation "
                   "figures are training figures); give data.ratios a validation share")


def _log_start(context: EpochContext) -> None:
    dataset, config, processes = context.dataset, context.config, context.processes
    logger.info("%s: %s parameters; %d train / %d validation / %d test recordings; "
                "%d classes; device %s", config.model.name,
                f"{count_parameters(context.classifier):,}", len(context.train_indices),
                len(dataset.indices("validation")), len(dataset.indices("test")),
                len(dataset.labels), context.device)
    if processes.distributed:
        local_batch = parallel.local_batch_size(config.train.batch_size, processes)
        logger.info("data parallel over %d processes: global batch %d (%d per process), "
                    "learning rate %g for the global batch, batch norm %s",
                    processes.world_size, config.train.batch_size, local_batch,
                    config.train.learning_rate,
                    "synchronised" if should_synchronize(config.train.sync_batchnorm,
                                                         local_batch) else "per process")


def _run_epoch(context: EpochContext, epoch: int):
    """Train one epoch with its own seeds, then score validation: the metrics row."""
    seed = context.config.train.seed
    # Augmentation and dropout differ between processes; the epoch plan (rng) does not.
    draws = seed * 100003 + epoch + 7919 * context.processes.rank
    torch.manual_seed(draws)
    generator = torch.Generator().manual_seed(draws)
    rng = np.random.default_rng([seed, epoch])
    row = {"epoch": epoch, "learning_rate": context.optimizer.param_groups[0]["lr"]}
    row.update(_train_epoch(context, epoch, generator, rng))
    report, val_loss = _validate(context)
    row.update(val_loss=val_loss, val_accuracy=report.accuracy, val_macro_f1=report.macro_f1)
    return row, report


def _record_epoch(run: RunFolder, context: EpochContext, state: TrainState, row: dict,
                  report, writer) -> None:
    """Keep the best weights, log the row, write reports and the checkpoint."""
    epoch, config = row["epoch"], context.config
    state.history.append(row)
    state.epoch = epoch
    improved = state.improves(report.accuracy, row["val_loss"], config.train.select_epoch)
    if improved:
        state.best_score, state.best_loss, state.best_epoch = (report.accuracy, row["val_loss"],
                                                               epoch)
    if not context.processes.is_main:
        return
    if improved:
        write_weights(context.classifier.state_dict(), run.model)
    _log_epoch(row, improved, writer, run, state)
    if epoch % max(config.train.report_every, 1) == 0 or epoch == config.train.epochs:
        write_report(report, run.epoch_report(epoch), f"validation, epoch {epoch}")
    _save_checkpoint(run.checkpoint, context, state)


def _check_run_dir(run: RunFolder, resume: bool) -> None:
    run.refuse_other_contents("classifier")
    if run.checkpoint.is_file() and not resume:
        raise ConfigError(f"{run.path} already holds a training run; pass --resume to "
                          "continue it, or choose another --out folder")


def _prepare_data(config: ExperimentConfig, run: RunFolder, resume: bool,
                  progress: ProgressLike, processes: Processes = Processes()) -> Dataset:
    """Split, decode, and record the config, manifest and labels in the run folder.

    A new run's split must give every class training recordings (checked
    before decoding, and again after unreadable files are skipped); a resumed
    run keeps the split and labels it was started with. With several
    processes, the first of each machine decodes while the others wait, then
    they open its cache; only rank 0 writes.
    """
    if processes.local_rank == 0:
        dataset = _open_data(config, run, resume, progress)
    parallel.barrier(processes)
    if processes.local_rank != 0:
        dataset = _open_data(config, run, resume, progress)
    if processes.is_main:
        write_text(run.config, to_toml(config))
        dataset.manifest.to_csv(run.manifest)
        write_json(run.labels, dataset.labels)
    return dataset


def _open_data(config: ExperimentConfig, run: RunFolder, resume: bool,
               progress: ProgressLike) -> Dataset:
    fresh = not (resume and run.manifest.is_file())
    if fresh:
        manifest = load_manifest(config)
        check_trainable(manifest, class_labels(config, manifest))
    else:
        manifest = from_csv(run.manifest)
    dataset = open_dataset(config, manifest, progress=progress)
    if fresh:
        check_trainable(dataset.manifest, dataset.labels)
    if resume and run.labels.is_file():
        dataset.labels = run.read_labels()
    return dataset


def _room_bank(config: ExperimentConfig) -> RoomBank | None:
    augment = config.augment
    if augment.reverb_probability <= 0:
        return None
    logger.info("simulating %d rooms (RT60 %g-%g s) for reverberation", augment.reverb_rooms,
                *augment.reverb_rt60)
    return RoomBank.simulate(config.data.sample_rate, tuple(augment.reverb_rt60),
                             augment.reverb_rooms, config.train.seed)


def _noise_bank(config: ExperimentConfig) -> NoiseBank | None:
    if not config.augment.noise_dir or config.augment.noise_probability <= 0:
        return None
    return NoiseBank.from_folder(config.resolve(config.augment.noise_dir), config.data.sample_rate)


def _epoch_size(dataset: Dataset, indices: list[int], config: ExperimentConfig) -> int:
    return len(_training_windows(dataset, indices, config, np.random.default_rng(0)))


def _shared_size(windows: int, batch_size: int, processes: Processes) -> int:
    """The windows an epoch trains on: every process takes part in every step, so a last
    batch shorter than the processes is dropped (and the schedule counts without it)."""
    return windows - windows % batch_size % processes.world_size


def _training_windows(dataset: Dataset, indices: list[int], config: ExperimentConfig,
                      rng: np.random.Generator) -> list[tuple[int, int]]:
    """The windows of one epoch, in a random order: ``train.windows`` says which.

    ``"random"``: about one per window-length of each recording, drawn anew.
    A recording shorter than the window is placed at a random offset in it;
    a longer one gives several random crops that reach its sound, each drawn
    again (up to :data:`SILENT_REDRAWS` times) while it holds only digital
    silence, such as the zeros that padded a short clip: they would teach that
    silence is the class, and they never vote when a recording is judged.
    ``"grid"``: the windows each recording is judged by (every window
    ``data.hop_seconds`` apart, those of digital silence left out).
    """
    window, hop = window_samples(config), window_hop_samples(config)
    grid = config.train.windows == "grid"

    def starts(index: int) -> np.ndarray | list[int]:
        if grid:
            return dataset.judged_starts(index, window, hop)
        return _random_crops(dataset, index, window, rng)

    planned = sum(len(dataset.judged_starts(i, window, hop)) if grid
                  else _crop_count(int(dataset.store.lengths[i]), window) for i in indices)
    if config.train.balance == "sampler":
        indices = _balanced_draw(dataset, indices, rng)
    jobs = [(index, int(start)) for index in indices for start in starts(index)]
    # A balanced draw can pick longer recordings: keep the planned epoch size,
    # which the learning-rate schedule was built for.
    order = rng.permutation(len(jobs))[:planned]
    return [jobs[i] for i in order]


def _crop_count(length: int, window: int) -> int:
    return max(1, round(length / window))


def _random_crops(dataset: Dataset, index: int, window: int,
                  rng: np.random.Generator) -> list[int]:
    """Random crops' starts, about one per window-length of the recording."""
    length = int(dataset.store.lengths[index])
    crops = _crop_count(length, window)
    if length <= window:
        return [int(s) for s in -rng.integers(0, window - length + 1, size=crops)]
    return [_sounding_crop(dataset, index, length, window, rng) for _ in range(crops)]


def _sounding_crop(dataset: Dataset, index: int, length: int, window: int,
                   rng: np.random.Generator) -> int:
    """A random crop's start among those that reach the recording's sound, drawn again
    while the crop is digital silence (a gap within the recording)."""
    first, last = dataset.sounding_span(index)
    low, high = max(0, first - window + 1), min(length - window, max(last, 0))
    if last < first:                            # all silence: any crop will do
        low, high = 0, length - window
    start = int(rng.integers(low, high + 1))
    for _ in range(SILENT_REDRAWS):
        if sounding_windows(dataset.store.window(index, start, window)[None])[0]:
            break
        start = int(rng.integers(low, high + 1))
    return start


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


def _train_epoch(context: EpochContext, epoch: int, generator: torch.Generator,
                 rng: np.random.Generator) -> dict:
    """One pass over random training windows (or over a kept copy of their features); the
    mean loss and accuracy.

    Every process draws the same windows (``rng``) and takes its share of
    each global batch; the figures are summed over the processes.
    """
    context.classifier.train()
    copies, processes = context.feature_copies, context.processes
    kept = copies.kept(epoch) if copies is not None else None
    batches = (FeatureCopies.reordered(kept, rng) if kept is not None
               else _window_batches(context, rng))
    computed: list[FeatureBatch] = []
    total_loss, correct, seen = 0.0, 0, 0
    with context.progress(len(batches), f"epoch {epoch}", "batch") as advance:
        for batch in batches:
            taught = None
            if kept is None:
                batch, taught = _batch_features(context, batch, generator)
                if copies is not None:
                    computed.append(batch)
            loss, right = _fit_batch(context, batch, taught, generator)
            total_loss += loss * len(batch.targets)
            correct += right
            seen += len(batch.targets)
            advance(1)
    if computed:
        copies.keep(epoch, computed)
    total_loss, correct, seen = parallel.sum_over(processes, [total_loss, correct, seen],
                                                  context.device)
    return {"train_loss": total_loss / seen, "train_accuracy": correct / seen,
            "train_windows": int(seen)}


def _window_batches(context: EpochContext,
                    rng: np.random.Generator) -> list[list[tuple[int, int]]]:
    """The epoch's random windows in batches, this process's share of each."""
    config, processes = context.config, context.processes
    jobs = _training_windows(context.dataset, context.train_indices, config, rng)
    jobs = jobs[:_shared_size(len(jobs), config.train.batch_size, processes)]
    if not jobs:
        raise DataError(f"fewer training windows than the {processes.world_size} processes")
    return [parallel.share(jobs[begin:begin + config.train.batch_size], processes)
            for begin in range(0, len(jobs), config.train.batch_size)]


def _batch_features(context: EpochContext, chunk: list[tuple[int, int]],
                    generator: torch.Generator) -> tuple[FeatureBatch, torch.Tensor | None]:
    """A batch of windows augmented and through the front-end; a teacher's scores of the
    windows as recorded."""
    dataset = context.dataset
    window = window_samples(context.config)
    waveform = torch.from_numpy(np.stack([dataset.store.window(i, s, window)
                                          for i, s in chunk]))
    targets = torch.tensor(dataset.targets([i for i, _ in chunk])).to(context.device)
    # the windows as recorded, for a teacher (the augmenter may work in place)
    recorded = waveform.to(context.device, copy=True) if context.teacher is not None else None
    waveform = context.augmenter(waveform, generator).to(context.device)
    features = _augmented_features(context, waveform, generator)
    taught = context.teacher.scores(recorded, chunk) if context.teacher is not None else None
    return FeatureBatch(features, targets), taught


def _fit_batch(context: EpochContext, batch: FeatureBatch, taught: torch.Tensor | None,
               generator: torch.Generator) -> tuple[float, int]:
    """One optimizer step on a batch's features (SpecAugment and mixup drawn here): its
    loss and how many it got right."""
    config, augment = context.config, context.config.augment
    features = spec_augment(batch.features, augment.time_masks, augment.time_mask_frames,
                            augment.freq_masks, augment.freq_mask_bands, generator)
    n_classes = len(context.dataset.labels)
    soft = F.one_hot(batch.targets, n_classes).float()
    soft = soft * (1 - config.train.label_smoothing) + config.train.label_smoothing / n_classes
    features, soft, taught = _mixed(features, soft, taught, augment.mixup_alpha, generator)
    logits = context.trained(features.contiguous(memory_format=torch.channels_last))
    loss = _loss(context, logits, soft, taught)
    context.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    context.optimizer.step()
    context.scheduler.step()
    return float(loss.detach()), int((logits.argmax(dim=1) == batch.targets).sum())


def _mixed(features: torch.Tensor, soft: torch.Tensor, taught: torch.Tensor | None,
           alpha: float, generator: torch.Generator):
    """Mixup of the features, the label targets and a teacher's scores, by the same pairs."""
    if taught is None:
        return (*mixup(features, soft, alpha, generator), None)
    features, both = mixup(features, torch.cat([soft, taught], dim=1), alpha, generator)
    return (features, *both.split(soft.shape[1], dim=1))


def _loss(context: EpochContext, logits: torch.Tensor, soft: torch.Tensor,
          taught: torch.Tensor | None) -> torch.Tensor:
    """The weighted loss on the label targets; with a teacher, its distillation loss (both
    terms weighted by the labels' classes)."""
    def cross_entropy(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return _weighted_soft_cross_entropy(scores, targets, context.class_weights,
                                            context.processes, weighting=soft)

    label_loss = cross_entropy(logits, soft)
    if taught is None:
        return label_loss
    return context.teacher.loss(label_loss, logits, taught, cross_entropy)


def _augmented_features(context: EpochContext, waveform: torch.Tensor,
                        generator: torch.Generator) -> torch.Tensor:
    """Front-end features with frequency warping (no gradients needed); SpecAugment comes
    later, drawn anew each time a batch is trained on."""
    with torch.no_grad():
        warp = frequency_warp_factors(len(waveform), tuple(context.config.augment.frequency_warp),
                                      generator, context.device)
        return context.classifier.frontend(waveform, frequency_scale=warp)


def _weighted_soft_cross_entropy(logits: torch.Tensor, soft_targets: torch.Tensor,
                                 class_weights: torch.Tensor,
                                 processes: Processes = Processes(),
                                 weighting: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy against soft targets, each example weighted by its classes' weights
    (the classes of ``weighting``, the label targets, when the targets are a teacher's).

    With several processes the weights are normalised over the global batch and
    the loss scaled by the number of processes, so the gradients DDP averages
    equal those of the whole batch on one process.
    """
    per_example = -(soft_targets * F.log_softmax(logits, dim=1)).sum(dim=1)
    weights = (soft_targets if weighting is None else weighting) @ class_weights
    if not processes.distributed:
        return (per_example * weights).sum() / weights.sum().clamp_min(1e-8)
    (total,) = parallel.sum_over(processes, [float(weights.sum().detach())], weights.device)
    return (per_example * weights).sum() * processes.world_size / max(total, 1e-8)


def _validate(context: EpochContext):
    """The validation report and mean cross-entropy of the current weights."""
    dataset = context.dataset
    predictions = _predict_shared(context, context.validation_indices)
    targets = np.array(dataset.targets(predictions.indices))
    chosen = predictions.probabilities[np.arange(len(targets)), targets]
    loss = float(-np.log(np.clip(chosen, 1e-8, 1.0)).mean())
    return report_for(predictions, dataset), loss


def _predict_shared(context: EpochContext, indices: list[int]) -> Predictions:
    """:func:`predict` over the recordings, their clips shared out over the processes."""
    processes, config = context.processes, context.config
    if not processes.distributed:
        return predict(context.validator, context.dataset, indices, config, context.device)
    units = clip_units(context.dataset, indices, config.data.clip_pattern)
    mine = [index for unit in parallel.share(units, processes) for index in unit]
    own = predict(context.validator, context.dataset, mine, config, context.device)
    parts = parallel.gather(processes, (own.indices, own.probabilities))
    first = [i for part_indices, _ in parts for i in part_indices]
    probabilities = np.concatenate([p for _, p in parts])
    position = {index: place for place, index in enumerate(indices)}
    order = np.argsort([position[i] for i in first], kind="stable")
    return Predictions([first[i] for i in order], probabilities[order], [])


def _tensorboard(run: RunFolder):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional at run time
        return None
    return SummaryWriter(log_dir=str(run.tensorboard))


def _log_epoch(row: dict, improved: bool, writer, run: RunFolder, state: TrainState) -> None:
    logger.info(f"epoch {row['epoch']:3d}  loss {row['train_loss']:.3f}  "
                f"train {row['train_accuracy']:.3f}  val loss {row['val_loss']:.3f}  "
                f"val acc {row['val_accuracy']:.3f}  f1 {row['val_macro_f1']:.3f}  "
                f"lr {row['learning_rate']:.2e}  {row['seconds']:.0f}s"
                + ("  *" if improved else ""))
    if writer is not None:
        for key, value in row.items():
            if key != "epoch":
                writer.add_scalar(key, value, row["epoch"])
        writer.flush()
    buffer = io.StringIO()
    fields = list(state.history[0])
    csv_writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n",
                                extrasaction="ignore")   # a resumed run keeps its columns
    csv_writer.writeheader()
    csv_writer.writerows(state.history)
    write_text(run.metrics, buffer.getvalue())


def _save_checkpoint(path: Path, context: EpochContext, state: TrainState) -> None:
    write_weights({
        "model": context.classifier.state_dict(), "optimizer": context.optimizer.state_dict(),
        "scheduler": context.scheduler.state_dict(), "epoch": state.epoch,
        "best_epoch": state.best_epoch, "best_score": state.best_score,
        "best_loss": state.best_loss, "history": json.dumps(state.history),
    }, path)


def _restore(resumption: Resumption, context: EpochContext) -> TrainState:
    """Load a checked checkpoint into the context; the state it records.

    With the schedule's settings unchanged, the schedule continues exactly;
    otherwise it is rebuilt for the new ones (say, more epochs: the same
    schedule stretched) and brought to the step the run has reached.
    """
    checkpoint = resumption.checkpoint
    context.classifier.load_state_dict(checkpoint["model"])
    context.optimizer.load_state_dict(checkpoint["optimizer"])
    for group in context.optimizer.param_groups:
        group["weight_decay"] = context.config.train.weight_decay
    state = TrainState(epoch=int(checkpoint["epoch"]), best_epoch=int(checkpoint["best_epoch"]),
                       best_score=float(checkpoint["best_score"]),
                       best_loss=float(checkpoint.get("best_loss", math.inf)),
                       history=json.loads(checkpoint["history"]))
    if any(key in resumption.changed for key in SCHEDULE_SETTINGS):
        _rebuild_schedule(context, state.epoch)
    else:
        context.scheduler.load_state_dict(checkpoint["scheduler"])
    return state


def _rebuild_schedule(context: EpochContext, epochs_done: int) -> None:
    """A new learning-rate schedule for the config, advanced past ``epochs_done`` epochs."""
    train = context.config.train
    for group in context.optimizer.param_groups:
        group["lr"] = group["initial_lr"] = train.learning_rate
    context.scheduler = _scheduler(context.optimizer, context.config, context.steps_per_epoch)
    with warnings.catch_warnings():
        # torch warns of scheduler steps without optimizer steps: here that is the point.
        warnings.simplefilter("ignore")
        for _ in range(context.steps_per_epoch * epochs_done):
            context.scheduler.step()
    logger.info("learning-rate schedule rebuilt for %d epochs (%s); at epoch %d it is %.2e",
                train.epochs, train.schedule, epochs_done,
                context.optimizer.param_groups[0]["lr"])


def _finish(run: RunFolder, config: ExperimentConfig, dataset: Dataset, device: torch.device,
            state: TrainState, seconds: float, teacher_summary: dict) -> dict:
    """Restore the best weights, report validation and test, keep windows for export,
    draw the curves; a distilled run's summary also holds its teacher's."""
    from earmark.plots import plot_training_curves

    classifier = build_classifier(config, len(dataset.labels)).to(device)
    classifier.load_state_dict(read_weights(run.model, device))
    summary = {"best_epoch": state.best_epoch, "epochs": state.epoch,
               "parameters": count_parameters(classifier), "train_seconds": round(seconds, 1)}
    for split in ("validation", "test"):
        indices = dataset.indices(split)
        if indices:
            report = report_for(predict(classifier, dataset, indices, config, device), dataset)
            write_report(report, run.report(split), f"{run.path.name}: {split} split")
            summary[f"{split}_accuracy"] = report.accuracy
            summary[f"{split}_macro_f1"] = report.macro_f1
            logger.info(f"\n{split} ({len(indices)} recordings):\n{report.to_text()}")
    run.write_export_windows(export_windows(dataset, window_samples(config),
                                            window_hop_samples(config)))
    plot_training_curves(state.history, run.training_curves)
    if teacher_summary:
        summary["teacher"] = teacher_summary
    write_json(run.summary, summary)
    logger.info("best epoch %d; outputs in %s", state.best_epoch, run.path)
    return summary
