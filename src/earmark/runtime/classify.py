"""Classify clips and long files from a bundle: windows, batches, aggregation.

A file longer than the model's window is read in blocks (bounded memory
whatever its length), cut into analysis windows, and judged by the mean of
the window probabilities or their majority vote; per-window results are
kept too.

Arrays from Python are taken as files are: ``(samples,)`` or ``(samples,
channels)`` (mixed down), floats at full scale 1 and int16/int32 PCM scaled
to [-1, 1) (:func:`earmark.audio.array_to_mono`), at any rate
:mod:`earmark.input_limits` accepts. Empty input, NaN, other shapes and
samples so large that the model's scores are not finite raise
:class:`~earmark.errors.AudioError`; nothing returns a made-up result.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np

from earmark import audio
from earmark.errors import AudioError, ConfigError, DataError
from earmark.input_limits import check_count, check_positive, check_sample_rate
from earmark.runtime.bundle import Bundle, load_bundle
from earmark.runtime.metadata import AGGREGATES
from earmark.windowing import aggregate_windows, cut_window, sounding_windows, window_starts


@dataclass
class ClipResult:
    """A recording's decision and the windows it came from."""

    source: str
    labels: list[str]
    probabilities: np.ndarray                  #: (classes,)
    window_starts: np.ndarray                  #: (windows,) seconds (< 0: a short file, centred)
    window_probabilities: np.ndarray           #: (windows, classes)
    duration: float                            #: seconds
    window_seconds: float = 0.0                #: length of each analysis window

    @property
    def label(self) -> str:
        return self.labels[int(np.argmax(self.probabilities))]

    def top(self, k: int = 3) -> list[tuple[str, float]]:
        """The ``k`` most probable labels with their probabilities."""
        order = np.argsort(-self.probabilities)[:k]
        return [(self.labels[i], float(self.probabilities[i])) for i in order]


class Classifier:
    """A bundle plus how to cut and judge recordings."""

    def __init__(self, bundle: Bundle, window_hop_seconds: float | None = None,
                 aggregate: str | None = None, batch_size: int = 64):
        self.bundle = bundle
        self.window = bundle.window_samples
        if window_hop_seconds is not None:
            window_hop_seconds = check_positive(window_hop_seconds, "window hop (seconds)")
        self.window_hop = (int(round(window_hop_seconds * bundle.sample_rate))
                           if window_hop_seconds is not None else bundle.window_hop_samples)
        if self.window_hop < 1:
            raise ConfigError(f"window hop {window_hop_seconds} s is less than one sample at "
                              f"{bundle.sample_rate} Hz; give a positive hop")
        self.aggregate = aggregate or bundle.metadata.aggregate
        if self.aggregate not in AGGREGATES:
            raise ConfigError(f"aggregate {self.aggregate!r} is not one of {list(AGGREGATES)}")
        self.batch_size = check_count(batch_size, "batch_size", minimum=1)

    @classmethod
    def from_bundle(cls, path: str | os.PathLike, threads: int = 0, **options) -> "Classifier":
        return cls(load_bundle(path, threads=threads), **options)

    @property
    def labels(self) -> list[str]:
        return self.bundle.labels

    @property
    def sample_rate(self) -> int:
        return self.bundle.sample_rate

    def classify_array(self, samples: np.ndarray, sample_rate: int,
                       source: str = "<array>") -> ClipResult:
        """Judge an array of samples at any rate (resampled to the model's).

        Parameters
        ----------
        samples : array_like
            ``(samples,)`` mono, or ``(samples, channels)`` (up to 64 channels,
            averaged as a file's are). Floats are taken as they are (full scale
            is -1 to 1); int16 and int32 PCM are divided by 2**15 and 2**31 so
            full scale maps to [-1, 1), as soundfile and librosa read such
            files (uint8 is 8-bit WAV PCM around 128); see
            :func:`earmark.audio.array_to_mono`.
        sample_rate : int
            The samples' rate in Hz, 1000 to 384000.
        source : str
            Names the array in the result and in messages.

        Raises
        ------
        AudioError
            No samples, an unknown dtype or shape, NaN or infinite samples,
            or samples so large that the model's scores are not finite.
        ConfigError
            A ``sample_rate`` outside what :mod:`earmark.input_limits` accepts.
        """
        rate = check_sample_rate(sample_rate, f"{source}: sample_rate")
        mono = audio.array_to_mono(samples, source)
        return self.classify_blocks([audio.resample(mono, rate, self.sample_rate, source)],
                                    source)

    def classify_file(self, path: str | os.PathLike, block_seconds: float = 30.0) -> ClipResult:
        """Judge a file of any supported format and rate, read in blocks."""
        blocks = audio.read_blocks(path, self.sample_rate, block_seconds)
        return self.classify_blocks(blocks, str(path))

    def classify_blocks(self, blocks: Iterable[np.ndarray], source: str) -> ClipResult:
        """Judge a recording that arrives as consecutive mono blocks at the model's rate.

        Raises
        ------
        AudioError
            The blocks hold no samples, or the model's scores for a window are
            not finite because its samples are far outside -1..1.
        DataError
            The model's scores are not finite for samples within -1..1 (a
            damaged bundle).
        """
        stream = WindowStream(self.window, self.window_hop)
        starts, probabilities, sounding = [], [], []
        for batch_starts, batch in window_batches(stream.windows(blocks), self.batch_size):
            starts.extend(batch_starts)
            probabilities.append(self._scores(batch, batch_starts, source))
            sounding.append(sounding_windows(batch))
        if stream.total == 0:
            raise AudioError(f"{source}: holds no audio at {self.sample_rate} Hz (nothing, or "
                             "less than one sample once resampled); give a longer recording.")
        window_probs = np.concatenate(probabilities)
        judged = aggregate_windows(window_probs, self.aggregate, np.concatenate(sounding))
        return ClipResult(source, self.labels, judged,
                          np.asarray(starts) / self.sample_rate, window_probs,
                          stream.total / self.sample_rate, self.window / self.sample_rate)

    def _scores(self, batch: np.ndarray, starts: list[int], source: str) -> np.ndarray:
        """The model's probabilities for a batch of windows, refused when not finite."""
        scores = self.bundle.predict_proba(batch)
        finite = np.isfinite(scores).all(axis=1)
        if finite.all():
            return scores
        row = int(np.flatnonzero(~finite)[0])
        peak, at = float(np.abs(batch[row]).max()), starts[row] / self.sample_rate
        if peak <= 1:
            raise DataError(f"{self.bundle.path}: the model's scores are not finite for the "
                            f"window at {at:.2f} s of {source}, whose samples are within -1..1; "
                            "the bundle is damaged: re-export it with `earmark export`.")
        raise AudioError(f"{source}: the model's scores are not finite for the window at "
                         f"{at:.2f} s, whose samples reach {peak:g}; scale the audio to -1..1.")


class WindowStream:
    """Cuts a stream of blocks into the windows :func:`window_starts` gives,
    holding no more than one window plus one block in memory."""

    def __init__(self, window: int, window_hop: int):
        self.window, self.window_hop = window, window_hop
        self.total = 0

    def windows(self, blocks: Iterable[np.ndarray]) -> Iterator[tuple[int, np.ndarray]]:
        buffer = np.zeros(0, dtype=np.float32)
        buffer_start = 0            # absolute index of buffer[0]
        next_start = 0
        for block in blocks:
            buffer = np.concatenate([buffer, block])
            self.total += len(block)
            while next_start + self.window <= self.total:     # whole windows
                offset = next_start - buffer_start
                yield next_start, buffer[offset:offset + self.window].copy()
                next_start += self.window_hop
            drop = min(next_start, self.total) - buffer_start
            buffer, buffer_start = buffer[drop:], buffer_start + drop
        short = self.total < self.window         # one window, the recording in its middle
        for start in window_starts(self.total, self.window, self.window_hop):   # padded tail
            if start >= next_start or short:
                yield int(start), cut_window(buffer, int(start) - buffer_start, self.window)


def window_batches(windows: Iterator[tuple[int, np.ndarray]], size: int):
    """``(starts, (n, window) array)`` batches of at most ``size`` from ``(start, window)``."""
    starts, batch = [], []
    for start, window in windows:
        starts.append(start)
        batch.append(window)
        if len(batch) == size:
            yield starts, np.stack(batch)
            starts, batch = [], []
    if batch:
        yield starts, np.stack(batch)
