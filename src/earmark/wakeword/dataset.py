"""The wake-word training set: synthesized takes of the phrase and of its hard negatives,
synthesized sentences, and the user's real negative recordings, as one manifest.

Labels: the phrase's label (``view_glass``), ``_unknown_`` (everything else
said or heard) and ``_silence_`` (noise only). Synthesized takes are grouped
by voice (voice + variant), real recordings by speaker or file, so a
group-disjoint split keeps voices and speakers on one side.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from earmark import audio
from earmark.data.keywords import UNKNOWN
from earmark.data.manifest import Manifest, Row, group_matcher
from earmark.data.streams import speech_extent
from earmark.data.synth_keywords import KeywordSynthesis, synthesize_keywords
from earmark.data.tts import speech
from earmark.data.voices import ENGINES, Speakers, Voice, available_voices
from earmark.errors import ConfigError, DataError
from earmark.progress import ProgressLike, as_progress
from earmark.wakeword.phrases import (Phrase, carrier_sentences, common_words, phrase_parts,
                                      sound_alikes)

logger = logging.getLogger(__name__)

#: Buckets of speakers that joined negatives are made within (see :func:`joined_negatives`).
JOIN_BUCKETS = 16
#: Recordings longer than this (seconds) are running sound already: not joined.
MAX_JOINED_PART_S = 3.0

#: The two-class manifest written beside a manifest (:func:`two_class_manifest`).
TWO_CLASS_MANIFEST = "manifest_two_classes.csv"

#: The analysis window's bounds, seconds: long enough for the phrase said slowly.
WINDOW_BOUNDS = (1.0, 2.0)


@dataclass
class WakeWordData:
    """How many takes of what."""

    #: takes of the phrase (600 missed "smart mirror" 69% at <= 1 false alarm an hour, 2,000
    #: 29%: README, wake words)
    takes: int = 2000
    hard_negative_takes: int = 600   #: takes of its parts and sound-alikes
    sentences: int = 200             #: synthesized sentences carrying parts and sound-alikes
    joined: int = 600                #: running-speech negatives joined from the real ones
    sound_alikes: int = 12
    negative_dirs: list[str] = field(default_factory=list)   #: real negative recordings
    max_negative_files: int = 2500   #: a random sample of them when there are more
    noise_dir: str = ""              #: background recordings (also cut into _silence_)
    #: Engines besides espeak-ng whose installed voices speak half the takes, and half the
    #: turns of the conversation the threshold is calibrated on (those not installed are
    #: left out with a warning: tools/install-voices installs them).
    engines: tuple[str, ...] = ENGINES
    sample_rate: int = 16000
    seed: int = 0


def window_seconds(phrase: Phrase) -> float:
    """The model's window: the phrase said slowly (110 wpm) plus 0.3 s, within bounds."""
    spoken = speech().synthesize(phrase.text, voice="en-us", rate=110)
    seconds = len(spoken) / speech().sample_rate + 0.3
    return float(np.clip(np.ceil(seconds * 10) / 10, *WINDOW_BOUNDS))


def build_dataset(phrase: Phrase, spec: WakeWordData, out_dir: str | Path,
                  progress: ProgressLike = None) -> tuple[Manifest, dict]:
    """Write every recording under ``out_dir``; return the manifest and what went in it."""
    out_dir = Path(out_dir)
    real = real_negatives(spec.negative_dirs)
    if len(real) > spec.max_negative_files:
        keep = np.random.default_rng(spec.seed + 2).choice(len(real), spec.max_negative_files,
                                                            replace=False)
        real = [real[i] for i in sorted(keep)]
    vocabulary = common_words(phrase.language)
    parts = phrase_parts(phrase, vocabulary[:5000])
    alikes = sound_alikes(phrase, vocabulary[:8000], speech().phonemes, spec.sound_alikes)
    window = window_seconds(phrase)
    extra = extra_voices(spec.engines)
    synthesized = synthesize_keywords(KeywordSynthesis(
        words=[f"{phrase.label}={phrase.text}"], unknown_words=parts + alikes,
        takes_per_word=spec.takes, unknown_takes=spec.hard_negative_takes,
        silence_takes=max(spec.takes // 4, 1), sample_rate=spec.sample_rate,
        clip_seconds=window, rate_wpm=(100, 220), pitch=(20, 90), pitch_range=(20, 90),
        noise_dir=spec.noise_dir, extra_voices=tuple(extra), seed=spec.seed),
        out_dir / "synthesized", progress=progress)
    rng = np.random.default_rng(spec.seed + 1)
    carried = parts + alikes
    per_text = -(-spec.sentences // max(len(carried), 1))            # enough for spec.sentences
    sentences = _sentences(carrier_sentences(carried, rng, per_text), spec,
                           out_dir / "sentences", rng, extra, progress)
    real, joined = joined_negatives(real, spec.joined, out_dir / "joined", spec.sample_rate,
                                    np.random.default_rng(spec.seed + 3))
    manifest = Manifest(list(synthesized) + sentences + real + joined)
    manifest.to_csv(out_dir / "manifest.csv")
    summary = {"window_seconds": window, "parts": parts, "sound_alikes": alikes,
               "label_counts": dict(manifest.label_counts()), "sentences": len(sentences),
               "real_negative_files": len(real), "joined_negatives": len(joined),
               "voices": ["espeak-ng"] + [voice.group for voice in extra]}
    return manifest, summary


def made_negatives(data_dir: str | Path) -> Callable[[str | Path], bool]:
    """Whether a recording of the dataset in ``data_dir`` is a negative made from the
    phrase (its parts and sound-alikes, the sentences carrying them): negatives chosen to
    be hard, as dense as no everyday audio is, so false alarms per hour are not counted
    on them. (The folders are resolved once; manifest paths are absolute already.)"""
    folders = tuple((Path(data_dir) / name).resolve()
                    for name in (f"synthesized/{UNKNOWN}", "sentences"))

    def made(path: str | Path) -> bool:
        absolute = Path(os.path.abspath(path))
        return any(absolute.is_relative_to(folder) for folder in folders)
    return made


def extra_voices(engines: tuple[str, ...]) -> list[Voice]:
    """The installed voices of ``engines``; a warning names each engine that has none."""
    found = available_voices(tuple(engines))
    for engine in engines:
        if not any(voice.engine == engine for voice in found):
            logger.warning("no %s voices here: run tools/install-voices for voices built from "
                           "recordings of people (espeak-ng alone hears real speakers worse)",
                           engine)
    return found


def two_class_manifest(manifest: Path, label: str) -> Path:
    """Beside ``manifest``: the same rows as ``label`` against ``_unknown_`` (silence and
    every negative alike), for models that answer one probability (microWakeWord's)."""
    from earmark.data.manifest import from_csv

    rows = [dataclasses.replace(row, label=row.label if row.label == label else UNKNOWN)
            for row in from_csv(manifest)]
    out = manifest.with_name(TWO_CLASS_MANIFEST)
    Manifest(rows).to_csv(out)
    return out


def real_negatives(folders: list[str]) -> list[Row]:
    """Every audio file under each folder as ``_unknown_``, grouped by speaker or file.

    Raises
    ------
    DataError
        A folder that does not exist or holds no audio.
    """
    rows = []
    match_group = group_matcher("auto")
    for folder in folders:
        root = Path(folder)
        if not root.is_dir():
            raise DataError(f"negative recordings {folder}: no such folder; give folders of "
                            "speech, music or noise without the wake phrase")
        files = [f for f in sorted(root.rglob("*")) if f.is_file() and audio.is_audio_file(f)]
        if not files:
            raise DataError(f"negative recordings {folder}: no audio files in it (looked for "
                            f"{', '.join(audio.AUDIO_EXTENSIONS)}); give a folder of speech, "
                            "music or noise recordings")
        tag = re.sub(r"\W+", "-", root.resolve().name)
        rows += [Row(os.path.abspath(f), UNKNOWN, f"{tag}:{match_group(f)}") for f in files]
    return rows


def joined_negatives(real: list[Row], count: int, folder: Path, sample_rate: int,
                     rng: np.random.Generator) -> tuple[list[Row], list[Row]]:
    """Running sound from short real negatives: 3-6 of them end to end, gaps of 0-150 ms.

    Isolated words teach a model little about running speech, which is what
    it will hear most. Short recordings are dealt into :data:`JOIN_BUCKETS`
    buckets by their group (speaker or file) and regrouped as their bucket;
    each joined recording takes its parts from one bucket and shares its
    group, so a group-disjoint split still never puts one speaker on both
    sides. Returns the real rows (regrouped) and the joined ones.
    """
    if count <= 0:
        return real, []
    buckets: dict[int, list[Row]] = {}
    regrouped = []
    for row in real:
        if audio.info(row.path).duration <= MAX_JOINED_PART_S:
            bucket = zlib.crc32(row.group.encode()) % JOIN_BUCKETS
            row = dataclasses.replace(row, group=f"negatives:{bucket}")
            buckets.setdefault(bucket, []).append(row)
        regrouped.append(row)
    if not buckets:
        return real, []
    names = sorted(buckets)
    sizes = np.array([len(buckets[b]) for b in names], dtype=float)
    rows = []
    for index in range(count):
        bucket = names[rng.choice(len(names), p=sizes / sizes.sum())]
        chosen = rng.choice(len(buckets[bucket]), size=int(rng.integers(3, 7)))
        pieces = []
        for i in chosen:
            clip = audio.load(buckets[bucket][i].path, sample_rate)
            start, end = speech_extent(clip, sample_rate)
            pieces += [clip[start:end] / (np.abs(clip[start:end]).max() + 1e-9),
                       np.zeros(int(rng.uniform(0, 0.15) * sample_rate), np.float32)]
        joined = np.concatenate(pieces) * 10 ** (rng.uniform(-18, -1) / 20)
        path = folder / f"bucket{bucket}_{index}.flac"
        audio.write(path, joined.astype(np.float32), sample_rate)
        rows.append(Row(str(path.resolve()), UNKNOWN, f"negatives:{bucket}"))
    return regrouped, rows


def _sentences(texts: list[str], spec: WakeWordData, folder: Path, rng: np.random.Generator,
               extra: list[Voice], progress: ProgressLike) -> list[Row]:
    """Sentences spoken whole (longer than a window: the training cuts them into windows)."""
    speakers = Speakers("en", spec.sample_rate, extra)
    chosen = [texts[i] for i in rng.permutation(len(texts))][:spec.sentences]
    rows = []
    with as_progress(progress)(len(chosen), "sentences", "sentence") as advance:
        for index, text in enumerate(chosen):
            rate, pitch = int(rng.integers(120, 220)), int(rng.integers(20, 90))
            spoken, group = speakers.say(text, rng, rate, pitch)
            spoken = spoken / (np.abs(spoken).max() + 1e-9) * 10 ** (rng.uniform(-18, -1) / 20)
            safe = re.sub(r"[^\w+-]", "-", group)
            path = folder / f"{safe}_{index}.flac"
            audio.write(path, spoken.astype(np.float32), spec.sample_rate)
            rows.append(Row(str(path.resolve()), UNKNOWN, group))
            advance(1)
    if not rows and texts:
        raise ConfigError("no sentences were synthesized; raise the number of sentences")
    return rows
