"""Evaluate a trained network on a split: per-window scores, per-recording decisions, reports.

A recording longer than the model's window is cut into windows
(:mod:`earmark.windowing`); its decision is the mean of the window
probabilities or their majority vote (``data.aggregate``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from earmark.atomic import write_json, write_text
from earmark.config import ExperimentConfig, from_dict, to_dict
from earmark.data.dataset import Dataset, load_manifest, open_dataset
from earmark.data.manifest import clip_matcher, from_csv
from earmark.errors import DataError
from earmark.metrics.classification import ClassificationReport, classification_report
from earmark.network import WaveformClassifier, load_trained, window_hop_samples, window_samples
from earmark.progress import ProgressLike
from earmark.run_folder import RunFolder
from earmark.windowing import aggregate_windows, sounding_windows


@dataclass
class Predictions:
    """Scores of the recordings of one split."""

    indices: list[int]                 #: store index of each clip's first recording
    probabilities: np.ndarray          #: (clips, classes), after aggregation
    window_probabilities: list[np.ndarray]   #: per clip: (windows, classes)


def predict(classifier: WaveformClassifier, dataset: Dataset, indices: list[int],
            config: ExperimentConfig, device: torch.device, batch_size: int = 128) -> Predictions:
    """Run the network over every window of the given recordings and judge each clip
    (a recording, or the recordings ``data.clip_pattern`` joins) by its sounding windows."""
    window = window_samples(config)
    jobs = dataset.window_jobs(indices, window, window_hop_samples(config))
    classifier.eval()
    outputs, sounding = [], []
    with torch.no_grad():
        for begin in range(0, len(jobs), batch_size):
            chunk = jobs[begin:begin + batch_size]
            batch = np.stack([dataset.store.window(i, s, window) for i, s in chunk])
            logits = classifier(torch.from_numpy(batch).to(device))
            outputs.append(torch.softmax(logits, dim=-1).cpu().numpy())
            sounding.append(sounding_windows(batch))
    if not outputs:
        return Predictions([], np.zeros((0, len(dataset.labels))), [])
    window_probs, flags = np.concatenate(outputs), np.concatenate(sounding)
    units = clip_units(dataset, indices, config.data.clip_pattern)
    unit_of = {index: position for position, unit in enumerate(units) for index in unit}
    owner_units = np.array([unit_of[job[0]] for job in jobs])
    order = np.argsort(owner_units, kind="stable")               # each clip's windows together
    bounds = np.searchsorted(owner_units[order], np.arange(len(units) + 1))
    chosen = [order[bounds[u]:bounds[u + 1]] for u in range(len(units))]
    aggregated = np.stack([aggregate_windows(window_probs[c], config.data.aggregate, flags[c])
                           for c in chosen])
    return Predictions([unit[0] for unit in units], aggregated, [window_probs[c] for c in chosen])


def clip_units(dataset: Dataset, indices: list[int], pattern: str) -> list[list[int]]:
    """The recordings judged together, in order of first appearance: those whose names
    ``data.clip_pattern`` gives the same clip, else each recording (each row: a segment
    of a long file is its own clip) alone.

    Raises
    ------
    DataError
        When one clip's recordings carry different labels.
    """
    if not pattern:
        return [[index] for index in indices]
    clip_of = clip_matcher(pattern)
    members: dict[str, list[int]] = {}
    for index in indices:
        members.setdefault(clip_of(dataset.manifest.rows[index].path), []).append(index)
    for clip, unit in members.items():
        labels = sorted({dataset.manifest.rows[i].label for i in unit})
        if len(labels) > 1:
            raise DataError(f"data.clip_pattern joins recordings of different classes into "
                            f"clip {clip!r} ({labels}, e.g. "
                            f"{dataset.manifest.rows[unit[0]].path}): fix the pattern so "
                            "that only the pieces of one recording share a clip")
    return list(members.values())


def report_for(predictions: Predictions, dataset: Dataset) -> ClassificationReport:
    """Accuracy, macro F1, per-class scores and confusion of ``predictions``."""
    targets = dataset.targets(predictions.indices)
    guesses = predictions.probabilities.argmax(axis=1).tolist()
    return classification_report(targets, guesses, dataset.labels)


def evaluate_run(run_dir: str | Path, split: str = "test", device: str = "cpu",
                 progress: ProgressLike = None) -> ClassificationReport:
    """Evaluate a finished run on ``split``; write JSON, text and confusion PNG.

    Outputs go to ``RUN/eval_<split>.json``, ``.txt`` and ``_confusion.png``.
    """

    run = RunFolder(run_dir)
    config, labels, classifier = load_trained(run.path)
    manifest = from_csv(run.manifest) if run.manifest.is_file() else load_manifest(config)
    dataset = open_dataset(config, manifest, progress=progress)
    dataset.labels = labels
    indices = dataset.indices(split)
    if not indices:
        raise DataError(f"{run.path}: the {split} split is empty; choose another with --split")
    torch_device = torch.device(device)
    classifier.to(torch_device)
    report = report_for(predict(classifier, dataset, indices, config, torch_device), dataset)
    write_report(report, run.report(split), f"{run.path.name}: {split} split")
    return report


def evaluate_folder(run_dir: str | Path, folder: str | Path, name: str = "folder",
                    device: str = "cpu", progress: ProgressLike = None) -> ClassificationReport:
    """Score a finished run on every recording of another folder of class folders (or
    of files named as the run's ``data.label_pattern`` reads them), e.g. real speakers
    for a model trained on synthesized ones, judged like its test split (``data.clip_pattern``
    included); write ``RUN/eval_<name>.json``, ``.txt`` and ``_confusion.png``.

    Raises
    ------
    DataError
        When ``folder`` is missing, holds no audio, or has a class the run does not know.
    """
    run = RunFolder(run_dir)
    config, labels, classifier = load_trained(run.path)
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder; give a folder with one sub-folder of "
                        "recordings per class")
    raw = to_dict(config)
    raw["data"].update(root=str(folder.resolve()), csv="", dataset="", extra_train=[],
                       keywords=[], group_pattern="auto", split="group",
                       ratios=[0.0, 0.0, 1.0], classes=[])
    folder_config = from_dict(raw, base_dir=config.base_dir)
    manifest = load_manifest(folder_config)
    unknown = sorted(set(manifest.labels()) - set(labels))
    if unknown:
        raise DataError(f"{folder}: classes {unknown} are not among the run's {labels}; "
                        "name the folders like the classes the model was trained on")
    dataset = open_dataset(folder_config, manifest, progress=progress)
    dataset.labels = labels
    torch_device = torch.device(device)
    classifier.to(torch_device)
    indices = dataset.indices("test")
    if not indices:
        raise DataError(f"{folder}: no readable recordings to score")
    predictions = predict(classifier, dataset, indices, folder_config, torch_device)
    report = report_for(predictions, dataset)
    write_report(report, run.report(name), f"{run.path.name}: {folder.name}")
    return report


def write_report(report: ClassificationReport, stem: Path, title: str) -> None:
    """``stem.json``, ``stem.txt`` and ``stem_confusion.png``."""
    from earmark.plots import plot_confusion_matrix

    write_json(stem.with_suffix(".json"), report.to_dict())
    write_text(stem.with_suffix(".txt"), report.to_text() + "\n")
    plot_confusion_matrix(np.asarray(report.confusion), report.labels,
                          stem.parent / f"{stem.name}_confusion.png", title=title)
