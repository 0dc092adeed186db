"""earmark.data.cache: decode once into a memory-mapped store, reopen at once."""

from __future__ import annotations

import os
from dataclasses import replace

import numpy as np
import pytest

from conftest import tone, write_tone
from earmark import audio
from earmark.data import cache
from earmark.data.cache import build_store, store_key
from earmark.data.manifest import Manifest, Row, from_folder
from earmark.errors import AudioError, DataError

RATE = 16000


def build(manifest: Manifest, folder, **options):
    return build_store(manifest, RATE, folder, progress=False, workers=1, **options)


def tone_manifest(folder, count: int = 4, file_rate: int = 8000, seconds: float = 0.05):
    """``count`` tones of different lengths and frequencies at ``file_rate``."""
    rows = []
    for i in range(count):
        path = folder / f"{i:08x}_nohash_0.wav"
        write_tone(path, seconds * (1 + i % 3), file_rate, 200.0 + 50 * i)
        rows.append(Row(str(path), f"c{i % 2}", f"{i:08x}"))
    return Manifest(rows)


def test_store_holds_what_load_returns(class_folder, tmp_path):
    manifest = from_folder(class_folder)
    store = build(manifest, tmp_path / "cache")
    assert len(store) == len(manifest) == len(store.manifest)
    assert store.sample_rate == RATE and store.skipped == []
    assert store.folder.parent == tmp_path / "cache"
    for i, row in enumerate(manifest):
        np.testing.assert_array_equal(store.recording(i), audio.load(row.path, RATE))


def test_store_resamples(tmp_path):
    manifest = tone_manifest(tmp_path / "audio", file_rate=8000)
    store = build(manifest, tmp_path / "cache")
    for i, row in enumerate(manifest):
        expected = audio.load(row.path, RATE)
        assert len(store.recording(i)) == 2 * audio.info(row.path).frames == len(expected)
        np.testing.assert_array_equal(store.recording(i), expected)


def test_second_build_reopens_without_decoding(tmp_path, monkeypatch):
    manifest = tone_manifest(tmp_path / "audio")
    first = build(manifest, tmp_path / "cache")

    def no_decoding(*args, **kwargs):
        raise AssertionError("the store was decoded again")

    monkeypatch.setattr(cache, "decode_into", no_decoding)
    second = build(manifest, tmp_path / "cache")
    assert second.folder == first.folder
    assert os.listdir(tmp_path / "cache") == [first.folder.name]
    for index in range(len(first)):
        np.testing.assert_array_equal(second.recording(index), first.recording(index))
    np.testing.assert_array_equal(second.offsets, first.offsets)


def test_key_changes_with_files_rate_and_segments(tmp_path):
    manifest = tone_manifest(tmp_path / "audio")
    key = store_key(manifest, RATE)
    assert store_key(manifest, RATE) == key
    assert store_key(manifest, 8000) != key
    segmented = Manifest([replace(manifest.rows[0], end=0.01)] + manifest.rows[1:])
    assert store_key(segmented, RATE) != key
    stat = os.stat(manifest.rows[1].path)
    os.utime(manifest.rows[1].path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert store_key(manifest, RATE) != key


def test_touched_file_builds_a_new_store(tmp_path):
    manifest = tone_manifest(tmp_path / "audio")
    first = build(manifest, tmp_path / "cache")
    path = manifest.rows[0].path
    new_samples = write_tone(path, 0.02, 8000, 1234.0)
    second = build(manifest, tmp_path / "cache")
    assert second.folder != first.folder
    assert len(second.recording(0)) == 2 * len(new_samples)
    np.testing.assert_array_equal(second.recording(0), audio.load(path, RATE))


def test_corrupt_file_names_it(tmp_path):
    manifest = tone_manifest(tmp_path / "audio")
    bad = tmp_path / "audio" / "deadbeef_nohash_0.wav"
    bad.write_bytes(b"RIFF" + os.urandom(200))
    rows = manifest.rows + [Row(str(bad), "c0", "deadbeef")]
    with pytest.raises(AudioError, match="(?s)deadbeef_nohash_0.wav.*skip_bad_files"):
        build(Manifest(rows), tmp_path / "cache")


def test_failed_build_leaves_no_partial_folder(tmp_path):
    manifest = tone_manifest(tmp_path / "audio")
    missing = Row(str(tmp_path / "audio" / "gone.wav"), "c0", "gone")
    with pytest.raises(AudioError, match="gone.wav"):
        build(Manifest(manifest.rows + [missing]), tmp_path / "cache")
    assert os.listdir(tmp_path / "cache") == []


def test_skip_bad_files(tmp_path):
    manifest = tone_manifest(tmp_path / "audio")
    empty = tmp_path / "audio" / "empty.wav"
    empty.write_bytes(b"")
    rows = manifest.rows[:2] + [Row(str(empty), "c0", "x")] + manifest.rows[2:]
    store = build(Manifest(rows), tmp_path / "cache", skip_bad_files=True)
    assert [path for path, _ in store.skipped] == [str(empty)]
    assert "empty" in store.skipped[0][1]
    assert store.manifest.rows == manifest.rows
    assert len(store) == len(manifest)
    for i, row in enumerate(store.manifest):
        np.testing.assert_array_equal(store.recording(i), audio.load(row.path, RATE))
    # Reopened, the store still lists and leaves out the bad file.
    again = build(Manifest(rows), tmp_path / "cache", skip_bad_files=True)
    assert again.folder == store.folder
    assert again.skipped == store.skipped and again.manifest.rows == manifest.rows


def test_all_files_bad(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"nonsense")
    with pytest.raises(DataError, match="none of the 1 files.*bad.wav"):
        build(Manifest([Row(str(bad), "x", "g")]), tmp_path / "cache", skip_bad_files=True)
    assert os.listdir(tmp_path / "cache") == []


def test_empty_manifest():
    with pytest.raises(DataError, match="empty"):
        build_store(Manifest([]), RATE, "unused", progress=False)


def test_window_pads_with_zeros(tmp_path):
    path = tmp_path / "ramp.wav"
    ramp = np.linspace(-0.5, 0.5, 100, dtype=np.float32)
    audio.write(path, ramp, RATE, subtype="FLOAT")
    store = build(Manifest([Row(str(path), "x", "g")]), tmp_path / "cache")
    clip = store.recording(0)
    np.testing.assert_array_equal(clip, ramp)
    np.testing.assert_array_equal(store.window(0, 10, 20), ramp[10:30])
    np.testing.assert_array_equal(store.window(0, 0, 100), ramp)
    before = store.window(0, -5, 20)            # 5 zeros, then the first 15 samples
    np.testing.assert_array_equal(before, np.r_[np.zeros(5), ramp[:15]])
    after = store.window(0, 90, 20)             # the last 10 samples, then 10 zeros
    np.testing.assert_array_equal(after, np.r_[ramp[90:], np.zeros(10)])
    both = store.window(0, -10, 120)            # longer than the recording
    np.testing.assert_array_equal(both, np.r_[np.zeros(10), ramp, np.zeros(10)])
    np.testing.assert_array_equal(store.window(0, 150, 8), np.zeros(8))
    np.testing.assert_array_equal(store.window(0, -30, 8), np.zeros(8))
    np.testing.assert_array_equal(store.window(0, -12, 8), np.zeros(8))
    np.testing.assert_array_equal(store.window(0, -8, 8), np.zeros(8))
    np.testing.assert_array_equal(store.window(0, -7, 8), np.r_[np.zeros(7), ramp[:1]])
    for window in (before, after, both):
        assert window.dtype == np.float32 and len(window) in (20, 120)


def test_segments_decode_only_their_part(tmp_path):
    path = tmp_path / "long.wav"
    samples = tone(1.0, RATE, 440.0)
    audio.write(path, samples, RATE, subtype="FLOAT")
    rows = [Row(str(path), "a", "g", start=0.25, end=0.5),
            Row(str(path), "b", "g", start=0.75),
            Row(str(path), "c", "g", end=0.1)]
    store = build(Manifest(rows), tmp_path / "cache")
    np.testing.assert_array_equal(store.recording(0), samples[4000:8000])
    np.testing.assert_array_equal(store.recording(1), samples[12000:])
    np.testing.assert_array_equal(store.recording(2), samples[:1600])


def test_segment_outside_the_recording(tmp_path):
    path = tmp_path / "short.wav"
    write_tone(path, 0.5, RATE, 440.0)
    rows = [Row(str(path), "a", "g", start=0.2, end=0.9)]
    with pytest.raises(AudioError, match="short.wav.*segment 0.2-0.9 s lies outside"):
        build(Manifest(rows), tmp_path / "cache")


def test_skipped_segment_keeps_the_other_segments_of_its_file(tmp_path):
    path = tmp_path / "short.wav"
    samples = tone(0.5, RATE, 440.0)
    audio.write(path, samples, RATE, subtype="FLOAT")
    rows = [Row(str(path), "a", "g", start=0.0, end=0.1),
            Row(str(path), "b", "g", start=0.4, end=0.9),      # past the end
            Row(str(path), "c", "g", start=0.2, end=0.3)]
    store = build(Manifest(rows), tmp_path / "cache", skip_bad_files=True)
    assert len(store.skipped) == 1
    assert [row.label for row in store.manifest] == ["a", "c"]
    assert len(store) == len(store.manifest)
    np.testing.assert_array_equal(store.recording(1), samples[3200:4800])
    again = build(Manifest(rows), tmp_path / "cache", skip_bad_files=True)
    assert [row.label for row in again.manifest] == ["a", "c"]


def test_segment_of_a_file_at_another_rate(tmp_path):
    path = tmp_path / "slow.wav"
    write_tone(path, 1.0, 8000, 300.0, subtype="FLOAT")
    store = build(Manifest([Row(str(path), "a", "g", start=0.5, end=0.75)]),
                  tmp_path / "cache")
    assert len(store.recording(0)) == 4000


def test_parallel_decoding_matches_serial(tmp_path):
    manifest = tone_manifest(tmp_path / "audio", count=64, seconds=0.01)
    serial = build_store(manifest, RATE, tmp_path / "serial", workers=1, progress=False)
    parallel = build_store(manifest, RATE, tmp_path / "parallel", workers=2, progress=False)
    np.testing.assert_array_equal(parallel.offsets, serial.offsets)
    np.testing.assert_array_equal(parallel.lengths, serial.lengths)
    for index in range(len(serial)):
        np.testing.assert_array_equal(parallel.recording(index), serial.recording(index))



def test_16_bit_sources_are_kept_exact_as_int16_and_others_as_float(tmp_path):
    """16-bit mono at the target rate is stored as it is; resampled audio as float32."""
    import soundfile
    rng = np.random.default_rng(3)
    clip = (rng.standard_normal(4000) * 3000).astype(np.int16)
    soundfile.write(tmp_path / "pcm16.wav", clip, 16000, subtype="PCM_16")
    soundfile.write(tmp_path / "float.wav", clip.astype(np.float32) / 32768, 16000,
                    subtype="FLOAT")
    soundfile.write(tmp_path / "slow.wav", clip, 8000, subtype="PCM_16")
    rows = [Row(str(tmp_path / name), "x", name) for name in ("pcm16.wav", "float.wav",
                                                              "slow.wav")]
    store = build(Manifest(rows), tmp_path / "cache")
    assert store.is_pcm16.tolist() == [True, False, False]
    assert (store.folder / "samples.i16").stat().st_size == 2 * len(clip)
    np.testing.assert_array_equal(store.recording(0), store.recording(1))
    np.testing.assert_array_equal(store.recording(0), audio.load(rows[0].path, 16000))
    assert len(store.recording(2)) == 2 * len(clip)
    np.testing.assert_array_equal(store.window(0, -10, 50)[10:], store.recording(0)[:40])


def test_a_damaged_store_is_named_with_what_to_do(tmp_path):
    manifest = tone_manifest(tmp_path / "audio")
    store = build(manifest, tmp_path / "cache")
    samples = store.folder / "samples.f32"                       # resampled: float32
    samples.write_bytes(samples.read_bytes()[:100])             # truncated
    with pytest.raises(DataError, match="damaged.*delete the folder"):
        build(manifest, tmp_path / "cache")
    (store.folder / "index.json").write_text("{not json")
    with pytest.raises(DataError, match="damaged"):
        build(manifest, tmp_path / "cache")


def test_an_unusable_cache_folder_names_the_setting(tmp_path):
    manifest = tone_manifest(tmp_path / "audio")
    (tmp_path / "a-file").write_text("not a folder")
    with pytest.raises(DataError, match="data.cache_dir .or EARMARK_CACHE."):
        build(manifest, tmp_path / "a-file" / "cache")
