"""An uploaded recording: received within a time limit, saved to a temporary file within
limits, its header checked, decoded.

Every refusal is an :class:`UploadError` carrying the HTTP status and a
message that names the upload and says what to do.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import AsyncIterator, Awaitable, Callable

import numpy as np
import soundfile

from earmark import audio
from earmark.errors import AudioError
from earmark.serve.limits import DECODED_SAMPLE_BYTES, ServeLimits, count_text, size_text

#: Frames x channels decoded at a time: 4 MiB of float32 whatever the file's rate and channels.
DECODE_BLOCK_SAMPLES = 2 ** 20
#: The header of a refusal sent before the body was read whole: the connection ends with it.
CLOSE = {"Connection": "close"}


class UploadError(Exception):
    """A request the server refuses; ``status`` is the HTTP code, ``headers`` go with it."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


def timed_receive(receive: Callable[[], Awaitable[dict]],
                  limits: ServeLimits) -> Callable[[], Awaitable[dict]]:
    """``receive`` (an ASGI callable) under the body deadlines: the whole body within
    ``body_timeout_seconds`` of the first call, no gap between chunks longer than
    ``body_stall_seconds``; past either, :class:`UploadError` 408."""
    deadline = time.monotonic() + limits.body_timeout_seconds

    async def receive_in_time() -> dict:
        left = deadline - time.monotonic()
        wait = min(limits.body_stall_seconds, left)
        try:
            if wait <= 0:
                raise asyncio.TimeoutError
            return await asyncio.wait_for(receive(), wait)
        except asyncio.TimeoutError:
            whole = wait >= left
            raise UploadError(408, (
                f"the upload did not arrive within {limits.body_timeout_seconds:g} s"
                if whole else f"the upload stalled: no bytes for "
                f"{limits.body_stall_seconds:g} s") + "; send the whole body at once "
                "(with a Content-Length that matches it)",
                CLOSE) from None

    return receive_in_time


def too_large(name: str, limits: ServeLimits) -> str:
    return (f"{name}: upload larger than {limits.upload_size_text}; send a shorter or "
            "compressed recording (FLAC, OGG)")


async def save_upload(chunks: AsyncIterator[bytes], name: str, limits: ServeLimits) -> Path:
    """Write the upload's bytes to a temporary file; refuse it past ``max_upload_bytes``.

    The caller deletes the file. Its suffix is the upload's, or ``.wav`` when
    the bytes are RIFF/WAVE, so that truncated WAVs are recognised.
    """
    handle = tempfile.NamedTemporaryFile(prefix="earmark-upload-", delete=False)
    path = Path(handle.name)
    size, head = 0, b""
    try:
        with handle:
            async for chunk in chunks:
                size += len(chunk)
                if size > limits.max_upload_bytes:
                    raise UploadError(413, too_large(name, limits), CLOSE)
                if len(head) < 12:
                    head += chunk[:12]
                handle.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    if size == 0:
        path.unlink(missing_ok=True)
        raise UploadError(400, f"{name}: the upload is empty; send an audio file")
    return _with_suffix(path, _suffix(name, head))


def _suffix(name: str, head: bytes) -> str:
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return ".wav"
    suffix = Path(name).suffix.lower()
    return suffix if suffix in audio.AUDIO_EXTENSIONS else ""


def _with_suffix(path: Path, suffix: str) -> Path:
    if not suffix:
        return path
    target = path.with_name(path.name + suffix)
    os.replace(path, target)
    return target


def decode_upload(path: Path, name: str, sample_rate: int, limits: ServeLimits) -> np.ndarray:
    """The saved upload as float32 mono at ``sample_rate``, after header and size checks.

    Everything the header declares (rate, channels, length, frames x
    channels) is checked before a sample is decoded; decoding then goes in
    blocks of at most :data:`DECODE_BLOCK_SAMPLES` frames x channels, so
    memory follows the mono result, not the file's rate and channel count.
    """
    try:
        header = audio.info(path)
        check_header(header, name, limits)
        block_seconds = min(30.0, DECODE_BLOCK_SAMPLES / (header.sample_rate * header.channels))
        blocks = list(audio.read_blocks(path, sample_rate, block_seconds=block_seconds,
                                         header=header))
    except AudioError as error:
        raise UploadError(_status(path), str(error).replace(str(path), name)) from error
    if not blocks:
        raise UploadError(422, f"{name}: {header.frames} frame(s) at {header.sample_rate} Hz "
                          f"leave no sample at the model's {sample_rate} Hz; send a longer "
                          "clip (half a second or more is judged best)")
    return np.concatenate(blocks)


def check_header(header: audio.AudioInfo, name: str, limits: ServeLimits) -> None:
    """Refuse, from its header alone, a file too long or too big to decode here.

    (:func:`earmark.audio.info` has already refused rates and channel counts
    outside :mod:`earmark.input_limits`.)
    """
    if header.frames == 0:
        raise UploadError(400, f"{name}: the file holds no audio (0 frames)")
    if header.duration > limits.max_upload_seconds:
        raise UploadError(413, f"{name}: {header.duration:.0f} s of audio is longer than "
                          f"the server's limit of {limits.max_upload_seconds:.0f} s; "
                          "cut it or use `earmark classify` locally")
    samples = header.frames * header.channels
    if samples > limits.max_upload_samples:
        decoded = size_text(samples * DECODED_SAMPLE_BYTES)
        raise UploadError(413, f"{name}: {header.duration:.0f} s x {header.channels} "
                          f"channel(s) at {header.sample_rate} Hz decodes to "
                          f"{count_text(samples)} samples ({decoded} as float32), over the "
                          f"server's budget of {limits.decoded_size_text}; send fewer "
                          "channels, a lower rate or a shorter clip, or use "
                          "`earmark classify` locally")


def _status(path: Path) -> int:
    """415 when the bytes are no audio format at all; 422 when they are, but broken."""
    try:
        soundfile.info(str(path))
    except Exception:  # libsndfile raises several types
        return 415
    return 422
