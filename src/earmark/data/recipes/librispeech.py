"""LibriSpeech (Panayotov et al., 2015): read English audiobooks, 16 kHz FLAC, by speaker.

After unpacking, every subset lies under one ``LibriSpeech/`` folder::

    LibriSpeech/SPEAKERS.TXT                      ID | SEX | SUBSET | MINUTES | NAME
    LibriSpeech/<subset>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac
    LibriSpeech/<subset>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt

The manifest has one row per utterance: label = the speaker's sex as
``SPEAKERS.TXT`` gives it (``F`` or ``M``, the class names of earmark's
``configs/gender.toml``), group = the speaker, and meta ``speaker``,
``chapter``, ``gender``, ``transcript`` and ``subset``. LibriSpeech's subsets
are speaker-disjoint by design (train on ``train-clean-100``, tune on
``dev-clean``, test on ``test-clean``); within one subset the rows carry no
split and a config uses ``data.split = "kfold"``: folds of speakers.
Every subset's recipe shares the folder ``LibriSpeech`` (the archives all
unpack into it); the manifest writer names each recipe's file.

``../shared/data/librispeech_gender`` is not this layout (``F/`` and ``M/``
folders of single utterances, no transcripts); it reads with
:func:`earmark.data.manifest.from_folder`, and its ``SPEAKERS.TXT`` with
:func:`read_speakers`.
"""

from __future__ import annotations

import os
from pathlib import Path

from earmark.data.manifest import Manifest, Row
from earmark.data.recipes.recipe import Recipe, RemoteFile, unpacked_root
from earmark.errors import DataError

ARCHIVE_FOLDER = "LibriSpeech"
SPEAKERS = "SPEAKERS.TXT"
ADVICE = ("re-download it (`earmark datasets download {name}`) or point --root at the "
          "unpacked folder holding SPEAKERS.TXT and {subset}/")
#: subset -> (archive bytes where known, size as OpenSLR lists it, md5 from OpenSLR's
#: md5sum.txt, utterances as the LibriSpeech paper documents them)
SUBSETS = {
    "dev-clean": (337926286, "337 MB", "42e2234ba48799c1f50f24a7926300a1", 2703),
    "dev-other": (None, "314 MB", "c8d0bcc9cca99d4f8b62fcc847357931", 2864),
    "test-clean": (None, "346 MB", "32fa31d27d2e1cad72775fee3f4849a9", 2620),
    "test-other": (None, "328 MB", "fb5a50374b501bb3bac4815ee91d3135", 2939),
    "train-clean-100": (None, "6.3 GB", "2a93770f6d5c6c964bc36631d331a522", 28539),
}
#: SHA-256 of each archive, as torchaudio verifies them (checked with the md5 above).
SHA256 = {
    "dev-clean": "76f87d090650617fca0cac8f88b9416e0ebf80350acb97b343a85fa903728ab3",
    "dev-other": "12661c48e8c3fe1de2c1caa4c3e135193bfb1811584f11f569dd12645aa84365",
    "test-clean": "39fde525e59672dc6d1551919b1478f724438a95aa55f874b576be21967e6c23",
    "test-other": "d09c181bba5cf717b3dee7d4d592af11a3ee3a09e08ae025c5506f6ebe961c29",
    "train-clean-100": "d4ddd1d5a6ab303066f14971d768ee43278a5f2a0aa43dc716b0e64ecbbbf6e2",
}


def dataset_root(folder: str | os.PathLike, subset: str) -> Path:
    """The folder holding ``SPEAKERS.TXT`` and ``<subset>/``: ``folder`` or ``folder/LibriSpeech``.

    Raises
    ------
    DataError
        When neither holds the subset's folder.
    """
    return unpacked_root(folder, ARCHIVE_FOLDER, subset,
                         ADVICE.format(name=f"librispeech_{subset}", subset=subset),
                         is_folder=True)


def read_speakers(path: str | os.PathLike) -> dict[str, str]:
    """Speaker id -> sex (``F``/``M``) from ``SPEAKERS.TXT``; ``;`` lines are comments.

    Raises
    ------
    DataError
        When the file is missing, a line has fewer than 3 ``|`` fields or a sex
        other than F or M, or no speaker is listed.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file; LibriSpeech's speaker list comes with every "
                        "archive: unpack the whole archive (not only the subset folder)")
    speakers = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith(";"):
            continue
        fields = [field.strip() for field in line.split("|")]
        if len(fields) < 3 or fields[1] not in ("F", "M"):
            raise DataError(f"{path}:{number}: expected 'ID | SEX | SUBSET | MINUTES | NAME' "
                            f"with SEX F or M, got {line.strip()!r}")
        speakers[fields[0]] = fields[1]
    if not speakers:
        raise DataError(f"{path}: lists no speakers; re-download the archive")
    return speakers


def read_transcripts(path: Path) -> dict[str, str]:
    """Utterance id -> transcript from a ``<speaker>-<chapter>.trans.txt``."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return dict(line.split(" ", 1) if " " in line else (line, "")
                for line in (item.strip() for item in lines) if line)


def chapter_rows(chapter: Path, subset: str, sex: str) -> list[Row]:
    """The rows of one ``<speaker>/<chapter>/`` folder, transcripts included.

    Raises
    ------
    DataError
        When the transcript file is missing or does not list an utterance.
    """
    speaker = chapter.parent.name
    text_file = chapter / f"{speaker}-{chapter.name}.trans.txt"
    if not text_file.is_file():
        raise DataError(f"{text_file}: no such file; the chapter's transcripts are missing "
                        "(re-download and unpack the archive)")
    texts = read_transcripts(text_file)
    rows = []
    for file in sorted(chapter.glob("*.flac")):
        if file.stem not in texts:
            raise DataError(f"{file}: not listed in {text_file.name}; re-download the archive")
        meta = {"speaker": speaker, "chapter": chapter.name, "gender": sex,
                "transcript": texts[file.stem], "subset": subset}
        rows.append(Row(os.path.abspath(file), sex, speaker, "", meta=meta))
    return rows


def build(folder: str | os.PathLike, subset: str) -> Manifest:
    """One subset's utterances: label = the speaker's sex (F/M), group = speaker.

    Parameters
    ----------
    folder : path
        ``LibriSpeech/`` (or the folder it was unpacked into).
    subset : str
        e.g. ``"dev-clean"``.

    Returns
    -------
    Manifest
        Absolute paths, sorted by speaker, chapter and utterance; split ``""``
        (split by folds of speakers, ``data.split = "kfold"``).

    Raises
    ------
    DataError
        When ``SPEAKERS.TXT`` or the subset is missing, a speaker is not listed
        in ``SPEAKERS.TXT``, or the subset holds no utterances.
    """
    root = dataset_root(folder, subset)
    sexes = read_speakers(root / SPEAKERS)
    speakers = sorted((p for p in (root / subset).iterdir() if p.is_dir()),
                      key=lambda p: (len(p.name), p.name))
    unknown = [p.name for p in speakers if p.name not in sexes]
    if unknown:
        raise DataError(f"{root / SPEAKERS}: does not list speaker(s) {', '.join(unknown[:10])} "
                        f"of {root / subset}; use the SPEAKERS.TXT of the same LibriSpeech "
                        "release (re-download the archive)")
    rows = []
    for speaker in speakers:
        for chapter in sorted(p for p in speaker.iterdir() if p.is_dir()):
            rows.extend(chapter_rows(chapter, subset, sexes[speaker.name]))
    if not rows:
        raise DataError(f"{root / subset}: no <speaker>/<chapter>/*.flac utterances; "
                        + ADVICE.format(name=f"librispeech_{subset}", subset=subset))
    return Manifest(rows)


def recipe(subset: str) -> Recipe:
    """The recipe of one subset: ``librispeech_<subset>`` (dashes kept)."""
    size, size_text, md5, utterances = SUBSETS[subset]
    archive = RemoteFile(f"{subset}.tar.gz",
                         f"https://www.openslr.org/resources/12/{subset}.tar.gz",
                         size=size, sha256=SHA256[subset], md5=md5)

    def build_subset(folder: Path) -> Manifest:
        return build(folder, subset)

    build_subset.__doc__ = f"LibriSpeech {subset} (see :func:`build`)."
    return Recipe(name=f"librispeech_{subset}", title=f"LibriSpeech {subset}",
                  purpose="read English speech by speaker: speaker sex (F/M), "
                          "speaker-disjoint folds, transcripts in meta",
                  licence="CC BY 4.0", size_text=size_text, folder=ARCHIVE_FOLDER,
                  files=(archive,), build_manifest=build_subset, split="kfold",
                  expected_recordings=utterances)


RECIPES: tuple[Recipe, ...] = tuple(recipe(subset) for subset in SUBSETS)
