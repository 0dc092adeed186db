"""Mixtures: clips placed sample-exactly, overlaid, cut at the end, written and read back."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from earmark import audio
from earmark.data.manifest import Manifest, Row, from_csv
from earmark.data.mixtures import (MixSpec, PlacedClip, make_mixtures, mix, noise_bed, stretch,
                                   write_mixture)
from earmark.errors import ConfigError, DataError
from earmark.events import read_events

from conftest import tone, write_tone

RATE = 8000


def sources(count: int, seconds: float = 0.4, amplitude: float = 0.5, label: str = "f"):
    """Tones of different pitch, one per source."""
    return [(tone(seconds, RATE, 300.0 + 150 * i, amplitude=amplitude), label, f"s{i}")
            for i in range(count)]


def placed(source: np.ndarray, clip: PlacedClip) -> np.ndarray:
    """What mix() should have put down for ``source`` (before any cut)."""
    return stretch(source, clip.stretch, RATE) * np.float32(10 ** (clip.gain_db / 20))


def test_sequential_placement_is_sample_exact_with_gaps_in_range():
    clips = sources(6)
    spec = MixSpec(duration_s=4.0, gap_s=(0.1, 0.5), gain_db=(-6.0, 0.0),
                   stretch=(0.9, 1.1), sample_rate=RATE, seed=3)
    result = mix(clips, spec)
    assert result.audio.dtype == np.float32 and len(result.audio) == 4 * RATE
    assert result.scaled_by == 1.0 and result.label == "f" and len(result.clips) >= 3
    assert result.events == [clip.event for clip in result.clips]
    by_id = {source_id: samples for samples, _, source_id in clips}
    previous_end = 0
    for clip in result.clips:
        start, end = clip.samples(RATE)
        assert start == clip.event.onset * RATE and end == clip.event.offset * RATE  # exact
        expected = placed(by_id[clip.event.source], clip)[:end - start]
        np.testing.assert_allclose(result.audio[start:end], expected, atol=1e-6)
        assert not result.audio[previous_end:start].any()        # silence before the onset
        assert 0.1 * RATE - 1 <= start - previous_end <= 0.5 * RATE + 1
        assert clip.gain_db <= 0.0 and 0.9 <= clip.stretch <= 1.1
        previous_end = end
    # the sources were used in the given order
    assert [e.source for e in result.events] == [f"s{i}" for i in range(len(result.events))]


def test_a_clip_at_the_start_and_one_cut_at_the_end():
    clips = sources(3, seconds=0.6)
    spec = MixSpec(duration_s=1.0, gap_s=(0.0, 0.0), gain_db=(0.0, 0.0), sample_rate=RATE)
    result = mix(clips, spec)
    first, second = result.events               # the third clip did not fit
    assert first.onset == 0.0 and first.offset == pytest.approx(0.6, abs=1e-12)
    assert second.onset == first.offset and second.offset == 1.0
    np.testing.assert_array_equal(result.audio[:int(0.6 * RATE)], clips[0][0])
    np.testing.assert_array_equal(result.audio[int(0.6 * RATE):], clips[1][0][:int(0.4 * RATE)])


def test_stretch_changes_the_length_by_the_factor():
    clip = tone(0.5, RATE, 440.0)
    for factor in (0.8, 0.93, 1.1, 1.25):
        assert abs(len(stretch(clip, factor, RATE)) - len(clip) * factor) <= 1
    assert stretch(clip, 1.0, RATE) is not None
    spec = MixSpec(duration_s=2.0, gap_s=(0.0, 0.0), stretch=(1.25, 1.25), sample_rate=RATE)
    event = mix(sources(1, seconds=0.4), spec).events[0]
    assert abs(event.duration * RATE - 0.4 * RATE * 1.25) <= 1


def test_simultaneous_mixture_is_the_sum_of_its_clips():
    clips = sources(5, amplitude=0.1)
    spec = MixSpec(duration_s=1.0, mode="simultaneous", max_sources=4, sample_rate=RATE, seed=1)
    result = mix(clips, spec)
    assert len(result.events) == 4 and result.scaled_by == 1.0
    assert all(e.onset == 0.0 for e in result.events)
    total = np.zeros(RATE)
    for clip, (samples, _, _) in zip(sorted(result.clips, key=lambda c: c.event.source), clips):
        start, end = clip.samples(RATE)
        total[start:end] += placed(samples, clip)[:end - start]
    np.testing.assert_allclose(result.audio, total, atol=1e-6)

    spread = mix(clips, MixSpec(duration_s=1.0, mode="simultaneous", start_s=(0.0, 0.8),
                                sample_rate=RATE, seed=1))
    assert len({e.onset for e in spread.events}) == 5
    assert all(e.offset <= 1.0 for e in spread.events)
    assert [e.onset for e in spread.events] == sorted(e.onset for e in spread.events)


def test_loud_sums_are_scaled_down_not_clipped():
    clips = [(tone(0.5, RATE, 440.0, amplitude=0.9), "m", f"s{i}") for i in range(4)]
    spec = MixSpec(duration_s=0.5, mode="simultaneous", gain_db=(0.0, 0.0), sample_rate=RATE)
    result = mix(clips, spec)
    assert result.scaled_by == pytest.approx(1 / (4 * np.abs(clips[0][0]).max()), rel=1e-5)
    assert np.abs(result.audio).max() <= 1.0
    np.testing.assert_allclose(result.audio, 4 * clips[0][0] * result.scaled_by, atol=1e-6)


def test_same_seed_same_mixture_other_seed_other_mixture():
    clips = sources(8, seconds=0.3)
    spec = MixSpec(duration_s=3.0, gap_s=(0.0, 0.5), stretch=(0.9, 1.1), base="noise",
                   sample_rate=RATE, seed=7)
    one, two = mix(clips, spec), mix(clips, spec)
    np.testing.assert_array_equal(one.audio, two.audio)
    assert one.clips == two.clips
    other = mix(clips, MixSpec(**{**spec.__dict__, "seed": 8}))
    assert other.clips != one.clips


def test_noise_bed_under_the_clips():
    rng = np.random.default_rng(0)
    noise = [rng.uniform(-0.5, 0.5, 3 * RATE).astype(np.float32)]
    spec = MixSpec(duration_s=2.0, gap_s=(0.5, 0.5), base="noise", noise_volume=0.1,
                   sample_rate=RATE)
    result = mix(sources(1), spec, noise)
    gap = result.audio[:int(0.5 * RATE)]
    assert gap.any() and np.abs(gap).max() <= 0.05 + 1e-6
    bed = noise_bed(noise, 40 * RATE, RATE, 0.1, np.random.default_rng(5), frequency=0.7)
    silent = np.mean(np.abs(bed.reshape(-1, RATE)).max(axis=1) == 0)
    assert 0.05 < silent < 0.6                    # about 30% of the time without background


def test_written_label_files_read_back_to_the_same_events(tmp_path):
    spec = MixSpec(duration_s=3.0, gap_s=(0.0, 0.7), stretch=(0.9, 1.1), sample_rate=RATE,
                   seed=2)
    result = mix(sources(6, seconds=0.3, label="a,b"), spec)   # a label CSV must quote
    path = write_mixture(tmp_path / "out", "mix", result, RATE)
    assert path == tmp_path / "out" / "mix.flac"
    assert len(audio.load(path)) == len(result.audio)
    for suffix in ("events.csv", "events.json", "labels.txt"):
        back = read_events(tmp_path / "out" / f"mix.{suffix}")
        assert len(back) == len(result.events)
        for got, want in zip(back, result.events):
            assert abs(got.onset - want.onset) <= 1e-6
            assert abs(got.offset - want.offset) <= 1e-6
            assert got.label == want.label
            assert got.source == ("" if suffix == "labels.txt" else want.source)
            assert got.confidence is None
    assert read_events(tmp_path / "out" / "mix.events.json") == result.events   # exact
    lines = (tmp_path / "out" / "mix.events.csv").read_text().splitlines()
    assert lines[0] == "onset,offset,label,source"
    assert all(re.fullmatch(r'\d+\.\d{6},\d+\.\d{6},"a,b",s\d', line) for line in lines[1:])
    for line in (tmp_path / "out" / "mix.labels.txt").read_text().splitlines():
        assert re.fullmatch(r"\d+\.\d{6}\t\d+\.\d{6}\ta,b", line)
    description = json.loads((tmp_path / "out" / "mix.events.json").read_text())
    assert [(e["gain_db"], e["stretch"]) for e in description["events"]] == \
        [(clip.gain_db, clip.stretch) for clip in result.clips]
    assert description["events"][0]["onset_sample"] == result.clips[0].samples(RATE)[0]
    assert not list((tmp_path / "out").glob(".*"))                # no temporary files left


@pytest.fixture
def two_split_manifest(tmp_path) -> Manifest:
    """Speakers f0-f3 (female, 220 Hz) and m0-m3 (male, 110 Hz), two takes each;
    speakers 0-1 in train, 2-3 in test; row labels are the speakers."""
    rows = []
    for gender, frequency in (("f", 220.0), ("m", 110.0)):
        for speaker in range(4):
            for take in range(2):
                path = tmp_path / "clips" / f"{gender}{speaker}_{take}.wav"
                write_tone(path, 0.3, RATE, frequency + 10 * take)
                rows.append(Row(str(path), f"{gender}{speaker}", f"{gender}{speaker}",
                                "train" if speaker < 2 else "test"))
    return Manifest(rows)


def test_make_mixtures_uses_only_the_splits_rows(two_split_manifest, tmp_path):
    def gender(row: Row) -> str:
        return row.group[0]

    spec = MixSpec(duration_s=1.5, gap_s=(0.0, 0.2), sample_rate=RATE, seed=4)
    out = tmp_path / "mixes"
    made = make_mixtures(two_split_manifest, "test", 4, spec, out, label_of=gender)
    test_files = {row.path for row in two_split_manifest if row.split == "test"}
    assert [row.label for row in made] == ["f", "m", "f", "m"]
    assert [row.group for row in made] == [f"mix-test-sequential-{i}" for i in range(4)]
    for row in made:
        events = read_events(row.path.replace(".flac", ".events.json"))
        assert events and {e.source for e in events} <= test_files
        assert {e.label for e in events} == {row.label}
        assert all(e.source.rsplit("/", 1)[1][0] == row.label for e in events)

    make_mixtures(two_split_manifest, "train", 2, spec, out, label_of=gender)
    index = from_csv(out / "mixtures.csv")
    assert sorted(row.split for row in index) == ["test"] * 4 + ["train"] * 2
    assert {row.path for row in index} >= {row.path for row in made}
    again = make_mixtures(two_split_manifest, "test", 4, spec, tmp_path / "again", label_of=gender)
    assert [audio.load(a.path).tolist() for a in again] == [audio.load(m.path).tolist()
                                                            for m in made]


def test_both_modes_share_a_folder_and_a_rerun_replaces_its_own_batch(two_split_manifest,
                                                                      tmp_path):
    def gender(row: Row) -> str:
        return row.group[0]

    out = tmp_path / "mixes"
    sequential = MixSpec(duration_s=1.0, gap_s=(0.0, 0.2), sample_rate=RATE, seed=1)
    simultaneous = MixSpec(duration_s=0.5, mode="simultaneous", sample_rate=RATE, seed=2)
    first = make_mixtures(two_split_manifest, "train", 3, simultaneous, out, label_of=gender)
    first_audio = [audio.load(row.path).tolist() for row in first]
    make_mixtures(two_split_manifest, "train", 2, sequential, out, label_of=gender)
    assert [audio.load(row.path).tolist() for row in first] == first_audio
    index = from_csv(out / "mixtures.csv")
    assert len(index) == 5 and len({row.path for row in index}) == 5
    make_mixtures(two_split_manifest, "train", 1, sequential, out, label_of=gender)
    assert sorted(row.group for row in from_csv(out / "mixtures.csv")) == [
        "mix-train-sequential-0", "mix-train-simultaneous-0", "mix-train-simultaneous-1",
        "mix-train-simultaneous-2"]


def test_make_mixtures_simultaneous_draws_within_the_source_range(two_split_manifest, tmp_path):
    spec = MixSpec(duration_s=0.5, mode="simultaneous", min_sources=2, max_sources=3,
                   sample_rate=RATE)
    made = make_mixtures(two_split_manifest, "train", 2, spec, tmp_path / "sim",
                         label_of=lambda row: row.group[0], order="random")
    for row in made:
        events = read_events(row.path.replace(".flac", ".events.csv"))
        assert 2 <= len(events) <= 3 and {e.label for e in events} == {row.label}


def test_bad_settings_and_missing_splits_are_clear_errors(two_split_manifest, tmp_path):
    with pytest.raises(ConfigError, match="mode"):
        MixSpec(mode="parallel")
    with pytest.raises(ConfigError, match="gap_s"):
        MixSpec(gap_s=(2.0, 1.0))
    with pytest.raises(ConfigError, match="min_sources"):
        MixSpec(max_sources=2)
    with pytest.raises(DataError, match="validation"):
        make_mixtures(two_split_manifest, "validation", 1, MixSpec(sample_rate=RATE), tmp_path)
    with pytest.raises(DataError, match="mono"):
        mix([(np.zeros((10, 2), np.float32), "a", "x")], MixSpec(sample_rate=RATE))
