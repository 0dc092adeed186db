"""An uploaded recording: saved to a temporary file within limits, checked, decoded.

Every refusal is an :class:`UploadError` carrying the HTTP status and a
message that names the upload and says what to do.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import AsyncIterator

import numpy as np
import soundfile

from earmark import audio
from earmark.errors import AudioError
from earmark.serve.limits import ServeLimits


class UploadError(Exception):
    """A request the server refuses; ``status`` is the HTTP code."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


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
                    raise UploadError(413, too_large(name, limits))
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
    """The saved upload as float32 mono at ``sample_rate``, after header and length checks."""
    try:
        header = audio.info(path)
        if header.frames == 0:
            raise UploadError(400, f"{name}: the file holds no audio (0 frames)")
        if header.duration > limits.max_upload_seconds:
            raise UploadError(413, f"{name}: {header.duration:.0f} s of audio is longer than "
                              f"the server's limit of {limits.max_upload_seconds:.0f} s; "
                              "cut it or use `earmark classify` locally")
        return np.concatenate(list(audio.read_blocks(path, sample_rate, block_seconds=30.0)))
    except AudioError as error:
        raise UploadError(_status(path), str(error).replace(str(path), name)) from error


def _status(path: Path) -> int:
    """415 when the bytes are no audio format at all; 422 when they are, but broken."""
    try:
        soundfile.info(str(path))
    except Exception:  # libsndfile raises several types
        return 415
    return 422
