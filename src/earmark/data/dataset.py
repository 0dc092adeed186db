"""From an experiment's ``[data]`` table to a split manifest and its decoded store."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from earmark.config import ExperimentConfig
from earmark.data import manifest as manifests
from earmark.data.cache import AudioStore, ShardedStore, build_store
from earmark.data.keywords import keyword_task
from earmark.data.manifest import Manifest
from earmark.data.splits import assign_splits, leaked_groups
from earmark.errors import ConfigError, DataError
from earmark.progress import ProgressLike
from earmark.run_folder import ExportWindows
from earmark.windowing import (SILENT_WINDOW_DBFS, judging_windows, sounding_windows,
                               window_starts)

#: Validation windows a run keeps for export's parity check and accuracy (evenly
#: spread over the split when it has more).
EXPORT_VALIDATION_WINDOWS = 2000
#: Training windows a run keeps to calibrate int8 quantization (``earmark export --int8``).
EXPORT_CALIBRATION_WINDOWS = 300
#: A sample this far below full scale is digital silence (as windows are judged).
SILENT_SAMPLE = 10.0 ** (SILENT_WINDOW_DBFS / 20.0)
#: Samples read at a time when a recording's sounding span is looked for.
SPAN_CHUNK = 1 << 18


@dataclass
class Dataset:
    """A split manifest, its class labels, and the decoded audio."""

    store: AudioStore | ShardedStore     #: read alike: windows, recordings, lengths
    labels: list[str]
    _spans: dict[int, tuple[int, int]] = field(default_factory=dict, repr=False)
    _judged: dict[tuple[int, int, int], np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def manifest(self) -> Manifest:
        return self.store.manifest

    def indices(self, split: str) -> list[int]:
        """Store indices of the recordings in ``split``."""
        return [i for i, row in enumerate(self.manifest) if row.split == split]

    def window_jobs(self, indices: list[int], window: int, hop: int) -> list[tuple[int, int]]:
        """``(recording, start sample)`` of every analysis window of the recordings."""
        return [(index, int(start)) for index in indices
                for start in window_starts(int(self.store.lengths[index]), window, hop)]

    def windows(self, indices: list[int], window: int, hop: int,
                limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Every analysis window of the recordings (or ``limit`` of them, evenly spread),
        as ``(windows, window)`` float32 waveforms and their class ids."""
        jobs = self.window_jobs(indices, window, hop)
        if limit is not None and len(jobs) > limit:
            chosen = np.linspace(0, len(jobs) - 1, limit).round().astype(int)
            jobs = [jobs[i] for i in chosen]
        waveforms = np.stack([self.store.window(i, s, window) for i, s in jobs])
        targets = np.array(self.targets([i for i, _ in jobs]))
        return waveforms.astype(np.float32, copy=False), targets

    def judged_starts(self, index: int, window: int, hop: int) -> np.ndarray:
        """Start samples of the windows recording ``index`` is judged by: every analysis
        window but those of digital silence (all of them when every one is silent), found
        once."""
        key = (index, window, hop)
        if key not in self._judged:
            starts = window_starts(int(self.store.lengths[index]), window, hop)
            sounding = np.array([self._window_sounds(index, int(start), window)
                                 for start in starts], dtype=bool)   # one read at a time
            self._judged[key] = starts[judging_windows(sounding)]
        return self._judged[key]

    def _window_sounds(self, index: int, start: int, window: int) -> bool:
        return bool(sounding_windows(self.store.window(index, start, window)[None])[0])

    def sounding_span(self, index: int) -> tuple[int, int]:
        """``(first, last)`` sample of recording ``index`` louder than digital silence
        (``(0, -1)`` when none is), found once."""
        if index not in self._spans:
            self._spans[index] = self._find_span(index, int(self.store.lengths[index]))
        return self._spans[index]

    def _find_span(self, index: int, length: int) -> tuple[int, int]:
        chunks = range(0, length, SPAN_CHUNK)             # bounded memory for long files
        for start in chunks:
            loud = self._loud(index, start, length)
            if len(loud):
                first = start + int(loud[0])
                break
        else:
            return (0, -1)
        for start in reversed(chunks):
            loud = self._loud(index, start, length)
            if len(loud):
                return (first, start + int(loud[-1]))
        return (first, first)

    def _loud(self, index: int, start: int, length: int) -> np.ndarray:
        chunk = self.store.window(index, start, min(SPAN_CHUNK, length - start))
        return np.flatnonzero(np.abs(chunk) > SILENT_SAMPLE)

    def targets(self, indices: list[int]) -> list[int]:
        """Class ids of the given recordings."""
        label_id = {label: i for i, label in enumerate(self.labels)}
        return [label_id[self.manifest.rows[i].label] for i in indices]


def read_manifest(config: ExperimentConfig) -> Manifest:
    """The recordings named by ``[data]`` (``root``, ``csv`` or ``dataset``), as they are:
    no split yet (a dataset recipe's manifest carries its official split or folds)."""
    data = config.data
    if sum(bool(source) for source in (data.root, data.csv, data.dataset)) != 1:
        raise ConfigError("[data] needs exactly one of 'root' (a folder per class), 'csv' (a "
                          "manifest file) or 'dataset' (a recipe of `earmark datasets list`)")
    if data.root:
        return manifests.from_folder(config.resolve(data.root), data.group_pattern,
                                     data.label_pattern)
    if data.dataset:
        return _recipe_manifest(config)
    return manifests.from_csv(config.resolve(data.csv), data.group_pattern)


def _recipe_manifest(config: ExperimentConfig) -> Manifest:
    from earmark.data.recipes import default_root, get_recipe

    recipe = get_recipe(config.data.dataset)
    root = (config.resolve(config.data.dataset_root) if config.data.dataset_root
            else default_root())
    folder = Path(root) / recipe.folder
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder; run `earmark datasets download "
                        f"{recipe.name} --root {root}`, or set data.dataset_root to the folder "
                        f"holding {recipe.folder}/")
    return recipe.build_manifest(folder)


def load_manifest(config: ExperimentConfig) -> Manifest:
    """Read the recordings named by ``[data]`` and assign their splits."""
    data = config.data
    manifest = read_manifest(config)
    if data.keywords:
        manifest = keyword_task(manifest, data.keywords, data.unknown_percent,
                                data.silence_percent, config.resolve(data.silence_noise_dir),
                                data.clip_seconds, data.split_seed)
    if data.classes:
        manifest = _keep_classes(manifest, data.classes)
    manifest = assign_splits(manifest, data)
    _check_disjoint(manifest, data)
    return _with_extra_training(manifest, config)


def _with_extra_training(manifest: Manifest, config: ExperimentConfig) -> Manifest:
    """Append the rows of ``data.extra_train`` manifests to the train split only.

    For data that must never be evaluated on, such as synthesized voices
    added to real recordings; their labels must be classes of the dataset.
    """
    labels = set(manifest.labels())
    rows = list(manifest)
    for path in config.data.extra_train:
        resolved = config.resolve(path)
        if not Path(resolved).is_file():
            raise DataError(f"data.extra_train: {resolved} does not exist; make it first (the "
                            "config's header says how, e.g. with earmark synth) or leave it "
                            "out: --set 'data.extra_train=[]'")
        extra = manifests.from_csv(resolved)
        unknown = sorted(set(extra.labels()) - labels)
        if unknown:
            raise DataError(f"{path}: labels {unknown} are not classes of the dataset "
                            f"({sorted(labels)}); name them alike (synth: label=text)")
        rows.extend(replace(row, split="train", group=f"extra:{row.group}") for row in extra)
    return Manifest(rows)


def _check_disjoint(manifest: Manifest, data) -> None:
    """No speaker may be in test and elsewhere (nor in train and validation,
    unless validation is knowingly drawn from training speakers)."""
    if data.split == "kfold" and data.kfold_validation == "random":
        manifest = Manifest(replace(row, split="train") if row.split == "validation" else row
                            for row in manifest)
    leaks = leaked_groups(manifest)
    if leaks:
        raise DataError(f"{len(leaks)} group(s) fall in more than one split, e.g. "
                        f"{leaks[:5]}; with data.split = 'column' give each speaker one split")


def class_labels(config: ExperimentConfig, manifest: Manifest) -> list[str]:
    """The label order: ``data.classes`` if given, else sorted."""
    return list(config.data.classes) or manifest.labels()


def open_dataset(config: ExperimentConfig, manifest: Manifest,
                 progress: ProgressLike = None) -> Dataset:
    """Decode (or reopen) the manifest's audio and warn about missing classes."""
    labels = class_labels(config, manifest)
    store = build_store(manifest, config.data.sample_rate, config.cache_dir(),
                        skip_bad_files=config.data.skip_bad_files, progress=progress)
    manifests.check_classes(store.manifest, labels)
    return Dataset(store, labels)


def _keep_classes(manifest: Manifest, classes: list[str]) -> Manifest:
    present = set(manifest.labels())
    absent = [c for c in classes if c not in present]
    if absent:
        raise DataError(f"data.classes names {absent}, which have no recordings; "
                        f"found labels: {sorted(present)}")
    return Manifest(replace(row) for row in manifest if row.label in set(classes))


def export_windows(dataset: Dataset, window: int, window_hop: int) -> ExportWindows:
    """Real windows for export: the validation split's (or train's, without one) for the
    parity check and accuracy, and an even sample of training windows for int8."""
    train_indices = dataset.indices("train")
    validation, targets = dataset.windows(dataset.indices("validation") or train_indices,
                                          window, window_hop, limit=EXPORT_VALIDATION_WINDOWS)
    calibration, _ = dataset.windows(train_indices, window, window_hop,
                                     limit=EXPORT_CALIBRATION_WINDOWS)
    return ExportWindows(validation, targets, calibration)
