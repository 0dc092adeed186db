"""Speech Commands (Warden, 2018), v0.01 and v0.02, with the official split.

The archives unpack their word folders, ``_background_noise_``,
``validation_list.txt`` and ``testing_list.txt`` at the top level (no folder
of their own), so each version is unpacked into a folder named after it.
The split comes from the two official lists (paths relative to the dataset
folder, e.g. ``right/bb05582b_nohash_3.wav``); every other recording is
train. The group is the speaker: the hash before ``_nohash_``. The
``_background_noise_`` recordings are not rows; :func:`background_noise_files`
returns them.

Two tasks per version:

- ``speech_commands_v2`` (35 words; ``speech_commands_v1``: 30): every word its
  own label.
- ``speech_commands_v2_12`` (``speech_commands_v1_12``): the ten words of the
  12-class task keep their label, every other word becomes ``_unknown_``
  (all of them; ``data.unknown_percent`` samples them down). ``_silence_`` is
  not a row here: it is cut from the background recordings by
  :func:`earmark.data.keywords.keyword_task`, so a config asks for it with::

      [data]
      csv = "speech_commands_v2_12.csv"
      keywords = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]
      silence_percent = 10.0
      unknown_percent = 10.0
      silence_noise_dir = "<dataset folder>/_background_noise_"
      split = "column"

  ``keyword_task`` deals the ``_silence_`` cuts to the official splits in the
  words' proportions.
"""

from __future__ import annotations

import os
from pathlib import Path

from earmark.audio import is_audio_file
from earmark.data.manifest import Manifest, Row
from earmark.data.recipes.recipe import Recipe, RemoteFile
from earmark.errors import DataError

#: The words of v0.01, in alphabetical order.
WORDS_V1 = ("bed", "bird", "cat", "dog", "down", "eight", "five", "four", "go", "happy",
            "house", "left", "marvin", "nine", "no", "off", "on", "one", "right", "seven",
            "sheila", "six", "stop", "three", "tree", "two", "up", "wow", "yes", "zero")
#: v0.02 adds five words.
WORDS_V2 = tuple(sorted(WORDS_V1 + ("backward", "follow", "forward", "learn", "visual")))
#: The ten words of the 12-class task (with ``_unknown_`` and ``_silence_``).
KEYWORDS_12 = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
UNKNOWN = "_unknown_"
BACKGROUND = "_background_noise_"
LIST_FILES = {"validation": "validation_list.txt", "test": "testing_list.txt"}
LICENCE = "CC BY 4.0 (Google LLC)"
ADVICE = ("re-download the dataset (`earmark datasets download {name}`) or point --root "
          "at the unpacked folder (the one holding the word folders and testing_list.txt)")


def read_lists(folder: Path, name: str = "speech_commands") -> dict[str, str]:
    """The official split of each listed file: ``{"right/bb05582b_nohash_3.wav": "test"}``.

    Parameters
    ----------
    folder : Path
        The unpacked dataset folder.
    name : str
        The recipe's name, for the error message.

    Raises
    ------
    DataError
        When a list file is missing, naming it.
    """
    missing = [file for file in LIST_FILES.values() if not (folder / file).is_file()]
    if missing:
        raise DataError(f"{folder}: missing {', '.join(missing)}; this is not an unpacked "
                        f"Speech Commands folder; " + ADVICE.format(name=name))
    split_of = {}
    for split, file in LIST_FILES.items():
        for line in (folder / file).read_text(encoding="utf-8").splitlines():
            if line.strip():
                split_of[line.strip().replace("\\", "/")] = split
    return split_of


def speaker(file_name: str) -> str:
    """The speaker of ``bb05582b_nohash_3.wav``: ``bb05582b`` (the stem without a hash)."""
    stem = Path(file_name).stem
    return stem.split("_nohash_")[0] if "_nohash_" in stem else stem


def background_noise_files(folder: str | os.PathLike) -> list[Path]:
    """The ``_background_noise_`` recordings of a dataset folder, sorted (none if absent)."""
    noise = Path(folder) / BACKGROUND
    if not noise.is_dir():
        return []
    return sorted(p for p in noise.iterdir() if p.is_file() and is_audio_file(p))


def word_manifest(folder: str | os.PathLike, name: str = "speech_commands") -> Manifest:
    """Every word recording, labelled with its word, split by the official lists.

    Parameters
    ----------
    folder : path
        The unpacked dataset folder.
    name : str
        The recipe's name, for error messages.

    Returns
    -------
    Manifest
        Absolute paths; group = speaker; split from the lists, else train.

    Raises
    ------
    DataError
        When the folder, a list file or a listed recording is missing.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder; " + ADVICE.format(name=name))
    split_of = read_lists(folder, name)
    rows, seen = [], set()
    for word_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        if word_dir.name == BACKGROUND or word_dir.name.startswith("."):
            continue
        for file in sorted(word_dir.iterdir()):
            if not (file.is_file() and is_audio_file(file)):
                continue
            relative = f"{word_dir.name}/{file.name}"
            seen.add(relative)
            rows.append(Row(os.path.abspath(file), word_dir.name, speaker(file.name),
                            split_of.get(relative, "train")))
    absent = sorted(set(split_of) - seen)
    if absent:
        raise DataError(f"{folder}: {len(absent)} recording(s) named in "
                        f"{' or '.join(LIST_FILES.values())} are missing, e.g. "
                        f"{', '.join(absent[:5])}; " + ADVICE.format(name=name))
    if not rows:
        raise DataError(f"{folder}: no word folders with recordings; " + ADVICE.format(name=name))
    return Manifest(rows)


def twelve_class(manifest: Manifest) -> Manifest:
    """The 12-class task's rows: the ten keywords keep their label, others are ``_unknown_``."""
    return Manifest(row if row.label in KEYWORDS_12 else
                    Row(row.path, UNKNOWN, row.group, row.split) for row in manifest)


def _recipe(version: int, twelve: bool) -> Recipe:
    """The recipe of one version (1 or 2), all its words or the 12-class task."""
    archive = f"speech_commands_v0.0{version}"
    name = f"speech_commands_v{version}" + ("_12" if twelve else "")
    words = len(WORDS_V2 if version == 2 else WORDS_V1)
    if twelve:
        def build(folder: Path) -> Manifest:
            return twelve_class(word_manifest(folder, name))
        purpose = "keyword spotting, 10 words + _unknown_ (+ _silence_: data.keywords)"
    else:
        def build(folder: Path) -> Manifest:
            return word_manifest(folder, name)
        purpose = f"keyword spotting, {words} words, each its own class"
    remote = RemoteFile(f"{archive}.tar.gz",
                        f"http://download.tensorflow.org/data/{archive}.tar.gz",
                        size=SIZES[version], sha256=SHA256[version])
    return Recipe(name=name, title=f"Speech Commands v0.0{version}"
                  + (" (12-class task)" if twelve else ""),
                  purpose=purpose, licence=LICENCE, size_text=SIZE_TEXT[version],
                  folder=archive, files=(remote,), build_manifest=build, split="column",
                  expected_recordings=RECORDINGS[version])


#: Archive sizes in bytes (v0.02 as TensorFlow Datasets lists it; v0.01 unknown here).
SIZES = {1: None, 2: 2428923189}
#: SHA-256 of the archives as torchaudio (and TensorFlow Datasets, v0.02) verify them.
SHA256 = {1: "743935421bb51cccdb6bdd152e04c5c70274e935c82119ad7faeec31780d811d",
          2: "af14739ee7dc311471de98f5f9d2c9191b18aedfe957f4a6ff791c709868ff58"}
SIZE_TEXT = {1: "~1.4 GB", 2: "~2.3 GB"}
#: Word clips (the manifest's rows; ``_background_noise_`` is not one) as Warden (2018)
#: documents them; the 12-class task has the same rows.
RECORDINGS = {1: 64727, 2: 105829}

RECIPES: tuple[Recipe, ...] = tuple(_recipe(version, twelve) for version in (1, 2)
                                    for twelve in (False, True))
