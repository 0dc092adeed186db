"""Anomaly scores of recordings of any length: every window's, and the recording's.

A recording is read in blocks at the bundle's rate (resampled from any
other; memory stays bounded whatever its length), cut into analysis windows
the way classification cuts them (:class:`earmark.runtime.classify.WindowStream`,
:func:`earmark.windowing.window_starts`: a recording shorter than one window
is one window, zero-padded), and each window scored by the bundle's graph.
The recording's score is the mean of its windows' scores (the bundle's
``aggregate``); it is anomalous when that exceeds the bundle's threshold.

Silence is scored like any other sound. Scores that are not finite raise
:class:`~earmark.errors.AudioError` (samples far outside -1..1) or
:class:`~earmark.errors.DataError` (a damaged bundle); nothing returns a
made-up score.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import numpy as np

from earmark import audio
from earmark.errors import AudioError, ConfigError, DataError
from earmark.input_limits import check_positive, check_sample_rate
from earmark.progress import ProgressLike, as_progress
from earmark.runtime.anomaly_bundle import SCORE_BATCH, AnomalyBundle
from earmark.runtime.classify import WindowStream, window_batches
from earmark.windowing import window_starts

#: Seconds of audio read at a time.
BLOCK_SECONDS = 30.0


@dataclass
class FileScores:
    """A recording's window scores and its verdict."""

    path: str                                  #: the file (or a name for an array or stream)
    window_starts: np.ndarray                  #: (windows,) seconds (< 0: a short file, centred)
    window_scores: np.ndarray                  #: (windows,) the graph's scores
    threshold: float                           #: the bundle's
    duration: float                            #: seconds
    window_seconds: float                      #: length of each analysis window

    @property
    def score(self) -> float:
        """The recording's score: the mean of its windows' scores."""
        return float(np.mean(self.window_scores, dtype=np.float64))

    @property
    def is_anomalous(self) -> bool:
        """Whether the recording's score exceeds the threshold."""
        return self.score > self.threshold

    @property
    def window_anomalous(self) -> np.ndarray:
        """(windows,) bool: each window's score exceeds the threshold."""
        return self.window_scores > self.threshold


class WindowScorer:
    """Cuts consecutive mono blocks at the bundle's rate into windows and scores them.

    :meth:`scores` yields ``(starts, scores)`` a batch at a time, as soon as
    ``batch_size`` windows are complete (``batch_size=1`` for a live stream);
    :attr:`total` counts the samples seen so far.
    """

    def __init__(self, bundle: AnomalyBundle, hop_seconds: float | None = None,
                 batch_size: int = SCORE_BATCH):
        self.bundle = bundle
        self.hop = bundle.window_hop_samples
        if hop_seconds is not None:
            hop_seconds = check_positive(hop_seconds, "window hop (seconds)")
            self.hop = int(round(hop_seconds * bundle.sample_rate))
            if self.hop < 1:
                raise ConfigError(f"window hop {hop_seconds} s is less than one sample at "
                                  f"{bundle.sample_rate} Hz; give a longer hop")
        self.batch_size = max(1, int(batch_size))
        self.stream = WindowStream(bundle.window_samples, self.hop)

    @property
    def total(self) -> int:
        """Samples read so far."""
        return self.stream.total

    def scores(self, blocks: Iterable[np.ndarray],
               source: str) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(start samples, scores)`` of each batch of windows, in order."""
        for starts, batch in window_batches(self.stream.windows(blocks), self.batch_size):
            scores = self.bundle.score_windows(batch, self.batch_size)
            check_scores(self.bundle, scores, batch, starts, source)
            yield np.asarray(starts, dtype=np.int64), scores


def check_scores(bundle: AnomalyBundle, scores: np.ndarray, batch: np.ndarray,
                 starts: list[int], source: str) -> None:
    """Refuse scores that are not finite, blaming the audio or the bundle."""
    finite = np.isfinite(scores)
    if finite.all():
        return
    row = int(np.flatnonzero(~finite)[0])
    peak, at = float(np.abs(batch[row]).max()), starts[row] / bundle.sample_rate
    if peak <= 1:
        raise DataError(f"{bundle.path}: the anomaly score is not finite for the window at "
                        f"{at:.2f} s of {source}, whose samples are within -1..1; the bundle "
                        "is damaged: re-export it with `earmark anomaly export`.")
    raise AudioError(f"{source}: the anomaly score is not finite for the window at {at:.2f} s, "
                     f"whose samples reach {peak:g}; scale the audio to -1..1.")


def score_blocks(bundle: AnomalyBundle, blocks: Iterable[np.ndarray], source: str,
                 hop_seconds: float | None = None) -> FileScores:
    """Score a recording that arrives as consecutive mono blocks at the bundle's rate.

    Raises
    ------
    AudioError
        The blocks hold no samples, or a window's score is not finite because
        its samples are far outside -1..1.
    DataError
        A score is not finite for samples within -1..1 (a damaged bundle).
    """
    return _collect(WindowScorer(bundle, hop_seconds), blocks, source)


def score_file(bundle: AnomalyBundle, path: str | os.PathLike,
               progress: ProgressLike = None, hop_seconds: float | None = None,
               block_seconds: float = BLOCK_SECONDS) -> FileScores:
    """Score a file of any supported format, rate and length, read in blocks.

    Parameters
    ----------
    bundle : AnomalyBundle
        The model (:func:`earmark.runtime.anomaly_bundle.load_anomaly_bundle`).
    path : str or PathLike
        The recording; resampled to the bundle's rate as it is read.
    progress : Progress, optional
        Advanced by windows scored (:mod:`earmark.progress`).
    hop_seconds : float, optional
        Seconds between windows; default the bundle's ``hop_samples``.
    block_seconds : float
        Seconds read at a time (memory is about one block plus one batch of
        windows, whatever the file's length).

    Raises
    ------
    AudioError, DataError
        As :func:`score_blocks`; an unreadable file as :func:`earmark.audio.read_blocks`.
    """
    scorer = WindowScorer(bundle, hop_seconds)
    header = audio.info(path)
    samples = max(1, round(header.frames * bundle.sample_rate / header.sample_rate))
    expected = len(window_starts(samples, bundle.window_samples, scorer.hop))
    blocks = audio.read_blocks(path, bundle.sample_rate, block_seconds, header=header)
    with as_progress(progress)(total=expected, description="scoring", unit="window") as step:
        return _collect(scorer, blocks, str(path), step)


def _collect(scorer: WindowScorer, blocks: Iterable[np.ndarray], source: str,
             advance: Callable[[int], None] | None = None) -> FileScores:
    """Every window's score, then the recording's; ``advance`` counts windows scored."""
    starts, scores = [], []
    for batch_starts, batch_scores in scorer.scores(blocks, source):
        starts.append(batch_starts)
        scores.append(batch_scores)
        if advance is not None:
            advance(len(batch_scores))
    bundle = scorer.bundle
    if scorer.total == 0:
        raise AudioError(f"{source}: holds no audio at {bundle.sample_rate} Hz (nothing, or "
                         "less than one sample once resampled); give a longer recording.")
    rate = bundle.sample_rate
    return FileScores(source, np.concatenate(starts) / rate, np.concatenate(scores),
                      bundle.threshold, scorer.total / rate, bundle.window_samples / rate)


def score_array(bundle: AnomalyBundle, samples: np.ndarray, sample_rate: int,
                source: str = "<array>", hop_seconds: float | None = None) -> FileScores:
    """Score an array of samples at any rate (mono or ``(samples, channels)``, resampled
    to the bundle's; see :func:`earmark.audio.array_to_mono` for the scaling of PCM)."""
    rate = check_sample_rate(sample_rate, f"{source}: sample_rate")
    mono = audio.array_to_mono(samples, source)
    return score_blocks(bundle, [audio.resample(mono, rate, bundle.sample_rate, source)],
                        source, hop_seconds)
