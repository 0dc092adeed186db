"""earmark.data.splits: every split keeps a group (speaker) on one side."""

from __future__ import annotations

import hashlib
import re
from collections import Counter, defaultdict

import pytest

from earmark.config import DataConfig
from earmark.data.manifest import SPLITS, Manifest, Row
from earmark.data.splits import (
    assign_splits,
    check_split_column,
    leaked_groups,
    split_by_fold,
    split_by_group,
    split_by_hash,
)
from earmark.errors import DataError


def mixed_manifest(groups: int = 120, seed_labels: tuple[str, ...] = ("a", "b", "c")) -> Manifest:
    """Groups of 1-5 files, each file labelled in turn: groups hold several labels."""
    rows = []
    for g in range(groups):
        for take in range(1 + g % 5):
            label = seed_labels[(g + take) % len(seed_labels)]
            rows.append(Row(f"/d/{label}/{g:08x}_nohash_{take}.wav", label, f"{g:08x}"))
    return Manifest(rows)


def single_label_manifest(groups_per_label: int = 10, files_per_group: int = 3) -> Manifest:
    """Every group (speaker) holds one label only, like speaker gender."""
    rows = []
    for label in ("female", "male"):
        for g in range(groups_per_label):
            group = f"{label}{g}"
            rows += [Row(f"/d/{group}_{t}.flac", label, group) for t in range(files_per_group)]
    return Manifest(rows)


def split_of_group(manifest: Manifest) -> dict[str, str]:
    return {row.group: row.split for row in manifest}


# --- by ratio -------------------------------------------------------------------

def test_split_by_group_is_group_disjoint_and_follows_ratios():
    manifest = mixed_manifest()
    split = split_by_group(manifest, [0.7, 0.2, 0.1], seed=3)
    assert leaked_groups(split) == []
    assert len(split) == len(manifest)
    assert [(r.path, r.label, r.group) for r in split] == \
        [(r.path, r.label, r.group) for r in manifest]
    counts = Counter(row.split for row in split)
    assert set(counts) == set(SPLITS)
    for name, ratio in zip(SPLITS, [0.7, 0.2, 0.1]):
        assert counts[name] / len(split) == pytest.approx(ratio, abs=0.03)


def test_split_by_group_ratios_need_not_sum_to_one():
    split = split_by_group(mixed_manifest(), [8, 2, 0], seed=0)
    counts = Counter(row.split for row in split)
    assert counts["test"] == 0
    assert counts["train"] / len(split) == pytest.approx(0.8, abs=0.03)


def test_split_by_group_is_stratified_for_single_label_groups():
    manifest = single_label_manifest(groups_per_label=10)
    # Over several seeds: an unstratified deal would miss 6/2/2 for some of them.
    for seed in range(5):
        split = split_by_group(manifest, [0.6, 0.2, 0.2], seed=seed)
        assert leaked_groups(split) == []
        for label in ("female", "male"):
            groups_per_split = Counter(name for group, name in split_of_group(split).items()
                                       if group.startswith(label))
            assert groups_per_split == {"train": 6, "validation": 2, "test": 2}, (seed, label)
        for name in SPLITS:
            assert set(split.select(name).labels()) == {"female", "male"}, (seed, name)


def test_split_by_group_is_deterministic_per_seed():
    manifest = mixed_manifest()
    first = [row.split for row in split_by_group(manifest, [0.6, 0.2, 0.2], seed=7)]
    again = [row.split for row in split_by_group(manifest, [0.6, 0.2, 0.2], seed=7)]
    other = [row.split for row in split_by_group(manifest, [0.6, 0.2, 0.2], seed=8)]
    assert first == again
    assert first != other


def test_leaked_groups_finds_a_leak():
    rows = [Row("a.wav", "x", "spk1", "train"), Row("b.wav", "x", "spk1", "test"),
            Row("c.wav", "x", "spk2", "test")]
    assert leaked_groups(Manifest(rows)) == ["spk1"]


# --- Speech Commands hash -------------------------------------------------------

def which_set(filename: str, validation_percentage: float, testing_percentage: float) -> str:
    """``which_set`` of the Speech Commands reference (input_data.py), transcribed."""
    max_num_wavs_per_class = 2**27 - 1
    base_name = filename.rsplit("/", 1)[-1]
    hash_name = re.sub(r"_nohash_.*$", "", base_name)
    hash_name_hashed = hashlib.sha1(hash_name.encode("utf-8")).hexdigest()
    percentage_hash = ((int(hash_name_hashed, 16) % (max_num_wavs_per_class + 1))
                       * (100.0 / max_num_wavs_per_class))
    if percentage_hash < validation_percentage:
        return "validation"
    if percentage_hash < testing_percentage + validation_percentage:
        return "test"
    return "train"


def test_split_by_hash_matches_the_reference():
    names = [f"{i * 2654435761 % 2**32:08x}_nohash_{i % 3}.wav" for i in range(300)]
    names += ["0a7c2a8d_nohash_0.wav", "0c540988_nohash_1.wav"]
    rows = [Row(f"/sc/yes/{name}", "yes", name.split("_")[0]) for name in names]
    split = split_by_hash(Manifest(rows), 10.0, 10.0)
    expected = [which_set(row.path, 10.0, 10.0) for row in rows]
    assert [row.split for row in split] == expected
    counts = Counter(expected)
    assert set(counts) == set(SPLITS)   # the ids really exercise every branch
    assert leaked_groups(split) == []


def test_split_by_hash_is_group_disjoint_across_words():
    # The same speaker saying different words lands in one split.
    rows = [Row(f"/sc/{word}/{g:08x}_nohash_0.wav", word, f"{g:08x}")
            for g in range(50) for word in ("yes", "no", "up")]
    split = split_by_hash(Manifest(rows), 20.0, 20.0)
    assert leaked_groups(split) == []
    assert len(set(row.split for row in split)) == 3


# --- k-fold ---------------------------------------------------------------------

def test_split_by_fold_covers_every_group_once():
    manifest = mixed_manifest(groups=23)
    folds = 5
    test_folds_of = defaultdict(list)
    for fold in range(folds):
        split = split_by_fold(manifest, folds, fold, seed=2)
        assert leaked_groups(split) == []
        assert set(row.split for row in split) == set(SPLITS)
        for group, name in split_of_group(split).items():
            if name == "test":
                test_folds_of[group].append(fold)
    assert sorted(test_folds_of) == manifest.groups()
    assert all(len(found) == 1 for found in test_folds_of.values())


def test_split_by_fold_validation_is_the_next_fold():
    manifest = mixed_manifest(groups=20)
    splits = [split_of_group(split_by_fold(manifest, 4, fold, seed=0)) for fold in range(4)]
    for fold in range(4):
        validation = {g for g, s in splits[fold].items() if s == "validation"}
        next_test = {g for g, s in splits[(fold + 1) % 4].items() if s == "test"}
        assert validation == next_test
        assert validation.isdisjoint(g for g, s in splits[fold].items() if s == "test")


def test_split_by_fold_honours_a_fold_column():
    rows = [Row(f"/u/{i}.wav", "dog" if i % 2 else "cat", f"clip{i}", fold=1 + i % 3)
            for i in range(12)]
    split = split_by_fold(Manifest(rows), folds=3, fold=2, seed=0)
    for row, original in zip(split, rows):
        expected = {2: "test", 3: "validation", 1: "train"}[original.fold]
        assert row.split == expected
    with pytest.raises(DataError, match="fold 0 does not exist.*\\[1, 2, 3\\]"):
        split_by_fold(Manifest(rows), folds=3, fold=0)


def test_split_by_fold_partial_fold_column():
    rows = [Row("a.wav", "x", "g1", fold=0), Row("b.wav", "x", "g2")]
    with pytest.raises(DataError, match="'fold' column is filled for some rows only"):
        split_by_fold(Manifest(rows), 2, 0)


def test_split_by_fold_needs_enough_groups():
    manifest = mixed_manifest(groups=3)
    with pytest.raises(DataError, match="at least 5 groups.*found 3"):
        split_by_fold(manifest, 5, 0)


# --- the manifest's own column ---------------------------------------------------

def test_split_column_with_an_empty_split():
    rows = [Row("/a/one.wav", "x", "g1", "train"), Row("/a/two.wav", "x", "g2", "")]
    with pytest.raises(DataError, match="1 rows have no split.*two.wav"):
        check_split_column(Manifest(rows))


def test_split_column_kept_when_complete():
    rows = [Row("/a/one.wav", "x", "g1", "train"), Row("/a/two.wav", "x", "g2", "test")]
    assert [r.split for r in check_split_column(Manifest(rows))] == ["train", "test"]


# --- dispatch from the config ------------------------------------------------------

@pytest.mark.parametrize("config, expected", [
    (DataConfig(split="group", ratios=[0.6, 0.2, 0.2], split_seed=4),
     lambda m: split_by_group(m, [0.6, 0.2, 0.2], 4)),
    (DataConfig(split="hash", validation_percent=15, testing_percent=5),
     lambda m: split_by_hash(m, 15, 5)),
    (DataConfig(split="kfold", folds=4, fold=1, split_seed=2),
     lambda m: split_by_fold(m, 4, 1, 2)),
])
def test_assign_splits_follows_the_config(config, expected):
    manifest = mixed_manifest(groups=40)
    assert [r.split for r in assign_splits(manifest, config)] == \
        [r.split for r in expected(manifest)]
