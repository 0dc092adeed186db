"""Long test streams: real clips of one split placed at known times over background noise.

Like the Speech Commands streaming test: keywords and unknown words from
the clips of a split (so the speakers stay disjoint from training), each
put at a random gap after the previous one, louder or softer, over a
background recording mixed at a set volume. The ground truth lists each
word with the times its speech starts and ends (found from the clip's
energy, not the 1 s clip boundaries), so a detection can be matched to
the moment the word was actually said.

The truth is kept as :class:`TruthWord` in milliseconds, the unit of the
streaming scores (:mod:`earmark.metrics.streaming`);
:meth:`TruthWord.as_event` gives the :class:`earmark.events.Event` that event
files and event metrics take.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from earmark.activity import active_runs, frame_levels
from earmark.data.keywords import SILENCE
from earmark.data.mixtures import noise_bed
from earmark.errors import DataError
from earmark.events import Event


@dataclass
class StreamSpec:
    """How to build a test stream."""

    duration_s: float = 600.0
    gap_s: tuple[float, float] = (1.0, 2.5)      #: silence between words
    gain_db: tuple[float, float] = (-6.0, 3.0)   #: per-word loudness
    noise_volume: float = 0.1                    #: background gain (recordings' own level x this)
    noise_frequency: float = 1.0                 #: share of the stream with background
    seed: int = 0
    #: The least silence after a word of these labels, seconds (a wake phrase: long enough
    #: for the detector's suppression and window to pass before the next word).
    quiet_after_s: dict[str, float] = field(default_factory=dict)


@dataclass
class TruthWord:
    """A word placed in a stream: its label and where its speech starts and ends.

    Times are milliseconds from the stream's start, computed from sample
    indices as ``1000 * index / sample_rate`` (the streaming scores work in
    milliseconds; keeping them so keeps those scores exact).
    """

    label: str
    start_ms: float
    end_ms: float

    def as_event(self) -> Event:
        """The word as an event in seconds (``start_ms / 1000`` to ``end_ms / 1000``)."""
        return Event(self.start_ms / 1000, self.end_ms / 1000, self.label)


def speech_extent(clip: np.ndarray, sample_rate: int, floor_db: float = 35.0,
                  rise_db: float = 12.0, bridge_s: float = 0.2) -> tuple[int, int]:
    """First and last sample of the word: the loud 10 ms frames around the loudest one.

    A frame is loud when it is within ``floor_db`` of the loudest frame *and*
    ``rise_db`` above the clip's own noise floor (its 10th-percentile frame);
    the word is the run of loud frames, quiet gaps up to ``bridge_s`` bridged
    (the closure before a "p"), that holds the loudest frame. A click or a
    breath well apart from the word is not part of it, and a clip recorded
    with audible background is not marked as speech from end to end.
    """
    frame = max(1, sample_rate // 100)
    levels = frame_levels(clip, frame)
    if len(levels) == 0:
        return 0, len(clip)
    peak = int(levels.argmax())
    threshold = min(max(levels[peak] - floor_db, np.percentile(levels, 10) + rise_db),
                    levels[peak])
    runs = active_runs(levels >= threshold, max(1, round(bridge_s * sample_rate / frame)))
    start, stop = next(run for run in runs if run[0] <= peak < run[1])
    return start * frame, stop * frame


def build_stream(clips: list[tuple[np.ndarray, str]], noise: list[np.ndarray],
                 sample_rate: int, spec: StreamSpec) -> tuple[np.ndarray, list[TruthWord]]:
    """Place clips in sequence over noise; return the audio and the ground truth.

    ``clips`` are ``(samples, label)`` at ``sample_rate``; ``_silence_`` clips
    are skipped (the background is the silence). Each clip is used at most
    once per pass, in a shuffled order.
    """
    rng = np.random.default_rng(spec.seed)
    total = int(spec.duration_s * sample_rate)
    stream = noise_bed(noise, total, sample_rate, spec.noise_volume, rng, spec.noise_frequency)
    words = [(samples, label) for samples, label in clips if label != SILENCE]
    if not words:
        raise DataError("no word clips to place in the stream (only _silence_ was given)")
    order = rng.permutation(len(words))
    truth: list[TruthWord] = []
    position = int(rng.uniform(*spec.gap_s) * sample_rate)
    for index in _cycle(order):
        samples, label = words[index]
        start, end = speech_extent(samples, sample_rate)
        speech = samples[start:end] * 10 ** (rng.uniform(*spec.gain_db) / 20)
        if position + len(speech) >= total:
            break
        stream[position:position + len(speech)] += speech
        truth.append(TruthWord(label, 1000.0 * position / sample_rate,
                               1000.0 * (position + len(speech)) / sample_rate))
        gap = max(rng.uniform(*spec.gap_s), spec.quiet_after_s.get(label, 0.0))
        position += len(speech) + int(gap * sample_rate)
    return np.clip(stream, -1.0, 1.0).astype(np.float32), truth


def _cycle(order: np.ndarray):
    while True:
        yield from order
