"""Other speech engines (flite, festival): voices listed, speech made, takes mixed in.

Skipped where Debian's flite and festival are not installed (tools/install-voices,
which .ci/run calls, installs them).
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from earmark.data.tts import SpeechError
from earmark.data.voices import Voice, available_voices, synthesize
from earmark.errors import ConfigError

needs_flite = pytest.mark.skipif(shutil.which("flite") is None,
                                 reason="flite is not installed (tools/install-voices)")
needs_festival = pytest.mark.skipif(shutil.which("text2wave") is None,
                                    reason="festival is not installed (tools/install-voices)")
RATE = 16000


@needs_flite
def test_flite_voices_are_listed_once_per_speaker():
    names = [voice.name for voice in available_voices(("flite",))]
    assert {"awb", "rms", "slt"} <= set(names)
    assert "awb_time" not in names and "kal" not in names      # same speakers as others
    assert all(voice.group.startswith("flite+") for voice in available_voices(("flite",)))


def test_unknown_engines_are_refused():
    with pytest.raises(ConfigError, match="piper"):
        available_voices(("piper",))


@needs_flite
def test_flite_speaks_slower_and_higher_when_asked():
    voice = Voice("flite", "slt")
    slow = synthesize(voice, "seven", RATE, rate_wpm=100)
    fast = synthesize(voice, "seven", RATE, rate_wpm=250)
    assert len(slow) > 1.6 * len(fast)
    librosa = pytest.importorskip("librosa")
    low, high = (synthesize(voice, "hello there", RATE, pitch=p) for p in (10, 90))
    f0 = [np.nanmedian(librosa.pyin(x, fmin=50, fmax=500, sr=RATE)[0]) for x in (low, high)]
    assert f0[1] > 1.3 * f0[0], f"median pitch {f0[0]:.0f} Hz -> {f0[1]:.0f} Hz"


@needs_festival
def test_festival_speaks_with_its_installed_voices():
    voices = available_voices(("festival",))
    assert voices, "festival is installed but none of its English voices is"
    spoken = synthesize(voices[0], "view glass", RATE)
    assert 0.3 < len(spoken) / RATE < 3.0 and np.abs(spoken).max() > 0.05


def test_a_missing_program_is_named(monkeypatch):
    monkeypatch.setenv("PATH", "")
    with pytest.raises(SpeechError, match="tools/install-voices"):
        synthesize(Voice("flite", "slt"), "hello", RATE)


@needs_flite
def test_keyword_takes_mix_engines_and_keep_voices_apart(tmp_path):
    from earmark.data.synth_keywords import KeywordSynthesis, synthesize_keywords

    extra = tuple(available_voices(("flite",)))
    spec = KeywordSynthesis(words=["yes"], unknown_words=["cat"], takes_per_word=30,
                            silence_takes=0, extra_voices=extra, seed=1)
    manifest = synthesize_keywords(spec, tmp_path / "mixed", progress=False)
    groups = [row.group for row in manifest]
    flite = [g for g in groups if g.startswith("flite+")]
    assert 15 <= len(flite) <= 45, "about half the takes should be flite's"
    assert len(set(flite)) >= 2 and all(g in {v.group for v in extra} for g in flite)
    plain = synthesize_keywords(KeywordSynthesis(words=["yes"], unknown_words=["cat"],
                                                 takes_per_word=30, silence_takes=0, seed=1),
                                tmp_path / "plain", progress=False)
    assert not any(row.group.startswith("flite+") for row in plain)


@needs_flite
def test_conversation_turns_mix_engines_for_english_phrases_only(monkeypatch):
    pytest.importorskip("wordfreq")
    from earmark.data import voices
    from earmark.wakeword import conversation
    from earmark.wakeword.phrases import check_phrase

    spoken_by = []

    def heard(voice, text, *args):
        spoken_by.append(voice.group)
        return synthesize(voice, text, *args)

    monkeypatch.setattr(voices, "synthesize", heard)
    english = check_phrase("view glass")

    def talk(phrase, engines, seed=0):
        return np.concatenate(list(conversation.running_speech(phrase, 2.0, RATE, [], seed,
                                                               engines)))

    mixed = talk(english, ("flite",))
    turns = len(spoken_by)
    assert turns >= 2 and all(group.startswith("flite+") for group in spoken_by)
    assert len(mixed) == 120 * RATE
    del spoken_by[:]
    assert np.array_equal(talk(english, ("flite",)), mixed)       # seeded: the same talk
    assert len(spoken_by) == turns
    del spoken_by[:]
    assert not np.array_equal(talk(english, ()), mixed)           # espeak-ng alone: other talk
    talk(check_phrase("guten morgen", "de"), ("flite",))          # English voices, German words
    assert spoken_by == []
