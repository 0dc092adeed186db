"""UrbanSound8K (Salamon, Jacoby and Bello, 2014): 8,732 urban sound slices of up
to 4 s, 10 classes, 10 predefined folds.

``metadata/UrbanSound8K.csv``
(``slice_file_name,fsID,start,end,salience,fold,classID,class``) names each
slice, found in ``audio/fold<N>/``. Rows keep the official fold (split ``""``;
the protocol is 10-fold cross-validation over the predefined folds,
``data.split = "kfold"``), the label is ``class`` and the group ``fsID``, the
freesound recording a slice was cut from: its slices never straddle folds.

The audio files already are the slices, so ``Row.start``/``Row.end`` stay
empty (setting them would cut the files again); the slice's place in its
freesound recording is kept in ``Row.meta`` as ``slice_start`` and
``slice_end`` (``start`` and ``end`` are standard manifest columns), next to
``salience`` (1 foreground, 2 background) and ``classID``. The archive
unpacks to ``UrbanSound8K/``; the builder takes that folder or the one
holding it.
"""

from __future__ import annotations

import os
from pathlib import Path

from earmark.data.manifest import Manifest, Row
from earmark.data.recipes.recipe import Recipe, RemoteFile, read_listing, unpacked_root
from earmark.errors import DataError

COLUMNS = ("slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class")
ARCHIVE_FOLDER = "UrbanSound8K"
METADATA = Path("metadata") / "UrbanSound8K.csv"
#: CSV column -> its key in ``Row.meta``.
META = {"start": "slice_start", "end": "slice_end", "salience": "salience",
        "classID": "classID"}
ADVICE = ("re-download the dataset (`earmark datasets download urbansound8k`) or point "
          "--root at the unpacked folder (the one holding metadata/ and audio/)")


def dataset_root(folder: str | os.PathLike) -> Path:
    """The folder holding ``metadata/UrbanSound8K.csv``: ``folder`` or ``folder/UrbanSound8K``.

    Raises
    ------
    DataError
        When neither holds the metadata file.
    """
    return unpacked_root(folder, ARCHIVE_FOLDER, METADATA, ADVICE)


def read_metadata(root: Path) -> list[dict[str, str]]:
    """The records of ``metadata/UrbanSound8K.csv``, checked for the official header.

    Raises
    ------
    DataError
        When a column is missing or the file lists no slices.
    """
    return read_listing(root / METADATA, COLUMNS, ADVICE, "slices")


def parse_fold(record: dict[str, str], where: str) -> int:
    """The record's fold, a positive whole number.

    Raises
    ------
    DataError
        When it is not one, naming the CSV line.
    """
    text = (record.get("fold") or "").strip()
    if not text.isdigit() or int(text) < 1:
        raise DataError(f"{where}: fold {text!r} is not a positive whole number; " + ADVICE)
    return int(text)


def build(folder: str | os.PathLike) -> Manifest:
    """UrbanSound8K's rows: label = class, group = fsID, fold from the CSV.

    Parameters
    ----------
    folder : path
        The unpacked dataset (``UrbanSound8K/``) or the folder holding it.

    Returns
    -------
    Manifest
        Absolute paths to ``audio/fold<N>/<slice_file_name>``, in the CSV's
        order, split ``""``, no ``start``/``end``; ``meta`` holds
        ``slice_start``, ``slice_end``, ``salience`` and ``classID``.

    Raises
    ------
    DataError
        When the metadata file is missing or malformed, or listed slices are absent.
    """
    root = dataset_root(folder)
    rows, absent = [], []
    for line, record in enumerate(read_metadata(root), start=2):
        fold = parse_fold(record, f"{root / METADATA}:{line}")
        name = record["slice_file_name"].strip()
        file = root / "audio" / f"fold{fold}" / name
        if not file.is_file():
            absent.append(f"fold{fold}/{name}")
            continue
        rows.append(Row(os.path.abspath(file), record["class"].strip(),
                        record["fsID"].strip(), "", fold=fold,
                        meta={key: record[column].strip() for column, key in META.items()}))
    if absent:
        raise DataError(f"{root / 'audio'}: {len(absent)} slice(s) listed in {METADATA} are "
                        f"missing, e.g. {', '.join(absent[:5])}; " + ADVICE)
    return Manifest(rows)


#: The MD5 Zenodo publishes for record 1203745 (as soundata verifies it).
ARCHIVE = RemoteFile("UrbanSound8K.tar.gz",
                     "https://zenodo.org/record/1203745/files/UrbanSound8K.tar.gz",
                     md5="9aa69802bbf37fb986f71ec1483a196e")

RECIPES: tuple[Recipe, ...] = (
    Recipe(name="urbansound8k", title="UrbanSound8K",
           purpose="urban sounds, 10 classes, slices up to 4 s, 10-fold cross-validation",
           licence="CC BY-NC 3.0 (non-commercial)",
           size_text="6.6 GB", folder="urbansound8k",
           files=(ARCHIVE,), build_manifest=build, split="kfold",
           expected_recordings=8732),
)
