"""What a front-end config means in samples, frames and DFT bins (numpy, no torch).

Shared by the torch :class:`~earmark.frontend.module.FrontEnd`, the numpy
reference (:mod:`~earmark.frontend.reference`) and the ONNX exporter
(:mod:`earmark.export.tables`), so that all three agree on every size:

- :data:`KINDS`, the feature kinds, and the ``spectrogram128`` seed preset's
  fixed sizes (:data:`SEED_WINDOW` ...);
- :func:`validate`, which rejects settings no front-end can honour;
- :func:`frame_geometry`, :func:`min_samples`, :func:`frame_count`: window,
  hop and FFT length in samples, and how many frames a clip gives;
- :func:`filterbank_fmax`, :func:`delta_kernel`, :func:`dft_basis`;
- :class:`SpectralLayout` (from :func:`spectral_layout`): which window and
  which DFT bins the front-end computes, and where the window sits in a frame.

Conventions (those of librosa)
------------------------------
- A frame is ``n_fft`` samples long; the periodic Hann window of
  ``window_length`` samples sits centred inside it when it is shorter.
- ``center=False``: frame ``t`` starts at sample ``t * hop_length`` and
  ``frames = 1 + (samples - n_fft) // hop_length``.
- ``center=True``: the waveform is first reflect-padded by ``n_fft // 2``
  samples at both ends, so frame ``t`` is centred on sample ``t * hop_length``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from earmark.config import FeatureConfig
from earmark.errors import ConfigError
from earmark.frontend.filters import mel_filterbank, periodic_hann

#: The feature kinds a front-end knows.
KINDS = ("spectrogram", "logmel", "mfcc", "spectrogram128")

# The "spectrogram128" preset transcribes the seed project's image front-end:
# fixed sizes in samples, chosen for 1 s clips at 16 kHz.
SEED_WINDOW = 512      #: samples per frame (symmetric Hann, np.hanning)
SEED_HOP = 121         #: samples between frame starts
SEED_FRAMES = 128      #: frames kept, the first starting at sample 0
SEED_BINS = 128        #: rfft bins 1..128 (DC dropped)
#: Samples the seed preset reads; shorter input is zero-padded to this.
SEED_SAMPLES = SEED_WINDOW + (SEED_FRAMES - 1) * SEED_HOP
#: Added to the seed preset's min-max ranges so that a silent clip gives -0.5,
#: not NaN; far below float32 resolution for any real clip.
SEED_EPSILON = 1e-12

#: With ``mean_normalize``, frames whose loudest band lies more than this far
#: below the window's loudest frame count as silence (dB).
ACTIVE_DB = 40.0


class FrameGeometry(NamedTuple):
    """Sizes of the analysis, in samples."""

    window_length: int   #: samples under the analysis window
    hop_length: int      #: samples between successive frame starts
    n_fft: int           #: samples per frame (the DFT length)


def validate(config: FeatureConfig, sample_rate: int) -> None:
    """Reject settings no front-end can honour, saying what is allowed.

    Parameters
    ----------
    config : FeatureConfig
        The front-end settings.
    sample_rate : int
        Sampling rate of the input in Hz.

    Raises
    ------
    ConfigError
        On an unknown kind, a non-positive rate, bad deltas, log floor or
        mel/MFCC counts. Window and FFT sizes are checked by
        :func:`frame_geometry`, the filterbank's edges by
        :func:`~earmark.frontend.filters.mel_filterbank`.
    """
    if config.kind not in KINDS:
        raise ConfigError(f"features.kind = {config.kind!r} is not one of "
                          f"{list(KINDS) + ['micro']}")
    if sample_rate <= 0:
        raise ConfigError(f"sample_rate must be > 0 Hz, got {sample_rate}")
    if config.deltas not in (0, 1, 2):
        raise ConfigError(f"features.deltas = {config.deltas} must be 0, 1 or 2")
    if config.delta_width < 3 or config.delta_width % 2 == 0:
        raise ConfigError(f"features.delta_width = {config.delta_width} must be odd and >= 3")
    if not config.log_floor > 0:
        raise ConfigError(f"features.log_floor = {config.log_floor} must be > 0 "
                          f"(it keeps log10 away from zero)")
    if config.kind in ("logmel", "mfcc") and config.n_mels < 1:
        raise ConfigError(f"features.n_mels = {config.n_mels} must be >= 1")
    if config.kind == "mfcc" and not 1 <= config.n_mfcc <= config.n_mels:
        raise ConfigError(f"features.n_mfcc = {config.n_mfcc} must be in 1..n_mels "
                          f"({config.n_mels})")


def frame_geometry(config: FeatureConfig, sample_rate: int) -> FrameGeometry:
    """Window, hop and FFT length in samples for a config.

    Parameters
    ----------
    config : FeatureConfig
        ``window_ms`` and ``hop_ms`` (milliseconds) are rounded to whole
        samples; ``n_fft = 0`` picks the next power of two >= the window. The
        ``spectrogram128`` preset has fixed sizes (:data:`SEED_WINDOW`,
        :data:`SEED_HOP`).
    sample_rate : int
        Sampling rate in Hz.

    Returns
    -------
    FrameGeometry
        ``(window_length, hop_length, n_fft)``, all in samples.

    Raises
    ------
    ConfigError
        If the window is under 2 samples, the hop under 1, or ``n_fft``
        shorter than the window.
    """
    if config.kind == "spectrogram128":
        return FrameGeometry(SEED_WINDOW, SEED_HOP, SEED_WINDOW)
    window_length = int(round(config.window_ms * sample_rate / 1000.0))
    hop_length = int(round(config.hop_ms * sample_rate / 1000.0))
    if window_length < 2:
        raise ConfigError(f"features.window_ms = {config.window_ms} gives {window_length} "
                          f"samples at {sample_rate} Hz; it must give at least 2")
    if hop_length < 1:
        raise ConfigError(f"features.hop_ms = {config.hop_ms} gives {hop_length} samples "
                          f"at {sample_rate} Hz; it must give at least 1")
    n_fft = config.n_fft or 1 << (window_length - 1).bit_length()
    if n_fft < window_length:
        raise ConfigError(f"features.n_fft = {config.n_fft} is shorter than the window "
                          f"({window_length} samples = {config.window_ms} ms at "
                          f"{sample_rate} Hz); use n_fft >= {window_length} or 0 (automatic)")
    return FrameGeometry(window_length, hop_length, n_fft)


def filterbank_fmax(config: FeatureConfig, sample_rate: int) -> float:
    """The mel filterbank's upper edge in Hz: ``config.fmax``, or Nyquist when it is 0."""
    return config.fmax if config.fmax > 0 else sample_rate / 2.0


def min_samples(kind: str, center: bool, n_fft: int) -> int:
    """The shortest input, in samples, that yields at least one frame.

    ``n_fft`` without centring, ``n_fft // 2 + 1`` with it (reflect padding
    needs a pad shorter than the signal), 1 for ``spectrogram128`` (which
    zero-pads to :data:`SEED_SAMPLES`).
    """
    if kind == "spectrogram128":
        return 1
    if center:
        return n_fft // 2 + 1
    return n_fft


def frame_count(kind: str, center: bool, n_fft: int, hop_length: int, samples: int) -> int:
    """Frames produced from ``samples`` samples of input.

    Raises
    ------
    ConfigError
        If ``samples`` is under :func:`min_samples`; the message says how
        many are needed.
    """
    needed = min_samples(kind, center, n_fft)
    if samples < needed:
        raise ConfigError(f"input of {samples} samples is too short for this front-end: "
                          f"it needs at least {needed} samples (n_fft = {n_fft}, "
                          f"center = {center}); pad the clip or use a shorter window")
    if kind == "spectrogram128":
        return SEED_FRAMES
    padded = samples + 2 * (n_fft // 2) if center else samples
    return 1 + (padded - n_fft) // hop_length


def delta_kernel(width: int) -> np.ndarray:
    """Regression weights ``n / (2 sum n^2)`` for ``n = -N..N`` (``N = width // 2``).

    Returns
    -------
    np.ndarray, shape (width,), float64
        Weights per frame offset: the delta of frame ``t`` is
        ``sum_n kernel[N + n] * features[t + n]``, in feature units per frame.
    """
    half = width // 2
    offsets = np.arange(-half, half + 1, dtype=np.float64)
    return offsets / (2.0 * np.sum(np.arange(1, half + 1) ** 2))


def dft_basis(window: np.ndarray, n_fft: int, bins: np.ndarray, first_sample: int) -> np.ndarray:
    """Windowed real/imaginary DFT rows for a conv1d kernel.

    Row ``j`` (``j < len(bins)``) is ``window * cos(2 pi bins[j] n / n_fft)``
    and row ``len(bins) + j`` the sine, for ``n = first_sample +
    arange(len(window))``: the kernel may cover just the non-zero part of a
    frame whose window is zero-padded to ``n_fft``.

    Returns
    -------
    np.ndarray, shape (2 * len(bins), 1, len(window)), float64
    """
    positions = first_sample + np.arange(len(window))
    phase = 2.0 * np.pi * np.outer(bins, positions) / n_fft
    rows = np.concatenate([np.cos(phase), np.sin(phase)]) * window[None, :]
    return rows[:, None, :]


@dataclass(frozen=True)
class SpectralLayout:
    """Which window and which DFT bins a front-end computes.

    Everything the front-end's tables (window, DFT, filterbank) are made
    from: the torch module builds them from it, and the ONNX exporter writes
    them back as formulas from it.
    """

    n_fft: int              #: samples per frame, the DFT length
    window_length: int      #: samples under the window
    first_sample: int       #: where the window starts inside its frame (zeros before)
    first_bin: int          #: lowest DFT bin computed
    last_bin: int           #: highest DFT bin computed (bins in between all are)
    symmetric_window: bool  #: symmetric Hann (``np.hanning``) rather than periodic

    @property
    def bins(self) -> np.ndarray:
        """The DFT bins computed, ascending, int64: bin ``k`` is ``k * rate / n_fft`` Hz."""
        return np.arange(self.first_bin, self.last_bin + 1)

    @property
    def window(self) -> np.ndarray:
        """The Hann window, ``window_length`` samples, float64."""
        if self.symmetric_window:
            return np.hanning(self.window_length)
        return periodic_hann(self.window_length)

    @property
    def frame_window(self) -> np.ndarray:
        """The window over a whole frame: zeros, then :attr:`window` from
        :attr:`first_sample`, then zeros to ``n_fft`` samples (float64)."""
        framed = np.zeros(self.n_fft)
        framed[self.first_sample:self.first_sample + self.window_length] = self.window
        return framed


def spectral_layout(config: FeatureConfig, sample_rate: int) -> SpectralLayout:
    """The :class:`SpectralLayout` of a config at a sampling rate (Hz).

    ``spectrogram`` computes every bin ``0..n_fft // 2``; ``logmel`` and
    ``mfcc`` only those from the lowest to the highest bin any mel filter
    weighs; ``spectrogram128`` bins ``1..SEED_BINS`` under a symmetric Hann
    window of the whole frame.

    Raises
    ------
    ConfigError
        As :func:`frame_geometry` and
        :func:`~earmark.frontend.filters.mel_filterbank` do.
    """
    if config.kind == "spectrogram128":
        return SpectralLayout(SEED_WINDOW, SEED_WINDOW, 0, 1, SEED_BINS, symmetric_window=True)
    window_length, _, n_fft = frame_geometry(config, sample_rate)
    first_sample = (n_fft - window_length) // 2
    if config.kind == "spectrogram":
        return SpectralLayout(n_fft, window_length, first_sample, 0, n_fft // 2,
                              symmetric_window=False)
    weights = mel_filterbank(sample_rate, n_fft, config.n_mels, config.fmin,
                             filterbank_fmax(config, sample_rate))
    used = np.flatnonzero(weights.max(axis=0) > 0)      # bins outside all filters: skip
    return SpectralLayout(n_fft, window_length, first_sample, int(used[0]), int(used[-1]),
                          symmetric_window=False)
