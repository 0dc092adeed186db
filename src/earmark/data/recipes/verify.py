"""Checking an unpacked copy of a dataset: every recording its manifest names can
be opened, and the copy holds as many recordings as the dataset documents.

A checksum proves an archive whole, but not the folder unpacked from it (a
file damaged or deleted since), nor a copy the user unpacked themselves, nor
the archives that publish no checksum (GitHub's, MIMII's). So every distinct
recording of the built manifest is opened with :func:`earmark.audio.info`,
which refuses an empty file, a header it cannot read and a WAV cut short;
every failure is collected before the report, which names the files.
"""

from __future__ import annotations

import os
from pathlib import Path

from earmark.audio import info
from earmark.data.manifest import Manifest
from earmark.errors import AudioError, DataError
from earmark.progress import ProgressLike, as_progress

#: Files a report names one by one; the others are counted.
LISTED = 10


def unreadable(paths: list[str], progress: ProgressLike = None) -> list[tuple[str, str]]:
    """``(path, reason)`` for every path :func:`earmark.audio.info` refuses, in order.

    Parameters
    ----------
    paths : list of str
        Recordings to open (each once).
    progress : Progress, bool or None
        Advanced by one for each file.
    """
    failures = []
    with as_progress(progress)(len(paths), "checking recordings", "file") as advance:
        for path in paths:
            try:
                info(path)
            except AudioError as error:
                failures.append((path, reason(error, path)))
            advance(1)
    return failures


def reason(error: AudioError, path: str) -> str:
    """What the error says is wrong: its message without the path it starts with and
    without its advice for one file (the report advises for the whole copy)."""
    text = str(error)
    text = text[len(path) + 2:] if text.startswith(f"{path}: ") else text
    return text.split("; ")[0].rstrip(".")


def check_recordings(manifest: Manifest, folder: str | os.PathLike, name: str,
                     progress: ProgressLike = None) -> None:
    """Open every distinct recording of ``manifest``; report all that fail at once.

    Parameters
    ----------
    manifest : Manifest
        Built from ``folder``.
    folder : path
        The dataset's folder, for the message (and relative paths).
    name : str
        The recipe's name, for the advice.
    progress : Progress, bool or None
        Advanced by one for each file.

    Raises
    ------
    DataError
        Naming how many recordings cannot be read and the first :data:`LISTED`
        with their reason, and how to repair the copy.
    """
    folder = Path(folder)
    paths = list(dict.fromkeys(str(folder / row.path) for row in manifest))
    failures = unreadable(paths, progress)
    if not failures:
        return
    named = "; ".join(f"{shown(path, folder)} ({why})" for path, why in failures[:LISTED])
    more = f"; and {len(failures) - LISTED} more" if len(failures) > LISTED else ""
    raise DataError(f"{folder}: {len(failures)} of {len(paths)} recording(s) cannot be read, "
                    f"so the copy is damaged or partial: {named}{more}. Remove {folder} and "
                    f"run `earmark datasets download {name}` again (same --root), or replace "
                    "these files from a good copy")


def shown(path: str, folder: Path) -> str:
    """``path`` relative to ``folder`` where it lies inside, else as it is."""
    try:
        return Path(os.path.abspath(path)).relative_to(os.path.abspath(folder)).as_posix()
    except ValueError:
        return path


def shortfall(manifest: Manifest, expected: int | None, name: str) -> str | None:
    """What is missing when the manifest has fewer rows than a complete copy gives.

    Returns
    -------
    str or None
        A sentence naming both counts; None when ``expected`` is unknown or met.
    """
    if expected is None or len(manifest) >= expected:
        return None
    return (f"{name}: the manifest has {len(manifest):,} recording(s) where the complete "
            f"dataset has {expected:,} ({expected - len(manifest):,} missing)")
