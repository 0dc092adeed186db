"""Fixed analysis matrices in plain numpy: the Hann window, mel filters, the DCT.

Shared by the torch front-end (:mod:`earmark.frontend.module`) and the torch-free
runtime (the live page's spectrogram), so both use the very same filters.
"""

from __future__ import annotations

import math

import numpy as np

from earmark.errors import ConfigError


def periodic_hann(length: int) -> np.ndarray:
    """The periodic Hann window (scipy's ``hann(length, sym=False)``).

    Periodic rather than symmetric because it tiles exactly at 50 % overlap
    and is what librosa and torch use for spectral analysis.
    """
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(length) / length)


def centred_window(window_length: int, n_fft: int) -> np.ndarray:
    """The periodic Hann window zero-padded, centred, to ``n_fft`` samples."""
    left = (n_fft - window_length) // 2
    padded = np.zeros(n_fft)
    padded[left:left + window_length] = periodic_hann(window_length)
    return padded


def _hz_to_mel(frequencies: np.ndarray) -> np.ndarray:
    """Hz -> Slaney mel: linear below 1 kHz (3 mel / 200 Hz), logarithmic above."""
    frequencies = np.asarray(frequencies, dtype=np.float64)
    linear = frequencies / (200.0 / 3)
    log_step = math.log(6.4) / 27.0
    logarithmic = 15.0 + np.log(np.maximum(frequencies, 1e-300) / 1000.0) / log_step
    return np.where(frequencies >= 1000.0, logarithmic, linear)


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    """Slaney mel -> Hz, the inverse of :func:`_hz_to_mel`."""
    mels = np.asarray(mels, dtype=np.float64)
    log_step = math.log(6.4) / 27.0
    return np.where(mels >= 15.0, 1000.0 * np.exp(log_step * (mels - 15.0)),
                    mels * (200.0 / 3))


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float,
                   fmax: float) -> np.ndarray:
    """Triangular mel filters, Slaney scale and area normalisation.

    The same matrix as ``librosa.filters.mel(sr=sample_rate, n_fft=n_fft,
    n_mels=n_mels, fmin=fmin, fmax=fmax, htk=False, norm="slaney")``, in
    float64.

    Parameters
    ----------
    sample_rate : int
        Sampling rate in Hz.
    n_fft : int
        FFT length in samples; the filters cover its ``n_fft // 2 + 1`` bins.
    n_mels : int
        Number of filters.
    fmin, fmax : float
        Lowest and highest edge in Hz; ``fmax <= 0`` means Nyquist.

    Returns
    -------
    np.ndarray, shape (n_mels, n_fft // 2 + 1)
        Weight of each FFT bin (columns, ascending frequency) in each filter.
        Each filter has unit area in Hz (times 2/width), so a white spectrum
        gives about the same level in every band.

    Raises
    ------
    ConfigError
        If the edges are out of order or above Nyquist, or if a filter falls
        between two FFT bins (too many mels for this ``n_fft``).
    """
    nyquist = sample_rate / 2.0
    fmax = nyquist if fmax <= 0 else fmax
    if not 0 <= fmin < fmax <= nyquist:
        raise ConfigError(f"mel filterbank needs 0 <= fmin < fmax <= {nyquist:g} Hz "
                          f"(Nyquist at {sample_rate} Hz), got fmin = {fmin:g}, fmax = {fmax:g}")
    bin_frequencies = np.fft.rfftfreq(n_fft, d=1.0 / sample_rate)
    edges = mel_edges(n_mels, fmin, fmax)
    widths = np.diff(edges)
    offsets = edges[:, None] - bin_frequencies[None, :]
    rising = -offsets[:-2] / widths[:-1, None]
    falling = offsets[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    empty = np.flatnonzero((edges[:-2] != 0) & ~(weights.max(axis=1) > 0))
    if empty.size:
        raise ConfigError(
            f"n_mels = {n_mels} is too many for n_fft = {n_fft} at {sample_rate} Hz "
            f"between {fmin:g} and {fmax:g} Hz: {empty.size} filter(s) (first: {empty[0]}) "
            f"fall between FFT bins ({sample_rate / n_fft:g} Hz apart) and would always "
            f"be empty; use fewer mels, a larger n_fft or a longer window, or raise fmin")
    return weights


def mel_edges(n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """The ``n_mels + 2`` filter edges in Hz, equally spaced in Slaney mel.

    Filter ``i`` rises from edge ``i`` to edge ``i + 1`` and falls to ``i + 2``.
    """
    return _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))


def dct_matrix(n_mfcc: int, n_mels: int) -> np.ndarray:
    """Orthonormal DCT-II basis, first ``n_mfcc`` rows.

    ``dct_matrix(k, n) @ x`` equals ``scipy.fft.dct(x, type=2, norm="ortho")[:k]``
    along the first axis, which is what ``librosa.feature.mfcc`` applies to
    the log-mel spectrogram.

    Returns
    -------
    np.ndarray, shape (n_mfcc, n_mels)
    """
    if not 1 <= n_mfcc <= n_mels:
        raise ConfigError(f"n_mfcc = {n_mfcc} must be in 1..n_mels ({n_mels})")
    k = np.arange(n_mfcc)[:, None]
    n = np.arange(n_mels)[None, :]
    basis = np.cos(np.pi * k * (2 * n + 1) / (2 * n_mels)) * math.sqrt(2.0 / n_mels)
    basis[0] /= math.sqrt(2.0)        # orthonormal scaling of the DC row
    return basis
