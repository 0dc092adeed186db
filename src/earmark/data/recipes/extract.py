"""Unpacking a downloaded archive (.tar.gz, .tgz, .tar, .zip), safely and whole.

Every member is checked before anything is written: a member that would land
outside the target (``../`` in its path, an absolute path), a link (symbolic
or hard) or a device is refused with :class:`~earmark.errors.DataError`
naming it. Files are written by this module itself (not by
``tarfile.extractall``), into a temporary folder beside the target that is
renamed into place only when the whole archive is out; on any failure the
temporary folder is removed. A marker file in the target records each
archive unpacked, so unpacking it again does nothing.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import tarfile
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from earmark.atomic import write_text
from earmark.errors import DataError

log = logging.getLogger(__name__)

#: The archive kinds :func:`extract` reads, by file name ending.
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")


def is_archive(path: str | os.PathLike) -> bool:
    """Whether ``path``'s name ends like an archive :func:`extract` reads."""
    return str(path).lower().endswith(ARCHIVE_SUFFIXES)


def marker_path(archive: Path, target: Path) -> Path:
    """The file recording that ``archive`` was unpacked into ``target``."""
    return target / f".earmark-extracted-{archive.name}"


def extract(archive: str | os.PathLike, target_folder: str | os.PathLike) -> Path:
    """Unpack ``archive`` into ``target_folder``, all or nothing.

    Parameters
    ----------
    archive : path
        A .tar.gz, .tgz, .tar or .zip file.
    target_folder : path
        Where its members go. Created from a temporary folder beside it; when it
        exists already (another archive of the dataset), the new top-level entries
        are moved into it.

    Returns
    -------
    Path
        The target folder.

    Raises
    ------
    DataError
        For an unknown or corrupt archive, or an unsafe member (named); nothing is
        left behind.
    """
    archive, target = Path(archive), Path(target_folder)
    if not is_archive(archive):
        raise DataError(f"{archive}: not an archive earmark can unpack; "
                        f"expected a name ending in {', '.join(ARCHIVE_SUFFIXES)}")
    if marker_path(archive, target).exists():
        log.info("%s: already unpacked into %s", archive.name, target)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
    try:
        unpack(archive, temp)
        move_into_place(temp, target)
        write_text(marker_path(archive, target), f"{archive.name}\n")
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    return target


def unpack(archive: Path, folder: Path) -> None:
    """Check every member of ``archive``, then write them all under ``folder``."""
    try:
        if archive.name.lower().endswith(".zip"):
            unpack_zip(archive, folder)
        else:
            unpack_tar(archive, folder)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError) as error:
        raise DataError(f"{archive}: the archive is corrupt or truncated ({error}); "
                        "delete it and download it again") from error
    except OSError as error:
        raise DataError(f"{archive}: could not unpack it into {folder.parent} ({error}); "
                        "check the free space and permissions there") from error


def safe_member_path(archive: Path, name: str) -> PurePosixPath:
    """A member's path relative to the target, or DataError when it would escape."""
    path = PurePosixPath(name.replace("\\", "/"))
    drive = name[1:2] == ":" and name[:1].isalpha()        # C:\... from Windows
    if path.is_absolute() or name.startswith(("/", "\\")) or drive:
        raise DataError(f"{archive}: member {name!r} has an absolute path; refusing to "
                        "unpack this archive (nothing was written)")
    if ".." in path.parts:
        raise DataError(f"{archive}: member {name!r} would land outside the target folder; "
                        "refusing to unpack this archive (nothing was written)")
    return path


def unpack_tar(archive: Path, folder: Path) -> None:
    """Unpack a tar archive (any compression) after checking all its members."""
    with tarfile.open(archive, "r:*") as tar:
        members = tar.getmembers()
        for member in members:
            safe_member_path(archive, member.name)
            if not (member.isfile() or member.isdir()):
                kind = ("link" if member.issym() or member.islnk() else "device or special file")
                raise DataError(f"{archive}: member {member.name!r} is a {kind}; refusing "
                                "to unpack this archive (nothing was written)")
        for member in members:
            path = folder.joinpath(*safe_member_path(archive, member.name).parts)
            if member.isdir():
                path.mkdir(parents=True, exist_ok=True)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            source = tar.extractfile(member)
            with source, open(path, "wb") as stream:
                shutil.copyfileobj(source, stream)


def unpack_zip(archive: Path, folder: Path) -> None:
    """Unpack a zip archive after checking all its members."""
    with zipfile.ZipFile(archive) as zipped:
        members = zipped.infolist()
        for member in members:
            safe_member_path(archive, member.filename)
            kind = stat.S_IFMT(member.external_attr >> 16)    # 0: no Unix type recorded
            if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
                raise DataError(f"{archive}: member {member.filename!r} is a link or special "
                                "file; refusing to unpack this archive (nothing was written)")
        for member in members:
            path = folder.joinpath(*safe_member_path(archive, member.filename).parts)
            if member.is_dir():
                path.mkdir(parents=True, exist_ok=True)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            with zipped.open(member) as source, open(path, "wb") as stream:
                shutil.copyfileobj(source, stream)


def move_into_place(temp: Path, target: Path) -> None:
    """Rename ``temp`` to ``target``, or move its entries into an existing target."""
    if not target.exists():
        os.replace(temp, target)
        return
    for entry in sorted(temp.iterdir()):
        destination = target / entry.name
        if destination.is_dir() and not destination.is_symlink():
            shutil.rmtree(destination)
        elif destination.exists() or destination.is_symlink():
            destination.unlink()
        os.replace(entry, destination)
