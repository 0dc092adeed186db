"""A keyword dataset from synthesized speech: no recordings, no downloads.

Every take of every word is spoken by espeak-ng (:mod:`earmark.data.tts`)
with a random English voice, variant (male, female, whisper, croak, ...),
pitch, speed and loudness, or (``extra_voices``) by a voice of flite or
festival (:mod:`earmark.data.voices`), and placed at a random point of a 1 s
clip.
``_unknown_`` holds other words, ``_silence_`` noise made on the fly
(coloured noise, mains hum, a murmur of unknown words) or cut from a noise
folder. Each take's voice (voice + variant) is its group, so a
group-disjoint split never hears a test voice in training. The same seed
gives the same files.

Output: ``OUT/<label>/<voice>_<n>.flac`` plus ``OUT/manifest.csv``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from earmark import audio
from earmark.data.manifest import Manifest, Row
from earmark.data.tts import speech, trim_silence
from earmark.data.voices import Voice
from earmark.data.voices import synthesize as synthesize_with
from earmark.data.keywords import SILENCE, UNKNOWN
from earmark.errors import ConfigError
from earmark.input_limits import check_count, check_sample_rate
from earmark.progress import ProgressLike, as_progress
#: The ten Speech Commands keywords.
SPEECH_COMMANDS_WORDS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]
#: The most takes of one word (or of the unknown words, or of silence) a dataset asks for.
MAX_TAKES = 100_000
#: Other words for ``_unknown_`` (the Speech Commands auxiliary words).
DEFAULT_UNKNOWN_WORDS = ["bed", "bird", "cat", "dog", "happy", "house", "marvin", "sheila",
                         "tree", "wow", "forward", "backward", "follow", "learn", "visual"]


@dataclass
class KeywordSynthesis:
    """What to synthesize."""

    words: list[str]
    unknown_words: list[str] = field(default_factory=lambda: list(DEFAULT_UNKNOWN_WORDS))
    takes_per_word: int = 150
    unknown_takes: int | None = None    #: None = as many as one keyword
    silence_takes: int | None = None    #: None = as many as one keyword; 0 = no _silence_
    sample_rate: int = 16000
    clip_seconds: float = 1.0
    pitch: tuple[int, int] = (25, 85)
    #: Intonation range (0 monotone, 50 normal, 100 lively); a range draws one per take.
    pitch_range: tuple[int, int] = (50, 50)
    rate_wpm: tuple[int, int] = (110, 240)
    gain_db: tuple[float, float] = (-18.0, -1.0)
    noise_dir: str = ""             #: cut _silence_ from these recordings instead
    #: Voices of other engines (:mod:`earmark.data.voices`) that speak a share of the takes.
    extra_voices: tuple[Voice, ...] = ()
    extra_share: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.words:
            raise ConfigError("give at least one word to synthesize")
        bad = [w for w in self.words + self.unknown_words
               if not re.fullmatch(r"(\w+=)?[\w' -]+", w)]
        if bad:
            raise ConfigError(f"words must be plain text, got {bad}")
        overlap = sorted(set(self.words) & set(self.unknown_words))
        if overlap:
            raise ConfigError(f"{overlap} are both keywords and unknown words")
        check_count(self.takes_per_word, "takes per keyword (--takes)", 1, MAX_TAKES)
        for count, what in ((self.unknown_takes, "unknown takes"),
                            (self.silence_takes, "silence takes (--silence)")):
            if count is not None:
                check_count(count, what, 0, MAX_TAKES)
        check_sample_rate(self.sample_rate, "sample rate (--rate)")
        if self.noise_dir and not Path(self.noise_dir).is_dir():
            raise ConfigError(f"noise folder {self.noise_dir}: no such folder; give a folder "
                              "of noise recordings, or leave --noise-dir out")


def synthesize_keywords(spec: KeywordSynthesis, out_dir: str | Path,
                        progress: ProgressLike = None) -> Manifest:
    """Write the dataset to ``out_dir`` and return its manifest (also ``manifest.csv``)."""
    out_dir = Path(out_dir)
    rng = np.random.default_rng(spec.seed)
    engine = speech()
    voices = engine.voices("en")
    variants = [v for v in engine.variants() if " " not in v]
    jobs = [_label_and_text(word) for word in spec.words for _ in range(spec.takes_per_word)]
    unknown_takes = spec.takes_per_word if spec.unknown_takes is None else spec.unknown_takes
    if spec.unknown_words:
        jobs += [(UNKNOWN, spec.unknown_words[i % len(spec.unknown_words)])
                 for i in range(unknown_takes)]
    rows = []
    counters: dict[str, int] = {}
    progress = as_progress(progress)
    with progress(len(jobs), "synthesizing", "take") as advance:
        for label, text in jobs:
            speak, group = _draw_speaker(spec, engine, voices, variants, rng)
            clip = _take(speak, text, spec, rng)
            rows.append(_save(out_dir, label, group, clip, spec.sample_rate, counters))
            advance(1)
    silences = spec.takes_per_word if spec.silence_takes is None else spec.silence_takes
    noise = _noise_recordings(spec)
    with progress(silences, "silence", "clip") as advance:
        for index in range(silences):
            clip, kind = _silence(spec, noise, engine, voices, variants, rng)
            # Each silence clip is its own group: a split may put any of them anywhere.
            rows.append(_save(out_dir, SILENCE, f"{kind}-{index}", clip, spec.sample_rate,
                              counters))
            advance(1)
    manifest = Manifest(rows)
    manifest.to_csv(out_dir / "manifest.csv", relative=True)
    return manifest


def _label_and_text(word: str) -> tuple[str, str]:
    """``"7=seven"`` is the label 7 spoken as "seven"; a plain word is its own label."""
    label, _, text = word.partition("=")
    return (label, text) if text else (word, word)


def _draw_speaker(spec: KeywordSynthesis, engine, voices, variants,
                  rng: np.random.Generator) -> tuple[Callable, str]:
    """A random speaker, as ``speak(text, rate, pitch, intonation)`` and its group.

    Another engine's voice speaks ``extra_share`` of the takes; with none given
    the draws are exactly those of an espeak-only dataset (same seed, same files).
    """
    if spec.extra_voices and rng.random() < spec.extra_share:
        other = spec.extra_voices[rng.integers(len(spec.extra_voices))]

        def speak_other(text, rate, pitch, intonation):
            return trim_silence(synthesize_with(other, text, spec.sample_rate, rate, pitch),
                                spec.sample_rate)
        return speak_other, other.group
    voice = voices[rng.integers(len(voices))]
    variant = variants[rng.integers(len(variants))]
    return _espeak_speaker(engine, voice, variant, spec), f"{voice}+{variant}"


def _espeak_speaker(engine, voice: str, variant: str, spec: KeywordSynthesis) -> Callable:
    def speak(text, rate, pitch, intonation):
        spoken = engine.synthesize(text, voice=voice, variant=variant, rate=rate, pitch=pitch,
                                   **intonation)
        return audio.resample(spoken, engine.sample_rate, spec.sample_rate)
    return speak


def _take(speak: Callable, text: str, spec: KeywordSynthesis,
          rng: np.random.Generator) -> np.ndarray:
    """One spoken word, resampled, at a random level and place in the clip."""
    length = int(spec.clip_seconds * spec.sample_rate)
    rate = int(rng.integers(*spec.rate_wpm))
    intonation = {}
    if spec.pitch_range[0] != spec.pitch_range[1]:   # drawn only when asked: same seeds, same data
        intonation["pitch_range"] = int(rng.integers(*spec.pitch_range))
    while True:
        spoken = speak(text, rate, int(rng.integers(*spec.pitch)), intonation)
        if len(spoken) <= length or rate >= 400:
            break
        rate = int(rate * 1.3)              # too long for the clip: say it faster
    spoken = spoken[:length] / (np.abs(spoken).max() + 1e-9)
    spoken *= 10 ** (rng.uniform(*spec.gain_db) / 20)
    clip = np.zeros(length, dtype=np.float32)
    start = int(rng.integers(0, length - len(spoken) + 1))
    clip[start:start + len(spoken)] = spoken
    return clip


def _silence(spec: KeywordSynthesis, noise: list[np.ndarray], engine, voices, variants,
             rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """Background without a keyword: a noise cut, coloured noise, hum, or distant murmur."""
    length = int(spec.clip_seconds * spec.sample_rate)
    level = 10 ** (rng.uniform(-45, -15) / 20)
    kinds = ["coloured", "hum", "murmur"] + (["recording"] * 3 if noise else [])
    kind = kinds[rng.integers(len(kinds))]
    if kind == "recording":
        source = noise[rng.integers(len(noise))]
        start = int(rng.integers(0, max(1, len(source) - length)))
        clip = np.resize(source[start:start + length], length)
        return (clip / (np.abs(clip).max() + 1e-9) * level * 3).astype(np.float32), "noise"
    if kind == "hum":
        t = np.arange(length) / spec.sample_rate
        base = rng.choice([50.0, 60.0])
        clip = sum(np.sin(2 * np.pi * base * k * t + rng.uniform(0, 6.3)) / k for k in range(1, 6))
        clip = clip + 0.3 * rng.standard_normal(length)
    elif kind == "murmur":
        words = [_take(_espeak_speaker(engine, voices[rng.integers(len(voices))],
                                       variants[rng.integers(len(variants))], spec),
                       DEFAULT_UNKNOWN_WORDS[rng.integers(len(DEFAULT_UNKNOWN_WORDS))], spec, rng)
                 for _ in range(3)]
        clip = sum(words) * 0.15 + 0.02 * rng.standard_normal(length)
    else:
        clip = coloured_noise(length, exponent=rng.uniform(0.0, 2.0), rng=rng)
    clip = clip / (np.abs(clip).max() + 1e-9) * level
    return clip.astype(np.float32), kind


def coloured_noise(length: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Noise with power falling as 1/f^exponent (0 white, 1 pink, 2 brown)."""
    spectrum = rng.standard_normal(length // 2 + 1) + 1j * rng.standard_normal(length // 2 + 1)
    frequencies = np.arange(len(spectrum), dtype=np.float64)
    frequencies[0] = 1.0
    return np.fft.irfft(spectrum / frequencies ** (exponent / 2), n=length)


def write_noise_folder(folder: str | Path, seed: int, seconds: float = 30.0,
                       rate: int = 16000) -> Path:
    """A few background recordings made on the fly: white, pink, brown noise and mains hum.

    For training noise where no recordings are at hand; files already there are kept.
    """
    folder = Path(folder)
    rng = np.random.default_rng(seed + 1000)
    length = int(seconds * rate)
    t = np.arange(length) / rate
    sounds = {
        "white": coloured_noise(length, 0.0, rng),
        "pink": coloured_noise(length, 1.0, rng),
        "brown": coloured_noise(length, 2.0, rng),
        "hum": sum(np.sin(2 * np.pi * 50 * k * t) / k for k in range(1, 6))
        + 0.2 * rng.standard_normal(length),
    }
    for name, sound in sounds.items():
        path = folder / f"{name}.flac"
        if not path.is_file():
            audio.write(path, (sound / np.abs(sound).max() * 0.5).astype(np.float32), rate)
    return folder


def _noise_recordings(spec: KeywordSynthesis) -> list[np.ndarray]:
    if not spec.noise_dir:
        return []
    return audio.load_folder(spec.noise_dir, spec.sample_rate, "noise folder")


def _save(out_dir: Path, label: str, group: str, clip: np.ndarray, sample_rate: int,
          counters: dict[str, int]) -> Row:
    safe = re.sub(r"[^\w+-]", "-", group)
    counters[safe] = counters.get(safe, 0) + 1
    path = out_dir / label / f"{safe}_{counters[safe]}.flac"
    audio.write(path, clip, sample_rate)
    return Row(str(path.resolve()), label, group)
