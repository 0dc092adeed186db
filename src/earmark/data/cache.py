"""Decode once: every recording of a manifest, resampled, in memory-mapped files.

Training reads windows straight from the map, so an epoch costs no decoding.
The store's name is a hash of the files' paths, sizes, modification times,
segments and the sample rate: re-running with nothing changed opens the
existing store at once; touching one file builds a new one.

Layout of a store folder::

    samples.f32   recordings back to back, float32
    samples.i16   recordings that were 16-bit mono at the target rate, int16 as
                  stored (exact, half the bytes; read as value / 32768)
    index.json    per recording: which file, offset and length (in samples);
                  the rows' paths, the rate, the files skipped as unreadable
                  and the positions of the manifest rows that were kept

A store prepared on a cluster (:mod:`earmark.data.ray_prepare`) has the same
name and holds shards, each a store folder of the layout above for a run of
consecutive rows (written by :mod:`earmark.data.shards`); ``open_store`` opens
either, the sharded one as a :class:`ShardedStore` that reads the same way.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

from earmark import audio
from earmark.atomic import write_json
from earmark.data.manifest import Manifest, Row
from earmark.errors import AudioError, DataError
from earmark.progress import ProgressLike, as_progress

logger = logging.getLogger(__name__)

FORMAT_VERSION = 2
_INT16_SCALE = np.float32(1.0 / 32768.0)


@dataclass
class AudioStore:
    """Decoded recordings of a manifest, memory-mapped.

    ``manifest`` holds the rows that decoded (skipped ones removed);
    ``skipped`` lists ``(path, reason)`` for the others.
    """

    folder: Path
    manifest: Manifest
    sample_rate: int
    offsets: np.ndarray
    lengths: np.ndarray
    skipped: list[tuple[str, str]]
    floats: np.ndarray              #: the float32 map
    pcm16: np.ndarray               #: the int16 map
    is_pcm16: np.ndarray            #: per recording: which map holds it

    def __len__(self) -> int:
        return len(self.offsets)

    def recording(self, index: int) -> np.ndarray:
        """The whole recording ``index`` as float32."""
        return _as_float(self._raw(index))

    def _raw(self, index: int) -> np.ndarray:
        start = self.offsets[index]
        source = self.pcm16 if self.is_pcm16[index] else self.floats
        return source[start:start + self.lengths[index]]

    def window(self, index: int, start: int, length: int) -> np.ndarray:
        """``length`` float32 samples of recording ``index`` from ``start``, zero-padded."""
        clip = _as_float(self._raw(index)[max(start, 0):max(start, 0) + length])
        if len(clip) == length and start >= 0:
            return clip
        out = np.zeros(length, dtype=np.float32)
        offset = -start if start < 0 else 0
        out[offset:offset + len(clip)] = clip[:max(length - offset, 0)]
        return out


@dataclass
class ShardedStore:
    """The recordings of several shards (:mod:`earmark.data.shards`), read as one
    :class:`AudioStore`."""

    folder: Path
    shards: list[AudioStore]
    manifest: Manifest
    sample_rate: int
    lengths: np.ndarray
    skipped: list[tuple[str, str]]
    owner: np.ndarray              #: per recording: its shard
    local: np.ndarray              #: per recording: its index in the shard

    def __len__(self) -> int:
        return len(self.lengths)

    def recording(self, index: int) -> np.ndarray:
        """The whole recording ``index`` as float32."""
        return self.shards[self.owner[index]].recording(int(self.local[index]))

    def window(self, index: int, start: int, length: int) -> np.ndarray:
        """``length`` float32 samples of recording ``index`` from ``start``, zero-padded."""
        return self.shards[self.owner[index]].window(int(self.local[index]), start, length)


def _as_float(samples: np.ndarray) -> np.ndarray:
    if samples.dtype == np.int16:
        return samples.astype(np.float32) * _INT16_SCALE
    return np.asarray(samples)


def build_store(manifest: Manifest, sample_rate: int, cache_dir: str | os.PathLike,
                skip_bad_files: bool = False, workers: int = 0,
                progress: ProgressLike = None) -> AudioStore:
    """Decode (or reopen) the store for ``manifest`` at ``sample_rate``.

    Parameters
    ----------
    workers : int
        Decoding threads; 0 uses every core.
    skip_bad_files : bool
        Leave unreadable files out (listed in ``store.skipped``) instead of
        raising :class:`AudioError` on the first one.
    """
    if len(manifest) == 0:
        raise DataError("the manifest is empty: nothing to decode")
    key = store_key(manifest, sample_rate)
    folder = Path(cache_dir) / key
    if (folder / "index.json").is_file():
        store = open_store(folder, manifest)
        if store.skipped and not skip_bad_files:
            raise AudioError(f"{len(store.skipped)} file(s) cannot be read, e.g. "
                             f"{store.skipped[0][1]}\n(set data.skip_bad_files = true, or pass "
                             "--skip-bad-files to train, prepare or crossval, to leave them "
                             "out)")
        return store
    make_cache_dir(cache_dir)
    temporary = Path(cache_dir) / f".{key}.{os.getpid()}.partial"
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir()
    try:
        decode_into(temporary, manifest, sample_rate, skip_bad_files, workers, progress)
        os.replace(temporary, folder)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return open_store(folder, manifest)


def make_cache_dir(cache_dir: str | os.PathLike) -> None:
    """Create the cache folder, or say which setting to change."""
    try:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DataError(f"cannot use {cache_dir} as the decoded-audio cache ({error}); set "
                        "data.cache_dir (or EARMARK_CACHE) to a writable folder") from error


def open_store(folder: str | os.PathLike, manifest: Manifest):
    """Open an existing store built for ``manifest`` (an :class:`AudioStore`, or a
    :class:`ShardedStore` that reads the same way)."""
    folder = Path(folder)
    index = read_index(folder)
    if "shards" in index:
        return open_sharded(folder, index, manifest)
    # By position, not path: segments of one file may be kept and skipped.
    rows = [manifest.rows[i] for i in index["kept"]]
    is_pcm16 = np.asarray(index["pcm16"], dtype=bool)
    lengths = np.asarray(index["lengths"], dtype=np.int64)
    return AudioStore(folder, Manifest(rows), int(index["sample_rate"]),
                      np.asarray(index["offsets"], dtype=np.int64), lengths,
                      [tuple(item) for item in index["skipped"]],
                      _map_file(folder / "samples.f32", np.float32, lengths[~is_pcm16].sum()),
                      _map_file(folder / "samples.i16", np.int16, lengths[is_pcm16].sum()),
                      is_pcm16)


def open_sharded(folder: Path, index: dict, manifest: Manifest) -> ShardedStore:
    """Open the shards a sharded ``index.json`` lists, for ``manifest``."""
    shards, owner, local = [], [], []
    for number, entry in enumerate(index["shards"]):
        first, stop = entry["rows"]
        shard_path = folder / entry["folder"]
        if not (shard_path / "index.json").is_file():
            raise DataError(f"{shard_path}: shard missing; delete {folder} and prepare again")
        shard = open_store(shard_path, Manifest(manifest.rows[first:stop]))
        shards.append(shard)
        owner.extend([number] * len(shard))
        local.extend(range(len(shard)))
    return ShardedStore(
        folder, shards, Manifest([row for shard in shards for row in shard.manifest]),
        int(index["sample_rate"]), np.concatenate([s.lengths for s in shards]),
        [item for shard in shards for item in shard.skipped],
        np.asarray(owner, dtype=np.int32), np.asarray(local, dtype=np.int64))


def read_index(folder: Path) -> dict:
    """A store folder's ``index.json``, checked to be of this version."""
    try:
        index = json.loads((folder / "index.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _damaged(folder, error) from error
    if not isinstance(index, dict) or index.get("version") != FORMAT_VERSION:
        raise DataError(f"{folder}: cache from another earmark version; delete the folder")
    return index


def _map_file(path: Path, dtype, count: int) -> np.ndarray:
    if count == 0:
        return np.zeros(0, dtype=dtype)
    try:
        return np.memmap(path, dtype=dtype, mode="r", shape=(int(count),))
    except (OSError, ValueError) as error:       # missing, or shorter than its index says
        raise _damaged(path.parent, error) from error


def _damaged(folder: Path, error: Exception) -> DataError:
    return DataError(f"{folder}: the decoded-audio cache is damaged ({error}); delete the "
                     "folder and run again (the audio is decoded anew)")


def store_key(manifest: Manifest, sample_rate: int) -> str:
    """A hash of everything that determines the decoded samples."""
    digest = hashlib.sha1(f"v{FORMAT_VERSION}:{sample_rate}".encode())
    for row in manifest:
        try:
            stat = os.stat(row.path)
            signature = f"{stat.st_size}:{stat.st_mtime_ns}"
        except OSError:
            signature = "missing"
        digest.update(f"\n{row.path}|{row.start}|{row.end}|{signature}".encode())
    return digest.hexdigest()[:20]


def decode_into(folder: Path, manifest: Manifest, sample_rate: int, skip_bad_files: bool,
                workers: int = 0, progress: ProgressLike = None, allow_empty: bool = False) -> None:
    """Decode every row into the store files of the (empty) ``folder``.

    Raises :class:`AudioError` on the first unreadable file unless
    ``skip_bad_files``; :class:`DataError` when none was readable, unless
    ``allow_empty`` (one shard of many may hold only unreadable files).
    """
    workers = workers or os.cpu_count() or 1
    jobs = [(row, sample_rate) for row in manifest]
    offsets, lengths, skipped, kept, is_pcm16 = [], [], [], [], []
    position = {np.dtype(np.float32): 0, np.dtype(np.int16): 0}
    with (as_progress(progress)(len(jobs), "decoding", "file") as advance,
          open(folder / "samples.f32", "wb") as floats,
          open(folder / "samples.i16", "wb") as pcm):
        for number, (row, (clip, error)) in enumerate(zip(manifest, _map(jobs, workers))):
            advance(1)
            if error is not None:
                if not skip_bad_files:
                    raise AudioError(f"{error}\n(set data.skip_bad_files = true, or pass "
                                     "--skip-bad-files to train, prepare or crossval, to "
                                     "leave unreadable files out)")
                skipped.append((row.path, error))
                continue
            (pcm if clip.dtype == np.int16 else floats).write(clip.tobytes())
            kept.append(number)
            is_pcm16.append(bool(clip.dtype == np.int16))
            offsets.append(position[clip.dtype])
            lengths.append(len(clip))
            position[clip.dtype] += len(clip)
    if not offsets and not allow_empty:
        raise DataError(f"none of the {len(jobs)} files could be read; first error: "
                        f"{skipped[0][1] if skipped else '?'}")
    log_skipped(skipped)
    write_json(folder / "index.json", {
        "version": FORMAT_VERSION, "sample_rate": sample_rate, "offsets": offsets,
        "lengths": lengths, "pcm16": is_pcm16, "skipped": skipped, "kept": kept,
        "paths": [manifest.rows[i].path for i in kept],
    })


def log_skipped(skipped: list[tuple[str, str]]) -> None:
    """Warn of the unreadable files left out, each with its reason."""
    if skipped:
        logger.warning("skipped %d unreadable file(s):\n%s", len(skipped),
                       "\n".join(f"  {reason}" for _, reason in skipped))


def _map(jobs: list, workers: int):
    """Decode on worker threads, results in order; a single worker runs inline.

    Threads, not processes: libsndfile and soxr release the GIL while they
    work, and threads need no pickling of results nor a ``__main__`` guard
    in the user's script (process pools that spawn re-run it).
    """
    if workers <= 1 or len(jobs) < 64:
        yield from (_decode(job) for job in jobs)
        return
    with ThreadPoolExecutor(workers) as pool:
        # Bounded look-ahead keeps memory flat on large datasets.
        pending = [pool.submit(_decode, job) for job in jobs[:workers * 32]]
        next_job = len(pending)
        for position in range(len(jobs)):
            yield pending[position].result()
            pending[position] = None
            if next_job < len(jobs):
                pending.append(pool.submit(_decode, jobs[next_job]))
                next_job += 1


def _decode(job: tuple[Row, int]) -> tuple[np.ndarray | None, str | None]:
    """Decode one row: ``(samples, None)`` or ``(None, error message)``."""
    row, sample_rate = job
    try:
        if row.start is None and row.end is None:
            return audio.load_exact(row.path, sample_rate), None
        return load_segment(row, sample_rate), None
    except AudioError as error:
        return None, str(error)


def load_segment(row: Row, sample_rate: int) -> np.ndarray:
    """The part of ``row.path`` from ``row.start`` to ``row.end`` seconds, mono.

    Resampled to ``sample_rate`` Hz. ``start`` None means the file's start,
    ``end`` None its end. Raises :class:`AudioError` when the segment lies
    outside the recording or cannot be decoded.
    """
    header = audio.info(row.path)
    start = int(round((row.start or 0.0) * header.sample_rate))
    stop = header.frames if row.end is None else int(round(row.end * header.sample_rate))
    if not 0 <= start < stop <= header.frames:
        raise AudioError(f"{row.path}: segment {row.start}-{row.end} s lies outside the "
                         f"recording (0-{header.duration:.3f} s)")
    try:
        data, rate = soundfile.read(row.path, start=start, stop=stop, dtype="float32",
                                    always_2d=True)
    except Exception as error:
        raise AudioError(f"{row.path}: cannot decode segment ({error})") from error
    clip = audio.to_mono(data)
    audio.check_finite(clip, row.path)
    return audio.resample(clip, rate, sample_rate)
