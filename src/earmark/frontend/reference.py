"""The front-end in plain numpy: a librosa-style log-mel, and the reference features.

:func:`reference_features` computes what :class:`~earmark.frontend.module.FrontEnd`
computes, one clip at a time in float64 with one ``np.fft.rfft`` per frame;
tests hold the two against each other and against librosa. Nothing is shared
with the torch module but the geometry (:mod:`~earmark.frontend.geometry`)
and the fixed matrices (:mod:`~earmark.frontend.filters`), which are tested
against librosa separately.

:func:`power_spectrogram`, :func:`power_to_db` and :func:`logmel` are the
same steps with librosa's argument names, for use outside a config. librosa
itself is never imported.

Levels are ``10 * log10(max(power, amin))`` in dB relative to a full-scale
(amplitude 1) power of 1, like ``librosa.power_to_db(ref=1.0, amin=amin,
top_db=None)``.
"""

from __future__ import annotations

import numpy as np

from earmark.config import FeatureConfig
from earmark.frontend.filters import centred_window, dct_matrix, mel_filterbank
from earmark.frontend.geometry import (ACTIVE_DB, SEED_BINS, SEED_EPSILON, SEED_FRAMES,
                                       SEED_HOP, SEED_SAMPLES, SEED_WINDOW, delta_kernel,
                                       filterbank_fmax, frame_count, frame_geometry,
                                       min_samples, validate)


def power_spectrogram(y: np.ndarray, n_fft: int, hop_length: int,
                      window_length: int | None = None, center: bool = False) -> np.ndarray:
    """Power of the short-time Fourier transform, frame by frame.

    Parameters
    ----------
    y : np.ndarray, shape (samples,)
        One clip, amplitude in [-1, 1] (full scale); computed in float64.
    n_fft : int
        Samples per frame, the DFT length.
    hop_length : int
        Samples between successive frame starts.
    window_length : int or None
        Samples under the periodic Hann window, centred in its frame and
        zero-padded to ``n_fft``; None: ``n_fft``.
    center : bool
        True: reflect-pad ``n_fft // 2`` samples at both ends first, so frame
        ``t`` is centred on sample ``t * hop_length``. False: frame ``t``
        starts at sample ``t * hop_length``.

    Returns
    -------
    np.ndarray, shape (1 + n_fft // 2, frames), float64
        ``|X|^2`` per DFT bin (row ``k`` at ``k * sample_rate / n_fft`` Hz) and
        frame, in squared full-scale amplitude (not scaled by the window).

    Raises
    ------
    ValueError
        If ``y`` is not one clip, or too short for one frame.
    """
    y = np.asarray(y, dtype=np.float64)
    if y.ndim != 1:
        raise ValueError(f"power_spectrogram expects one clip (samples,), got shape {y.shape}")
    needed = min_samples("spectrogram", center, n_fft)
    if len(y) < needed:
        raise ValueError(f"a clip of {len(y)} samples is too short for one frame: it needs "
                         f"at least {needed} samples (n_fft = {n_fft}, center = {center})")
    return _frame_power(y, n_fft, hop_length, window_length or n_fft, center)


def _frame_power(y: np.ndarray, n_fft: int, hop_length: int, window_length: int,
                 center: bool) -> np.ndarray:
    """:func:`power_spectrogram` of a float64 clip known to be long enough."""
    if center:
        y = np.pad(y, n_fft // 2, mode="reflect")
    frames = 1 + (len(y) - n_fft) // hop_length
    window = centred_window(window_length, n_fft)
    spectra = [np.fft.rfft(y[t * hop_length:t * hop_length + n_fft] * window)
               for t in range(frames)]
    return np.abs(np.array(spectra).T) ** 2


def power_to_db(power: np.ndarray, amin: float = 1e-10) -> np.ndarray:
    """Power to decibels: ``10 * log10(max(power, amin))``.

    Parameters
    ----------
    power : np.ndarray
        Power, in squared full-scale amplitude (any shape; dtype kept).
    amin : float
        Floor under the power (> 0), so silence gives ``10 log10(amin)`` dB
        rather than minus infinity: 1e-10 is -100 dB.

    Returns
    -------
    np.ndarray
        dB relative to full scale (0 dB = power 1), same shape.
    """
    return 10.0 * np.log10(np.maximum(power, amin))


def logmel(y: np.ndarray, sample_rate: int, *, n_fft: int = 512, hop_length: int = 160,
           window_length: int | None = None, n_mels: int = 40, fmin: float = 20.0,
           fmax: float | None = None, center: bool = False, amin: float = 1e-6) -> np.ndarray:
    """Log-mel spectrogram: mel-weighted STFT power in dB.

    The same numbers as ``librosa.power_to_db(librosa.feature.melspectrogram(
    y=y, sr=sample_rate, n_fft=n_fft, hop_length=hop_length,
    win_length=window_length, window="hann", center=center,
    pad_mode="reflect", power=2.0, n_mels=n_mels, fmin=fmin, fmax=fmax),
    ref=1.0, amin=amin, top_db=None)``, up to float64 rounding. The defaults
    suit 16 kHz speech: 512-sample frames (32 ms) every 160 samples (10 ms),
    40 bands from 20 Hz to Nyquist, a -60 dB floor.

    Parameters
    ----------
    y : np.ndarray, shape (samples,)
        One clip, amplitude in [-1, 1] (full scale).
    sample_rate : int
        Sampling rate of ``y`` in Hz.
    n_fft : int
        Samples per frame, the DFT length.
    hop_length : int
        Samples between successive frames.
    window_length : int or None
        Samples under the periodic Hann window (centred in the frame); None:
        ``n_fft``.
    n_mels : int
        Mel bands (Slaney scale, area-normalised triangles).
    fmin, fmax : float
        Lowest and highest filter edge in Hz; ``fmax`` None: Nyquist.
    center : bool
        Reflect-pad ``n_fft // 2`` samples at both ends, so frame ``t`` is
        centred on sample ``t * hop_length``.
    amin : float
        Power floor (> 0) before the logarithm; 1e-6 is -60 dB.

    Returns
    -------
    np.ndarray, shape (n_mels, frames), float64
        dB relative to full scale, bands ascending in frequency; frame ``t``
        starts at ``t * hop_length / sample_rate`` seconds (``center=False``).

    Raises
    ------
    ValueError
        If ``y`` is not one clip or is too short for one frame.
    ConfigError
        If the filter edges are out of order or a filter falls between bins.
    """
    power = power_spectrogram(y, n_fft, hop_length, window_length, center)
    weights = mel_filterbank(sample_rate, n_fft, n_mels, fmin,
                             sample_rate / 2.0 if fmax is None else fmax)
    return power_to_db(weights @ power, amin)


def reference_features(waveform: np.ndarray, config: FeatureConfig,
                       sample_rate: int) -> np.ndarray:
    """The features of one clip in plain numpy (float64), for tests.

    Frames are cut one by one and transformed with ``np.fft.rfft``; nothing
    is shared with :class:`~earmark.frontend.module.FrontEnd` except the
    geometry, :func:`~earmark.frontend.filters.mel_filterbank` and
    :func:`~earmark.frontend.filters.dct_matrix`, which are tested against
    librosa separately.

    Parameters
    ----------
    waveform : np.ndarray, shape (samples,)
        One clip, amplitude in [-1, 1] (full scale).
    config : FeatureConfig
        What to compute, as for ``FrontEnd``.
    sample_rate : int
        Sampling rate of ``waveform`` in Hz.

    Returns
    -------
    np.ndarray, shape (channels, bands, frames), float64
        As ``FrontEnd`` returns for one clip: dB levels (spectrogram,
        logmel), MFCCs (mfcc) or the seed image in [-0.5, 0.5]
        (spectrogram128), then their deltas per frame.

    Raises
    ------
    ValueError
        If ``waveform`` is not one clip.
    ConfigError
        If the config is invalid or the clip too short.
    """
    waveform = np.asarray(waveform, dtype=np.float64)
    if waveform.ndim != 1:
        raise ValueError(f"reference_features expects one clip (samples,), got shape "
                         f"{waveform.shape}")
    validate(config, sample_rate)
    window_length, hop_length, n_fft = frame_geometry(config, sample_rate)
    frame_count(config.kind, config.center, n_fft, hop_length, len(waveform))   # long enough?
    if config.kind == "spectrogram128":
        base = _seed_image(waveform)
    else:
        power = _frame_power(waveform, n_fft, hop_length, window_length, config.center)
        base = _features_of_power(power, config, sample_rate, n_fft)
    stack = [base]
    for _ in range(config.deltas):
        stack.append(_delta(stack[-1], config.delta_width))
    return np.stack(stack)


def _relative_levels(power: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """dB levels of one clip, then ``top_db`` and ``mean_normalize`` as configured."""
    levels = power_to_db(power, config.log_floor)
    if config.top_db > 0:
        levels = np.maximum(levels - levels.max(), -config.top_db)
    if config.mean_normalize:
        frame_peak = levels.max(axis=0)
        active = frame_peak >= frame_peak.max() - ACTIVE_DB
        levels = (levels - levels[:, active].mean(axis=1, keepdims=True)) * active
    return levels


def _features_of_power(power: np.ndarray, config: FeatureConfig, sample_rate: int,
                       n_fft: int) -> np.ndarray:
    """Spectrogram, log-mel or MFCC of a (bins, frames) power spectrogram."""
    if config.kind == "spectrogram":
        return _relative_levels(power, config)
    weights = mel_filterbank(sample_rate, n_fft, config.n_mels, config.fmin,
                             filterbank_fmax(config, sample_rate))
    log_mel = _relative_levels(weights @ power, config)
    if config.kind == "logmel":
        return log_mel
    return dct_matrix(config.n_mfcc, config.n_mels) @ log_mel


def _min_max(values: np.ndarray) -> np.ndarray:
    """Scale to [0, 1] over the whole array."""
    return (values - values.min()) / (values.max() - values.min() + SEED_EPSILON)


def _seed_image(waveform: np.ndarray) -> np.ndarray:
    """The ``spectrogram128`` preset's image of one clip, (SEED_BINS, SEED_FRAMES)."""
    signal = np.zeros(SEED_SAMPLES)
    kept = min(len(waveform), SEED_SAMPLES)
    signal[:kept] = waveform[:kept]
    window = np.hanning(SEED_WINDOW)
    spectra = [np.fft.rfft(signal[t * SEED_HOP:t * SEED_HOP + SEED_WINDOW] * window)
               for t in range(SEED_FRAMES)]
    image = np.abs(np.array(spectra).T)[1:SEED_BINS + 1]
    return _min_max(np.log10(_min_max(image) * 100.0 + 0.01)) - 0.5


def _delta(features: np.ndarray, width: int) -> np.ndarray:
    """Regression delta over ``width`` frames, edges replicated."""
    half = width // 2
    padded = np.pad(features, ((0, 0), (half, half)), mode="edge")
    frames = features.shape[1]
    kernel = delta_kernel(width)
    return sum(kernel[i] * padded[:, i:i + frames] for i in range(width))
