"""Where live audio comes from: a microphone, a file played as a stream, raw PCM on stdin.

Every source yields float32 mono blocks at its own ``sample_rate``; the
stream engine resamples. Rates, channel counts and block lengths are checked
by :mod:`earmark.input_limits` when a source is made, so an absurd one (a
1 Hz header, ``--channels 0``) is refused before any audio is read. A
:class:`Recorder` reads one source and hands every block to each of its
listeners, as a recording app's reader thread hands buffers to its listeners
(waveform display, spectrogram, recogniser).
Tests stand a generator in for the microphone: the same interface, no
audio hardware.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import BinaryIO, Callable, Iterable, Iterator, Protocol

import numpy as np

from earmark import audio
from earmark.errors import AudioError, EarmarkError
from earmark.input_limits import check_channels, check_positive, check_sample_rate

logger = logging.getLogger(__name__)

#: The longest block a source hands over, in ms.
MAX_BLOCK_MS = 10_000.0

PORTAUDIO_HINT = ("the microphone needs PortAudio: on Debian/Ubuntu `sudo apt-get install "
                  "libportaudio2`, on macOS `brew install portaudio`; then "
                  "`pip install sounddevice`")


class AudioSource(Protocol):
    """Anything with a rate that yields float32 mono blocks."""

    sample_rate: int

    def blocks(self) -> Iterator[np.ndarray]:
        ...


class ArraySource:
    """Blocks cut from an array or produced by a generator (a stand-in microphone)."""

    def __init__(self, blocks: Iterable[np.ndarray] | np.ndarray, sample_rate: int,
                 block_size: int = 1024):
        self.sample_rate = check_sample_rate(sample_rate, "ArraySource sample_rate")
        self._blocks = blocks
        self._block_size = block_size

    def blocks(self) -> Iterator[np.ndarray]:
        if isinstance(self._blocks, np.ndarray):
            signal = np.asarray(self._blocks, dtype=np.float32)
            for start in range(0, len(signal), self._block_size):
                yield signal[start:start + self._block_size]
            return
        for block in self._blocks:
            yield np.asarray(block, dtype=np.float32).reshape(-1)


class FileSource:
    """A recording played as a stream, as fast as possible or in real time.

    Raises
    ------
    AudioError
        An unreadable file, or a header whose rate earmark does not accept.
    """

    def __init__(self, path: str | os.PathLike, block_ms: float = 100.0,
                 realtime: bool = False):
        self.path = str(path)
        self.sample_rate = audio.info(path).sample_rate     # its rate checked by audio.info
        self.block_size = _block_size(self.sample_rate, block_ms)
        self.realtime = realtime

    def blocks(self) -> Iterator[np.ndarray]:
        started = time.monotonic()
        played = 0
        block_seconds = self.block_size / self.sample_rate
        for block in audio.read_blocks(self.path, self.sample_rate, block_seconds):
            if self.realtime:
                # Hand each block over no sooner than a microphone would.
                delay = started + played / self.sample_rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            played += len(block)
            yield block


#: Raw PCM sample formats, little-endian, as ``ffmpeg -f`` names them.
PCM_FORMATS = {"s16le": np.dtype("<i2"), "s32le": np.dtype("<i4"), "f32le": np.dtype("<f4")}


def pcm_dtype(sample_format: str) -> np.dtype:
    """The numpy type of a PCM format name; an :class:`AudioError` names the known ones."""
    if sample_format not in PCM_FORMATS:
        raise AudioError(f"PCM format {sample_format!r} is not one of {sorted(PCM_FORMATS)}")
    return PCM_FORMATS[sample_format]


def decode_pcm(data: bytes, dtype: np.dtype, channels: int = 1,
               source: str = "PCM stream") -> np.ndarray:
    """Whole interleaved frames of raw PCM -> mono float32 in [-1, 1]; NaN/inf refused."""
    samples = np.frombuffer(data, dtype=dtype).reshape(-1, channels)
    if dtype.kind == "i":
        samples = samples.astype(np.float32) / float(np.iinfo(dtype).max + 1)
    block = audio.to_mono(samples.astype(np.float32, copy=False))
    audio.check_finite(block, source)
    return block


class PcmSource:
    """Raw interleaved PCM from a byte stream (stdin by default)."""

    def __init__(self, sample_rate: int, sample_format: str = "s16le", channels: int = 1,
                 block_ms: float = 100.0, stream: BinaryIO | None = None):
        self.dtype = pcm_dtype(sample_format)
        self.sample_rate = check_sample_rate(sample_rate, "the PCM stream's sample rate")
        self.channels = check_channels(channels, "the PCM stream's channels")
        self.frame_bytes = self.dtype.itemsize * self.channels
        self.block_bytes = _block_size(self.sample_rate, block_ms) * self.frame_bytes
        self.stream = stream if stream is not None else sys.stdin.buffer

    def blocks(self) -> Iterator[np.ndarray]:
        pending = b""
        while True:
            chunk = self.stream.read(self.block_bytes)
            if not chunk:
                break
            pending += chunk
            usable = len(pending) - len(pending) % self.frame_bytes
            if usable:
                yield decode_pcm(pending[:usable], self.dtype, self.channels)
                pending = pending[usable:]
        if pending:
            raise AudioError(f"the PCM stream ended inside a frame ({len(pending)} stray "
                             f"bytes for {self.channels} channel(s) of {self.dtype})")


class MicrophoneSource:
    """A live input device through sounddevice (PortAudio)."""

    def __init__(self, sample_rate: int | None = None, device: int | str | None = None,
                 block_ms: float = 50.0, channels: int = 1):
        # Checked before the device is opened: a bad number fails without PortAudio.
        if sample_rate is not None:
            sample_rate = check_sample_rate(sample_rate, "the microphone's sample rate")
        self.channels = check_channels(channels, "the microphone's channels")
        sounddevice = _sounddevice()
        try:
            info = sounddevice.query_devices(device, "input")
        except Exception as error:
            raise AudioError(f"no usable input device {device!r} ({error}); list them with "
                             "`earmark listen --list-devices`") from error
        self.device = device
        self.sample_rate = sample_rate or check_sample_rate(
            info["default_samplerate"], f"input device {info.get('name', device)!r}'s default "
            "rate (give one with --rate)")
        self.block_size = _block_size(self.sample_rate, block_ms)

    def blocks(self) -> Iterator[np.ndarray]:
        sounddevice = _sounddevice()
        with sounddevice.InputStream(samplerate=self.sample_rate, device=self.device,
                                     channels=self.channels, dtype="float32",
                                     blocksize=self.block_size) as stream:
            while True:
                data, overflowed = stream.read(self.block_size)
                if overflowed:
                    logger.warning("earmark: input overflow: audio was dropped")
                yield audio.to_mono(data)


def _block_size(sample_rate: int, block_ms: float) -> int:
    """Samples in a block of ``block_ms`` (checked: above 0, at most :data:`MAX_BLOCK_MS`)."""
    block_ms = check_positive(block_ms, "block_ms", maximum=MAX_BLOCK_MS)
    return max(1, int(sample_rate * block_ms / 1000))


def list_input_devices() -> str:
    """The input devices PortAudio sees, one per line."""
    sounddevice = _sounddevice()
    lines = []
    for index, device in enumerate(sounddevice.query_devices()):
        if device["max_input_channels"] > 0:
            lines.append(f"{index:3d}  {device['name']}  ({device['max_input_channels']} ch, "
                         f"{device['default_samplerate']:.0f} Hz)")
    return "\n".join(lines) or "no input devices found"


def _sounddevice():
    try:
        import sounddevice
    except (ImportError, OSError) as error:   # OSError: installed, PortAudio missing
        raise EarmarkError(f"cannot open the microphone: {error}; {PORTAUDIO_HINT}") from error
    return sounddevice


class Recorder:
    """Reads a source and gives every block to every listener, in order.

    Use it as an iterator (``for block in recorder``) or call :meth:`run`
    after adding listeners; both deliver each block to all listeners first.
    """

    def __init__(self, source: AudioSource):
        self.source = source
        self.listeners: list[Callable[[np.ndarray], None]] = []

    @property
    def sample_rate(self) -> int:
        return self.source.sample_rate

    def add_listener(self, listener: Callable[[np.ndarray], None]) -> None:
        self.listeners.append(listener)

    def __iter__(self) -> Iterator[np.ndarray]:
        for block in self.source.blocks():
            for listener in self.listeners:
                listener(block)
            yield block

    def run(self) -> int:
        """Read until the source ends; returns the number of samples read."""
        return sum(len(block) for block in self)
