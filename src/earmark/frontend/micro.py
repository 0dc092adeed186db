"""The TFLite-Micro audio front-end, as microcontrollers and microWakeWord compute it (numpy).

ESPHome's ``micro_wake_word`` and microWakeWord feed their models the
features of TensorFlow Lite Micro's ``audio_microfrontend``: a 30 ms window
every 10 ms at 16 kHz, 40 mel channels (125-7500 Hz), noise reduction, PCAN
gain control and a log scale, all in fixed point, then scaled by 10/256 into
about 0-26. Its state (the noise estimate) runs on from frame to frame, so a
stream's features depend on what came before.

``pymicro-features`` is that C code compiled for Python, bit for bit the
features a device computes, so earmark trains on exactly what the device
will hear (there is no float approximation to drift from). It comes with
``pip install earmark[edge]``.
"""

from __future__ import annotations

import numpy as np

from earmark.errors import ConfigError

SAMPLE_RATE = 16000       #: the only rate the front-end takes
WINDOW_SAMPLES = 480      #: 30 ms
HOP_SAMPLES = 160         #: 10 ms
CHANNELS = 40             #: mel channels per frame
#: The largest feature value (the 16-bit log output times 10/256): microWakeWord
#: models quantize their input over [0, FEATURE_MAX].
FEATURE_MAX = 26.0
_CHUNK_BYTES = 2 * HOP_SAMPLES


def require_micro_features():
    """``pymicro_features.MicroFrontend``, or a ConfigError saying how to install it."""
    try:
        from pymicro_features import MicroFrontend
    except ImportError as error:
        raise ConfigError("the micro front-end (features.kind = \"micro\") needs "
                          "pymicro-features: pip install 'earmark[edge]'") from error
    return MicroFrontend


def frame_count(samples: int) -> int:
    """Frames the front-end gives for ``samples`` samples (0 when under one window)."""
    return 0 if samples < WINDOW_SAMPLES else 1 + (samples - WINDOW_SAMPLES) // HOP_SAMPLES


def to_pcm(samples: np.ndarray) -> bytes:
    """float samples in [-1, 1] as 16-bit PCM bytes (what the front-end reads): the
    inverse of decoding, ``x * 32768`` rounded, so a decoded 16-bit file gives back its
    own samples (and the device's features)."""
    scaled = np.round(np.nan_to_num(np.asarray(samples, np.float64)) * 32768.0)
    return np.clip(scaled, -32768, 32767).astype("<i2").tobytes()


class MicroFeatures:
    """A running front-end: PCM in, features out, its state kept between calls."""

    def __init__(self) -> None:
        self._frontend = require_micro_features()()
        self._pending = b""

    def reset(self) -> None:
        self._frontend.reset()
        self._pending = b""

    def push(self, samples: np.ndarray) -> np.ndarray:
        """The features of every frame completed by ``samples``: (frames, 40) float32."""
        data = self._pending + to_pcm(samples)
        frames, offset = [], 0
        while offset + _CHUNK_BYTES <= len(data):
            result = self._frontend.process_samples(data[offset:offset + _CHUNK_BYTES])
            offset += 2 * result.samples_read
            if result.features:
                frames.append(result.features)
        self._pending = data[offset:]
        return np.asarray(frames, np.float32).reshape(len(frames), CHANNELS)


def micro_features(samples: np.ndarray) -> np.ndarray:
    """The features of one recording from a fresh front-end: (frames, 40) float32."""
    return MicroFeatures().push(samples)


def micro_features_batch(batch: np.ndarray) -> np.ndarray:
    """(batch, samples) -> (batch, frames, 40), each recording from a fresh front-end."""
    batch = np.asarray(batch, np.float32)
    frames = frame_count(batch.shape[-1])
    out = np.empty((len(batch), frames, CHANNELS), np.float32)
    features = MicroFeatures()
    for index, samples in enumerate(batch):
        features.reset()
        out[index] = features.push(samples)
    return out
