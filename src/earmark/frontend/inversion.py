"""Hear what the model hears: a front-end's features turned back into sound (numpy only).

A model never hears the waveform, only its front-end's features: mel bands
(or MFCCs, or a linear spectrogram) with a level floor, every ``hop_ms``.
:func:`hear` computes those features from audio with a front-end config
(the bundle's), turns them back into a magnitude spectrogram, and gives that
a phase with Griffin-Lim, so a person can listen to what the model had to go
on: the mel smoothing, the band limits, the floor, MFCC truncation.

- mel -> linear power: the non-negative least-squares solution of
  ``filters @ power = mel`` (multiplicative updates from ``filters.T @ mel``,
  as ``librosa.feature.inverse.mel_to_stft`` solves it with scipy's NNLS);
- MFCC -> log-mel: the transposed (orthonormal, truncated) DCT, which keeps
  exactly the spectral envelope the model sees;
- phase: the fast Griffin-Lim of Perraudin et al. (2013), ``momentum`` 0.99
  and random initial phases, as ``librosa.griffinlim`` does.

Written in numpy rather than calling librosa: librosa is a test dependency,
not a runtime one (the deployed runtime needs no more than numpy), and the
loop is twenty lines. The STFT here is centred (reflect-padded by ``n_fft //
2``) with the front-end's window, ``n_fft`` and hop, so the edges come back
too; the features of interior frames are the model's exactly. Per-band mean
normalisation (``mean_normalize``) and deltas are not undone: they change
what the features mean to the network, not what sound they describe.

:func:`spectral_convergence` scores a reconstruction: ``||S - S_hat||_F /
||S||_F`` on STFT magnitudes (0 is perfect).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from earmark.config import FeatureConfig
from earmark.errors import ConfigError
from earmark.frontend.filters import centred_window, dct_matrix, mel_filterbank
from earmark.frontend.geometry import filterbank_fmax, frame_geometry, validate

#: Multiplicative updates of the mel -> linear power solution.
NNLS_ITERATIONS = 60
#: Keeps divisions finite in the updates and in the overlap-add normalisation.
_TINY = 1e-12


@dataclass
class Hearing:
    """Audio made from a front-end's features, and how close it is to the original."""

    audio: np.ndarray                 #: float32 mono, peak at most 1
    sample_rate: int
    spectral_convergence: float       #: STFT magnitude of ``audio`` vs the original's
    feature_convergence: float        #: the features' own magnitude, rebuilt vs original


def stft(samples: np.ndarray, n_fft: int, hop_length: int, window: np.ndarray) -> np.ndarray:
    """Centred STFT (reflect padding) with a ``n_fft``-long window: ``(bins, frames)`` complex."""
    samples = np.asarray(samples, dtype=np.float64)
    pad = n_fft // 2
    padded = np.pad(samples, pad, mode="reflect" if len(samples) > pad else "constant")
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop_length]
    return np.fft.rfft(frames * window, axis=1).T


def istft(spectrum: np.ndarray, hop_length: int, window: np.ndarray, length: int) -> np.ndarray:
    """Inverse of :func:`stft` by weighted overlap-add, ``length`` samples."""
    n_fft = len(window)
    frames = np.fft.irfft(spectrum.T, n=n_fft, axis=1) * window
    out = _overlap_add(frames, hop_length)
    out /= np.maximum(_overlap_add(np.broadcast_to(window * window, frames.shape), hop_length),
                      _TINY)
    pad = n_fft // 2
    out = out[pad:pad + length]
    return np.pad(out, (0, length - len(out)))


def _overlap_add(frames: np.ndarray, hop_length: int) -> np.ndarray:
    """Frames ``(count, n_fft)`` added at every ``hop_length``: one slice per hop the frame
    spans (a few), not one per frame (thousands)."""
    count, n_fft = frames.shape
    spans = -(-n_fft // hop_length)
    padded = np.zeros((count, spans * hop_length))
    padded[:, :n_fft] = frames
    pieces = padded.reshape(count, spans, hop_length)
    out = np.zeros((count + spans - 1, hop_length))
    for span in range(spans):
        out[span:span + count] += pieces[:, span]
    return out.reshape(-1)[:n_fft + hop_length * (count - 1)]


def griffin_lim(magnitude: np.ndarray, hop_length: int, window: np.ndarray, length: int,
                iterations: int = 32, momentum: float = 0.99, seed: int = 0) -> np.ndarray:
    """A signal whose STFT magnitude is close to ``magnitude`` (fast Griffin-Lim).

    Parameters
    ----------
    magnitude : np.ndarray, shape (n_fft // 2 + 1, frames)
        Target magnitudes, frames as :func:`stft` lays them out.
    hop_length, window, length
        The STFT's hop, window (``n_fft`` samples) and the signal's length.
    iterations : int
        Projections; 32 as librosa's default.
    momentum : float
        The "fast" acceleration (0: plain Griffin-Lim).
    seed : int
        For the random initial phases.
    """
    rng = np.random.default_rng(seed)
    angles = np.exp(2j * np.pi * rng.random(magnitude.shape))
    previous = np.zeros_like(angles)
    signal = np.zeros(length)
    for _ in range(iterations):
        signal = istft(magnitude * angles, hop_length, window, length)
        rebuilt = stft(signal, len(window), hop_length, window)
        angles = rebuilt - momentum / (1 + momentum) * previous
        angles /= np.abs(angles) + _TINY
        previous = rebuilt
    return istft(magnitude * angles, hop_length, window, length)


def mel_to_power(mel_power: np.ndarray, filters: np.ndarray,
                 iterations: int = NNLS_ITERATIONS) -> np.ndarray:
    """Non-negative linear power ``P`` with ``filters @ P`` close to ``mel_power``.

    ``filters`` is ``(mels, bins)``; bins no filter covers come back 0.
    """
    filters = filters.astype(np.float32)
    target = filters.T @ mel_power.astype(np.float32)          # the updates' numerator
    power = target * (np.sum(mel_power) / max(float(np.sum(filters @ target)), _TINY))
    for _ in range(iterations):
        power *= target / (filters.T @ (filters @ power) + _TINY)
    return power.astype(np.float64)


def spectral_convergence(reference: np.ndarray, estimate: np.ndarray) -> float:
    """``||S - S_hat||_F / ||S||_F`` of two magnitude spectrograms (frames trimmed to the
    shorter); 0 is a perfect reconstruction, NaN when ``reference`` is all zeros."""
    frames = min(reference.shape[1], estimate.shape[1])
    reference, estimate = reference[:, :frames], estimate[:, :frames]
    norm = float(np.linalg.norm(reference))
    return float(np.linalg.norm(reference - estimate) / norm) if norm > 0 else float("nan")


def hear(samples: np.ndarray, sample_rate: int, config: FeatureConfig | None = None,
         iterations: int = 32, seed: int = 0) -> Hearing:
    """The sound of ``samples`` as a front-end with ``config`` describes it (see the module).

    Raises
    ------
    ConfigError
        An invalid config, or the ``spectrogram128`` preset (min-max scaled
        image levels that no longer say how loud anything was).
    """
    config = config or FeatureConfig()
    validate(config, sample_rate)
    if config.kind == "spectrogram128":
        raise ConfigError("features.kind = 'spectrogram128' cannot be turned back into sound "
                          "(its image is min-max scaled); use a logmel, mfcc or spectrogram "
                          "front-end")
    samples = np.asarray(samples, dtype=np.float64)
    window_length, hop_length, n_fft = frame_geometry(config, sample_rate)
    window = centred_window(window_length, n_fft)
    if len(samples) < n_fft:
        raise ConfigError(f"{len(samples)} samples are shorter than one frame ({n_fft}); "
                          "give a longer recording")
    filters = None if config.kind == "spectrogram" else mel_filterbank(
        sample_rate, n_fft, config.n_mels, config.fmin, filterbank_fmax(config, sample_rate))
    original = np.abs(stft(samples, n_fft, hop_length, window))
    heard = _heard_power(original ** 2, config, filters)
    rebuilt = heard if filters is None else mel_to_power(heard, filters)
    audio = griffin_lim(np.sqrt(rebuilt), hop_length, window, len(samples), iterations,
                        seed=seed)
    spectrum = np.abs(stft(audio, n_fft, hop_length, window))
    peak = float(np.abs(audio).max())
    if peak > 1:
        audio = audio / peak
    return Hearing(audio.astype(np.float32), sample_rate,
                   spectral_convergence(original, spectrum),
                   spectral_convergence(np.sqrt(heard),
                                        np.sqrt(_heard_power(spectrum ** 2, config, filters))))


def _heard_power(power: np.ndarray, config: FeatureConfig,
                 filters: np.ndarray | None) -> np.ndarray:
    """The features as power: mel band (or bin) power after the front-end's floor, MFCC
    truncation and ``top_db``."""
    if filters is None:
        return _floored(power, config)
    mel = _floored(filters @ power, config)
    if config.kind == "mfcc":
        basis = dct_matrix(config.n_mfcc, config.n_mels)
        mel = 10.0 ** ((basis.T @ (basis @ (10.0 * np.log10(mel)))) / 10.0)
    return mel


def _floored(power: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Power with the front-end's floor (``log_floor``) and dynamic range (``top_db``)."""
    power = np.maximum(power, config.log_floor)
    if config.top_db > 0:
        power = np.maximum(power, power.max() * 10.0 ** (-config.top_db / 10.0))
    return power
