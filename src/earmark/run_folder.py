"""The run folder: what training writes, and where; the one place that knows its file names.

A run folder holds everything needed to reproduce, continue, evaluate or
export a run, without the recordings it was trained on::

    config.toml          the resolved config (absolute paths)
    manifest.csv         every recording with its split
    labels.json          class order
    checkpoint.pt        last epoch (weights, optimizer, schedule, history) for --resume
    model.pt             best weights on validation (state dict only)
    export_windows.npz   real validation and training windows for export's parity
                         check and int8 calibration (float32 arrays, no pickle)
    summary.json         best epoch, parameters, validation and test figures
    teacher/             with train.teacher: the teacher's own run folder, trained first
    metrics.csv          one row per epoch
    tensorboard/         the same curves for TensorBoard
    reports/             validation report + confusion PNG every k epochs
    training_curves.png
    eval_<split>.json/.txt/_confusion.png    reports of the best model
    .lock                who is training into the folder now (empty when nobody is)

A training holds :meth:`RunFolder.lock` (an exclusive ``flock`` on ``.lock``)
for its whole run, so a second training into the same folder is refused at
once; the operating system releases the lock when the process ends, even
after a crash or a kill. Readers (evaluate, export) take no lock.

Only numpy and the standard library are imported here.
"""

from __future__ import annotations

import datetime
import errno
import io
import json
import logging
import os
import socket
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from earmark.atomic import write_bytes
from earmark.errors import ConfigError, DataError

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows
    fcntl = None

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportWindows:
    """Real analysis windows kept by training for export (waveforms at the model's rate)."""

    validation: np.ndarray           #: (windows, samples) float32
    validation_targets: np.ndarray   #: (windows,) class ids
    calibration: np.ndarray          #: (windows, samples) float32, from the train split


#: What a run writes before its labels: a folder holding only these is a run that stopped
#: early, trained into again.
STARTED_RUN = frozenset({"config.toml", "manifest.csv", "teacher", "tensorboard", "reports"})


@dataclass(frozen=True)
class RunFolder:
    """The files of one training run (``earmark train --out PATH``)."""

    path: Path

    def __init__(self, path: str | os.PathLike):
        object.__setattr__(self, "path", Path(path))

    @property
    def config(self) -> Path:
        return self.path / "config.toml"

    @property
    def manifest(self) -> Path:
        return self.path / "manifest.csv"

    @property
    def labels(self) -> Path:
        return self.path / "labels.json"

    @property
    def checkpoint(self) -> Path:
        return self.path / "checkpoint.pt"

    @property
    def model(self) -> Path:
        return self.path / "model.pt"

    @property
    def scorer(self) -> Path:
        """An anomaly run's scorer settings (``earmark anomaly train``), JSON."""
        return self.path / "scorer.json"

    @property
    def export_windows(self) -> Path:
        return self.path / "export_windows.npz"

    @property
    def summary(self) -> Path:
        return self.path / "summary.json"

    @property
    def teacher(self) -> RunFolder:
        """The teacher's run folder, for a run trained with ``train.teacher``."""
        return RunFolder(self.path / "teacher")

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.csv"

    @property
    def tensorboard(self) -> Path:
        return self.path / "tensorboard"

    @property
    def training_curves(self) -> Path:
        return self.path / "training_curves.png"

    @property
    def lock_file(self) -> Path:
        return self.path / ".lock"

    def refuse_other_contents(self, kind: str) -> None:
        """Refuse to train a ``kind`` run (``"classifier"`` or ``"anomaly"``) into a folder
        that holds something else: a run of the other kind, a finished anomaly run, or
        files that are no run's (a project folder whose own config.toml and manifest.csv
        training would replace)."""
        if not self.path.is_dir():
            return
        classifier = self.checkpoint.is_file() or self.labels.is_file()
        anomaly = self.scorer.is_file()
        if anomaly or (classifier and kind == "anomaly"):
            held = "an anomaly run" if anomaly else "a classifier training run"
            raise ConfigError(f"{self.path} already holds {held}; train into another --out "
                              "folder")
        if classifier:          # continued or refused by train's own --resume rules
            return
        foreign = sorted(entry.name for entry in self.path.iterdir()
                         if not entry.name.startswith(".") and entry.name not in STARTED_RUN)
        if foreign:
            raise ConfigError(f"{self.path} holds files that are no earmark run's "
                              f"({', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''}): "
                              "training writes config.toml, manifest.csv and more there; "
                              "choose a new or empty --out folder")

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the folder exclusively while a training writes it.

        Creates the folder if needed, takes an exclusive, non-blocking
        ``flock`` on ``.lock`` and writes who holds it there (process, host,
        start time, command). The lock is released when the block ends and by
        the operating system when the process dies; ``.lock`` itself stays,
        emptied, so the lock always lives on the same file.

        Raises
        ------
        ConfigError
            When another process (or another training in this one) holds the
            folder, naming it where it recorded itself; or when the path is a file.
        """
        if self.path.exists() and not self.path.is_dir():
            raise ConfigError(f"{self.path} is a file, not a run folder; choose another "
                              "--out folder")
        self.path.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            locked = _acquire(descriptor, self.lock_file)
            if locked:
                _write_holder(descriptor)
            try:
                yield
            finally:
                if locked:
                    _clear_holder(descriptor)
        finally:
            os.close(descriptor)  # closing the file releases the flock

    def report(self, split: str) -> Path:
        """The stem of a split's report of the best model (``.json``, ``.txt``, ``_confusion.png``)."""
        return self.path / f"eval_{split}"

    def robustness_report(self, split: str, bundle: bool = False) -> Path:
        """The stem of the robustness suite's report on a split (``.json``, ``.txt``,
        ``.png``): the run's own model, or (``bundle``) an exported bundle of it."""
        return self.path / f"robustness_{split}{'_bundle' if bundle else ''}"

    def epoch_report(self, epoch: int) -> Path:
        """The stem of the validation report written during training at ``epoch``."""
        return self.path / "reports" / f"validation_epoch_{epoch:03d}"

    def require_trained(self) -> None:
        """Raise a clear error unless training has written the best model here."""
        if not self.path.is_dir():
            raise DataError(f"{self.path}: no such run folder; train one with "
                            "`earmark train CONFIG --out FOLDER`")
        if self.scorer.is_file():
            raise DataError(f"{self.path} is an anomaly run, not a classifier's: use `earmark "
                            "anomaly evaluate` and `earmark anomaly export` for it")
        missing = [p.name for p in (self.config, self.labels, self.model) if not p.is_file()]
        if missing:
            raise DataError(f"{self.path} is not a finished training run (missing "
                            f"{', '.join(missing)}); train it, or --resume an interrupted run")

    def read_labels(self) -> list[str]:
        try:
            labels = json.loads(self.labels.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise DataError(f"{self.labels}: cannot read the run's labels ({error})") from error
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            raise DataError(f"{self.labels}: expected a JSON list of class names")
        return labels

    def read_summary(self) -> dict:
        """The run's summary figures, or ``{}`` for a run that has not finished."""
        if not self.summary.is_file():
            return {}
        return json.loads(self.summary.read_text(encoding="utf-8"))

    def write_export_windows(self, windows: ExportWindows) -> None:
        """Save the windows atomically as a plain ``.npz`` (no pickled objects)."""
        buffer = io.BytesIO()
        np.savez(buffer, validation=windows.validation.astype(np.float32, copy=False),
                 validation_targets=windows.validation_targets.astype(np.int64, copy=False),
                 calibration=windows.calibration.astype(np.float32, copy=False))
        write_bytes(self.export_windows, buffer.getvalue())

    def read_export_windows(self) -> ExportWindows | None:
        """The saved windows, or None for a run trained before training kept them."""
        if not self.export_windows.is_file():
            return None
        try:
            with np.load(self.export_windows, allow_pickle=False) as arrays:
                return ExportWindows(arrays["validation"], arrays["validation_targets"],
                                     arrays["calibration"])
        except (OSError, ValueError, KeyError) as error:
            raise DataError(f"{self.export_windows}: unreadable ({error}); delete it to "
                            "export from the recordings instead") from error


def _acquire(descriptor: int, lock_file: Path) -> bool:
    """Take the exclusive lock at once, or refuse; False where the file system has no locks."""
    if fcntl is None:  # pragma: no cover - not on Windows
        logger.warning("%s: file locks are unavailable here; nothing stops a second "
                       "training into this folder", lock_file)
        return False
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        if error.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
            logger.warning("%s: cannot lock the run folder (%s); nothing stops a second "
                           "training into it", lock_file, error.strerror or error)
            return False
        holder = _read_holder(lock_file)
        raise ConfigError(f"{lock_file.parent} is being written by another training "
                          f"({holder}); wait for it to finish, or choose another --out "
                          "folder") from None
    return True


def _write_holder(descriptor: int) -> None:
    """Record who holds the lock, for the message a second training gets."""
    holder = {"pid": os.getpid(), "host": socket.gethostname(),
              "since": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
              "command": " ".join(sys.argv)}
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, (json.dumps(holder) + "\n").encode("utf-8"), 0)


def _clear_holder(descriptor: int) -> None:
    try:
        os.ftruncate(descriptor, 0)
    except OSError:  # the lock is released anyway when the file is closed
        pass


def _read_holder(lock_file: Path) -> str:
    """Who holds the lock, in words, as far as the lock file says."""
    try:
        holder = json.loads(lock_file.read_text(encoding="utf-8"))
        return (f"process {int(holder['pid'])} on {holder['host']} since {holder['since']}: "
                f"{holder['command']}")
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that has not said which"
