"""Corruptions of one recording (numpy and scipy): noise at a signal-to-noise ratio, gain,
clipping, a telephone band, 8 kHz mu-law, a microphone's colouring, another sample rate.

Every function takes float32 mono ``samples`` at ``rate`` (and a
``numpy.random.Generator`` where it draws) and returns float32 samples, at
the same rate unless it says otherwise. Levels are measured over the whole
recording (the convention of noisy keyword-spotting and speech benchmarks).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import signal

from earmark import audio

#: The telephone band (ITU-T G.712): 300 to 3400 Hz.
TELEPHONE_HZ = (300.0, 3400.0)
#: G.711's mu and the rate of a telephone line.
MU, TELEPHONE_RATE = 255.0, 8000


def power(samples: np.ndarray) -> float:
    """Mean square of ``samples`` (float64)."""
    samples = np.asarray(samples, dtype=np.float64)
    return float(np.mean(samples * samples)) if samples.size else 0.0


def fit_length(noise: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    """``length`` samples of ``noise``: from a random start, repeated when it is shorter."""
    if len(noise) == 0:
        raise ValueError("the noise recording is empty")
    start = int(rng.integers(0, len(noise)))
    repeats = math.ceil((start + length) / len(noise))
    return np.tile(noise, repeats)[start:start + length]


def mix_at_snr(samples: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``samples`` plus ``noise`` (as long) scaled so that their power ratio is ``snr_db``;
    a silent recording stays silent (no ratio to keep), silent noise adds nothing."""
    speech, hiss = power(samples), power(noise)
    if speech == 0.0 or hiss == 0.0:
        return np.asarray(samples, dtype=np.float32)
    scale = math.sqrt(speech / (hiss * 10.0 ** (snr_db / 10.0)))
    return (np.asarray(samples, np.float64) + scale * noise).astype(np.float32)


def pink_noise(length: int, rng: np.random.Generator) -> np.ndarray:
    """Stationary noise with power falling 3 dB an octave (1/f), unit power."""
    spectrum = np.fft.rfft(rng.standard_normal(length))
    frequencies = np.arange(len(spectrum), dtype=np.float64)
    spectrum[1:] /= np.sqrt(frequencies[1:])
    spectrum[0] = 0.0
    noise = np.fft.irfft(spectrum, n=length)
    return (noise / math.sqrt(max(power(noise), 1e-20))).astype(np.float32)


def babble(voices: list[np.ndarray], length: int, rng: np.random.Generator) -> np.ndarray:
    """Several other talkers at once: each voice at unit power from a random start."""
    mixed = np.zeros(length)
    for voice in voices:
        part = fit_length(np.asarray(voice, np.float64), length, rng)
        mixed += part / math.sqrt(max(power(part), 1e-20))
    return mixed.astype(np.float32)


def gain(samples: np.ndarray, decibels: float) -> np.ndarray:
    """Louder or quieter by ``decibels`` (floating point: nothing clips)."""
    return (np.asarray(samples, np.float64) * 10.0 ** (decibels / 20.0)).astype(np.float32)


def clip(samples: np.ndarray, overdrive_db: float) -> np.ndarray:
    """Hard clipping ``overdrive_db`` below the recording's peak, as an overdriven input."""
    peak = float(np.max(np.abs(samples))) if len(samples) else 0.0
    limit = peak * 10.0 ** (-overdrive_db / 20.0)
    return np.clip(samples, -limit, limit).astype(np.float32)


def telephone_band(samples: np.ndarray, rate: int) -> np.ndarray:
    """Band-limited to 300-3400 Hz (4th-order Butterworth), as a telephone channel."""
    high = min(TELEPHONE_HZ[1], 0.45 * rate)
    sections = signal.butter(4, [TELEPHONE_HZ[0], high], btype="bandpass", fs=rate,
                             output="sos")
    return signal.sosfilt(sections, samples).astype(np.float32)


def mu_law(samples: np.ndarray, rate: int) -> tuple[np.ndarray, int]:
    """``(samples, 8000)``: down to a telephone line's rate and through G.711's 8-bit
    mu-law companding."""
    narrow = audio.resample(np.asarray(samples, np.float32), rate, TELEPHONE_RATE)
    bounded = np.clip(narrow, -1.0, 1.0)
    coded = np.sign(bounded) * np.log1p(MU * np.abs(bounded)) / math.log1p(MU)
    levels = np.round((coded + 1.0) * 127.5) / 127.5 - 1.0          # 256 levels
    decoded = np.sign(levels) * np.expm1(np.abs(levels) * math.log1p(MU)) / MU
    return decoded.astype(np.float32), TELEPHONE_RATE


def microphone(samples: np.ndarray, rate: int, rng: np.random.Generator,
               most_db: float = 10.0) -> np.ndarray:
    """A random microphone's colouring: a high-pass at 50-250 Hz, a low shelf, a presence
    peak and a high shelf, each up to ``most_db`` up or down."""
    nyquist = rate / 2
    sections = [signal.butter(2, rng.uniform(50.0, 250.0), btype="highpass", fs=rate,
                              output="sos")[0],
                _biquad("lowshelf", rng.uniform(100.0, 400.0), rng.uniform(-most_db, most_db),
                        0.7, rate),
                _biquad("peak", rng.uniform(500.0, min(4000.0, 0.8 * nyquist)),
                        rng.uniform(-most_db, most_db), rng.uniform(0.7, 2.0), rate),
                _biquad("highshelf", rng.uniform(0.4, 0.75) * nyquist,
                        rng.uniform(-most_db, most_db), 0.7, rate)]
    return signal.sosfilt(np.stack(sections), samples).astype(np.float32)


def _biquad(kind: str, frequency: float, gain_db: float, q: float, rate: int) -> np.ndarray:
    """One second-order section (``b0 b1 b2 1 a1 a2``) of the Audio EQ Cookbook (R. Bristow-
    Johnson): a peaking filter or a shelf, ``gain_db`` at ``frequency``."""
    amplitude = 10.0 ** (gain_db / 40.0)
    omega = 2 * math.pi * frequency / rate
    cos, alpha = math.cos(omega), math.sin(omega) / (2 * q)
    if kind == "peak":
        b = [1 + alpha * amplitude, -2 * cos, 1 - alpha * amplitude]
        a = [1 + alpha / amplitude, -2 * cos, 1 - alpha / amplitude]
    else:
        root = 2 * math.sqrt(amplitude) * alpha
        sign = 1.0 if kind == "lowshelf" else -1.0
        b = [amplitude * ((amplitude + 1) - sign * (amplitude - 1) * cos + root),
             sign * 2 * amplitude * ((amplitude - 1) - sign * (amplitude + 1) * cos),
             amplitude * ((amplitude + 1) - sign * (amplitude - 1) * cos - root)]
        a = [(amplitude + 1) + sign * (amplitude - 1) * cos + root,
             -sign * 2 * ((amplitude - 1) + sign * (amplitude + 1) * cos),
             (amplitude + 1) + sign * (amplitude - 1) * cos - root]
    return np.array(b + a) / a[0]


def at_rate(samples: np.ndarray, rate: int, new_rate: int) -> tuple[np.ndarray, int]:
    """``(samples, new_rate)``: the recording as a device at ``new_rate`` would deliver it
    (a lower rate loses what lies above its Nyquist)."""
    return audio.resample(np.asarray(samples, np.float32), rate, new_rate), new_rate
