"""Downloading a dataset's files: resumable, verified, and never half-written.

Written on the standard library's :mod:`urllib` rather than pooch: pooch (which
is installed) restarts an interrupted download from zero, and the datasets
earmark fetches are gigabytes. Here a download goes to ``NAME.part``; a later
attempt (in the same call, or the next run) asks the server for the rest with
an HTTP ``Range`` request. A server that answers ``206 Partial Content``
continues the part; one that ignores the range (``200``) sends the whole file
again, and the part is restarted. Only a part whose size and checksum match
the published ones is renamed to ``NAME`` (an atomic rename on one file
system), so a file under its final name is always complete.

A mirror (the ``mirror`` argument, else the environment variable
``EARMARK_DATASET_MIRROR``) replaces the scheme and host of every URL, and
its path, if any, is put before the URL's path.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import shutil
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from earmark.data.recipes.recipe import RemoteFile
from earmark.errors import ConfigError, DataError
from earmark.progress import ProgressLike, as_progress

log = logging.getLogger(__name__)

#: The environment variable naming a mirror for every dataset URL.
MIRROR_VARIABLE = "EARMARK_DATASET_MIRROR"

#: Bytes read per step.
CHUNK = 1 << 20

#: Free space kept beyond the download itself.
SPARE_BYTES = 64 << 20


def mirrored_url(url: str, mirror: str | None = None) -> str:
    """``url`` with its scheme and host replaced by the mirror's.

    Parameters
    ----------
    url : str
        The official URL.
    mirror : str or None
        e.g. ``http://cache.local:8080`` or ``https://mirror.org/datasets``; ``None``
        reads ``EARMARK_DATASET_MIRROR``; empty means no mirror.

    Raises
    ------
    ConfigError
        When the mirror is not an http(s) URL with a host.
    """
    mirror = os.environ.get(MIRROR_VARIABLE, "") if mirror is None else mirror
    if not mirror:
        return url
    base = urllib.parse.urlsplit(mirror)
    if base.scheme not in ("http", "https") or not base.netloc:
        raise ConfigError(f"dataset mirror {mirror!r} is not an http(s) URL with a host; "
                          f"give one like http://host:port (--mirror or {MIRROR_VARIABLE})")
    parts = urllib.parse.urlsplit(url)
    path = base.path.rstrip("/") + parts.path
    return urllib.parse.urlunsplit((base.scheme, base.netloc, path, parts.query, ""))


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """The hex digest of a file's content, read in chunks."""
    return file_digests(path, (algorithm,))[algorithm]


def file_digests(path: Path, algorithms: tuple[str, ...]) -> dict[str, str]:
    """The hex digests of a file's content, all computed in one reading."""
    digests = {algorithm: hashlib.new(algorithm) for algorithm in algorithms}
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(CHUNK), b""):
            for digest in digests.values():
                digest.update(block)
    return {algorithm: digest.hexdigest() for algorithm, digest in digests.items()}


def check_file(path: Path, remote: RemoteFile) -> str | None:
    """What is wrong with ``path`` against the published size and checksums, or None.

    Every published checksum is checked (sha256 and md5 both where both are);
    with none published, the computed sha256 is logged.
    """
    size = path.stat().st_size
    if remote.size is not None and size != remote.size:
        return f"it has {size} bytes where {remote.size} are published"
    published = {algorithm: getattr(remote, algorithm).lower()
                 for algorithm in ("sha256", "md5") if getattr(remote, algorithm)}
    if not published:
        log.info("%s: no checksum published; its sha256 is %s", remote.name,
                 file_digest(path, "sha256"))
        return None
    actual = file_digests(path, tuple(published))
    for algorithm, expected in published.items():
        if actual[algorithm] != expected:
            return f"its {algorithm} is {actual[algorithm]} where {expected} is published"
    return None


def fetch(remote: RemoteFile, folder: str | os.PathLike, mirror: str | None = None,
          progress: ProgressLike = None, attempts: int = 3, timeout: float = 60.0) -> Path:
    """Download ``remote`` into ``folder`` (resuming a ``.part``) and verify it.

    Parameters
    ----------
    remote : RemoteFile
        What to fetch and its published size and checksum.
    folder : path
        Where ``remote.name`` is written (created when missing).
    mirror : str or None
        Replaces the URL's scheme and host; ``None`` reads ``EARMARK_DATASET_MIRROR``.
    progress : Progress, bool or None
        Advanced by bytes received.
    attempts : int
        Connections tried (each resuming the last) before giving up.
    timeout : float
        Seconds a connection or a read may wait.

    Returns
    -------
    Path
        The verified file. An existing one that checks out is not downloaded again.

    Raises
    ------
    DataError
        When the disk is too full, the server fails, or the file's size or checksum is
        wrong (the part is then deleted).
    """
    url = mirrored_url(remote.url, mirror)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / remote.name
    if target.exists():
        problem = check_file(target, remote)
        if problem is None:
            log.info("%s: already downloaded and verified", target)
            return target
        log.warning("%s: %s; downloading it again", target, problem)
        target.unlink()
    part = folder / (remote.name + ".part")
    check_disk_space(remote, part)
    download_part(url, part, remote, progress, attempts, timeout)
    problem = check_file(part, remote)
    if problem is not None:
        part.unlink(missing_ok=True)
        raise DataError(f"{remote.name} from {url}: {problem}; the download was deleted. "
                        "Run again; if it persists, the server or mirror holds another file")
    os.replace(part, target)
    return target


def check_disk_space(remote: RemoteFile, part: Path) -> None:
    """Refuse to start when the folder's disk cannot hold the rest of the file."""
    if remote.size is None:
        return
    have = part.stat().st_size if part.exists() else 0
    needed = max(remote.size - have, 0) + SPARE_BYTES
    free = shutil.disk_usage(part.parent).free
    if free < needed:
        raise DataError(f"{remote.name} needs {needed / 1e6:.0f} MB free in {part.parent} "
                        f"but only {free / 1e6:.0f} MB are; free some space or choose "
                        "another --root")


def download_part(url: str, part: Path, remote: RemoteFile, progress: ProgressLike,
                  attempts: int, timeout: float) -> None:
    """Fill ``part`` from ``url``, resuming after a dropped connection."""
    failures: list[str] = []
    with as_progress(progress)(remote.size or 0, remote.name, "B") as advance:
        advance(part.stat().st_size if part.exists() else 0)    # the bar counts the part
        for _ in range(max(attempts, 1)):
            try:
                if receive(url, part, remote, advance, timeout):
                    return
                failures.append("the connection closed early")
            except urllib.error.HTTPError as error:
                failures.append(http_failure(url, part, error))
            except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
                failures.append(str(error) or type(error).__name__)
            log.info("%s: %s; resuming", remote.name, failures[-1])
    raise DataError(f"{remote.name} from {url}: download incomplete after {attempts} "
                    f"attempts ({failures[-1]}); run again to resume from {part}")


def http_failure(url: str, part: Path, error: urllib.error.HTTPError) -> str:
    """A retryable HTTP error as text; a client error other than 416 raises DataError.

    ``416 Range Not Satisfiable`` means the part is not a prefix of the file: it is
    deleted and the next attempt starts again.
    """
    if error.code == 416:
        part.unlink(missing_ok=True)
        return "the server refused to resume (416); starting again"
    if error.code < 500:
        raise DataError(f"{url}: the server answered {error.code} {error.reason}; check the "
                        f"URL, or the mirror (--mirror, {MIRROR_VARIABLE})") from error
    return f"the server answered {error.code} {error.reason}"


def receive(url: str, part: Path, remote: RemoteFile, advance, timeout: float) -> bool:
    """One connection: append to ``part`` (or restart it); True when the file is whole."""
    have = part.stat().st_size if part.exists() else 0
    if remote.size is not None and have >= remote.size:
        if have == remote.size:
            return True
        part.unlink()
        advance(-have)
        have = 0
    request = urllib.request.Request(url, headers={"User-Agent": "earmark"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        resumed = have > 0 and response.status == 206
        if have and not resumed:
            log.info("%s: the server ignored the range request; starting again", remote.name)
            advance(-have)
            have = 0
        total = expected_total(response, have, resumed)
        with open(part, "ab" if resumed else "wb") as stream:
            for block in iter(lambda: response.read(CHUNK), b""):
                stream.write(block)
                advance(len(block))
            stream.flush()
            os.fsync(stream.fileno())
    size = part.stat().st_size
    return size == total if total is not None else True


def expected_total(response, have: int, resumed: bool) -> int | None:
    """The whole file's size as the response tells it, or None when it does not."""
    if resumed:
        content_range = response.headers.get("Content-Range", "")
        whole = content_range.rpartition("/")[2]
        if whole.isdigit():
            return int(whole)
    length = response.headers.get("Content-Length")
    if length and length.isdigit():
        return int(length) + (have if resumed else 0)
    return None
