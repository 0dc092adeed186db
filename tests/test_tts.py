"""Tests for earmark.data.tts: espeak-ng speech through espeakng-loader."""

from __future__ import annotations

import ctypes
import subprocess
import sys
import threading

import numpy as np
import pytest

from earmark.data import tts
from earmark.errors import ConfigError, EarmarkError

espeakng_loader = pytest.importorskip("espeakng_loader")

RATE = 22050


@pytest.fixture(scope="module")
def speech() -> tts.Speech:
    return tts.speech()


def fundamental(audio: np.ndarray, sample_rate: int, low: float = 60.0,
                high: float = 400.0) -> float:
    """F0 in Hz of the middle 100 ms, from the autocorrelation's highest peak."""
    middle = audio.size // 2
    frame = audio[middle - sample_rate // 20: middle + sample_rate // 20].astype(np.float64)
    frame = frame - frame.mean()
    correlation = np.correlate(frame, frame, mode="full")[frame.size - 1:]
    shortest, longest = int(sample_rate / high), int(sample_rate / low)
    lag = shortest + int(np.argmax(correlation[shortest:longest]))
    return sample_rate / lag


def test_yes_is_plausible_trimmed_speech(speech):
    audio = speech.synthesize("yes")
    assert speech.sample_rate == RATE
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert 0.2 <= audio.size / RATE <= 1.5
    assert np.isfinite(audio).all()
    peak = np.abs(audio).max()
    assert 0.05 < peak <= 1.0
    edge = int(0.005 * RATE)
    floor = peak * 10 ** (-50 / 20)
    assert np.abs(audio[:edge]).max() <= floor
    assert np.abs(audio[-edge:]).max() <= floor
    # Trimmed to the word: loud right after the kept 10 ms margins.
    margin = int(0.010 * RATE)
    assert np.abs(audio[margin:margin + edge]).max() > floor
    assert np.abs(audio[-margin - edge:-margin]).max() > floor


@pytest.mark.parametrize("variant", [None, "whisper", "klatt", "f2", "croak"])
def test_same_arguments_give_identical_samples(speech, variant):
    first = speech.synthesize("left", variant=variant, pitch=60)
    speech.synthesize("something else entirely", voice="en-gb", variant="whisper")
    np.testing.assert_array_equal(speech.synthesize("left", variant=variant, pitch=60), first)


def test_identical_even_with_the_library_loaded_elsewhere(speech):
    # Another package holding libespeak-ng and speaking with it must not
    # disturb our takes: we synthesise in a private copy.
    first = speech.synthesize("stop")
    other = ctypes.CDLL(espeakng_loader.get_library_path())
    other.espeak_Initialize(tts._AUDIO_OUTPUT_SYNCHRONOUS, 0,
                            espeakng_loader.get_data_path().encode(), tts._INITIALIZE_DONT_EXIT)
    other.espeak_Synth(b"hello", 6, 0, 1, 0, 1, None, None)
    other.espeak_Terminate()
    np.testing.assert_array_equal(speech.synthesize("stop"), first)


@pytest.mark.parametrize("change", [dict(voice="en-gb"), dict(variant="f3"),
                                    dict(variant="whisper"), dict(pitch=80),
                                    dict(rate=250), dict(pitch_range=0)])
def test_each_setting_changes_the_audio(speech, change):
    reference = speech.synthesize("go")
    changed = speech.synthesize("go", **change)
    assert changed.size != reference.size or not np.array_equal(changed, reference)


def test_higher_rate_is_shorter(speech):
    slow = speech.synthesize("yes please", rate=120)
    fast = speech.synthesize("yes please", rate=300)
    assert fast.size < 0.75 * slow.size


def test_higher_pitch_raises_the_fundamental(speech):
    low = fundamental(speech.synthesize("aaa", pitch=10, pitch_range=0), RATE)
    high = fundamental(speech.synthesize("aaa", pitch=90, pitch_range=0), RATE)
    assert 60 < low < high < 400
    assert high > 1.3 * low


def test_voices_and_variants_are_listed(speech):
    voices = speech.voices("en")
    assert len(voices) >= 5 and voices == sorted(voices)
    assert {"en-us", "en-gb"} <= set(voices)
    assert all(voice.startswith("en") for voice in voices)
    assert len(speech.voices("")) > len(voices)
    variants = speech.variants()
    assert len(variants) >= 10 and variants == sorted(variants)
    assert {"m1", "m3", "f1", "f2", "whisper"} <= set(variants)


def test_every_english_voice_speaks(speech):
    for voice in speech.voices("en"):
        assert speech.synthesize("go", voice=voice).size > 0.1 * RATE, voice


@pytest.mark.parametrize("arguments, message", [
    (dict(text="yes", voice="elvish"), "unknown espeak-ng voice 'elvish'"),
    (dict(text="yes", variant="m99"), "unknown espeak-ng voice variant 'm99'"),
    (dict(text="yes", voice="en-us+f3"), "give the variant separately"),
    (dict(text=""), "text is empty"),
    (dict(text="  \n"), "text is empty"),
    (dict(text="yes", rate=500), "rate=500 is out of range"),
    (dict(text="yes", rate=79), "rate=79 is out of range"),
    (dict(text="yes", pitch=-1), "pitch=-1 is out of range"),
    (dict(text="yes", pitch_range=101), "pitch_range=101 is out of range"),
    (dict(text="yes", rate="fast"), "rate must be a number"),
])
def test_bad_arguments_raise_clear_errors(speech, arguments, message):
    with pytest.raises(ConfigError, match=message):
        speech.synthesize(**arguments)


def test_unknown_voice_message_lists_some(speech):
    with pytest.raises(EarmarkError, match="en-us"):
        speech.synthesize("yes", voice="xx")
    with pytest.raises(EarmarkError, match="whisper"):
        speech.synthesize("yes", variant="xx")


def test_text_without_sound_raises(speech):
    with pytest.raises(tts.SpeechError, match="no sound"):
        speech.synthesize("...")


def test_missing_library_or_data_says_how_to_get_it(tmp_path):
    data = espeakng_loader.get_data_path()
    with pytest.raises(tts.SpeechError, match="pip install espeakng-loader"):
        tts.Speech(library_path=str(tmp_path / "libespeak-ng.so"), data_path=data).synthesize("yes")
    broken = tmp_path / "libespeak-ng.so"
    broken.write_bytes(b"not a library")
    with pytest.raises(tts.SpeechError, match=r"libespeak-ng\.so: cannot load"):
        tts.Speech(library_path=str(broken), data_path=data).synthesize("yes")
    with pytest.raises(tts.SpeechError, match="not an espeak-ng-data folder"):
        tts.Speech(data_path=str(tmp_path)).synthesize("yes")


def test_concurrent_threads_match_sequential(speech):
    words = ["up", "down", "left", "right"]
    expected = {word: speech.synthesize(word, variant="f1") for word in words}
    results: dict[str, list[np.ndarray]] = {word: [] for word in words}

    def work(word: str) -> None:
        for _ in range(3):
            results[word].append(speech.synthesize(word, variant="f1"))

    threads = [threading.Thread(target=work, args=(word,)) for word in words]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for word in words:
        assert len(results[word]) == 3
        for audio in results[word]:
            np.testing.assert_array_equal(audio, expected[word])


def test_shared_instance():
    assert tts.speech() is tts.speech()


def test_does_not_import_torch():
    code = "import sys, earmark.data.tts; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
