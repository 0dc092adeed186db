"""The dataset's own columns (``Row.meta``) through manifests and their CSV files."""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import pytest

from earmark.data.manifest import Manifest, Row, from_csv
from earmark.data.recipes import esc50
from earmark.errors import DataError


def rows_with_meta(folder: Path) -> list[Row]:
    return [
        Row(str(folder / "a.wav"), "dog", "100", fold=1,
            meta={"category": "dog", "esc10": "True"}),
        Row(str(folder / "b.wav"), "rain", "200", fold=2, meta={"salience": "2"}),
        Row(str(folder / "c.wav"), "rain", "200", fold=2),
    ]


def test_meta_columns_follow_the_standard_ones(tmp_path):
    Manifest(rows_with_meta(tmp_path)).to_csv(tmp_path / "m.csv")
    lines = (tmp_path / "m.csv").read_text().splitlines()
    assert lines[0] == "path,label,group,split,start,end,fold,category,esc10,salience"
    assert lines[1].endswith(",1,dog,True,")
    assert lines[2].endswith(",2,,,2")
    assert lines[3].endswith(",2,,,")


def test_meta_round_trips(tmp_path):
    rows = rows_with_meta(tmp_path)
    Manifest(rows).to_csv(tmp_path / "m.csv")
    again = from_csv(tmp_path / "m.csv")
    assert again.rows == rows
    assert [row.meta for row in again] == [row.meta for row in rows]


def test_meta_with_commas_and_quotes_round_trips(tmp_path):
    row = Row(str(tmp_path / "a.wav"), "yes", "g", meta={"transcript": 'he said "yes, no"'})
    Manifest([row]).to_csv(tmp_path / "m.csv")
    assert from_csv(tmp_path / "m.csv").rows[0].meta == row.meta


def test_replace_and_splits_keep_meta(tmp_path):
    manifest = Manifest(rows_with_meta(tmp_path))
    split = manifest.with_splits(["train", "test", "validation"])
    assert [row.meta for row in split] == [row.meta for row in manifest]
    assert replace(manifest.rows[0], label="cat").meta == {"category": "dog", "esc10": "True"}


def test_meta_takes_no_part_in_equality(tmp_path):
    plain = Row("a.wav", "yes", "g")
    assert plain == replace(plain, meta={"x": "1"})
    assert hash(plain) == hash(replace(plain, meta={"x": "1"}))
    assert plain.meta == {}


def test_standard_manifest_csv_is_unchanged(tmp_path):
    rows = [Row("/data/a.wav", "yes", "g1", "train"),
            Row("/data/b.wav", "no", "g2", "test", start=0.5, end=1.25, fold=3)]
    Manifest(rows).to_csv(tmp_path / "m.csv")
    assert (tmp_path / "m.csv").read_bytes() == (
        b"path,label,group,split,start,end,fold\n"
        b"/data/a.wav,yes,g1,train,,,\n"
        b"/data/b.wav,no,g2,test,0.5,1.25,3\n")
    assert all(row.meta == {} for row in from_csv(tmp_path / "m.csv"))


def test_unknown_columns_become_meta(tmp_path):
    (tmp_path / "m.csv").write_text("path,label,gender,chapter\na.wav,yes,F,12\nb.wav,no,,\n")
    manifest = from_csv(tmp_path / "m.csv")
    assert [row.meta for row in manifest] == [{"gender": "F", "chapter": "12"}, {}]


@pytest.mark.parametrize("column", ["lable", "folds", "Split"])
def test_near_misses_of_standard_columns_are_refused(tmp_path, column):
    (tmp_path / "m.csv").write_text(f"path,label,{column}\na.wav,yes,1\n")
    with pytest.raises(DataError, match=rf"m\.csv.*{column}.*did you mean"):
        from_csv(tmp_path / "m.csv")


def test_meta_named_like_a_standard_column_is_refused(tmp_path):
    manifest = Manifest([Row("a.wav", "yes", "g", meta={"start": "1.0"})])
    with pytest.raises(DataError, match=r"'start'.*standard"):
        manifest.to_csv(tmp_path / "m.csv")


def test_esc50_rows_keep_their_columns_in_meta(tmp_path):
    (tmp_path / "meta").mkdir()
    (tmp_path / "audio").mkdir()
    with open(tmp_path / "meta" / "esc50.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(esc50.COLUMNS)
        writer.writerow(("1-100032-A-0.wav", 1, 0, "dog", "True", "100032", "A"))
    (tmp_path / "audio" / "1-100032-A-0.wav").touch()
    row = esc50.build(tmp_path).rows[0]
    assert row.meta == {"category": "dog", "esc10": "True", "take": "A", "target": "0"}
