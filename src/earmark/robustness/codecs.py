"""A lossy codec at a low bitrate: a recording encoded and decoded in memory by FFmpeg's
encoders through PyAV (Opus as a VoIP call sends it, MP3 as a cheap recorder stores it)."""

from __future__ import annotations

import functools
import io

import numpy as np

from earmark.errors import ConfigError

#: Codec -> (FFmpeg encoder, container, the rates it takes).
CODECS = {"opus": ("libopus", "ogg", (8000, 12000, 16000, 24000, 48000)),
          "mp3": ("libmp3lame", "mp3", (8000, 11025, 12000, 16000, 22050, 24000, 32000,
                                        44100, 48000))}


def through_codec(samples: np.ndarray, rate: int, codec: str, bitrate: int) -> np.ndarray:
    """``samples`` after ``codec`` at ``bitrate`` bits per second, as long as they were and
    in step with them (the codec's own delay, measured once, taken out)."""
    _, _, rates = CODECS[codec]
    if rate not in rates:
        raise ConfigError(f"{codec} does not take {rate} Hz; it takes {list(rates)}")
    delay = codec_delay(rate, codec, bitrate)
    out = _round_trip(np.pad(np.asarray(samples, np.float32), (0, delay)), rate, codec,
                      bitrate)
    return np.ascontiguousarray(out[delay:delay + len(samples)])


@functools.lru_cache(maxsize=None)
def codec_delay(rate: int, codec: str, bitrate: int) -> int:
    """Samples by which the decoded sound lags the original, from the envelopes of tone
    bursts (a low-bitrate speech codec keeps the envelope, not the waveform)."""
    burst = tone_bursts(rate)
    out = _round_trip(np.pad(burst, (0, rate // 10)), rate, codec, bitrate)
    return max(0, envelope_lag(out[:len(burst)], burst))


def tone_bursts(rate: int) -> np.ndarray:
    """One second of silence with two 10 ms bursts of 1 kHz."""
    t = np.arange(int(0.01 * rate)) / rate
    burst = (0.5 * np.hanning(len(t)) * np.sin(2 * np.pi * 1000.0 * t)).astype(np.float32)
    out = np.zeros(rate, np.float32)
    for start in (rate // 4, rate // 2 + rate // 20):
        out[start:start + len(burst)] = burst
    return out


def envelope_lag(later: np.ndarray, earlier: np.ndarray) -> int:
    """Samples by which ``later``'s envelope lags ``earlier``'s."""
    from scipy import signal

    envelopes = [np.abs(signal.hilbert(x.astype(np.float64))) for x in (later, earlier)]
    correlation = signal.correlate(*envelopes, mode="full")
    return int(np.argmax(correlation)) - (len(earlier) - 1)


def _round_trip(samples: np.ndarray, rate: int, codec: str, bitrate: int) -> np.ndarray:
    """Encoded and decoded in memory, padded or cut to the original length."""
    import av

    encoder, container, _ = CODECS[codec]
    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype(np.int16)[None, :]
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=container) as output:
        stream = output.add_stream(encoder, rate=rate)
        stream.bit_rate, stream.layout = bitrate, "mono"
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            output.mux(packet)
    buffer.seek(0)
    decoded = []
    with av.open(buffer, "r") as source:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        for frame in source.decode(audio=0):
            decoded += [part.to_ndarray()[0] for part in resampler.resample(frame)]
        decoded += [part.to_ndarray()[0] for part in resampler.resample(None)]
    out = np.concatenate(decoded) if decoded else np.zeros(0, np.float32)
    return np.pad(out[:len(samples)], (0, max(0, len(samples) - len(out)))).astype(np.float32)
