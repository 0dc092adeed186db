"""Speech synthesizers besides espeak-ng: Debian's flite and festival.

espeak-ng (:mod:`earmark.data.tts`) is the install-free default: hundreds of
accent x variant combinations, but formant synthesis that sounds like no
person. flite's voices (``awb``, ``rms``, ``slt``: CMU ARCTIC speakers, and
``kal``) and festival's (``kal_diphone``, ``ked_diphone``, the HTS voice
``cmu_us_slt_arctic_hts``) are built from recordings of real speakers, so a
model trained on them has heard something closer to people. They install
with ``tools/install-voices`` (Debian's ``flite``, ``festival`` and festvox
packages); :func:`available_voices` lists what this machine has.

Each voice is one speaker: its takes share a group, so a group-disjoint
split never hears a test voice in training. The programs run as
subprocesses with the text as an argument or on stdin (never through a
shell) and write a WAV to a temporary folder.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from earmark import audio
from earmark.errors import ConfigError
from earmark.data.tts import SpeechError, speech

#: The engines :func:`available_voices` knows, besides espeak-ng.
ENGINES = ("flite", "festival")
#: Festival's English voices in Debian (``voice_<name>`` in Scheme).
FESTIVAL_VOICES = ("kal_diphone", "ked_diphone", "cmu_us_slt_arctic_hts")
FESTIVAL_VOICE_DIRS = (Path("/usr/share/festival/voices"),)
#: flite voices that are the same speaker as another at a lower rate (``kal`` at 8 kHz)
#: or a timing variant (``awb_time``).
FLITE_DUPLICATES = {"kal", "awb_time"}
#: A synthesis that takes longer than this is stopped (seconds).
TIMEOUT_S = 60


@dataclass(frozen=True)
class Voice:
    """One speaker of one engine."""

    engine: str
    name: str

    @property
    def group(self) -> str:
        """The take's group in a manifest: ``flite+slt``."""
        return f"{self.engine}+{self.name}"


def available_voices(engines: tuple[str, ...] = ENGINES) -> list[Voice]:
    """The voices of each engine installed here (none for an engine that is absent)."""
    unknown = sorted(set(engines) - set(ENGINES))
    if unknown:
        raise ConfigError(f"unknown speech engine(s) {unknown}; choose from espeak, "
                          f"{', '.join(ENGINES)}")
    voices = []
    if "flite" in engines:
        voices += [Voice("flite", name) for name in _flite_voices()]
    if "festival" in engines:
        voices += [Voice("festival", name) for name in _festival_voices()]
    return voices


def synthesize(voice: Voice, text: str, sample_rate: int, rate_wpm: int = 175,
               pitch: int = 50) -> np.ndarray:
    """``text`` spoken by ``voice``: float32 mono at ``sample_rate`` Hz.

    ``rate_wpm`` (words per minute, 175 normal) stretches the durations;
    ``pitch`` (0-100, 50 the voice's own) moves flite's mean pitch by up to
    +/-25% (further, its voices stop sounding human); festival keeps its voices' pitch.

    Raises
    ------
    SpeechError
        The program is missing, fails, or stays silent.
    """
    if not text.strip() or "\0" in text:
        raise ConfigError(f"text {text!r} is empty or holds a NUL character")
    stretch = float(np.clip(175.0 / max(rate_wpm, 1), 0.4, 2.5))
    with tempfile.TemporaryDirectory(prefix="earmark-voice-") as folder:
        out = Path(folder) / "take.wav"
        if voice.engine == "flite":
            command = ["flite", "-voice", voice.name, "-t", text, "-o", str(out),
                       "--setf", f"duration_stretch={stretch:.3f}"]
            if pitch != 50:
                command += ["--setf", f"int_f0_target_mean={_flite_pitch(voice, pitch):.1f}"]
            _run(command, None, voice)
        elif voice.engine == "festival":
            command = ["text2wave", "-eval", f"(voice_{voice.name})", "-eval",
                       f"(Parameter.set 'Duration_Stretch {stretch:.3f})", "-o", str(out)]
            _run(command, text, voice)
        else:
            raise ConfigError(f"voice {voice}: unknown engine {voice.engine!r}")
        samples = audio.load(out, sample_rate)
    if samples.size == 0 or not np.any(samples):
        raise SpeechError(f"{voice.group} produced no sound for {text!r}")
    return samples


class Speakers:
    """espeak-ng's voices and variants of a language, and other engines' voices: one
    drawn for each sentence said, the others' for ``others_share`` of them."""

    def __init__(self, language: str, sample_rate: int, others: list[Voice],
                 others_share: float = 0.5):
        self.engine = speech()
        self.voices = self.engine.voices(language)
        self.variants = [v for v in self.engine.variants() if " " not in v]
        self.others, self.others_share = others, others_share
        self.sample_rate = sample_rate

    def say(self, text: str, rng: np.random.Generator, rate_wpm: int,
            pitch: int) -> tuple[np.ndarray, str]:
        """``text`` in a voice drawn with ``rng``, at ``sample_rate``, and the voice's group
        (``flite+slt``, ``en-us+f2``)."""
        if self.others and rng.random() < self.others_share:
            voice = self.others[rng.integers(len(self.others))]
            return synthesize(voice, text, self.sample_rate, rate_wpm, pitch), voice.group
        voice = self.voices[rng.integers(len(self.voices))]
        variant = self.variants[rng.integers(len(self.variants))]
        spoken = self.engine.synthesize(text, voice=voice, variant=variant, rate=rate_wpm,
                                        pitch=pitch)
        return (audio.resample(spoken, self.engine.sample_rate, self.sample_rate),
                f"{voice}+{variant}")


def _run(command: list[str], stdin: str | None, voice: Voice) -> None:
    if shutil.which(command[0]) is None:
        raise SpeechError(f"{command[0]} is not installed; run tools/install-voices "
                          "(Debian's flite, festival and festvox voices)")
    try:
        subprocess.run(command, input=stdin, text=True, capture_output=True, check=True,
                       timeout=TIMEOUT_S)
    except subprocess.CalledProcessError as error:
        raise SpeechError(f"{voice.group} failed ({error.stderr.strip()[:200]})") from error
    except subprocess.TimeoutExpired as error:
        raise SpeechError(f"{voice.group} took over {TIMEOUT_S} s") from error


def _flite_pitch(voice: Voice, pitch: int) -> float:
    """The mean pitch in Hz for a 0-100 setting, around the voice's own."""
    own = 170.0 if voice.name == "slt" else 110.0
    return own * (0.75 + 0.5 * pitch / 100.0)


@functools.lru_cache(maxsize=None)
def _flite_voices() -> tuple[str, ...]:
    if shutil.which("flite") is None:
        return ()
    listed = subprocess.run(["flite", "-lv"], capture_output=True, text=True,
                            timeout=TIMEOUT_S).stdout
    names = listed.split(":", 1)[-1].split()
    return tuple(name for name in names if name not in FLITE_DUPLICATES)


@functools.lru_cache(maxsize=None)
def _festival_voices() -> tuple[str, ...]:
    if shutil.which("text2wave") is None:
        return ()
    installed = {path.name for folder in FESTIVAL_VOICE_DIRS if folder.is_dir()
                 for path in folder.glob("*/*") if path.is_dir()}
    return tuple(name for name in FESTIVAL_VOICES if name in installed)
