"""Decoding a large manifest on a Ray cluster into a sharded store.

``earmark prepare CONFIG --engine ray`` splits the manifest into shards of
consecutive rows (:mod:`earmark.data.shards`), runs one Ray task per shard
(each decodes, resamples and writes its shard into the cache folder, which
every node must see: a shared file system), retries a task whose worker died,
and renames the finished store into place under the same name a local
preparation would give it, so ``earmark train`` then opens it without
decoding. Without ``--address`` a local Ray instance with the machine's CPUs
is started (and stopped); with one, the job joins that cluster.

Ray is an optional extra (``pip install earmark[ray]``); the default engine is
the local thread pool of :func:`earmark.data.cache.build_store`.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from earmark.atomic import write_json
from earmark.data.cache import (build_store, log_skipped, make_cache_dir, open_store,
                                store_key)
from earmark.data.manifest import Manifest
from earmark.data.shards import (SHARD_RECORDINGS, ShardResult, decode_shard, shard_ranges,
                                 sharded_index)
from earmark.errors import AudioError, ConfigError, DataError
from earmark.progress import ProgressLike, as_progress

logger = logging.getLogger(__name__)

#: How often Ray runs a shard's task again after its worker died.
TASK_RETRIES = 3


def require_ray():
    """The ``ray`` module, or a ConfigError that says how to install it."""
    try:
        import ray
    except ImportError as error:
        raise ConfigError("--engine ray needs Ray: pip install 'earmark[ray]'") from error
    return ray


def prepare_on_ray(manifest: Manifest, sample_rate: int, cache_dir: str | os.PathLike,
                   skip_bad_files: bool = False, address: str | None = None,
                   cpus: int | None = None, per_shard: int = SHARD_RECORDINGS,
                   decode: Callable[..., ShardResult] = decode_shard,
                   progress: ProgressLike = None):
    """Decode ``manifest`` on Ray into the cache; the opened (sharded) store.

    Parameters
    ----------
    address : str, optional
        A running cluster (``auto``, ``HOST:6379`` or ``ray://HOST:10001``);
        default: start a local Ray instance for this call.
    cpus : int, optional
        CPUs of the local instance (default: all); ignored with ``address``.
    per_shard : int
        Recordings per shard (one task each).
    decode : callable
        What a task runs for one shard (:func:`~earmark.data.shards.decode_shard`).

    A store already prepared for the same files and rate (by either engine) is
    opened as it is.
    """
    if len(manifest) == 0:
        raise DataError("the manifest is empty: nothing to decode")
    folder = Path(cache_dir) / store_key(manifest, sample_rate)
    if (folder / "index.json").is_file():
        return build_store(manifest, sample_rate, cache_dir, skip_bad_files)
    ranges = shard_ranges(len(manifest), per_shard)
    make_cache_dir(cache_dir)
    temporary = Path(cache_dir) / f".{folder.name}.{os.getpid()}.partial"
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir()
    try:
        with ray_session(address, cpus) as ray:
            results = _run_shards(ray, manifest, ranges, sample_rate, temporary, skip_bad_files,
                                  decode, progress)
        _check_results(results, temporary)
        for stale in temporary.glob(".shard-*.partial"):  # left by workers that died
            shutil.rmtree(stale, ignore_errors=True)
        write_json(temporary / "index.json", sharded_index(sample_rate, ranges))
        try:
            os.replace(temporary, folder)
        except OSError:
            if not (folder / "index.json").is_file():
                raise
            shutil.rmtree(temporary, ignore_errors=True)   # another preparation finished first
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    store = open_store(folder, manifest)
    if len(store) == 0:
        raise DataError(f"none of the {len(manifest)} files could be read")
    log_skipped(store.skipped)
    return store


@contextmanager
def ray_session(address: str | None = None, cpus: int | None = None) -> Iterator:
    """Ray for the length of a block: the running instance, the cluster at ``address``,
    or a local instance on 127.0.0.1 started (and stopped) here."""
    ray = require_ray()
    started = not ray.is_initialized()
    if started:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        if address:
            check_reachable(address)
        options = ({"address": address} if address else
                   {"num_cpus": cpus, "include_dashboard": False,
                    "_node_ip_address": "127.0.0.1"})
        try:
            ray.init(configure_logging=False, log_to_driver=False, **options)
        except (ConnectionError, ValueError, RuntimeError) as error:
            raise _unreachable(address, error) from error
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


def check_reachable(address: str, seconds: float = 5.0) -> None:
    """A ``HOST:PORT`` or ``ray://HOST:PORT`` address answers within ``seconds``
    (Ray itself retries an unreachable one for minutes)."""
    if address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--address {address!r}: give auto, HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host, int(port)), timeout=seconds).close()
    except OSError as error:
        raise _unreachable(address, error) from error


def _unreachable(address: str | None, error: Exception) -> ConfigError:
    return ConfigError(f"cannot reach the Ray cluster at {address} ({error}); start one with "
                       "`ray start --head`, or leave out --address to run Ray on this machine")


def _run_shards(ray, manifest: Manifest, ranges: list[tuple[int, int]], sample_rate: int,
                folder: Path, skip_bad_files: bool, decode, progress: ProgressLike
                ) -> list[ShardResult]:
    """One task per shard, retried when its worker dies; the results as they finish."""
    task = ray.remote(max_retries=TASK_RETRIES, num_cpus=1)(decode)
    pending = {task.remote(number, manifest.rows[first:stop], sample_rate, str(folder),
                           skip_bad_files): stop - first
               for number, (first, stop) in enumerate(ranges)}
    results = []
    with as_progress(progress)(len(manifest), "decoding on ray", "file") as advance:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for reference in done:
                results.append(ray.get(reference))
                advance(pending.pop(reference))
    return sorted(results, key=lambda result: result.number)


def _check_results(results: list[ShardResult], folder: Path) -> None:
    """Every shard decoded and visible here (the cache must be on shared storage)."""
    failed = [result for result in results if result.error]
    if failed:
        raise AudioError(failed[0].error)      # the message already says how to skip
    for result in results:
        if not (Path(result.folder) / "index.json").is_file():
            raise DataError(f"{result.folder}: a worker wrote this shard but it is not "
                            f"visible here; data.cache_dir ({folder.parent}) must be on "
                            "storage every node of the cluster sees")
