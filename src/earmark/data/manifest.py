"""A dataset is a manifest: rows of ``path, label, group, split[, start, end, fold]``.

``group`` is what must never straddle a split: the speaker, or the recording
session. It comes from the file name through a pattern; presets recognise
the names of the public datasets earmark knows.
"""

from __future__ import annotations

import csv
import difflib
import io
import math
import os
import re
import warnings
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Iterator, Mapping

from earmark.atomic import write_text
from earmark.audio import is_audio_file
from earmark.errors import ConfigError, DataError

SPLITS = ("train", "validation", "test")

#: Name patterns whose named group ``group`` is the speaker.
GROUP_PRESETS = {
    # <hash>_nohash_<n>, with an optional <word>_ prefix for _unknown_ words
    "speech_commands": r"^(?:.*_)?(?P<group>[0-9a-f]{8})_nohash_\d+$",
    # <speaker>-<chapter>-<utterance>
    "librispeech": r"^(?P<group>\d+)-\d+-\d+$",
    # <digit>_<speaker>_<take>
    "fsdd": r"^\d+_(?P<group>[A-Za-z]+)_\d+$",
}

#: Name patterns whose named group ``label`` is the class.
LABEL_PRESETS = {
    "fsdd": r"^(?P<label>\d+)_[A-Za-z]+_\d+$",
    # Speech Commands words gathered in one folder (_unknown_): <word>_<hash>_nohash_<n>
    "speech_commands": r"^(?P<label>[a-z]+)_[0-9a-f]{8}_nohash_\d+$",
}

COLUMNS = ("path", "label", "group", "split", "start", "end", "fold")


@dataclass(frozen=True)
class Row:
    """One recording (or a segment of one, from ``start`` to ``end`` seconds).

    ``meta`` holds the dataset's own columns (``category``, ``salience``,
    ``gender``, ...) as strings; it is written after the standard columns and
    takes no part in comparing or hashing rows.
    """

    path: str
    label: str
    group: str
    split: str = ""
    start: float | None = None
    end: float | None = None
    fold: int | None = None
    meta: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)


class Manifest:
    """An ordered list of :class:`Row` with the operations a dataset needs."""

    def __init__(self, rows: Iterable[Row]):
        self.rows = list(rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[Row]:
        return iter(self.rows)

    def labels(self) -> list[str]:
        """Distinct labels, sorted."""
        return sorted({row.label for row in self.rows})

    def groups(self) -> list[str]:
        """Distinct groups, sorted."""
        return sorted({row.group for row in self.rows})

    def select(self, split: str) -> "Manifest":
        """The rows of one split."""
        return Manifest(row for row in self.rows if row.split == split)

    def with_splits(self, splits: list[str]) -> "Manifest":
        """A copy whose rows get the given split names, in order."""
        return Manifest(replace(row, split=split) for row, split in zip(self.rows, splits))

    def label_counts(self) -> Counter:
        return Counter(row.label for row in self.rows)

    def meta_columns(self) -> list[str]:
        """The keys of every row's ``meta``, in first-seen order."""
        return list(dict.fromkeys(key for row in self.rows for key in row.meta))

    def to_csv(self, path: str | os.PathLike, relative: bool = False) -> None:
        """Write atomically as CSV with a header.

        The standard columns come first, then :meth:`meta_columns` (empty
        where a row lacks one). With ``relative``, files inside the CSV's
        folder are written relative to it, so the folder can be moved as a
        whole.

        Raises
        ------
        DataError
            When a meta key has the name of a standard column.
        """
        extra = self.meta_columns()
        clash = [key for key in extra if key in COLUMNS]
        if clash:
            raise DataError(f"{path}: meta column(s) {clash} have the name of a standard "
                            f"manifest column ({', '.join(COLUMNS)}); rename them in the "
                            "rows' meta (e.g. 'slice_start')")
        folder = Path(path).resolve().parent
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(COLUMNS + tuple(extra))
        for row in self.rows:
            file = row.path
            if relative and Path(file).resolve().is_relative_to(folder):
                file = str(Path(file).resolve().relative_to(folder))
            writer.writerow([file, row.label, row.group, row.split,
                             _blank(row.start), _blank(row.end), _blank(row.fold)]
                            + [str(row.meta.get(key, "")) for key in extra])
        write_text(path, buffer.getvalue())


def from_folder(root: str | os.PathLike, group_pattern: str = "auto",
                label_pattern: str = "") -> Manifest:
    """A folder per class: ``root/<label>/**/<file>``, or labels from file names.

    Paths in the manifest are absolute, so it can be read from anywhere.

    Files directly under ``root`` and folders holding no audio are ignored;
    a folder name that starts with ``_`` (``_silence_``, ``_unknown_``) is a
    label like any other, except ``_background_noise_``, which is skipped.
    With ``label_pattern`` (a preset such as ``fsdd``, or a regex with a
    named group ``(?P<label>...)``) every audio file below ``root`` is taken
    and labelled from its name instead.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder; point data.root at a folder "
                        "with one sub-folder of recordings per class.")
    match_group = group_matcher(group_pattern)
    if label_pattern:
        match_label = label_matcher(label_pattern)
        rows = [Row(os.path.abspath(file), match_label(file), match_group(file))
                for file in sorted(root.rglob("*")) if file.is_file() and is_audio_file(file)
                and "_background_noise_" not in file.parts]
    else:
        rows = []
        for class_dir in sorted(p for p in root.iterdir() if p.is_dir()):
            if class_dir.name == "_background_noise_":
                continue
            rows.extend(Row(os.path.abspath(file), class_dir.name, match_group(file))
                        for file in sorted(class_dir.rglob("*"))
                        if file.is_file() and is_audio_file(file))
    if not rows:
        raise DataError(f"{root}: found no audio files in its sub-folders; expected "
                        f"root/<label>/<file>.wav (or .flac, .ogg, .mp3)")
    return Manifest(rows)


def keep_labels(manifest: Manifest, wanted: list[str]) -> Manifest:
    """Only the rows of some labels, optionally renamed: ``["zero=0", "one=1", "yes"]``.

    Raises :class:`DataError` naming any wanted label the manifest does not have.
    """
    pairs = [item.split("=", 1) if "=" in item else (item, item) for item in wanted]
    empty = [item for item, pair in zip(wanted, pairs) if not all(side.strip() for side in pair)]
    if empty:
        raise DataError(f"labels {empty}: give LABEL or LABEL=NEW_NAME, neither part empty; "
                        "check --labels")
    names = dict(pairs)
    missing = sorted(set(names) - set(manifest.labels()))
    if missing:
        raise DataError(f"labels {missing} are not in the manifest (it has "
                        f"{sorted(manifest.labels())}); check --labels")
    return Manifest(replace(row, label=names[row.label]) for row in manifest
                    if row.label in names)


def label_matcher(pattern: str):
    """A function ``file path -> label`` for a preset name or a regex with ``(?P<label>...)``."""
    regex = LABEL_PRESETS.get(pattern, pattern)
    try:
        compiled = re.compile(regex)
    except re.error as error:
        raise DataError(f"label_pattern {pattern!r} is not a valid regex ({error})") from error
    if "label" not in compiled.groupindex:
        raise DataError(f"label_pattern {pattern!r} has no named group; write it as "
                        "e.g. r'^(?P<label>\\d+)_' or use a preset: "
                        f"{', '.join(LABEL_PRESETS)}")

    def match(file: str | os.PathLike) -> str:
        found = compiled.search(Path(file).stem)
        if not found:
            raise DataError(f"{file}: its name does not match label_pattern {pattern!r}")
        return found.group("label")

    return match


def from_csv(path: str | os.PathLike, group_pattern: str = "auto") -> Manifest:
    """Read a manifest CSV; ``path`` and ``label`` are required columns.

    Relative audio paths are read from the CSV's folder. A missing or empty
    ``group`` is derived from the file name with ``group_pattern``. Any other
    column is the dataset's own and goes into each row's ``meta`` (empty
    cells are left out), except one so close to a standard column's name
    (``lable``, ``folds``, ``Split``) that it is taken for a typo.

    Raises
    ------
    DataError
        When the file is missing or empty, ``path`` or ``label`` is missing,
        a column looks like a misspelt standard one, or a cell is invalid.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such manifest file")
    match_group = group_matcher(group_pattern)
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = _read_rows(csv.DictReader(handle), path, match_group)
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start}); "
                        "save the manifest as UTF-8") from None
    if not rows:
        raise DataError(f"{path}: the manifest has no rows")
    _check_each_once(rows, path)
    return Manifest(rows)


def _read_rows(reader: csv.DictReader, path: Path, match_group) -> list[Row]:
    header = reader.fieldnames or []
    missing = [c for c in ("path", "label") if c not in header]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; a manifest needs "
                        f"at least 'path' and 'label' (optional: group, split, "
                        f"start, end, fold). Found: {header}")
    check_meta_columns(path, header)
    # reader.line_num, not a count of records: blank lines are skipped
    # and quoted fields may span lines, and errors must name the real line.
    return [_parse_row(record, path, reader.line_num, match_group) for record in reader]


def _check_each_once(rows: list[Row], path: Path) -> None:
    """Each recording (or stretch of one) is listed once: a second row could put the same
    sound in training and in test, or give it two labels."""
    seen: dict[tuple, Row] = {}
    for row in rows:
        key = (row.path, row.start, row.end)
        if key in seen:
            first = seen[key]
            raise DataError(f"{path}: {row.path} is listed twice (labels {first.label!r} and "
                            f"{row.label!r}, groups {first.group!r} and {row.group!r}); list "
                            "each recording once, or give its stretches start and end")
        seen[key] = row


def group_matcher(pattern: str):
    """A function ``file path -> group`` for a preset name, ``auto`` or a regex.

    ``auto`` tries each preset in turn. A name no pattern matches becomes its
    own group (its stem), which is safe: it can only make splits stricter.
    """
    if pattern == "auto":
        compiled = [re.compile(p) for p in GROUP_PRESETS.values()]
    elif pattern in GROUP_PRESETS:
        compiled = [re.compile(GROUP_PRESETS[pattern])]
    else:
        try:
            compiled = [re.compile(pattern)]
        except re.error as error:
            raise DataError(f"group_pattern {pattern!r} is not a valid regex ({error}); "
                            f"use a preset ({', '.join(GROUP_PRESETS)}, auto) or a regex "
                            "with a named group (?P<group>...)") from error
        if "group" not in compiled[0].groupindex:
            raise DataError(f"group_pattern {pattern!r} has no named group; write it as "
                            "e.g. r'^(?P<group>[a-z]+)_\\d+$'")

    def match(file: str | os.PathLike) -> str:
        stem = Path(file).stem
        for regex in compiled:
            found = regex.search(stem)
            if found:
                return found.group("group")
        return stem

    return match


def clip_matcher(pattern: str):
    """A function ``file path -> clip`` for ``data.clip_pattern``: files whose names give the
    same clip (the regex's named group ``clip``) are judged together, such as the 1 s pieces
    of one 5 s recording. Empty: every file is its own clip (its path)."""
    if not pattern:
        return str
    try:
        compiled = re.compile(pattern)
    except re.error as error:
        raise ConfigError(f"data.clip_pattern {pattern!r} is not a valid regex ({error})") from None
    if "clip" not in compiled.groupindex:
        raise ConfigError(f"data.clip_pattern {pattern!r} has no named group; write it as e.g. "
                          "r'^(?P<clip>\\d+-\\d+-[A-Z])-\\d+_\\d+$'")

    def match(file: str | os.PathLike) -> str:
        found = compiled.search(Path(file).stem)
        return found.group("clip") if found else str(file)

    return match


def check_classes(manifest: Manifest, labels: list[str]) -> list[str]:
    """Warn loudly for each class missing from a (non-empty) split; return the messages.

    A class missing from validation or test goes unscored there (the macro
    averages skip classes with no examples); one missing from train cannot be
    learnt, and ``earmark train`` refuses such a split
    (:func:`earmark.data.splits.check_trainable`).
    """
    messages, advice = [], []
    for split in SPLITS:
        present = {row.label for row in manifest.rows if row.split == split}
        if not present:
            continue
        for label in labels:
            if label not in present:
                messages.append(f"class '{label}' has no recordings in the {split} split")
                advice.append("the model cannot learn it and training refuses this split"
                              if split == "train" else
                              f"it goes unscored on {split}")
    for message, consequence in zip(messages, advice):
        warnings.warn(f"!! {message}: {consequence}; add recordings of it (from more "
                      "speakers), change the split, or list only the other classes in "
                      "data.classes", stacklevel=2)
    return messages


def check_meta_columns(path: str | os.PathLike, header: list[str]) -> list[str]:
    """The non-standard columns of a manifest header, refusing likely typos.

    Parameters
    ----------
    path : path
        The manifest, for the message.
    header : list of str
        Its column names.

    Returns
    -------
    list of str
        The columns that go into ``Row.meta``, in order.

    Raises
    ------
    DataError
        When a column is a near-miss of a standard one (``lable``, ``folds``).
    """
    extra = [c for c in header if c not in COLUMNS]
    typos = {c: difflib.get_close_matches(c.lower(), COLUMNS, n=1, cutoff=0.8)
             for c in extra}
    typos = {c: near[0] for c, near in typos.items() if near}
    if typos:
        guesses = ", ".join(f"{c!r} (did you mean {near!r}?)" for c, near in typos.items())
        raise DataError(f"{path}: unknown column(s) {guesses}; standard columns are "
                        f"{list(COLUMNS)}, and other columns are kept as the dataset's "
                        "own metadata only when their names are not this close to them")
    return extra


def _parse_row(record: dict, source: Path, line: int, match_group) -> Row:
    where = f"{source}:{line}"
    file = (record.get("path") or "").strip()
    label = (record.get("label") or "").strip()
    if not file or not label:
        raise DataError(f"{where}: empty path or label")
    if not os.path.isabs(file):
        file = os.path.abspath(source.parent / file)
    split = (record.get("split") or "").strip()
    if split and split not in SPLITS:
        raise DataError(f"{where}: split {split!r} is not one of {SPLITS}")
    return Row(
        path=file,
        label=label,
        group=(record.get("group") or "").strip() or match_group(file),
        split=split,
        start=_number(record.get("start"), float, where, "start"),
        end=_number(record.get("end"), float, where, "end"),
        fold=_number(record.get("fold"), int, where, "fold"),
        meta={key: value for key, value in record.items()
              if key is not None and key not in COLUMNS and value},
    )


def _number(text, kind, where: str, column: str):
    if text is None or not text.strip():
        return None
    try:
        value = kind(text)
    except ValueError:
        raise DataError(f"{where}: column '{column}' = {text!r} is not a {kind.__name__}") from None
    if not 0 <= value < math.inf:
        raise DataError(f"{where}: column '{column}' = {text!r} must be a finite number >= 0")
    return value


def _blank(value) -> str:
    return "" if value is None else str(value)
