"""Sound events, and the one place that reads and writes event files.

An :class:`Event` is a class label active from ``onset`` to ``offset``
seconds on one recording's clock, optionally with the ``source`` it came
from (a mixture's clip) and a ``confidence`` (a detector's score). Every
part of earmark uses this type: mixtures' placed clips, detections, stream
truth, reference annotations and the scores computed from them.

    >>> path = write_events("detections.csv", [Event(1.0, 2.5, "dog", confidence=0.9)])
    >>> read_events(path)
    [Event(onset=1.0, offset=2.5, label='dog', source='', confidence=0.9)]

Files
-----
The format is chosen by the extension:

``.csv`` / ``.tsv``
    A header row, then one event per row. The columns ``onset, offset,
    label`` may also be called ``start, end`` or DCASE's ``event_onset,
    event_offset, event_label``; optional ``source`` and ``confidence``
    columns are read too, any other column is ignored. A ``.csv`` whose
    header holds tabs and no comma is read as tab separated.
``.json``
    A list of objects with those keys, or an object whose ``"events"`` is
    such a list (a mixture's ``NAME.events.json``).
``.txt``
    An Audacity label track: ``start<TAB>end<TAB>label`` per line; its
    spectral-selection lines, starting with a backslash, are skipped. It
    holds no source or confidence.

Blank lines are skipped, a byte-order mark is ignored, labels are stripped
of surrounding spaces. Files are written atomically (:mod:`earmark.atomic`).

This module needs only numpy and the standard library: the deployed runtime
may use it.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from earmark import atomic
from earmark.errors import ConfigError, DataError

#: File formats by extension.
EVENT_FILE_FORMATS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".txt": "audacity"}

#: Accepted column (or JSON key) names of each required field, the first one preferred.
FIELD_NAMES = {"onset": ("onset", "start", "event_onset"),
               "offset": ("offset", "end", "event_offset"),
               "label": ("label", "event_label")}

#: Fields an event may carry besides onset, offset and label, in file order.
OPTIONAL_FIELDS = ("source", "confidence")


# --------------------------------------------------------------------------
# The event


@dataclass(frozen=True)
class Event:
    """One sound event: a class label active from ``onset`` to ``offset``.

    Parameters
    ----------
    onset, offset : float
        Seconds from the start of the recording; ``0 <= onset <= offset``,
        both finite. A zero-length event (``onset == offset``) is allowed.
    label : str
        The class name: not empty, on one line.
    source : str
        Where the sound came from (a mixture's clip); ``""`` for none.
    confidence : float or None
        A detector's score for the event (its mean probability); ``None``
        for reference events.

    Raises
    ------
    DataError
        A time or the confidence is not a finite number, the onset is
        negative or after the offset, or the label is empty or holds a line
        break; the message names the event and the field.
    """

    onset: float
    offset: float
    label: str
    source: str = ""
    confidence: float | None = None

    def __post_init__(self) -> None:
        name = f"event {self.label!r} ({self.onset!r} s to {self.offset!r} s)"
        _check_label(self.label, name)
        onset = _finite_number(self.onset, "onset", name)
        offset = _finite_number(self.offset, "offset", name)
        if onset < 0:
            raise DataError(f"{name}: onset is negative; times count from the recording's start")
        if offset < onset:
            raise DataError(f"{name}: offset is before onset; swap them or fix the annotation")
        if not isinstance(self.source, str):
            raise DataError(f"{name}: source must be a string, got {self.source!r}")
        object.__setattr__(self, "onset", onset)
        object.__setattr__(self, "offset", offset)
        if self.confidence is not None:
            object.__setattr__(self, "confidence",
                               _finite_number(self.confidence, "confidence", name, unit=""))

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.offset - self.onset


def _check_label(label: Any, name: str) -> None:
    if not isinstance(label, str) or not label.strip():
        raise DataError(f"{name}: the label must be a non-empty string")
    if "\n" in label or "\r" in label:
        raise DataError(f"{name}: the label holds a line break; a label is one line")


def _finite_number(value: Any, what: str, name: str, unit: str = " of seconds") -> float:
    if isinstance(value, (bool, np.bool_)) or value is None:
        raise DataError(f"{name}: {what} must be a number{unit}, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{name}: {what} must be a number{unit}, got {value!r}") from None
    if not math.isfinite(number):
        raise DataError(f"{name}: {what} must be finite, got {value!r}")
    return number


def as_events(items: Iterable[Any], name: str = "events") -> list[Event]:
    """Events from what callers hold: events, mappings, tuples or event-like objects.

    Parameters
    ----------
    items : iterable
        Each one an :class:`Event` (kept as it is); a mapping with the keys
        of a JSON event file (``onset``/``start``/``event_onset``, ...,
        optional ``source`` and ``confidence``); an object with ``onset``,
        ``offset`` and ``label`` attributes (``source`` and ``confidence``
        taken when present); or a tuple ``(onset, offset, label[, source[,
        confidence]])``. Times in seconds.
    name : str
        What the items are, for error messages.

    Raises
    ------
    DataError
        An item is none of these, or not a valid event; names the item.
    """
    events = []
    for index, item in enumerate(items):
        try:
            events.append(_as_event(item))
        except DataError as error:
            raise DataError(f"{name} item {index}: {error}") from None
    return events


def _as_event(item: Any) -> Event:
    if isinstance(item, Event):
        return item
    if isinstance(item, Mapping):
        return event_from_mapping(item)
    if all(hasattr(item, key) for key in FIELD_NAMES):
        return Event(item.onset, item.offset, item.label, getattr(item, "source", ""),
                     getattr(item, "confidence", None))
    if isinstance(item, (tuple, list)) and 3 <= len(item) <= 5:
        return Event(*item)
    raise DataError(f"expected an Event or (onset, offset, label), got {item!r}")


def event_from_mapping(mapping: Mapping[str, Any]) -> Event:
    """An event from a mapping with the keys of a JSON event file (see the module docstring).

    Raises
    ------
    DataError
        A required key is missing, or the values are not a valid event.
    """
    values = {}
    for field, names in FIELD_NAMES.items():
        key = next((key for key in names if key in mapping), None)
        if key is None:
            raise DataError(f"needs keys onset, offset and label (or start, end, label); "
                            f"has {sorted(mapping)}")
        values[field] = mapping[key]
    label = values["label"]
    source = mapping.get("source") or ""
    return Event(values["onset"], values["offset"], label.strip() if isinstance(label, str)
                 else label, source, mapping.get("confidence"))


# --------------------------------------------------------------------------
# Reading


def read_events(path: str | os.PathLike) -> list[Event]:
    """Read events from a ``.csv``, ``.tsv``, ``.json`` or Audacity ``.txt`` file.

    Parameters
    ----------
    path : str or os.PathLike
        The file; its extension picks the format (see the module docstring).

    Returns
    -------
    list of Event
        In file order; an empty file gives an empty list.

    Raises
    ------
    ConfigError
        The extension is not one of the four.
    DataError
        The file is missing or unreadable, or a row is malformed; the message
        names the file, the line (for JSON, the entry) and the field.
    """
    path = Path(path)
    kind = _file_format(path)
    try:
        text = path.read_text(encoding="utf-8-sig")   # -sig: spreadsheets write a BOM
    except FileNotFoundError:
        raise DataError(f"{path}: no such event file") from None
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 text ({error})") from None
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error})") from None
    parse = {"csv": _parse_csv, "json": _parse_json, "audacity": _parse_audacity}[kind]
    return parse(text, path)


def _file_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in EVENT_FILE_FORMATS:
        raise ConfigError(f"{path}: event files are .csv, .tsv, .json or .txt (Audacity "
                          f"label track), not {suffix or 'a file without extension'}")
    return EVENT_FILE_FORMATS[suffix]


def _parse_csv(text: str, path: Path) -> list[Event]:
    header_line = next((line for line in text.splitlines() if line.strip()), None)
    if header_line is None:
        return []
    delimiter = "\t" if "\t" in header_line and "," not in header_line else ","
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    columns: dict[str, int] | None = None
    events = []
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        where = f"{path}: line {reader.line_num}"
        if columns is None:
            columns = _csv_columns([cell.strip().lower() for cell in row], where)
            continue
        if len(row) <= max(columns.values()):
            raise DataError(f"{where}: expected {len(columns)} columns "
                            f"({', '.join(columns)}), got {len(row)}: {delimiter.join(row)!r}")
        cells = {field: row[column].strip() for field, column in columns.items()}
        events.append(_parsed_event(cells, where))
    return events


def _csv_columns(header: list[str], where: str) -> dict[str, int]:
    """Column index of each field the header holds; the three required ones must be there."""
    columns = {}
    for field, names in FIELD_NAMES.items():
        index = next((header.index(name) for name in names if name in header), None)
        if index is None:
            raise DataError(f"{where}: the header {header} needs columns onset, offset and "
                            "label (or start, end, label)")
        columns[field] = index
    columns.update({field: header.index(field) for field in OPTIONAL_FIELDS if field in header})
    return columns


def _parsed_event(cells: dict[str, str], where: str) -> Event:
    """An event from the text cells of one row or line; errors name ``where`` and the field."""
    numbers: dict[str, float | None] = {}
    for field in ("onset", "offset", "confidence"):
        cell = cells.get(field, "")
        if field == "confidence" and not cell:
            numbers[field] = None
            continue
        try:
            numbers[field] = float(cell)
        except ValueError:
            unit = "" if field == "confidence" else " of seconds"
            raise DataError(f"{where}: {field} {cell!r} is not a number{unit}") from None
    try:
        return Event(numbers["onset"], numbers["offset"], cells["label"],
                     cells.get("source", ""), numbers["confidence"])
    except DataError as error:
        raise DataError(f"{where}: {error}") from None


def _parse_json(text: str, path: Path) -> list[Event]:
    if not text.strip():
        return []
    try:
        items = json.loads(text)
    except json.JSONDecodeError as error:
        raise DataError(f"{path}: line {error.lineno}: not valid JSON ({error.msg})") from None
    if isinstance(items, dict) and isinstance(items.get("events"), list):
        items = items["events"]                    # a mixture's description
    if not isinstance(items, list):
        raise DataError(f"{path}: expected a JSON list of events (objects with onset, "
                        f"offset and label), got {type(items).__name__}")
    events = []
    for index, item in enumerate(items):
        where = f"{path}: entry {index} (counting from 0)"
        if not isinstance(item, dict):
            raise DataError(f"{where}: expected an object with onset, offset and label, "
                            f"got {item!r}")
        try:
            events.append(event_from_mapping(item))
        except DataError as error:
            raise DataError(f"{where}: {error}") from None
    return events


def _parse_audacity(text: str, path: Path) -> list[Event]:
    events = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("\\"):
            continue     # blank, or the spectral selection of the label above
        where = f"{path}: line {number}"
        fields = line.split("\t", 2)
        if len(fields) < 3:
            fields = line.split(None, 2)     # space-separated label files
        if len(fields) < 3:
            raise DataError(f"{where}: expected 'start<TAB>end<TAB>label', got {line!r}")
        cells = dict(zip(("onset", "offset", "label"), (cell.strip() for cell in fields)))
        events.append(_parsed_event(cells, where))
    return events


# --------------------------------------------------------------------------
# Writing


def write_events(path: str | os.PathLike, events: Iterable[Any], *,
                 decimals: int | None = None,
                 extra_fields: Sequence[str] | None = None) -> Path:
    """Write events atomically, the format chosen by the extension; return the path.

    Parameters
    ----------
    path : str or os.PathLike
        ``.csv`` / ``.tsv``: a header ``onset,offset,label`` (plus the extra
        fields), one row per event; ``.json``: a list of objects with those
        keys; ``.txt``: an Audacity label track (onset, offset and label only).
    events : iterable
        Anything :func:`as_events` takes.
    decimals : int, optional
        Digits after the point for times and confidences, in seconds:
        ``f"{t:.{decimals}f}"`` in text, ``round(t, decimals)`` in JSON. The
        default writes each number exactly: the shortest plain decimal that
        reads back as the same float (never an exponent, which Audacity
        cannot read).
    extra_fields : sequence of str, optional
        Which of ``source`` and ``confidence`` to write after the label
        (CSV and JSON). Default: each one that any event carries (a
        non-empty source, a confidence); an event without it gets an empty
        cell (JSON: ``""`` or ``null``).

    Raises
    ------
    ConfigError
        The extension is not one of the four, or an extra field is unknown.
    DataError
        An event is invalid, or (Audacity) its label holds a tab, which a
        label track cannot store.
    """
    path = Path(path)
    kind = _file_format(path)
    events = as_events(events)
    fields = _extra_fields(events, extra_fields)
    if kind == "json":
        return atomic.write_json(path, [event_record(event, decimals, fields)
                                        for event in events])
    if kind == "csv":
        return atomic.write_text(path, _csv_text(events, decimals, fields,
                                                 "\t" if path.suffix.lower() == ".tsv" else ","))
    return atomic.write_text(path, _audacity_text(events, decimals, path))


def _extra_fields(events: list[Event], wanted: Sequence[str] | None) -> tuple[str, ...]:
    if wanted is None:
        return tuple(field for field in OPTIONAL_FIELDS
                     if any(getattr(event, field) not in ("", None) for event in events))
    unknown = sorted(set(wanted) - set(OPTIONAL_FIELDS))
    if unknown:
        raise ConfigError(f"extra_fields {unknown} unknown: an event file may add "
                          f"{', '.join(OPTIONAL_FIELDS)}")
    return tuple(field for field in OPTIONAL_FIELDS if field in wanted)


def event_record(event: Event, decimals: int | None = None,
                 extra_fields: Sequence[str] = ()) -> dict[str, Any]:
    """The JSON object of one event: ``onset``, ``offset``, ``label`` and the extra fields.

    Times (and a confidence) are rounded to ``decimals`` when given; a
    missing confidence is ``None``.
    """
    record: dict[str, Any] = {"onset": _rounded(event.onset, decimals),
                              "offset": _rounded(event.offset, decimals),
                              "label": event.label}
    if "source" in extra_fields:
        record["source"] = event.source
    if "confidence" in extra_fields:
        record["confidence"] = (None if event.confidence is None
                                else _rounded(event.confidence, decimals))
    return record


def _rounded(number: float, decimals: int | None) -> float:
    return number if decimals is None else round(number, decimals)


def _number_text(number: float | None, decimals: int | None) -> str:
    """``number`` as plain decimal text (see :func:`write_events`); ``""`` for None."""
    if number is None:
        return ""
    if decimals is None:
        return np.format_float_positional(number, trim="0")
    return f"{number:.{decimals}f}"


def _csv_text(events: list[Event], decimals: int | None, fields: tuple[str, ...],
              delimiter: str) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
    writer.writerow(["onset", "offset", "label", *fields])
    for event in events:
        extra = [event.source if field == "source" else _number_text(event.confidence, decimals)
                 for field in fields]
        writer.writerow([_number_text(event.onset, decimals),
                         _number_text(event.offset, decimals), event.label, *extra])
    return buffer.getvalue()


def _audacity_text(events: list[Event], decimals: int | None, path: Path) -> str:
    lines = []
    for index, event in enumerate(events):
        if "\t" in event.label:
            raise DataError(f"{path}: event {index} label {event.label!r} holds a tab, which "
                            "an Audacity label track cannot store")
        lines.append(f"{_number_text(event.onset, decimals)}\t"
                     f"{_number_text(event.offset, decimals)}\t{event.label}\n")
    return "".join(lines)
