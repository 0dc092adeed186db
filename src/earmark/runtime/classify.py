"""Classify clips and long files from a bundle: windows, batches, aggregation.

A file longer than the model's window is read in blocks (bounded memory
whatever its length), cut into analysis windows, and judged by the mean of
the window probabilities or their majority vote; per-window results are
kept too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np

from earmark import audio
from earmark.errors import ConfigError
from earmark.runtime.bundle import Bundle, load_bundle
from earmark.runtime.metadata import AGGREGATES
from earmark.windowing import aggregate_windows, window_starts


@dataclass
class ClipResult:
    """A recording's decision and the windows it came from."""

    source: str
    labels: list[str]
    probabilities: np.ndarray                  #: (classes,)
    window_starts: np.ndarray                  #: (windows,) seconds
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
        self.window_hop = (int(round(window_hop_seconds * bundle.sample_rate))
                           if window_hop_seconds is not None else bundle.window_hop_samples)
        if self.window_hop < 1:
            raise ConfigError(f"window hop {window_hop_seconds} s is less than one sample at "
                              f"{bundle.sample_rate} Hz; give a positive hop")
        self.aggregate = aggregate or bundle.metadata.aggregate
        if self.aggregate not in AGGREGATES:
            raise ConfigError(f"aggregate {self.aggregate!r} is not one of {list(AGGREGATES)}")
        self.batch_size = batch_size

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
        """Judge a mono float array at any rate (resampled to the model's)."""
        samples = np.asarray(samples, dtype=np.float32)
        audio.check_finite(samples, source)
        samples = audio.resample(samples, sample_rate, self.sample_rate)
        return self.classify_blocks([samples], source)

    def classify_file(self, path: str | os.PathLike, block_seconds: float = 30.0) -> ClipResult:
        """Judge a file of any supported format and rate, read in blocks."""
        blocks = audio.read_blocks(path, self.sample_rate, block_seconds)
        return self.classify_blocks(blocks, str(path))

    def classify_blocks(self, blocks: Iterable[np.ndarray], source: str) -> ClipResult:
        """Judge a recording that arrives as consecutive blocks at the model's rate."""
        stream = _WindowStream(self.window, self.window_hop)
        starts, probabilities = [], []
        for batch_starts, batch in _batches(stream.windows(blocks), self.batch_size):
            starts.extend(batch_starts)
            probabilities.append(self.bundle.predict_proba(batch))
        window_probs = np.concatenate(probabilities)
        return ClipResult(source, self.labels, aggregate_windows(window_probs, self.aggregate),
                          np.asarray(starts) / self.sample_rate, window_probs,
                          stream.total / self.sample_rate, self.window / self.sample_rate)


class _WindowStream:
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
        for start in window_starts(self.total, self.window, self.window_hop):   # padded tail
            if start >= next_start:
                window = np.zeros(self.window, dtype=np.float32)
                piece = buffer[start - buffer_start:start - buffer_start + self.window]
                window[:len(piece)] = piece
                yield int(start), window


def _batches(windows: Iterator[tuple[int, np.ndarray]], size: int):
    starts, batch = [], []
    for start, window in windows:
        starts.append(start)
        batch.append(window)
        if len(batch) == size:
            yield starts, np.stack(batch)
            starts, batch = [], []
    if batch:
        yield starts, np.stack(batch)
