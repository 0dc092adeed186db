"""Log-mel pictures for people: a stream's columns as they arrive, or a whole file's.

The live page draws what the model hears: a log-mel spectrogram up to the
model's Nyquist frequency, computed here in numpy (no torch) and sent as
bytes, one column of ``n_mels`` levels (0..255, low to high frequency) per
hop. Levels are decibels scaled into a fixed dynamic range below a
reference: the file's loudest band for a file, a slowly decaying peak for
a stream, so that speech shows up whatever the microphone's gain.

The analysis is not the model's: frame ``t`` is the ``window_length``
samples from ``t * hop`` (the window starts the frame, which is zero-padded
at its end to ``n_fft``) and the maths runs in float32. Its levels agree
with :func:`earmark.frontend.reference.logmel` on the same samples to about
1e-5 dB, but not to the bit, so the pictures keep their own framing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from earmark.frontend.filters import mel_filterbank, periodic_hann
from earmark.frontend.reference import power_to_db

# Power floor before the logarithm: -100 dB, far below any picture's range.
_DB_FLOOR = 1e-10


@dataclass(frozen=True)
class SpectrogramSettings:
    """How the picture is made: band count, timing in ms, edges in Hz, levels in dB."""

    n_mels: int = 64
    window_ms: float = 25.0
    hop_ms: float = 10.0
    fmin: float = 40.0
    fmax: float = 8000.0          #: clipped to the input's Nyquist
    dynamic_range_db: float = 80.0
    peak_decay_db_per_s: float = 3.0
    #: the live reference never falls below this, so a quiet room stays dark
    #: (speech peaks near 0 dB; a quiet room sits below -60 dB)
    min_reference_db: float = -20.0

    @property
    def frames_per_second(self) -> float:
        """Columns per second of audio (before any pooling)."""
        return 1000.0 / self.hop_ms


class MelAnalysis:
    """Framing, window, FFT and mel filters at one sample rate (Hz), in float32.

    ``window_length`` and ``hop`` are in samples, ``n_fft`` is the next power
    of two >= the window; the filters reach ``settings.fmax`` or Nyquist,
    whichever is lower.
    """

    def __init__(self, sample_rate: int, settings: SpectrogramSettings):
        self.window_length = max(2, round(settings.window_ms * sample_rate / 1000))
        self.frame_hop = max(1, round(settings.hop_ms * sample_rate / 1000))
        self.n_fft = 1 << (self.window_length - 1).bit_length()
        self.window = periodic_hann(self.window_length).astype(np.float32)
        fmax = min(settings.fmax, sample_rate / 2)
        fmin = min(settings.fmin, fmax / 2)
        self.filters = mel_filterbank(sample_rate, self.n_fft, settings.n_mels, fmin,
                                      fmax).astype(np.float32).T     # (bins, mels)

    def frame_count(self, samples: int) -> int:
        """Whole frames in ``samples`` samples (0 when shorter than one window)."""
        return max(0, (samples - self.window_length) // self.frame_hop + 1)

    def decibels(self, samples: np.ndarray) -> np.ndarray:
        """Mel power in dB (re full scale) of every whole frame in ``samples``.

        Returns
        -------
        np.ndarray, shape (frames, n_mels), float32
            Frame ``t`` starts at sample ``t * hop``; bands ascend in frequency.
        """
        count = self.frame_count(len(samples))
        if count == 0:
            return np.zeros((0, self.filters.shape[1]), dtype=np.float32)
        frames = np.lib.stride_tricks.sliding_window_view(samples, self.window_length)
        frames = frames[::self.frame_hop][:count] * self.window
        spectrum = np.fft.rfft(frames, n=self.n_fft, axis=1)
        power = (spectrum.real ** 2 + spectrum.imag ** 2).astype(np.float32)
        return power_to_db(power @ self.filters, _DB_FLOOR)


def to_levels(decibels: np.ndarray, reference_db: float | np.ndarray,
              dynamic_range_db: float) -> np.ndarray:
    """dB to picture levels: ``reference_db`` is 255, ``dynamic_range_db`` below it is 0.

    Returns
    -------
    np.ndarray, uint8, shape of ``decibels``
        Levels clipped to 0..255, linear in dB.
    """
    scaled = (decibels - (reference_db - dynamic_range_db)) * (255.0 / dynamic_range_db)
    return np.clip(scaled, 0, 255).astype(np.uint8)


class LiveSpectrogram:
    """Feed blocks of a stream; get back the new columns as uint8 ``(columns, n_mels)``."""

    def __init__(self, sample_rate: int, settings: SpectrogramSettings | None = None):
        self.settings = settings or SpectrogramSettings()
        self.analysis = MelAnalysis(sample_rate, self.settings)
        self.sample_rate = sample_rate
        self._pending = np.zeros(0, dtype=np.float32)
        self._peak_db = self.settings.min_reference_db

    def push(self, block: np.ndarray) -> np.ndarray:
        """The columns completed by ``block`` (samples in [-1, 1] at ``sample_rate`` Hz).

        Returns
        -------
        np.ndarray, shape (columns, n_mels), uint8
            One column per hop whose window is now complete; samples left
            over wait for the next block.
        """
        samples = np.concatenate([self._pending, np.asarray(block, dtype=np.float32)])
        decibels = self.analysis.decibels(samples)
        consumed = len(decibels) * self.analysis.frame_hop
        self._pending = samples[consumed:]
        if len(decibels) == 0:
            return np.zeros((0, self.settings.n_mels), dtype=np.uint8)
        return to_levels(decibels, self._track_peak(decibels)[:, None],
                         self.settings.dynamic_range_db)

    def _track_peak(self, decibels: np.ndarray) -> np.ndarray:
        """The reference level at each new column: the loudest band seen, decaying slowly."""
        decay = self.settings.peak_decay_db_per_s * self.analysis.frame_hop / self.sample_rate
        peaks = np.empty(len(decibels), dtype=np.float32)
        peak, floor = self._peak_db, self.settings.min_reference_db
        for index, loudest in enumerate(decibels.max(axis=1)):
            peak = max(peak - decay, float(loudest), floor)
            peaks[index] = peak
        self._peak_db = peak
        return peaks


def file_spectrogram(samples: np.ndarray, sample_rate: int,
                     settings: SpectrogramSettings | None = None,
                     max_columns: int = 1500) -> tuple[np.ndarray, float]:
    """A whole recording's picture, at most ``max_columns`` wide (loudest kept when pooled).

    Computed a few seconds at a time, so memory stays small for long files.
    Returns ``(levels (columns, n_mels) uint8, columns per second)``.
    """
    settings = settings or SpectrogramSettings()
    analysis = MelAnalysis(sample_rate, settings)
    samples = np.asarray(samples, dtype=np.float32)
    total = analysis.frame_count(len(samples))
    if total == 0:
        return np.zeros((0, settings.n_mels), dtype=np.uint8), sample_rate / analysis.frame_hop
    pool = -(-total // max_columns)
    chunk = pool * max(1, 1000 // pool)                 # whole pools of frames per piece
    pooled = []
    for first in range(0, total, chunk):
        count = min(chunk, total - first)
        start = first * analysis.frame_hop
        piece = samples[start:start + (count - 1) * analysis.frame_hop + analysis.window_length]
        decibels = analysis.decibels(piece)
        padded = np.full((-(-count // pool) * pool, decibels.shape[1]), -200.0, np.float32)
        padded[:count] = decibels
        pooled.append(padded.reshape(-1, pool, decibels.shape[1]).max(axis=1))
    decibels = np.concatenate(pooled)
    levels = to_levels(decibels, float(decibels.max()), settings.dynamic_range_db)
    return levels, sample_rate / analysis.frame_hop / pool
