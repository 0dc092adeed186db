"""ESC-50 (Piczak, 2015): 2,000 environmental sound clips of 5 s, 50 classes, 5 folds;
ESC-10 is its 10-class subset.

``meta/esc50.csv`` (``filename,fold,target,category,esc10,src_file,take``)
names each clip of ``audio/``. Rows keep the official fold (split ``""``; the
protocol is cross-validation over the folds, ``data.split = "kfold"``), the
label is ``category`` (also kept, with ``esc10``, ``take`` and ``target``, in
``Row.meta``) and the group ``src_file``, the freesound recording a
clip was cut from: its pieces never straddle folds. ``esc10`` keeps only the
rows whose ``esc10`` is ``True``. Both recipes share the folder ``esc50/``
(one download); the GitHub archive unpacks to ``ESC-50-master/`` inside it,
and the builders take either folder.

``../shared/data/esc10_pieces`` cannot use these builders: it has no
``meta/esc50.csv`` and its files are 1 s pieces named
``{fold}-{source}-{take}-{target}_{piece}.flac`` in class folders.
:func:`pieces_manifest` reads that layout (fold and source from the names).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from pathlib import Path

import numpy as np
import soundfile

from earmark.atomic import write_bytes
from earmark.audio import is_audio_file
from earmark.data.manifest import Manifest, Row
from earmark.data.recipes.recipe import Recipe, RemoteFile, read_listing, unpacked_root
from earmark.errors import DataError

COLUMNS = ("filename", "fold", "target", "category", "esc10", "src_file", "take")
#: The CSV columns each row keeps in ``Row.meta``.
META = ("category", "esc10", "take", "target")
ARCHIVE_FOLDER = "ESC-50-master"
METADATA = Path("meta") / "esc50.csv"
ADVICE = ("re-download the dataset (`earmark datasets download {name}`) or point --root at "
          "the unpacked folder (the one holding meta/ and audio/)")
PIECE_NAME = re.compile(r"^(?P<fold>\d+)-(?P<source>\w+)-(?P<take>[A-Z])-(?P<target>\d+)"
                        r"_(?P<piece>\d+)$")


def dataset_root(folder: str | os.PathLike, name: str = "esc50") -> Path:
    """The folder holding ``meta/esc50.csv``: ``folder`` or ``folder/ESC-50-master``.

    Raises
    ------
    DataError
        When neither holds the metadata file.
    """
    return unpacked_root(folder, ARCHIVE_FOLDER, METADATA, ADVICE.format(name=name))


def read_metadata(root: Path, name: str = "esc50") -> list[dict[str, str]]:
    """The records of ``meta/esc50.csv``, checked for the official header.

    Raises
    ------
    DataError
        When a column is missing or the file has no records.
    """
    return read_listing(root / METADATA, COLUMNS, ADVICE.format(name=name), "clips")


def build(folder: str | os.PathLike, esc10_only: bool = False) -> Manifest:
    """ESC-50's (or ESC-10's) rows: label = category, group = src_file, fold from the CSV.

    Parameters
    ----------
    folder : path
        The unpacked dataset (or the folder it was unpacked into).
    esc10_only : bool
        Keep only the ESC-10 clips.

    Returns
    -------
    Manifest
        Absolute paths to ``audio/<filename>``, in the CSV's order, split ``""``.

    Raises
    ------
    DataError
        When the metadata file is missing or malformed, or listed clips are absent.
    """
    name = "esc10" if esc10_only else "esc50"
    root = dataset_root(folder, name)
    rows, absent = [], []
    for line, record in enumerate(read_metadata(root, name), start=2):
        if esc10_only and record["esc10"].strip().lower() != "true":
            continue
        file = root / "audio" / record["filename"].strip()
        if not file.is_file():
            absent.append(record["filename"].strip())
            continue
        try:
            fold = int(record["fold"])
        except ValueError:
            raise DataError(f"{root / METADATA}:{line}: fold {record['fold']!r} is not a "
                            "number; " + ADVICE.format(name=name)) from None
        rows.append(Row(os.path.abspath(file), record["category"].strip(),
                        record["src_file"].strip(), "", fold=fold,
                        meta={key: record[key].strip() for key in META}))
    if absent:
        raise DataError(f"{root / 'audio'}: {len(absent)} clip(s) listed in {METADATA} are "
                        f"missing, e.g. {', '.join(absent[:5])}; " + ADVICE.format(name=name))
    return Manifest(rows)


def build_esc50(folder: Path) -> Manifest:
    """All 2,000 clips of ESC-50 (see :func:`build`)."""
    return build(folder)


def build_esc10(folder: Path) -> Manifest:
    """The 400 clips of ESC-10 (see :func:`build`)."""
    return build(folder, esc10_only=True)


def pieces_manifest(folder: str | os.PathLike) -> Manifest:
    """ESC clips cut into pieces, ``<class>/{fold}-{source}-{take}-{target}_{piece}.flac``.

    The layout of ``../shared/data/esc10_pieces``: label = the class folder,
    group = the freesound source, fold from the name.

    Raises
    ------
    DataError
        When the folder is missing or a file is named otherwise.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder; point it at the folder of class folders")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and is_audio_file(p))
    odd = [str(p.relative_to(folder)) for p in files if not PIECE_NAME.match(p.stem)]
    if odd or not files:
        raise DataError(f"{folder}: {len(odd)} file(s) not named "
                        f"{{fold}}-{{source}}-{{take}}-{{target}}_{{piece}}, e.g. "
                        f"{', '.join(odd[:5])}" if odd else f"{folder}: no audio files")
    return Manifest(Row(os.path.abspath(p), p.parent.name, PIECE_NAME.match(p.stem)["source"],
                        "", fold=int(PIECE_NAME.match(p.stem)["fold"])) for p in files)


def joined_manifest(folder: str | os.PathLike) -> Manifest:
    """The clips of a pieces folder whole again: one recording per clip, its pieces joined
    in order (losslessly, once, under ``$EARMARK_CACHE/esc10_joined/``), so a model can
    hear more than a second at a time. Label, source group and fold as the pieces'."""
    pieces = pieces_manifest(folder)
    clips: dict[tuple[str, str], list[tuple[int, Row]]] = {}
    for row in pieces:
        name = PIECE_NAME.match(Path(row.path).stem)
        clip = f"{name['fold']}-{name['source']}-{name['take']}-{name['target']}"
        clips.setdefault((row.label, clip), []).append((int(name["piece"]), row))
    out = _joined_folder(pieces)
    rows = []
    for (label, clip), parts in sorted(clips.items()):
        path = out / label / f"{clip}.flac"
        if not path.is_file():
            _join([row.path for _, row in sorted(parts, key=lambda part: part[0])], path)
        first = parts[0][1]
        rows.append(Row(str(path), label, first.group, "", fold=first.fold))
    return Manifest(rows)


def _joined_folder(pieces: Manifest) -> Path:
    """A folder named after the pieces' paths, sizes and times: touched pieces, new joins."""
    from earmark.config import default_cache_dir

    digest = hashlib.sha1()
    for row in pieces:
        status = os.stat(row.path)
        digest.update(f"{row.path}|{status.st_size}|{status.st_mtime_ns}\n".encode())
    return Path(default_cache_dir()) / "esc10_joined" / digest.hexdigest()[:16]


def _join(paths: list[str], out: Path) -> None:
    """The pieces back to back, 16-bit as they are stored, written atomically."""
    parts = [soundfile.read(path, dtype="int16") for path in paths]
    rates = {rate for _, rate in parts}
    if len(rates) != 1:
        raise DataError(f"{paths[0]}: the pieces of one clip have different rates {rates}")
    out.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    soundfile.write(buffer, np.concatenate([data for data, _ in parts]), rates.pop(),
                    subtype="PCM_16", format="FLAC")
    write_bytes(out, buffer.getvalue())


#: No checksum: GitHub generates branch archives on the fly, so their bytes (and any
#: checksum of them) change; the copy is checked by its content instead (every clip
#: opens, and as many as the dataset documents: :mod:`earmark.data.recipes.verify`).
_ARCHIVE = RemoteFile("ESC-50-master.zip",
                      "https://github.com/karolpiczak/ESC-50/archive/master.zip")

RECIPES: tuple[Recipe, ...] = (
    Recipe(name="esc50", title="ESC-50: Dataset for Environmental Sound Classification",
           purpose="environmental sounds, 50 classes, 5 s clips, 5-fold cross-validation",
           licence="CC BY-NC 3.0 (non-commercial)",
           size_text="~880 MB unpacked", folder="esc50",
           files=(_ARCHIVE,),
           build_manifest=build_esc50, split="kfold", expected_recordings=2000),
    Recipe(name="esc10", title="ESC-10 (the 10-class subset of ESC-50)",
           purpose="environmental sounds, 10 classes, 5 s clips, 5-fold cross-validation",
           licence="CC BY 3.0 (its clips; the download is ESC-50, CC BY-NC 3.0)",
           size_text="~880 MB (all ESC-50)", folder="esc50",
           files=(_ARCHIVE,), build_manifest=build_esc10, split="kfold",
           expected_recordings=400),
    Recipe(name="esc10_pieces", title="ESC-10 in 1 s pieces (../shared/data/esc10_pieces)",
           purpose="ESC-10 clips cut into five 1 s pieces at 16 kHz, folds 1, 2, 3, 5; "
                   "a layout already on disk, nothing to download",
           licence="CC BY-NC 3.0 (non-commercial)", size_text="~32 MB", folder="esc10_pieces",
           files=(), build_manifest=pieces_manifest, split="kfold"),
    Recipe(name="esc10_joined", title="ESC-10 pieces joined into 5 s clips again",
           purpose="the clips of esc10_pieces whole (joined once into the cache), for "
                   "models that hear more than 1 s",
           licence="CC BY-NC 3.0 (non-commercial)", size_text="~32 MB", folder="esc10_pieces",
           files=(), build_manifest=joined_manifest, split="kfold"),
)
