"""What a dataset recipe declares: where the dataset comes from, how it is checked, and
how its files become an earmark manifest with the dataset's official split."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from earmark.data.manifest import Manifest
from earmark.errors import DataError


@dataclass(frozen=True)
class RemoteFile:
    """One file to download (usually an archive), as the dataset's publisher lists it."""

    name: str                  #: file name on disk
    url: str                   #: the official URL
    size: int | None = None    #: bytes, as published
    sha256: str | None = None  #: lowercase hex, where published
    md5: str | None = None     #: lowercase hex, where published (both are checked if both given)


@dataclass(frozen=True)
class Recipe:
    """One public dataset: ``earmark datasets list/download/manifest NAME``."""

    name: str                  #: e.g. "speech_commands_v2"
    title: str                 #: what a person calls it
    purpose: str               #: one line: what it is for
    licence: str               #: printed before downloading
    size_text: str             #: e.g. "2.3 GB"
    folder: str                #: the dataset's folder under the download root
    files: tuple[RemoteFile, ...]
    #: The dataset folder (as unpacked) -> manifest with the official split or folds.
    build_manifest: Callable[[Path], Manifest]
    split: str = "column"      #: how a config should split it: "column" or "kfold"
    #: Manifest rows a complete copy gives, as the dataset documents it (None: unknown).
    #: Fewer after a download is an error; fewer in a folder of one's own, a warning.
    expected_recordings: int | None = None


def read_listing(path: Path, columns: Sequence[str], advice: str,
                 items: str = "entries") -> list[dict[str, str]]:
    """The records of a dataset's metadata CSV, checked for the official header.

    Raises
    ------
    DataError
        When a column is missing or the file lists no ``items``; ``advice`` says
        what to do.
    """
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{path}: missing column(s) {missing} (expected "
                            f"{','.join(columns)}); " + advice)
        records = list(reader)
    if not records:
        raise DataError(f"{path}: no {items} listed; " + advice)
    return records


def unpacked_root(folder: str | os.PathLike, archive_folder: str, marker: str | os.PathLike,
                  advice: str, is_folder: bool = False) -> Path:
    """The dataset's own folder: ``folder`` itself or the archive's ``archive_folder``
    inside it, whichever holds ``marker`` (its metadata file, or a subset's folder).

    Raises
    ------
    DataError
        When neither does; ``advice`` says what to do.
    """
    folder = Path(folder)
    for candidate in (folder, folder / archive_folder):
        found = (candidate / marker).is_dir() if is_folder else (candidate / marker).is_file()
        if found:
            return candidate
    kind = "folder" if is_folder else "file"
    raise DataError(f"{folder / marker}: no such {kind} (nor under {archive_folder}/); "
                    + advice)
