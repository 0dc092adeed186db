"""Machine sounds for anomaly detection: MIMII (Purohit et al., 2019) and the DCASE
task 2 development sets built from it (2020; names of 2022 and later too).

MIMII (Zenodo record 3384388) ships one archive per noise level and machine,
``<snr>_<machine>.zip`` (e.g. ``6_dB_fan.zip``), unpacking to
``<machine>/id_XX/{normal,abnormal}/00000000.wav``. Rows: label ``normal`` or
``anomaly``; group = the clip itself (``<machine>_id_XX_<condition>_<n>``: the
clips are separate 10 s recordings, and anomaly detection must split within
one machine id); meta ``machine``, ``id``, ``condition`` (normal/abnormal as
the folder says), ``snr``. MIMII has no official split; the builder follows
the MIMII baseline's convention, per machine id: test = every abnormal clip
plus as many normal clips (the first ones by name, at most half of the
normal clips), train = the other normal clips (training sees normal sounds
only). So rows carry split ``train``/``test`` (``data.split = "column"``).

DCASE 2020 task 2's development set (Zenodo record 3678171,
``dev_data_<machine>.zip``) unpacks to ``<machine>/{train,test}/`` with files
``{normal,anomaly}_id_XX_NNNNNNNN.wav``: the split is the folder, the label
the name's first word; meta ``machine``, ``id``, ``condition``, ``domain``
(empty). DCASE 2022 and later name files
``section_XX_{source,target}_{train,test}_{normal,anomaly}_NNNN[_attributes].wav``;
:func:`build_dcase` reads those too (meta ``section`` and ``domain``), though
only the 2020 archives have recipes here.

Checks: DCASE 2020's archives have the MD5s Zenodo publishes (as soundata
verifies them). MIMII's have none we can verify, so a MIMII copy is checked by
its content: every clip opens and there are as many as the MIMII paper's table
gives (normal + abnormal, 6 dB; :mod:`earmark.data.recipes.verify`). DCASE's
clip counts are not documented here, so only the clips are opened.

``../shared/data/mimii_fan`` (``id_00/{normal,abnormal}/*.flac``, 20 + 20
clips, no ``fan/`` folder) reads with :func:`build_mimii` (``machine="fan"``):
train 10 normal, test 10 normal + 20 anomaly.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from earmark.audio import is_audio_file
from earmark.data.manifest import Manifest, Row
from earmark.data.recipes.recipe import Recipe, RemoteFile
from earmark.errors import DataError

MIMII_MACHINES = ("fan", "pump", "slider", "valve")
DCASE2020_MACHINES = ("fan", "pump", "slider", "valve", "ToyCar", "ToyConveyor")
MIMII_URL = "https://zenodo.org/records/3384388/files/{name}"
DCASE2020_URL = "https://zenodo.org/records/3678171/files/{name}"
#: MIMII 6 dB clips per machine type (normal + abnormal), as the MIMII paper lists them.
MIMII_6DB_CLIPS = {"fan": 4075 + 1475, "pump": 3749 + 456, "slider": 3204 + 890,
                   "valve": 3691 + 715}
#: MD5 of each DCASE 2020 task 2 development archive (Zenodo 3678171), as soundata
#: verifies them.
DCASE2020_MD5 = {"fan": "649bdfc06263ae7a838963f43b6641e6",
                 "pump": "90e7091ef722b7238a7f1009365779cd",
                 "slider": "da24a757719f0d94d5aa2d646bbfdc86",
                 "ToyCar": "4dec75ca8d9f666aa9e4c1894a740501",
                 "ToyConveyor": "03b6aa1bfd09a39d53af0ba39f71fa91",
                 "valve": "34d2672f55bb041589ef79c10dc89934"}
#: DCASE 2020 task 2's licence as Zenodo (and soundata) state it.
DCASE2020_LICENCE = "CC BY-NC-SA 4.0 (non-commercial)"
LABELS = {"normal": "normal", "abnormal": "anomaly", "anomaly": "anomaly"}
DCASE2020_NAME = re.compile(r"^(?P<condition>normal|anomaly)_id_(?P<id>\d+)_(?P<n>\d+)$")
DCASE2022_NAME = re.compile(r"^section_(?P<section>\d+)_(?P<domain>source|target)_"
                            r"(?P<split>train|test)_(?P<condition>normal|anomaly)_(?P<n>\d+)")


def machine_root(folder: str | os.PathLike, machine: str, name: str) -> Path:
    """``folder/<machine>`` when it exists, else ``folder`` itself.

    Raises
    ------
    DataError
        When the chosen folder does not exist.
    """
    folder = Path(folder)
    root = folder / machine if (folder / machine).is_dir() else folder
    if not root.is_dir():
        raise DataError(f"{folder}: no such folder; download the dataset "
                        f"(`earmark datasets download {name}`) or point --root at the "
                        f"unpacked folder (the one holding {machine}/)")
    return root


def mimii_split(files: dict[str, list[Path]]) -> dict[Path, str]:
    """The baseline's split of one machine id: ``{condition: files}`` -> file -> split."""
    normal, abnormal = files.get("normal", []), files.get("abnormal", [])
    held = min(len(abnormal), len(normal) // 2)
    splits = {file: "test" for file in abnormal + normal[:held]}
    splits.update({file: "train" for file in normal[held:]})
    return splits


def build_mimii(folder: str | os.PathLike, machine: str, snr: str = "6_dB") -> Manifest:
    """MIMII's clips of one machine type, split as the baseline does (see the module).

    Parameters
    ----------
    folder : path
        The unpacked archive: holds ``<machine>/id_XX/`` or ``id_XX/`` itself.
    machine : str
        ``fan``, ``pump``, ``slider`` or ``valve``.
    snr : str
        The noise level the archive was recorded at, kept in meta.

    Returns
    -------
    Manifest
        Absolute paths sorted by id, condition and name; split train/test.

    Raises
    ------
    DataError
        When no ``id_XX/{normal,abnormal}/`` audio is found.
    """
    name = f"mimii_{snr.replace('_', '')}_{machine}"
    root = machine_root(folder, machine, name)
    rows = []
    for ident in sorted(p for p in root.glob("id_*") if p.is_dir()):
        files = {condition: sorted(p for p in (ident / condition).glob("*")
                                   if p.is_file() and is_audio_file(p))
                 for condition in ("normal", "abnormal") if (ident / condition).is_dir()}
        splits = mimii_split(files)
        for condition, paths in files.items():
            for file in paths:
                meta = {"machine": machine, "id": ident.name, "condition": condition,
                        "snr": snr}
                group = f"{machine}_{ident.name}_{condition}_{file.stem}"
                rows.append(Row(os.path.abspath(file), LABELS[condition], group,
                                splits[file], meta=meta))
    if not rows:
        raise DataError(f"{root}: no id_XX/normal/ or id_XX/abnormal/ audio files; expected "
                        f"MIMII's layout {machine}/id_00/normal/00000000.wav; re-download "
                        f"(`earmark datasets download {name}`) or fix --root")
    return Manifest(rows)


def dcase_row(file: Path, machine: str, folder_split: str) -> Row | None:
    """One DCASE task 2 file's row (2020 or 2022+ names), or None for other names."""
    found = DCASE2020_NAME.match(file.stem)
    if found:
        meta = {"machine": machine, "id": f"id_{found['id']}", "section": "",
                "condition": found["condition"], "domain": ""}
        key = f"id_{found['id']}"
    else:
        found = DCASE2022_NAME.match(file.stem)
        if not found:
            return None
        meta = {"machine": machine, "id": "", "section": found["section"],
                "condition": found["condition"], "domain": found["domain"]}
        key = f"section_{found['section']}_{found['domain']}"
    group = f"{machine}_{folder_split}_{key}_{found['condition']}_{found['n']}"
    return Row(os.path.abspath(file), LABELS[found["condition"]], group,
               folder_split, meta=meta)


def build_dcase(folder: str | os.PathLike, machine: str,
                name: str = "dcase2020_task2") -> Manifest:
    """A DCASE task 2 machine's ``train/`` and ``test/`` clips: split from the folder.

    Parameters
    ----------
    folder : path
        The unpacked archive: holds ``<machine>/{train,test}/`` or those folders.
    machine : str
        e.g. ``fan`` or ``ToyCar``.
    name : str
        The recipe's name, for messages.

    Returns
    -------
    Manifest
        Label ``normal``/``anomaly`` from the name; group = the clip.

    Raises
    ------
    DataError
        When an audio file is named in neither DCASE pattern, or none is found.
    """
    root = machine_root(folder, machine, name)
    rows, odd = [], []
    for split in ("train", "test"):
        for file in sorted(p for p in (root / split).glob("*")
                           if p.is_file() and is_audio_file(p)):
            row = dcase_row(file, machine, split)
            rows.append(row) if row else odd.append(f"{split}/{file.name}")
    if odd:
        raise DataError(f"{root}: {len(odd)} file(s) named in neither DCASE pattern "
                        "({normal,anomaly}_id_XX_N or section_XX_{source,target}_"
                        f"{{train,test}}_{{normal,anomaly}}_N), e.g. {', '.join(odd[:5])}; "
                        "remove them or re-download the archive")
    if not rows:
        raise DataError(f"{root}: no audio in train/ or test/; expected {machine}/train/"
                        f"normal_id_00_00000000.wav; run `earmark datasets download {name}` "
                        "or fix --root")
    return Manifest(rows)


def mimii_recipe(machine: str) -> Recipe:
    """MIMII's 6 dB archive of one machine type (no checksum: checked by its content)."""
    archive = RemoteFile(f"6_dB_{machine}.zip", MIMII_URL.format(name=f"6_dB_{machine}.zip"))
    return Recipe(name=f"mimii_6dB_{machine}", title=f"MIMII {machine}, 6 dB SNR",
                  purpose=f"{machine} sounds for anomaly detection (normal/anomaly), "
                          "train on normal clips only",
                  licence="CC BY-SA 4.0", size_text="see Zenodo record 3384388",
                  folder=f"mimii_6dB_{machine}", files=(archive,),
                  build_manifest=lambda folder: build_mimii(folder, machine),
                  split="column", expected_recordings=MIMII_6DB_CLIPS[machine])


def dcase2020_recipe(machine: str) -> Recipe:
    """DCASE 2020 task 2's development archive of one machine type (its clip count is
    unknown here: ``expected_recordings`` stays None)."""
    file = f"dev_data_{machine}.zip"
    name = f"dcase2020_task2_{machine.lower()}"
    archive = RemoteFile(file, DCASE2020_URL.format(name=file), md5=DCASE2020_MD5[machine])
    return Recipe(name=name, title=f"DCASE 2020 task 2 development set, {machine}",
                  purpose=f"{machine} sounds for anomaly detection, official train/test",
                  licence=DCASE2020_LICENCE, size_text="see Zenodo record 3678171",
                  folder=name, files=(archive,),
                  build_manifest=lambda folder: build_dcase(folder, machine, name),
                  split="column")


RECIPES: tuple[Recipe, ...] = (tuple(mimii_recipe(m) for m in MIMII_MACHINES)
                               + tuple(dcase2020_recipe(m) for m in DCASE2020_MACHINES))
