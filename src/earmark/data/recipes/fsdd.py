"""The Free Spoken Digit Dataset (FSDD, Jakobovski et al.): spoken digits, 8 kHz.

Recordings are ``recordings/<digit>_<speaker>_<take>.wav``; the label is the
digit and the group the speaker (as earmark's ``fsdd`` presets in
:mod:`earmark.data.manifest` read these names).

The dataset's README documents a quick split: takes 0-4 of every speaker and
digit are test, takes 5-49 train. Each row carries that split in its ``split``
column, but it puts every speaker on both sides, so earmark's check that no
group straddles a split refuses it as ``data.split = "column"``. The recipe
therefore asks for ``data.split = "kfold"``: whole speakers dealt into folds
(``data.folds`` = the number of speakers is leave-one-speaker-out, as
``configs/digits.toml`` does), the speaker-independent evaluation. Figures on
the documented take split are not comparable with speaker-disjoint ones.

The GitHub archive unpacks to ``free-spoken-digit-dataset-master/`` (with
``recordings/`` inside), which ``earmark datasets download`` puts in the
recipe's folder ``fsdd/``; the builder takes that folder, the folder holding
``recordings/`` directly (such as ``../shared/data/fsdd``, so
``earmark datasets manifest fsdd --root ../shared/data`` works) or
``recordings/`` itself.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from earmark.audio import is_audio_file
from earmark.data.manifest import Manifest, Row
from earmark.data.recipes.recipe import Recipe, RemoteFile
from earmark.errors import DataError

NAME = re.compile(r"^(?P<digit>\d)_(?P<speaker>[A-Za-z]+)_(?P<take>\d+)$")
#: Takes below this are the documented test split.
TEST_TAKES = 5
ARCHIVE_FOLDER = "free-spoken-digit-dataset-master"
ADVICE = ("re-download the dataset (`earmark datasets download fsdd`) or point --root at "
          "the unpacked folder (the one holding recordings/)")


def recordings_folder(folder: str | os.PathLike) -> Path:
    """The ``recordings/`` folder of an unpacked FSDD, found at or just below ``folder``.

    Raises
    ------
    DataError
        When there is none.
    """
    folder = Path(folder)
    candidates = [folder / "recordings", folder / ARCHIVE_FOLDER / "recordings"]
    if folder.name == "recordings":
        candidates.insert(0, folder)
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise DataError(f"{folder}: no recordings/ folder (looked for "
                    f"{', '.join(str(c) for c in candidates)}); " + ADVICE)


def build_manifest(folder: str | os.PathLike) -> Manifest:
    """FSDD's rows: label = digit, group = speaker, split = the documented take split.

    Parameters
    ----------
    folder : path
        The unpacked dataset (or its ``recordings/`` folder).

    Returns
    -------
    Manifest
        Absolute paths, sorted; takes 0-4 ``test``, the others ``train``.

    Raises
    ------
    DataError
        When ``recordings/`` is missing or empty, or holds audio named otherwise.
    """
    recordings = recordings_folder(folder)
    files = sorted(p for p in recordings.iterdir() if p.is_file() and is_audio_file(p))
    odd = [p.name for p in files if not NAME.match(p.stem)]
    if odd:
        raise DataError(f"{recordings}: {len(odd)} file(s) not named "
                        f"<digit>_<speaker>_<take>.wav, e.g. {', '.join(odd[:5])}; "
                        "remove them or " + ADVICE)
    if not files:
        raise DataError(f"{recordings}: no recordings; " + ADVICE)
    rows = []
    for file in files:
        found = NAME.match(file.stem)
        split = "test" if int(found["take"]) < TEST_TAKES else "train"
        rows.append(Row(os.path.abspath(file), found["digit"], found["speaker"], split))
    return Manifest(rows)


RECIPES: tuple[Recipe, ...] = (
    Recipe(name="fsdd", title="Free Spoken Digit Dataset",
           purpose="spoken digits 0-9, 8 kHz; speaker-independent k-fold by speaker",
           licence="CC BY-SA 4.0",
           size_text="~20 MB",
           folder="fsdd",
           files=(RemoteFile("free-spoken-digit-dataset-master.zip",
                             "https://github.com/Jakobovski/free-spoken-digit-dataset/"
                             "archive/master.zip"),),
           build_manifest=build_manifest, split="kfold"),
)
