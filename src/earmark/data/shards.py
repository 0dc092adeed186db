"""A decoded store in shards: what preparation on a cluster writes and training reads.

A sharded store has the name of the store it stands for
(:func:`earmark.data.cache.store_key`) and this layout::

    index.json           version, sample rate, and the shards in order: each one's
                         folder and the manifest rows [first, stop) it holds
    shard-00000/         a store folder of the usual layout (samples.f32,
    shard-00001/ ...     samples.i16, index.json) for those rows

Each shard is written by one worker into a temporary folder and renamed into
place when complete, so a worker killed mid-way leaves only a temporary
folder, which the retry ignores and the end of preparation removes. Training
reads a sharded store through :class:`ShardedStore`, memory-mapped like a
single store (:class:`earmark.data.cache.ShardedStore`): no decoding, random
windows from any shard.
"""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from earmark.data.cache import FORMAT_VERSION, decode_into
from earmark.data.manifest import Manifest, Row
from earmark.errors import AudioError, DataError

#: Recordings per shard by default: a shard is one task's work (seconds to a minute).
SHARD_RECORDINGS = 1000


@dataclass(frozen=True)
class ShardResult:
    """What decoding one shard gave: its folder, or the first unreadable file."""

    number: int
    folder: str = ""
    error: str = ""               #: the first unreadable file (when not skipping)


def shard_ranges(rows: int, per_shard: int = SHARD_RECORDINGS) -> list[tuple[int, int]]:
    """Consecutive ``[first, stop)`` runs of at most ``per_shard`` rows covering ``rows``."""
    if per_shard < 1:
        raise DataError(f"{per_shard} recordings per shard: give at least 1")
    return [(first, min(first + per_shard, rows)) for first in range(0, rows, per_shard)]


def shard_folder(number: int) -> str:
    return f"shard-{number:05d}"


def decode_shard(number: int, rows: list[Row], sample_rate: int, store_folder: str,
                 skip_bad_files: bool) -> ShardResult:
    """Decode ``rows`` into ``store_folder/shard-NNNNN`` (what one worker does).

    Idempotent: a shard already complete (a retry after a worker died past the
    rename) is left as it is. Unreadable files end the shard with the first
    one's message, unless ``skip_bad_files``.
    """
    final = Path(store_folder) / shard_folder(number)
    if (final / "index.json").is_file():
        return ShardResult(number, str(final))
    partial = Path(store_folder) / f".{shard_folder(number)}.{uuid.uuid4().hex}.partial"
    partial.mkdir(parents=True)
    try:
        decode_into(partial, Manifest(rows), sample_rate, skip_bad_files, workers=1,
                    allow_empty=True)
    except AudioError as error:
        shutil.rmtree(partial, ignore_errors=True)
        return ShardResult(number, error=str(error))
    partial.rename(final)
    return ShardResult(number, str(final))


def sharded_index(sample_rate: int, ranges: list[tuple[int, int]]) -> dict:
    """The top ``index.json`` of a sharded store."""
    return {"version": FORMAT_VERSION, "sample_rate": sample_rate,
            "shards": [{"folder": shard_folder(n), "rows": list(r)}
                       for n, r in enumerate(ranges)]}
