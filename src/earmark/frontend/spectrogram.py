"""Spectrogram pictures for people: a stream's columns as they arrive, or a whole file's.

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

``kind="linear"`` gives the power of every DFT bin instead of mel bands (for
``earmark spectrogram --kind linear``); :func:`band_frequencies` says where
each row lies in Hz, :func:`pooled_decibels` pictures a recording of any
length arriving in blocks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

from earmark.errors import ConfigError
from earmark.frontend.filters import mel_edges, mel_filterbank, periodic_hann
from earmark.frontend.reference import power_to_db

# Power floor before the logarithm: -100 dB, far below any picture's range.
_DB_FLOOR = 1e-10
#: What a picture's rows are: mel bands, or every DFT bin.
KINDS = ("logmel", "linear")
#: Frames computed at once when a long recording is pictured (bounds the memory).
_FRAMES_PER_PIECE = 1000


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
    kind: str = "logmel"          #: logmel | linear (every DFT bin, no mel filters)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"spectrogram kind {self.kind!r} is not one of {list(KINDS)}")

    @property
    def frames_per_second(self) -> float:
        """Columns per second of audio (before any pooling)."""
        return 1000.0 / self.hop_ms


class MelAnalysis:
    """Framing, window, FFT and mel filters at one sample rate (Hz), in float32.

    ``window_length`` and ``hop`` are in samples, ``n_fft`` is the next power
    of two >= the window; the filters reach ``settings.fmax`` or Nyquist,
    whichever is lower. ``kind="linear"`` keeps every bin (``filters`` is None).
    """

    def __init__(self, sample_rate: int, settings: SpectrogramSettings):
        self.window_length = max(2, round(settings.window_ms * sample_rate / 1000))
        self.frame_hop = max(1, round(settings.hop_ms * sample_rate / 1000))
        self.n_fft = 1 << (self.window_length - 1).bit_length()
        self.window = periodic_hann(self.window_length).astype(np.float32)
        self.fmax = min(settings.fmax, sample_rate / 2)
        self.fmin = min(settings.fmin, self.fmax / 2)
        self.frequencies = np.fft.rfftfreq(self.n_fft, 1.0 / sample_rate)
        self.filters = None
        if settings.kind == "logmel":
            self.filters = mel_filterbank(sample_rate, self.n_fft, settings.n_mels, self.fmin,
                                          self.fmax).astype(np.float32).T   # (bins, mels)
            self.frequencies = mel_edges(settings.n_mels, self.fmin, self.fmax)[1:-1]

    @property
    def bands(self) -> int:
        """Rows of the picture: mel bands, or DFT bins."""
        return len(self.frequencies)

    def frame_count(self, samples: int) -> int:
        """Whole frames in ``samples`` samples (0 when shorter than one window)."""
        return max(0, (samples - self.window_length) // self.frame_hop + 1)

    def decibels(self, samples: np.ndarray) -> np.ndarray:
        """Mel (or bin) power in dB (re full scale) of every whole frame in ``samples``.

        Returns
        -------
        np.ndarray, shape (frames, bands), float32
            Frame ``t`` starts at sample ``t * hop``; bands ascend in frequency.
        """
        count = self.frame_count(len(samples))
        if count == 0:
            return np.zeros((0, self.bands), dtype=np.float32)
        frames = np.lib.stride_tricks.sliding_window_view(samples, self.window_length)
        frames = frames[::self.frame_hop][:count] * self.window
        spectrum = np.fft.rfft(frames, n=self.n_fft, axis=1)
        power = (spectrum.real ** 2 + spectrum.imag ** 2).astype(np.float32)
        return power_to_db(power if self.filters is None else power @ self.filters, _DB_FLOOR)


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
    samples = np.asarray(samples, dtype=np.float32)
    decibels, seconds = pooled_decibels([samples], sample_rate, len(samples), settings,
                                        max_columns)
    if len(decibels) == 0:
        return decibels.astype(np.uint8), 1.0 / seconds
    levels = to_levels(decibels, float(decibels.max()), settings.dynamic_range_db)
    return levels, 1.0 / seconds


def pooled_decibels(blocks: Iterable[np.ndarray], sample_rate: int, total_samples: int,
                    settings: SpectrogramSettings | None = None,
                    max_columns: int = 1500) -> tuple[np.ndarray, float]:
    """The dB picture of a recording arriving as consecutive blocks, at most ``max_columns``
    wide: each column is the loudest of ``pool`` consecutive frames (``pool`` from
    ``total_samples``, the recording's expected length).

    Memory holds one block and about a thousand frames at a time, whatever the length.

    Returns
    -------
    tuple
        ``(decibels (columns, bands) float32, seconds per column)``; column ``c``
        starts at ``c * pool * hop / sample_rate`` s.
    """
    analysis = MelAnalysis(sample_rate, settings or SpectrogramSettings())
    pool = max(1, -(-analysis.frame_count(total_samples) // max(1, max_columns)))
    piece = _FRAMES_PER_PIECE * analysis.frame_hop
    pending = np.zeros(0, dtype=np.float32)
    carry = np.zeros((0, analysis.bands), dtype=np.float32)      # frames of an open pool
    columns = []
    for block in blocks:
        samples = np.concatenate([pending, np.asarray(block, dtype=np.float32)])
        done = 0
        while analysis.frame_count(len(samples) - done) > 0:
            decibels = analysis.decibels(samples[done:done + piece + analysis.window_length])
            done += len(decibels) * analysis.frame_hop
            carry = np.concatenate([carry, decibels])
            whole = len(carry) // pool * pool
            columns.append(carry[:whole].reshape(-1, pool, analysis.bands).max(axis=1))
            carry = carry[whole:]
        pending = samples[done:]
    if len(carry):
        columns.append(carry.max(axis=0, keepdims=True))
    decibels = np.concatenate(columns) if columns else carry
    return decibels, pool * analysis.frame_hop / sample_rate


def band_frequencies(sample_rate: int, settings: SpectrogramSettings | None = None) -> np.ndarray:
    """Where each row of a picture lies, in Hz: mel band centres, or DFT bin frequencies."""
    return MelAnalysis(sample_rate, settings or SpectrogramSettings()).frequencies
