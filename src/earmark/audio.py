"""Reading and writing recordings: any file to float32 mono at a target rate.

soundfile (libsndfile) decodes WAV (8/16/24/32-bit int and float), FLAC,
OGG/Vorbis, Opus and MP3; soxr resamples. Every failure raises
:class:`~earmark.errors.AudioError` naming the file and the reason: a
recording is never silently turned into zeros.

This module needs no torch: the deployed runtime uses it.
"""

from __future__ import annotations

import io
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile
import soxr

from earmark.atomic import write_bytes
from earmark.errors import AudioError, ConfigError

#: File name endings earmark looks for when it scans folders.
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif")


@dataclass(frozen=True)
class AudioInfo:
    """What a file's header says, without decoding it."""

    path: str
    sample_rate: int
    channels: int
    frames: int

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.frames / self.sample_rate


def is_audio_file(path: str | os.PathLike) -> bool:
    """True when the name ends in a known audio extension."""
    return str(path).lower().endswith(AUDIO_EXTENSIONS)


def find_audio_files(folder: str | os.PathLike, setting: str = "folder") -> list[Path]:
    """Every audio file below ``folder``, sorted; ConfigError naming ``setting`` if none."""
    path = Path(folder)
    if not path.is_dir():
        raise ConfigError(f"{setting} = {folder}: no such folder")
    files = sorted(p for p in path.rglob("*") if p.is_file() and is_audio_file(p))
    if not files:
        raise ConfigError(f"{setting} = {folder}: holds no audio files")
    return files


def load_folder(folder: str | os.PathLike, sample_rate: int,
                setting: str = "folder") -> list[np.ndarray]:
    """Every recording below ``folder`` as float32 mono at ``sample_rate`` (background noise)."""
    return [load(file, sample_rate) for file in find_audio_files(folder, setting)]


def info(path: str | os.PathLike) -> AudioInfo:
    """Read a file's header: sample rate, channels and length in frames."""
    _check_exists(path)
    try:
        header = soundfile.info(str(path))
    except Exception as error:  # libsndfile raises several types
        raise AudioError(f"{path}: cannot read audio header ({_reason(error)}); "
                         "is it a supported, uncorrupted audio file?") from error
    _check_wav_complete(path)
    return AudioInfo(str(path), int(header.samplerate), int(header.channels), int(header.frames))


def load(path: str | os.PathLike, sample_rate: int | None = None) -> np.ndarray:
    """Decode a whole file to a float32 mono array in [-1, 1].

    Parameters
    ----------
    path : str or PathLike
        The recording.
    sample_rate : int, optional
        Target rate in Hz; the audio is resampled with soxr when the file's
        rate differs. ``None`` keeps the file's own rate.

    Raises
    ------
    AudioError
        Missing, empty, corrupt or truncated files, and files holding NaN or
        infinite samples.
    """
    audio, file_rate = load_native(path)
    return resample(audio, file_rate, sample_rate or file_rate)


def load_exact(path: str | os.PathLike, sample_rate: int) -> np.ndarray:
    """Decode to mono at ``sample_rate``: int16 when that is lossless, else float32.

    A 16-bit mono file at the target rate needs no resampling or mixing, so
    its samples are kept as they are stored (half the bytes of float32, and
    faster to decode); divide by 32768 for the float values :func:`load` gives.
    """
    samples, file_rate = load_native(path, exact=True)
    if samples.dtype == np.int16 and file_rate == sample_rate:
        return samples
    if samples.dtype == np.int16:
        samples = samples.astype(np.float32) / 32768.0
    return resample(samples, file_rate, sample_rate)


def load_native(path: str | os.PathLike, exact: bool = False) -> tuple[np.ndarray, int]:
    """Decode a whole file to float32 mono at its own rate: ``(audio, rate)``.

    With ``exact``, 16-bit mono PCM comes back as int16 instead.
    """
    _check_exists(path)
    _check_wav_complete(path)
    try:
        # One open for header and samples: opening costs as much as decoding a short clip.
        with soundfile.SoundFile(str(path)) as sound:
            frames, file_rate = sound.frames, sound.samplerate
            if frames == 0:
                raise AudioError(f"{path}: the file holds no audio (0 frames); remove it or "
                                 "re-record it.")
            as_int16 = exact and sound.subtype == "PCM_16" and sound.channels == 1
            data = sound.read(dtype="int16" if as_int16 else "float32", always_2d=True)
    except AudioError:
        raise
    except Exception as error:  # libsndfile raises several types
        raise AudioError(f"{path}: cannot decode audio ({_reason(error)}); the file "
                         "is corrupt or truncated.") from error
    if len(data) < frames:
        raise AudioError(f"{path}: truncated: the header promises {frames} "
                         f"frames but only {len(data)} could be read.")
    if data.dtype == np.int16:
        return np.ascontiguousarray(data[:, 0]), int(file_rate)
    audio = to_mono(data)
    check_finite(audio, path)
    return audio, int(file_rate)


def to_mono(data: np.ndarray) -> np.ndarray:
    """Average the channels of a ``(frames, channels)`` array."""
    if data.ndim == 1:
        return np.ascontiguousarray(data, dtype=np.float32)
    if data.shape[1] == 1:
        return np.ascontiguousarray(data[:, 0], dtype=np.float32)
    return data.mean(axis=1, dtype=np.float32)


def check_finite(audio: np.ndarray, source: object = "audio") -> None:
    """Raise AudioError when ``audio`` holds NaN or infinite samples."""
    if not np.isfinite(audio).all():
        bad = int(np.count_nonzero(~np.isfinite(audio)))
        raise AudioError(f"{source}: {bad} samples are NaN or infinite; the "
                         "recording is damaged.")


def resample(audio: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Resample a mono float32 array with soxr (high quality)."""
    if from_rate <= 0 or to_rate <= 0:
        raise AudioError(f"sample rates must be positive, got {from_rate} -> {to_rate} Hz")
    if from_rate == to_rate or audio.size == 0:
        return np.asarray(audio, dtype=np.float32)
    return soxr.resample(audio, from_rate, to_rate, quality="HQ").astype(np.float32, copy=False)


def read_blocks(path: str | os.PathLike, sample_rate: int,
                block_seconds: float = 10.0) -> Iterator[np.ndarray]:
    """Yield a long file as consecutive float32 mono blocks at ``sample_rate``.

    Memory stays bounded by the block size whatever the file's length; the
    blocks join to the same signal :func:`load` returns (up to resampler
    edge effects of a few samples).
    """
    header = info(path)
    if header.frames == 0:
        raise AudioError(f"{path}: the file holds no audio (0 frames).")
    block_frames = max(1, int(block_seconds * header.sample_rate))
    stream = None
    if header.sample_rate != sample_rate:
        stream = soxr.ResampleStream(header.sample_rate, sample_rate, 1, dtype="float32")
    frames_read = 0
    try:
        with soundfile.SoundFile(str(path)) as sound:
            for data in sound.blocks(blocksize=block_frames, dtype="float32", always_2d=True):
                frames_read += len(data)
                block = to_mono(data)
                check_finite(block, path)
                last = frames_read >= header.frames
                if stream is not None:
                    block = stream.resample_chunk(block, last=last)
                if block.size:
                    yield block
    except AudioError:
        raise
    except Exception as error:
        raise AudioError(f"{path}: cannot decode audio at frame {frames_read} "
                         f"({_reason(error)}); the file is corrupt or truncated.") from error
    if frames_read < header.frames:
        raise AudioError(f"{path}: truncated: the header promises {header.frames} "
                         f"frames but only {frames_read} could be read.")


def write(path: str | os.PathLike, audio: np.ndarray, sample_rate: int,
          subtype: str | None = None) -> None:
    """Write a mono or ``(frames, channels)`` array atomically (encode in memory, then rename).

    The format follows the extension (.wav, .flac, .ogg); float arrays are
    written as 16-bit PCM unless ``subtype`` says otherwise.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    file_format = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}.get(suffix)
    if file_format is None:
        raise AudioError(f"{path}: cannot write '{suffix}' files; use .wav, .flac or .ogg")
    if subtype is None:
        subtype = "VORBIS" if file_format == "OGG" else "PCM_16"
    buffer = io.BytesIO()
    try:
        soundfile.write(buffer, audio, sample_rate, subtype=subtype, format=file_format)
    except Exception as error:  # libsndfile raises several types
        raise AudioError(f"{path}: cannot write audio ({_reason(error)})") from error
    write_bytes(path, buffer.getvalue())


def _check_exists(path: str | os.PathLike) -> None:
    try:
        status = os.stat(path)          # one system call for all three checks
    except OSError:
        raise AudioError(f"{path}: no such file; check the path (relative paths are "
                         "read from the current folder or the config's folder).") from None
    if stat.S_ISDIR(status.st_mode):
        raise AudioError(f"{path}: is a folder, not an audio file.")
    if status.st_size == 0:
        raise AudioError(f"{path}: the file is empty (0 bytes); remove it or re-record it.")


def _check_wav_complete(path: str | os.PathLike) -> None:
    """Raise AudioError when a WAV file holds fewer data bytes than its header says.

    libsndfile quietly shortens a cut-off WAV to the bytes present, so without
    this check a truncated file would load as a shorter recording. A data size
    of 0 or near 4 GiB is what streaming writers put when the length was not
    known; those files are read as they are.
    """
    if not str(path).lower().endswith((".wav", ".wave")):
        return                           # other containers carry their own lengths
    with open(path, "rb") as handle:
        head = handle.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return
        while True:
            chunk = handle.read(8)
            if len(chunk) < 8:
                return
            declared = int.from_bytes(chunk[4:], "little")
            if chunk[:4] == b"data":
                break
            handle.seek(declared + (declared & 1), os.SEEK_CUR)
        available = os.path.getsize(path) - handle.tell()
    if 0 < declared < 0x7FFFF000 and available < declared:
        raise AudioError(f"{path}: truncated: the header promises {declared} bytes of "
                         f"audio data but the file holds only {available}; the file was "
                         "cut short (an interrupted copy or download?).")


def _reason(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[-1] if text else type(error).__name__
