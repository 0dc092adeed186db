"""Which recordings train, set the threshold and test an anomaly detector.

Labels name a condition: ``normal``, or ``anomaly`` (also ``abnormal``,
``anomalous``, as MIMII's and DCASE's folders and file names say). Training
sees normal recordings only: a manifest that puts an anomaly in its training
split is refused rather than quietly filtered, since it says the data is not
what its author thinks. Validation normals (the split's own, or a share of the
training groups held out) set the decision threshold; anomalies without a
split go to test.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from earmark.config import AnomalyConfig, DataConfig
from earmark.data.manifest import Manifest, Row
from earmark.data.splits import (check_split_column, split_by_group,
                                 validation_from_training_groups)
from earmark.errors import DataError

NORMAL = "normal"
ANOMALY = "anomaly"
#: Label spellings of each condition (lower case).
CONDITIONS = {"normal": NORMAL, "ok": NORMAL, "anomaly": ANOMALY, "abnormal": ANOMALY,
              "anomalous": ANOMALY}
MACHINE_ID = re.compile(r"^(id|section)_\d+$")


def condition_of(label: str) -> str:
    """``normal`` or ``anomaly`` for a label, or DataError naming the accepted spellings."""
    try:
        return CONDITIONS[label.strip().lower()]
    except KeyError:
        raise DataError(f"label {label!r} names no condition; anomaly detection reads "
                        f"labels {sorted(CONDITIONS)} (a folder per condition, or a manifest "
                        "label column)") from None


def machine_of(row: Row) -> str:
    """The machine (type, id or section) a recording comes from: ``machine id_00``
    from the manifest's metadata, or an ``id_XX``/``section_XX`` folder in the path."""
    meta = row.meta or {}
    ident = meta.get("id") or meta.get("section") or ""
    if ident and not ident.startswith(("id_", "section_")):
        ident = ("section_" if meta.get("section") else "id_") + ident
    if not ident:
        ident = next((part for part in reversed(Path(row.path).parts[:-1])
                      if MACHINE_ID.match(part)), "")
    return " ".join(part for part in (meta.get("machine", ""), ident) if part) or "all"


def anomaly_splits(manifest: Manifest, data: DataConfig, anomaly: AnomalyConfig) -> Manifest:
    """Rows labelled ``normal``/``anomaly`` with splits train, validation and test.

    With ``data.split = "column"`` the manifest's splits are kept (an anomaly in
    train is refused); otherwise normal groups are dealt by ``data.ratios`` and
    every anomaly is tested. Without validation normals, ``anomaly.validation_share``
    of the training groups is held out.

    Raises
    ------
    DataError
        No normal recording to train on, an anomaly in the training split, or a
        label that names no condition.
    """
    rows = [replace(row, label=condition_of(row.label)) for row in manifest]
    if data.split == "column":
        split = check_split_column(Manifest(rows))
        _refuse_training_anomalies(split)
    else:
        split = _deal_normals(rows, data)
    if not any(r.split == "validation" and r.label == NORMAL for r in split):
        # training holds normals only: one class, of whose groups one always stays
        split = validation_from_training_groups(split, anomaly.validation_share,
                                                data.split_seed)
    _check_training_normals(split)
    return split


def _deal_normals(rows: list[Row], data: DataConfig) -> Manifest:
    normals = split_by_group(Manifest(r for r in rows if r.label == NORMAL), data.ratios,
                             data.split_seed) if any(r.label == NORMAL for r in rows) else []
    anomalies = [replace(r, split="test") for r in rows if r.label == ANOMALY]
    return Manifest([*normals, *anomalies])


def _refuse_training_anomalies(manifest: Manifest) -> None:
    found = [r.path for r in manifest if r.split == "train" and r.label == ANOMALY]
    if found:
        raise DataError(f"{len(found)} anomalous recording(s) are in the training split, e.g. "
                        f"{found[:3]}; an anomaly detector learns from normal sounds only: "
                        "move them to 'test' in the manifest's split column")


def _check_training_normals(manifest: Manifest) -> None:
    train = [r for r in manifest if r.split == "train" and r.label == NORMAL]
    validation = [r for r in manifest if r.split == "validation" and r.label == NORMAL]
    if not train:
        raise DataError("no normal recording in the training split: an anomaly detector "
                        "learns the normal sound from them; label some recordings 'normal' "
                        "(a folder 'normal/', or the manifest's label column)")
    if not validation:
        raise DataError(f"only {len(train)} normal group(s) to train on and none left to set "
                        "the threshold; give at least two normal recordings (or a "
                        "'validation' split of normal recordings)")
