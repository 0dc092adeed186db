"""Synthesized keyword datasets: determinism, voice-disjoint splits, clip format."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile

pytest.importorskip("espeakng_loader")

from earmark.data.manifest import from_csv  # noqa: E402
from earmark.data.splits import leaked_groups, split_by_group  # noqa: E402
from earmark.data.synth_keywords import KeywordSynthesis, synthesize_keywords  # noqa: E402
from earmark.errors import ConfigError  # noqa: E402


def small(**overrides) -> KeywordSynthesis:
    return KeywordSynthesis(**{"words": ["yes", "stop"], "unknown_words": ["cat", "tree"],
                               "takes_per_word": 12, "seed": 3, **overrides})


def test_dataset_layout_and_clips(tmp_path):
    manifest = synthesize_keywords(small(), tmp_path / "data", progress=False)
    assert manifest.label_counts() == {"yes": 12, "stop": 12, "_unknown_": 12, "_silence_": 12}
    assert from_csv(tmp_path / "data" / "manifest.csv").rows == manifest.rows
    for row in manifest.rows[::7]:
        clip, rate = soundfile.read(row.path, dtype="float32")
        assert rate == 16000 and len(clip) == 16000
        assert 0.005 < np.abs(clip).max() <= 1.0
    speech = [row for row in manifest if row.label == "yes"]
    assert all("+" in row.group for row in speech)          # voice+variant


def test_same_seed_same_audio_other_seed_other_audio(tmp_path):
    first = synthesize_keywords(small(), tmp_path / "a", progress=False)
    again = synthesize_keywords(small(), tmp_path / "b", progress=False)
    other = synthesize_keywords(small(seed=4), tmp_path / "c", progress=False)
    read = lambda m, i: soundfile.read(m.rows[i].path)[0]   # noqa: E731
    assert [r.group for r in first] == [r.group for r in again]
    assert all(np.array_equal(read(first, i), read(again, i)) for i in range(0, 48, 5))
    assert [r.group for r in first] != [r.group for r in other]


def test_group_split_is_voice_disjoint(tmp_path):
    manifest = synthesize_keywords(small(takes_per_word=30), tmp_path / "d", progress=False)
    split = split_by_group(manifest, [0.6, 0.2, 0.2])
    assert leaked_groups(split) == []
    voices = {s: {r.group for r in split if r.split == s} for s in ("train", "test")}
    assert voices["train"] and voices["test"] and not voices["train"] & voices["test"]


def test_bad_word_lists_are_config_errors():
    with pytest.raises(ConfigError, match="at least one word"):
        KeywordSynthesis(words=[])
    with pytest.raises(ConfigError, match="both keywords and unknown"):
        KeywordSynthesis(words=["cat"], unknown_words=["cat"])
