"""Group-disjoint splits: a speaker's recordings all land on one side.

- :func:`split_by_group`: train/validation/test by ratio of files, whole
  groups at a time (the default; never at random across a speaker).
- :func:`split_by_hash`: the Speech Commands scheme (sha1 of the speaker
  id), stable as the dataset grows.
- :func:`split_by_fold`: k-fold by group, or by a ``fold`` column.
- ``column``: the manifest's own ``split`` column, checked.

Whatever the split, every class needs training recordings
(:func:`check_trainable`): a class the model never sees cannot be learnt.
The group split therefore keeps a class whose recordings all come from one
group (a single recording, say) in train, and says so.
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections import Counter, defaultdict

from earmark.config import DataConfig
from earmark.data.manifest import SPLITS, Manifest
from earmark.errors import DataError

logger = logging.getLogger(__name__)

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
        share = config.ratios[1] / max(sum(config.ratios[:2]), 1e-9)
        if config.kfold_validation == "random":
            split = validation_from_training_files(split, share, config.split_seed)
        elif config.kfold_validation == "groups":
            split = validation_from_training_groups(split, share, config.split_seed)
        return split
    return check_split_column(manifest)


def split_by_group(manifest: Manifest, ratios: list[float], seed: int = 0) -> Manifest:
    """Assign whole groups to train/validation/test so file counts follow ``ratios``.

    When every group holds a single label (a speaker's gender, say) the
    assignment is stratified per label, so each class keeps the ratios (a
    class with one group goes to train). Otherwise a group that holds every
    recording of some class is kept in train, so that class can be learnt
    (it then has no validation or test recordings: a warning says so).
    """
    total = sum(ratios)
    targets = [r / total for r in ratios]
    labels_of = defaultdict(set)
    size_of = Counter()
    for row in manifest:
        labels_of[row.group].add(row.label)
        size_of[row.group] += 1
    pinned: list[str] = []
    if all(len(labels) == 1 for labels in labels_of.values()):
        strata = defaultdict(list)
        for group, labels in labels_of.items():
            strata[next(iter(labels))].append(group)
    else:
        pinned = _sole_groups(manifest) if targets[0] > 0 else []
        strata = {"all": [group for group in labels_of if group not in pinned]}
    split_of = {}
    for stratum in sorted(strata):
        split_of.update(_deal_groups(sorted(strata[stratum]), size_of, targets, seed,
                                     pinned=pinned))
    return manifest.with_splits([split_of[row.group] for row in manifest])


def _sole_groups(manifest: Manifest) -> list[str]:
    """Groups that hold every recording of some class, sorted; each one logged."""
    groups_of = defaultdict(set)
    for row in manifest:
        groups_of[row.label].add(row.group)
    sole = {}
    for label in sorted(groups_of):
        if len(groups_of[label]) == 1:
            sole.setdefault(next(iter(groups_of[label])), []).append(label)
    for group, labels in sorted(sole.items()):
        logger.warning("class(es) %s: every recording comes from group %r, which is kept in "
                       "train (none in validation or test); add recordings from other "
                       "speakers to evaluate it", ", ".join(map(repr, labels)), group)
    return sorted(sole)


def _deal_groups(groups: list[str], size_of: Counter, targets: list[float],
                 seed: int, pinned: list[str] | tuple = ()) -> dict[str, str]:
    """Shuffle groups, then give each to the split furthest below its target.

    ``pinned`` groups go to train first and count towards its share.
    """
    random.Random(seed).shuffle(groups)
    filled = [float(sum(size_of[g] for g in pinned)), 0.0, 0.0]
    total = sum(size_of[g] for g in groups) + filled[0]
    split_of = {group: SPLITS[0] for group in pinned}
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
                            f"{len(manifest.groups())}; lower data.folds (crossval: --folds)")
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


def check_trainable(manifest: Manifest, labels: list[str]) -> None:
    """Refuse a split that leaves a class without training recordings.

    A class the model never sees cannot be learnt, yet the model (and the
    bundle) would still have an output for it. A split with no training
    recordings at all is left to the trainer's own error.

    Raises
    ------
    DataError
        Naming each such class, where its recordings are, and what to do.
    """
    in_train = Counter(row.label for row in manifest if row.split == "train")
    if not in_train:
        return
    missing = [label for label in labels if not in_train[label]]
    if not missing:
        return
    where = {label: Counter(row.split for row in manifest if row.label == label)
             for label in missing}
    described = "; ".join(f"'{label}' ({_whereabouts(where[label])})" for label in missing)
    raise DataError(f"no training recordings for class {described}: the model cannot learn "
                    "a class it never sees. Add recordings of it (from more speakers), or "
                    "leave it out by listing the other classes in data.classes")


def _whereabouts(splits: Counter) -> str:
    """``1 recording, in test`` / ``3 recordings: 2 in validation, 1 in test``."""
    total = sum(splits.values())
    if total == 0:
        return "no recordings"
    if total == 1:
        return f"1 recording, in {next(iter(splits))}"
    if len(splits) == 1:
        return f"{total} recordings, all in {next(iter(splits))}"
    return f"{total} recordings: " + ", ".join(f"{n} in {s}" for s, n in sorted(splits.items()))


def leaked_groups(manifest: Manifest) -> list[str]:
    """Groups found in more than one split (should be empty)."""
    splits_of = defaultdict(set)
    for row in manifest:
        splits_of[row.group].add(row.split)
    return sorted(g for g, s in splits_of.items() if len(s) > 1)


def validation_from_training_groups(manifest: Manifest, share: float,
                                     seed: int = 0) -> Manifest:
    """Move a random ``share`` of the training groups (at least one unless the share is
    0, never all) to validation: validation stays disjoint from training, and every
    fold but the test fold still trains. When each group holds one class (a sound's
    source), the share is drawn per class; when groups hold several (a speaker saying
    many words), from all the groups at once, so that moving a speaker for one word
    does not add up over the words."""
    rng = random.Random(seed)
    labels_of = defaultdict(set)
    for row in manifest:
        if row.split == "train":
            labels_of[row.group].add(row.label)
    if all(len(labels) == 1 for labels in labels_of.values()):
        pools = defaultdict(set)
        for group, labels in labels_of.items():
            pools[next(iter(labels))].add(group)
        moved = set().union(*[_draw(pools[label], share, rng) for label in sorted(pools)])
    else:
        moved = _draw(set(labels_of), share, rng)
    return manifest.with_splits(["validation" if row.split == "train" and row.group in moved
                                 else row.split for row in manifest])


def _draw(groups: set[str], share: float, rng: random.Random) -> set[str]:
    """``share`` of ``groups`` (none for a share of 0, else at least one, never all)."""
    ordered = sorted(groups)
    if len(ordered) < 2 or share <= 0:
        return set()
    return set(rng.sample(ordered, min(len(ordered) - 1, max(1, round(len(ordered) * share)))))


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
