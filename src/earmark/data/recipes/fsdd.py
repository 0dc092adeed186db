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

The download is the archive of release v1.0.10 (3,000 recordings: 6 speakers,
10 digits, 50 takes), pinned by its tag: GitHub generates archives on the fly,
so no checksum of them is stable, and a branch's archive changes with the
branch. The copy is checked by its content instead: every recording opens and
there are 3,000 (:mod:`earmark.data.recipes.verify`). It unpacks to
``free-spoken-digit-dataset-1.0.10/`` (``-master/`` for the branch archive
older copies came from), with ``recordings/`` inside, which
``earmark datasets download`` puts in the recipe's folder ``fsdd/``; the
builder takes that folder, the folder holding ``recordings/`` directly (such
as ``../shared/data/fsdd``, so ``earmark datasets manifest fsdd --root
../shared/data`` works) or ``recordings/`` itself.
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
VERSION = "1.0.10"
#: The folder the release archive unpacks to.
ARCHIVE_FOLDER = f"free-spoken-digit-dataset-{VERSION}"
#: The folders ``recordings/`` may lie in: the release's, then the branch archive's.
ARCHIVE_FOLDERS = (ARCHIVE_FOLDER, "free-spoken-digit-dataset-master")
#: Recordings of v1.0.10: 6 speakers x 10 digits x 50 takes.
RECORDINGS = 3000
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
    candidates = [folder / "recordings",
                  *(folder / archive / "recordings" for archive in ARCHIVE_FOLDERS)]
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
           files=(RemoteFile(f"free-spoken-digit-dataset-{VERSION}.zip",
                             "https://github.com/Jakobovski/free-spoken-digit-dataset/"
                             f"archive/refs/tags/v{VERSION}.zip"),),
           build_manifest=build_manifest, split="kfold", expected_recordings=RECORDINGS),
)
