"""What a dataset recipe declares: where the dataset comes from, how it is checked, and
how its files become an earmark manifest with the dataset's official split."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from earmark.data.manifest import Manifest


@dataclass(frozen=True)
class RemoteFile:
    """One file to download (usually an archive), as the dataset's publisher lists it."""

    name: str                  #: file name on disk
    url: str                   #: the official URL
    size: int | None = None    #: bytes, as published
    sha256: str | None = None  #: lowercase hex, where published (else md5)
    md5: str | None = None


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
