"""Synthesized running speech: the conversation the threshold is calibrated against.

A wake word's false alarms come from running speech (conversation, television),
which the held-out validation stream (the phrase's synthesized takes among
isolated words, environmental sounds and digits) hardly holds: a threshold
calibrated on that stream alone ranged from far too low (53 false alarms an
hour on real conversation) to far too high (98% of real speakers missed) from
one training to the next. Here speakers take turns of one to three sentences of
common words (the phrase's own words left out, as Picovoice's benchmark leaves
out background speech that holds them) at random speeds and pitches, with
pauses, over the background noise at 10-20 dB SNR: espeak-ng's English voices
and variants, and for an English phrase, half of the turns, the installed
voices of flite and festival (:mod:`earmark.data.voices`), built from
recordings of people, which set a wake word off more often than espeak-ng's
do, as real speech does (README: the stored threshold).
Making and hearing two hours takes about two minutes on 2 cores (one with
espeak-ng alone); :func:`conversation_false_alarms` scores them in ten-minute
pieces, so memory stays bounded.
"""

from __future__ import annotations

from typing import Callable, Iterator, Sequence

import numpy as np

from earmark.calibrate import ThresholdSweep
from earmark.data.voices import Speakers, available_voices
from earmark.wakeword.phrases import Phrase, common_words

#: Two hours: a rate of one false alarm an hour rests on more than one passage.
CONVERSATION_MINUTES = 120.0
PIECE_SECONDS = 600.0
#: Sentences draw from this many of the language's most common words, Zipf-like.
VOCABULARY = 3000
WORDS_PER_SENTENCE = (6, 25)
#: A speaker's turn: this many sentences (the upper bound excluded) in one voice.
SENTENCES_PER_TURN = (1, 4)
PAUSE_S = (0.2, 1.2)
SNR_DB = (10.0, 20.0)
LEVEL_DB = (-18.0, -3.0)
SPEED_WPM = (130, 210)
PITCH = (20, 90)


def running_speech(phrase: Phrase, minutes: float, sample_rate: int, noise: Sequence[np.ndarray],
                   seed: int, engines: tuple[str, ...] = ()) -> Iterator[np.ndarray]:
    """Pieces of about :data:`PIECE_SECONDS` of synthesized conversation, ``minutes`` in all;
    ``engines`` (``flite``, ``festival``): whose installed voices speak half the turns of
    an English phrase's conversation (none installed: espeak-ng alone)."""
    rng = np.random.default_rng(seed)
    excluded = {word.lower() for word in phrase.words}
    words = [w for w in common_words(phrase.language)[:VOCABULARY] if w not in excluded]
    language = phrase.language.split("-")[0]
    others = available_voices(engines) if language == "en" and engines else []
    speakers = Speakers(language, sample_rate, others)
    bed = np.concatenate(list(noise)) if len(noise) else np.zeros(sample_rate, np.float32)
    left = int(minutes * 60 * sample_rate)
    while left > 0:
        piece = _turns(min(left, int(PIECE_SECONDS * sample_rate)), words, speakers, rng)
        left -= len(piece)
        yield _over_noise(piece, bed, rng)


def _turns(length: int, words: list[str], speakers: Speakers,
           rng: np.random.Generator) -> np.ndarray:
    """Speakers' turns and pauses until ``length`` samples (the last turn cut there)."""
    parts, total = [], 0
    while total < length:
        sentences = []
        for _ in range(int(rng.integers(*SENTENCES_PER_TURN))):
            count = int(rng.integers(*WORDS_PER_SENTENCE))
            ranks = np.minimum((rng.pareto(1.0, count) * 30).astype(int), len(words) - 1)
            sentences.append(" ".join(words[i] for i in ranks))
        # One call a turn: festival's start-up costs more than a few sentences do.
        rate, pitch = int(rng.integers(*SPEED_WPM)), int(rng.integers(*PITCH))
        spoken, _ = speakers.say(". ".join(sentences), rng, rate, pitch)
        level = 10 ** (rng.uniform(*LEVEL_DB) / 20) / (np.abs(spoken).max() + 1e-9)
        pause = np.zeros(int(rng.uniform(*PAUSE_S) * speakers.sample_rate), np.float32)
        parts += [(spoken * level).astype(np.float32), pause]
        total += len(spoken) + len(pause)
    return np.concatenate(parts)[:length]


def _over_noise(piece: np.ndarray, bed: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The background noise under the speech at a random SNR."""
    noise = np.resize(np.roll(bed, -int(rng.integers(len(bed)))), len(piece))
    voiced = piece[np.abs(piece) > 1e-3]
    power = np.mean(voiced ** 2) if voiced.size else 1e-6
    noise = noise * np.sqrt(power / (np.mean(noise ** 2) + 1e-12)
                            / 10 ** (rng.uniform(*SNR_DB) / 10))
    return np.clip(piece + noise, -1, 1).astype(np.float32)


def conversation_false_alarms(scored: Callable, count_false_alarms: Callable,
                              thresholds: Sequence[float], phrase: Phrase, minutes: float,
                              sample_rate: int, noise: Sequence[np.ndarray],
                              seed: int, engines: tuple[str, ...] = ()) -> ThresholdSweep:
    """``scored(samples, truth)`` (a StreamRun) on each piece of the conversation, and
    ``count_false_alarms(run)`` (``{threshold: false alarms}``) added up at each of
    ``thresholds``; ``engines`` as :func:`running_speech` takes them."""
    thresholds = np.asarray(sorted(thresholds), dtype=float)
    alarms = np.zeros(len(thresholds), dtype=np.int64)
    seconds = 0.0
    for piece in running_speech(phrase, minutes, sample_rate, noise, seed, engines):
        counts = count_false_alarms(scored(piece, []))
        alarms += np.array([counts[t] for t in thresholds.tolist()], dtype=np.int64)
        seconds += len(piece) / sample_rate
    return ThresholdSweep(thresholds, alarms, seconds, 0)
