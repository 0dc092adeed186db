"""The UrbanSound8K recipe on a tiny tree in the dataset's real layout."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from earmark.data.manifest import from_csv
from earmark.data.recipes import RECIPES, urbansound8k
from earmark.errors import DataError

#: slice_file_name, fsID, start, end, salience, fold, classID, class
SLICES = [
    ("100032-3-0-0.wav", "100032", "0.0", "0.317551", "1", "5", "3", "dog_bark"),
    ("100263-2-0-117.wav", "100263", "58.5", "62.5", "1", "5", "2", "children_playing"),
    ("100263-2-0-121.wav", "100263", "60.5", "64.5", "1", "5", "2", "children_playing"),
    ("100648-1-0-0.wav", "100648", "4.823402", "5.471927", "2", "10", "1", "car_horn"),
    ("101415-3-0-2.wav", "101415", "1.0", "5.0", "1", "1", "3", "dog_bark"),
    ("102305-6-0-0.wav", "102305", "0.0", "2.61161", "1", "1", "6", "gun_shot"),
]


def urbansound_tree(root: Path) -> Path:
    """``UrbanSound8K/metadata/UrbanSound8K.csv`` and ``audio/fold<N>/`` under ``root``."""
    (root / "metadata").mkdir(parents=True)
    with open(root / urbansound8k.METADATA, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(urbansound8k.COLUMNS)
        writer.writerows(SLICES)
    for name, *_, fold, _, _ in SLICES:
        file = root / "audio" / f"fold{fold}" / name
        file.parent.mkdir(parents=True, exist_ok=True)
        file.touch()
    return root


def test_folds_groups_labels_from_the_csv(tmp_path):
    root = urbansound_tree(tmp_path / urbansound8k.ARCHIVE_FOLDER)
    manifest = RECIPES["urbansound8k"].build_manifest(tmp_path)    # the folder holding it
    assert [Path(r.path).name for r in manifest] == [s[0] for s in SLICES]
    assert [(r.label, r.group, r.fold) for r in manifest] == [
        (s[7], s[1], int(s[5])) for s in SLICES]
    assert manifest.rows[0].path == str((root / "audio" / "fold5" / SLICES[0][0]).resolve())
    assert all(r.split == "" for r in manifest)


def test_slices_are_not_cut_again_and_keep_their_columns(tmp_path):
    manifest = urbansound8k.build(urbansound_tree(tmp_path / "us8k"))
    assert all(r.start is None and r.end is None for r in manifest)
    assert manifest.rows[3].meta == {"slice_start": "4.823402", "slice_end": "5.471927",
                                     "salience": "2", "classID": "1"}
    manifest.to_csv(tmp_path / "m.csv")
    again = from_csv(tmp_path / "m.csv")
    assert [r.meta for r in again] == [r.meta for r in manifest]
    assert all(r.start is None for r in again)


def test_a_recording_never_in_two_folds(tmp_path):
    manifest = urbansound8k.build(urbansound_tree(tmp_path / "us8k"))
    folds: dict[str, set[int]] = {}
    for row in manifest:
        folds.setdefault(row.group, set()).add(row.fold)
    assert all(len(found) == 1 for found in folds.values())
    assert folds["100263"] == {5}


def test_recipe_declared():
    recipe = RECIPES["urbansound8k"]
    assert recipe.split == "kfold" and recipe.folder == "urbansound8k"
    assert recipe.files[0].url == "https://zenodo.org/record/1203745/files/UrbanSound8K.tar.gz"
    assert "CC BY-NC 3.0" in recipe.licence and "6.6 GB" in recipe.size_text


def test_missing_metadata(tmp_path):
    root = urbansound_tree(tmp_path / "us8k")
    (root / urbansound8k.METADATA).unlink()
    with pytest.raises(DataError, match=r"UrbanSound8K\.csv: no such file.*re-download"):
        urbansound8k.build(root)


def test_bad_header(tmp_path):
    root = urbansound_tree(tmp_path / "us8k")
    (root / urbansound8k.METADATA).write_text("slice_file_name,fold,class\na.wav,1,dog_bark\n")
    with pytest.raises(DataError, match=r"missing column.*fsID"):
        urbansound8k.build(root)


def test_bad_fold_names_the_line(tmp_path):
    root = urbansound_tree(tmp_path / "us8k")
    text = (root / urbansound8k.METADATA).read_text().replace(",1,6,gun_shot", ",one,6,gun_shot")
    (root / urbansound8k.METADATA).write_text(text)
    with pytest.raises(DataError, match=r"UrbanSound8K\.csv:7: fold 'one'"):
        urbansound8k.build(root)


def test_absent_slices_are_named(tmp_path):
    root = urbansound_tree(tmp_path / "us8k")
    (root / "audio" / "fold10" / SLICES[3][0]).unlink()
    (root / "audio" / "fold1" / SLICES[4][0]).unlink()
    with pytest.raises(DataError) as caught:
        urbansound8k.build(root)
    message = str(caught.value)
    assert "2 slice(s)" in message and "--root" in message
    assert f"fold10/{SLICES[3][0]}" in message and f"fold1/{SLICES[4][0]}" in message
