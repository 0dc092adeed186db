"""Atomic file writes: a reader sees the old file or the new one, never half.

Each function writes to a temporary file in the target's folder (the same
file system, so the final rename is atomic), flushes it to disk, then moves
it over the target with :func:`os.replace`. When anything fails, the
temporary file is removed and the old target, if any, is left untouched.
Parent folders are created as needed.

This module needs only the standard library and :mod:`earmark.errors` (an
:class:`~earmark.errors.OutputError` names the file asked for): the deployed
runtime may use it.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from earmark.errors import OutputError

#: Permissions of a newly created file (an existing file keeps its own).
NEW_FILE_MODE = 0o644


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and return the path.

    Parameters
    ----------
    path : str or os.PathLike
        The file to create or replace. Missing parent folders are created.
    data : bytes
        The complete new content.
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        mode = _mode_for(target)
        descriptor, temp_name = tempfile.mkstemp(
            dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as error:
        raise _output_error(target, error) from error
    try:
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temp_name, mode)
        os.replace(temp_name, target)
    except BaseException as error:
        # Also on KeyboardInterrupt: never leave a stray temp file behind.
        _remove_quietly(temp_name)
        if isinstance(error, OSError):
            raise _output_error(target, error) from error
        raise
    return target


def check_output_folder(path: str | os.PathLike) -> Path:
    """Refuse, before any work that would be lost, a folder for outputs that could not be
    made or written in (an :class:`OutputError` naming it); nothing is created."""
    folder = Path(path)
    existing = folder
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(f"cannot write in {folder}: {existing} is a file, not a folder; "
                          "choose another output folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write in {folder}: {existing} is not writable; choose a "
                          "folder you can write to")
    return folder


def _output_error(target: Path, error: OSError) -> OutputError:
    """The error naming the file the user asked for (not the temporary one)."""
    if isinstance(error, (FileExistsError, NotADirectoryError)):
        reason = f"{error.filename or target} is a file, not a folder"
    else:
        reason = error.strerror or str(error)
    return OutputError(f"cannot write {target}: {reason}; choose an output path in a folder "
                       "you can write to")


def write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (no newline translation)."""
    return write_bytes(path, text.encode(encoding))


def write_json(path: str | os.PathLike, obj: Any, indent: int = 2) -> Path:
    """Write ``obj`` as JSON (``indent`` spaces, trailing newline) atomically.

    numpy scalars and arrays are converted to plain numbers and lists.
    The object is serialised before the disk is touched, so an object JSON
    cannot represent raises :class:`TypeError` and leaves no file behind.
    """
    text = json.dumps(obj, indent=indent, ensure_ascii=False, default=_plain)
    return write_text(path, text + "\n")


def _plain(value: Any) -> Any:
    """json's fallback: numpy values become Python ones; anything else fails."""
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} as JSON: {value!r}")


def _mode_for(target: Path) -> int:
    try:
        return target.stat().st_mode & 0o7777
    except FileNotFoundError:
        return NEW_FILE_MODE


def _remove_quietly(name: str) -> None:
    try:
        os.unlink(name)
    except FileNotFoundError:
        pass
