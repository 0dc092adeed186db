"""Group-disjoint splits: a speaker's recordings all land on one side.

- :func:`split_by_group`: train/validation/test by ratio of files, whole
  groups at a time (the default; never at random across a speaker).
- :func:`split_by_hash`: the Speech Commands scheme (sha1 of the speaker
  id), stable as the dataset grows.
- :func:`split_by_fold`: k-fold by group, or by a ``fold`` column.
- ``column``: the manifest's own ``split`` column, checked.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter, defaultdict

from earmark.config import DataConfig
from earmark.data.manifest import SPLITS, Manifest
from earmark.errors import DataError

#: The Speech Commands reference uses this to map hashes to percentages.
_MAX_FILES_PER_CLASS = 2**27 - 1


def assign_splits(manifest: Manifest, config: DataConfig) -> Manifest:
    """Apply the split named by ``config.split`` and return the new manifest."""
    if config.split == "group":
        return split_by_group(manifest, config.ratios, config.split_seed)
    if config.split == "hash":
        return split_by_hash(manifest, config.validation_percent, config.testing_percent)
    if config.split == "kfold":
        split = split_by_fold(manifest, config.folds, config.fold, config.split_seed,
                              validation_fold=config.kfold_validation == "fold")
        if config.kfold_validation == "random":
            share = config.ratios[1] / max(sum(config.ratios[:2]), 1e-9)
            split = validation_from_training_files(split, share, config.split_seed)
        return split
    return check_split_column(manifest)


def split_by_group(manifest: Manifest, ratios: list[float], seed: int = 0) -> Manifest:
    """Assign whole groups to train/validation/test so file counts follow ``ratios``.

    When every group holds a single label (a speaker's gender, say) the
    assignment is stratified per label, so each class keeps the ratios.
    """
    total = sum(ratios)
    targets = [r / total for r in ratios]
    labels_of = defaultdict(set)
    size_of = Counter()
    for row in manifest:
        labels_of[row.group].add(row.label)
        size_of[row.group] += 1
    if all(len(labels) == 1 for labels in labels_of.values()):
        strata = defaultdict(list)
        for group, labels in labels_of.items():
            strata[next(iter(labels))].append(group)
    else:
        strata = {"all": list(labels_of)}
    split_of = {}
    for stratum in sorted(strata):
        split_of.update(_deal_groups(sorted(strata[stratum]), size_of, targets, seed))
    return manifest.with_splits([split_of[row.group] for row in manifest])


def _deal_groups(groups: list[str], size_of: Counter, targets: list[float],
                 seed: int) -> dict[str, str]:
    """Shuffle groups, then give each to the split furthest below its target."""
    random.Random(seed).shuffle(groups)
    filled = [0.0, 0.0, 0.0]
    total = sum(size_of[g] for g in groups)
    split_of = {}
    for group in groups:
        deficits = [targets[i] * total - filled[i] for i in range(3)]
        choice = max(range(3), key=lambda i: (deficits[i], -i) if targets[i] > 0 else (-1e18, 0))
        split_of[group] = SPLITS[choice]
        filled[choice] += size_of[group]
    return split_of


def split_by_hash(manifest: Manifest, validation_percent: float,
                  testing_percent: float) -> Manifest:
    """The Speech Commands hashing split, on each row's group (speaker id).

    A speaker's percentage is ``sha1(speaker) mod 2**27`` scaled to 0-100:
    below ``validation_percent`` goes to validation, below the sum to test.
    """
    splits = []
    for row in manifest:
        digest = int(hashlib.sha1(row.group.encode("utf-8")).hexdigest(), 16)
        percent = (digest % (_MAX_FILES_PER_CLASS + 1)) * (100.0 / _MAX_FILES_PER_CLASS)
        if percent < validation_percent:
            splits.append("validation")
        elif percent < validation_percent + testing_percent:
            splits.append("test")
        else:
            splits.append("train")
    return manifest.with_splits(splits)


def split_by_fold(manifest: Manifest, folds: int, fold: int, seed: int = 0,
                  validation_fold: bool = True) -> Manifest:
    """Fold ``fold`` is the test set, the next fold validation, the rest train.

    With ``validation_fold=False`` every other fold is train (carve a
    validation set with :func:`validation_from_training_files`).

    Folds come from the manifest's ``fold`` column when every row has one
    (the official folds of a dataset), else whole groups are dealt into
    ``folds`` folds of about equal size.
    """
    fold_of_row = _fold_column(manifest)
    if fold_of_row is None:
        if len(manifest.groups()) < folds:
            raise DataError(f"k-fold needs at least {folds} groups (speakers), found "
                            f"{len(manifest.groups())}; lower data.folds")
        fold_of_group = _deal_folds(manifest, folds, seed)
        fold_of_row = [fold_of_group[row.group] for row in manifest]
    present = sorted(set(fold_of_row))
    if fold not in present:
        raise DataError(f"fold {fold} does not exist; folds present: {present}")
    next_fold = present[(present.index(fold) + 1) % len(present)] if validation_fold else None
    splits = ["test" if f == fold else "validation" if f == next_fold else "train"
              for f in fold_of_row]
    return manifest.with_splits(splits)


def _fold_column(manifest: Manifest) -> list[int] | None:
    folds = [row.fold for row in manifest]
    if all(f is None for f in folds):
        return None
    if any(f is None for f in folds):
        raise DataError("the manifest's 'fold' column is filled for some rows only; "
                        "fill it for all rows or leave it empty")
    return folds


def _deal_folds(manifest: Manifest, folds: int, seed: int) -> dict[str, int]:
    size_of = Counter(row.group for row in manifest)
    groups = sorted(size_of)
    random.Random(seed).shuffle(groups)
    groups.sort(key=lambda g: -size_of[g])   # largest first balances best
    filled = [0] * folds
    fold_of = {}
    for group in groups:
        smallest = min(range(folds), key=lambda i: (filled[i], i))
        fold_of[group] = smallest
        filled[smallest] += size_of[group]
    return fold_of


def check_split_column(manifest: Manifest) -> Manifest:
    """Use the manifest's own ``split`` column; every row must have one."""
    empty = [row.path for row in manifest if not row.split]
    if empty:
        raise DataError(f"data.split = 'column' but {len(empty)} rows have no split "
                        f"(first: {empty[0]}); fill the 'split' column with one of {SPLITS}")
    return manifest


def leaked_groups(manifest: Manifest) -> list[str]:
    """Groups found in more than one split (should be empty)."""
    splits_of = defaultdict(set)
    for row in manifest:
        splits_of[row.group].add(row.split)
    return sorted(g for g, s in splits_of.items() if len(s) > 1)


def validation_from_training_files(manifest: Manifest, share: float, seed: int = 0) -> Manifest:
    """Move a random ``share`` of the training files (per class) to validation.

    For datasets with too few speakers to hold one out for validation
    (FSDD has four): validation then shares speakers with training and only
    picks the best epoch; the test split stays speaker-disjoint.
    """
    rng = random.Random(seed)
    by_label = defaultdict(list)
    for position, row in enumerate(manifest):
        if row.split == "train":
            by_label[row.label].append(position)
    moved = set()
    for label in sorted(by_label):
        positions = by_label[label]
        moved.update(rng.sample(positions, round(len(positions) * share)))
    return manifest.with_splits(["validation" if i in moved else row.split
                                 for i, row in enumerate(manifest)])
