"""Preparation on a Ray cluster (a local one on 127.0.0.1 with 2 CPUs, started here):
the sharded store equals the local one sample for sample, survives a killed worker, and
is what training then reads."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest

from conftest import write_tone
from earmark.data import cache
from earmark.data.cache import ShardedStore, build_store
from earmark.data.manifest import Manifest, Row
from earmark.data.shards import decode_shard, shard_folder, shard_ranges
from earmark.errors import AudioError, DataError

ray = pytest.importorskip("ray")
from earmark.data.ray_prepare import prepare_on_ray  # noqa: E402  (after the skip)

RATE = 16000


@pytest.fixture(scope="module", autouse=True)
def local_cluster():
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1",
             object_store_memory=80 * 1024 * 1024, configure_logging=False,
             log_to_driver=False)
    yield
    ray.shutdown()


def mixed_manifest(folder: Path, count: int = 23) -> Manifest:
    """Files in every way the store keeps them: 16-bit at the rate (kept as int16),
    float and other rates (resampled to float32), FLAC, and segments of a long file."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(count):
        rate = (RATE, 8000, 44100)[i % 3]
        path = folder / f"{i:03d}.{'flac' if i % 4 == 0 else 'wav'}"
        subtype = "FLOAT" if (i % 5 == 0 and path.suffix == ".wav") else "PCM_16"
        write_tone(path, 0.05 + 0.01 * (i % 7), rate, 150.0 + 40 * i, subtype=subtype)
        rows.append(Row(str(path), f"c{i % 3}", f"g{i}"))
    long = folder / "long.wav"
    write_tone(long, 2.0, RATE, 440.0)
    rows += [Row(str(long), "c0", "long", start=0.5 * k, end=0.5 * k + 0.4) for k in range(3)]
    return Manifest(rows)


def assert_same_store(sharded, local) -> None:
    assert isinstance(sharded, ShardedStore)
    assert len(sharded) == len(local)
    assert sharded.manifest.rows == local.manifest.rows
    assert sharded.skipped == local.skipped
    np.testing.assert_array_equal(sharded.lengths, local.lengths)
    for index in range(len(local)):
        np.testing.assert_array_equal(sharded.recording(index), local.recording(index))
        np.testing.assert_array_equal(sharded.window(index, -7, 900), local.window(index, -7, 900))


def no_partial_left(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if p.name.endswith(".partial")]


def test_ray_shards_hold_the_same_samples_as_the_local_store(tmp_path: Path, monkeypatch):
    manifest = mixed_manifest(tmp_path / "audio")
    local = build_store(manifest, RATE, tmp_path / "local", workers=1, progress=False)
    sharded = prepare_on_ray(manifest, RATE, tmp_path / "cluster", per_shard=5, progress=False)
    assert len(sharded.shards) == len(shard_ranges(len(manifest), 5)) == 6
    assert sharded.folder.name == local.folder.name          # the same store name
    assert_same_store(sharded, local)
    assert no_partial_left(tmp_path / "cluster")

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again")

    # What training opens: the sharded store, without decoding anything.
    monkeypatch.setattr(cache, "decode_into", no_decoding)
    reopened = build_store(manifest, RATE, tmp_path / "cluster", progress=False)
    assert_same_store(reopened, local)


def test_a_worker_killed_mid_shard_is_retried_without_a_corrupt_shard(tmp_path: Path):
    manifest = mixed_manifest(tmp_path / "audio", count=12)
    marker = tmp_path / "killed-once"

    def dies_once_in_shard_one(number, rows, sample_rate, store_folder, skip_bad_files):
        if number == 1 and not marker.exists():
            marker.touch()
            half = Path(store_folder) / f".{shard_folder(1)}.dead.partial"
            half.mkdir()
            (half / "samples.i16").write_bytes(b"\x01\x02" * 999)   # half a shard
            os.kill(os.getpid(), signal.SIGKILL)                    # the worker dies
        return decode_shard(number, rows, sample_rate, store_folder, skip_bad_files)

    sharded = prepare_on_ray(manifest, RATE, tmp_path / "cluster", per_shard=4,
                             decode=dies_once_in_shard_one, progress=False)
    assert marker.exists()
    local = build_store(manifest, RATE, tmp_path / "local", workers=1, progress=False)
    assert_same_store(sharded, local)
    assert no_partial_left(tmp_path / "cluster")


def test_a_retry_after_the_shard_was_complete_keeps_it(tmp_path: Path):
    manifest = mixed_manifest(tmp_path / "audio", count=4)
    first = decode_shard(0, manifest.rows, RATE, str(tmp_path), False)
    written = sorted((p.name, p.stat().st_mtime_ns) for p in Path(first.folder).iterdir())
    again = decode_shard(0, manifest.rows, RATE, str(tmp_path), False)
    assert again.folder == first.folder
    assert sorted((p.name, p.stat().st_mtime_ns) for p in Path(again.folder).iterdir()) == written


def test_an_unreadable_file_is_named_or_skipped_as_locally(tmp_path: Path):
    manifest = mixed_manifest(tmp_path / "audio", count=6)
    broken = tmp_path / "audio" / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    rows = [*manifest.rows[:3], Row(str(broken), "c1", "gb"), *manifest.rows[3:]]
    with pytest.raises(AudioError, match="broken.wav"):
        prepare_on_ray(Manifest(rows), RATE, tmp_path / "cluster", per_shard=2, progress=False)
    assert list((tmp_path / "cluster").iterdir()) == []        # nothing half-prepared stays
    sharded = prepare_on_ray(Manifest(rows), RATE, tmp_path / "cluster", per_shard=2,
                             skip_bad_files=True, progress=False)
    local = build_store(Manifest(rows), RATE, tmp_path / "local", workers=1,
                        skip_bad_files=True, progress=False)
    assert [path for path, _ in sharded.skipped] == [str(broken)]
    assert_same_store(sharded, local)


def test_bad_requests_are_refused(tmp_path: Path):
    with pytest.raises(DataError, match="empty"):
        prepare_on_ray(Manifest([]), RATE, tmp_path, progress=False)
    with pytest.raises(DataError, match="at least 1"):
        shard_ranges(10, 0)


def test_prepare_command_on_ray_then_training_reads_the_shards(tmp_path: Path, capsys):
    from earmark.cli import main
    from earmark.config import load_config
    from earmark.data.dataset import load_manifest, open_dataset
    from earmark.data.shards import SHARD_RECORDINGS

    with pytest.raises(SystemExit):
        main(["prepare", "--help"])
    assert f"(default {SHARD_RECORDINGS})" in capsys.readouterr().out
    for label, frequency in (("low", 300.0), ("high", 2000.0)):
        for speaker in range(6):
            write_tone(tmp_path / "tones" / label / f"{speaker:08x}_nohash_0.wav", 0.5, 8000,
                       frequency + 10 * speaker)
    config = tmp_path / "tones.toml"
    config.write_text(f'[data]\nroot = "{tmp_path / "tones"}"\nsample_rate = 8000\n'
                      f'cache_dir = "{tmp_path / "cache"}"\nclip_seconds = 0.5\n')
    assert main(["prepare", str(config), "--engine", "ray", "--shard-recordings", "5",
                 "-q"]) == 0
    assert "12 recordings in 3 shard(s)" in capsys.readouterr().out
    loaded = load_config(config)
    dataset = open_dataset(loaded, load_manifest(loaded), progress=False)
    assert isinstance(dataset.store, ShardedStore) and len(dataset.store) == 12
    assert main(["prepare", str(config), "--address", "auto"]) == 2
    assert "go with --engine ray" in capsys.readouterr().err


def test_ray_options_out_of_range_and_unreachable_clusters_are_refused(tmp_path: Path, capsys):
    from earmark.cli import main
    from earmark.data.ray_prepare import check_reachable
    from earmark.errors import ConfigError

    write_tone(tmp_path / "tones" / "low" / "00000000_nohash_0.wav", 0.2, 8000, 300.0)
    config = tmp_path / "tones.toml"
    config.write_text(f'[data]\nroot = "{tmp_path / "tones"}"\nsample_rate = 8000\n'
                      f'cache_dir = "{tmp_path / "cache"}"\n')
    for options, message in ((["--shard-recordings", "0"], "--shard-recordings 0"),
                             (["--cpus", "0"], "--cpus 0"),
                             (["--cpus", "2", "--address", "auto"], "only without --address"),
                             (["--address", " "], "--address is empty")):
        assert main(["prepare", str(config), "--engine", "ray", *options]) == 2
        assert message in capsys.readouterr().err
    with pytest.raises(ConfigError, match="cannot reach the Ray cluster at 127.0.0.1:1"):
        check_reachable("127.0.0.1:1")                    # refused at once, not retried
    with pytest.raises(ConfigError, match="HOST:PORT"):
        check_reachable("garbage")
    assert not (tmp_path / "cache").exists()
