"""Reading and writing recordings: any file to float32 mono at a target rate.

soundfile (libsndfile) decodes WAV (8/16/24/32-bit int and float), FLAC,
OGG/Vorbis, Opus and MP3; soxr resamples. Every failure raises
:class:`~earmark.errors.AudioError` naming the file and the reason: a
recording is never silently turned into zeros. Only regular files are read
(not FIFOs or devices), a header's rate and channel count must be ones
:mod:`earmark.input_limits` accepts, and a header that promises more frames
than the file holds costs no memory: it is reported as truncated.

This module needs no torch: the deployed runtime uses it.
"""

from __future__ import annotations

import io
import math
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
from earmark.input_limits import (
    MAX_CHANNELS,
    MAX_SAMPLE_RATE,
    MIN_SAMPLE_RATE,
    check_channels,
    check_positive,
    check_sample_rate,
)

#: File name endings earmark looks for when it scans folders.
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif")
#: The container each extension names, for messages about files that fail to decode.
_FORMAT_NAMES = {".wav": "WAV", ".wave": "WAV", ".flac": "FLAC", ".ogg": "OGG", ".oga": "OGG",
                 ".opus": "OGG/Opus", ".mp3": "MP3", ".aiff": "AIFF", ".aif": "AIFF"}
#: libsndfile's words for some failures, and what they mean for a file that exists.
_LIBSNDFILE_WORDING = {
    "File does not exist or is not a regular file (possibly a pipe?).":
        "no audio frames libsndfile can decode were found in it",
    "Format not recognised.": "its bytes match no audio format libsndfile knows",
    "Error : unknown error in flac decoder.": "the FLAC decoder rejected its data",
    "File contains data in an unimplemented format.":
        "it holds an encoding libsndfile cannot decode",
    "Unspecified internal error.": "the decoder failed on its data",
    "Internal psf_fseek() failed.": "its data ends before the length its header gives",
}
#: Samples a whole-file read allocates at once at least (a header may promise more than the
#: bytes hold, so more is only allocated as it is decoded).
_FIRST_READ_SAMPLES = 1 << 20
#: The integer PCM types :func:`array_to_mono` scales: ``(offset, full scale)``.
_PCM_SCALES = {np.dtype(np.int16): (0.0, 2.0 ** 15), np.dtype(np.int32): (0.0, 2.0 ** 31),
               np.dtype(np.uint8): (128.0, 128.0)}


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
    """Read a file's header: sample rate, channels and length in frames.

    Raises
    ------
    AudioError
        Not a non-empty regular file, a header libsndfile cannot read, a WAV
        cut short, or a rate or channel count outside what earmark accepts
        (:mod:`earmark.input_limits`).
    """
    _check_exists(path)
    try:
        header = soundfile.info(str(path))
    except Exception as error:  # libsndfile raises several types
        raise _undecodable(path, error, "cannot read audio header") from error
    _check_wav_complete(path)
    rate, channels = _check_header(path, header.samplerate, header.channels)
    return AudioInfo(str(path), rate, channels, int(header.frames))


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
        Missing, empty, corrupt or truncated files, FIFOs and devices, headers
        giving a rate or channel count earmark does not accept, and files
        holding NaN or infinite samples.
    ConfigError
        A target ``sample_rate`` outside what :mod:`earmark.input_limits` accepts.
    """
    if sample_rate:
        sample_rate = check_sample_rate(sample_rate, "the target sample_rate")
    audio, file_rate = load_native(path)
    return resample(audio, file_rate, sample_rate or file_rate, path)


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
    return resample(samples, file_rate, sample_rate, path)


def load_native(path: str | os.PathLike, exact: bool = False) -> tuple[np.ndarray, int]:
    """Decode a whole file to float32 mono at its own rate: ``(audio, rate)``.

    With ``exact``, 16-bit mono PCM comes back as int16 instead. Memory
    follows the samples decoded, not the length the header promises.
    """
    _check_exists(path)
    _check_wav_complete(path)
    try:
        # One open for header and samples: opening costs as much as decoding a short clip.
        sound = soundfile.SoundFile(str(path))
    except Exception as error:  # libsndfile raises several types
        raise _undecodable(path, error, "cannot read audio header") from error
    with sound:
        file_rate, _ = _check_header(path, sound.samplerate, sound.channels)
        frames = sound.frames
        if frames == 0:
            raise AudioError(f"{path}: the file holds no audio (0 frames); remove it or "
                             "re-record it.")
        as_int16 = exact and sound.subtype == "PCM_16" and sound.channels == 1
        data = _read_all(sound, path, "int16" if as_int16 else "float32")
    if len(data) < frames:
        raise AudioError(f"{path}: truncated: the header promises {frames} "
                         f"frames but only {len(data)} could be read.")
    if data.dtype == np.int16:
        return np.ascontiguousarray(data[:, 0]), file_rate
    audio = to_mono(data)
    check_finite(audio, path)
    return audio, file_rate


def to_mono(data: np.ndarray) -> np.ndarray:
    """Average the channels of a ``(frames, channels)`` array.

    Damaged samples (NaN, or sums past float32's range) come out NaN or
    infinite, quietly, for :func:`check_finite` to report.
    """
    if data.ndim == 1:
        return np.ascontiguousarray(data, dtype=np.float32)
    if data.shape[1] == 1:
        return np.ascontiguousarray(data[:, 0], dtype=np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        return data.mean(axis=1, dtype=np.float32)


def array_to_mono(samples, source: object = "<array>") -> np.ndarray:
    """A caller's array of samples as float32 mono, in the units :func:`load` gives.

    Parameters
    ----------
    samples : array_like
        ``(samples,)`` mono, or ``(samples, channels)`` as soundfile reads
        files (1 to :data:`~earmark.input_limits.MAX_CHANNELS` channels),
        whose channels are averaged as a file's are. Floats are taken as they
        are (full scale is -1 to 1). Integer PCM is scaled as audio libraries
        (soundfile, librosa) read it: int16 is divided by 2**15 and int32 by
        2**31, so full scale maps to [-1, 1); uint8 (8-bit WAV) has 128 taken
        off and is divided by 128.
    source : str
        Names the array in messages.

    Raises
    ------
    AudioError
        No samples; not real numbers, or an integer type whose full scale is
        ambiguous (int64, uint16, ...); another shape; NaN or infinite values;
        values beyond what float32 holds.
    """
    try:
        array = np.asarray(samples)
    except (TypeError, ValueError) as error:     # ragged lists, objects numpy refuses
        raise AudioError(f"{source}: not an array of samples ({error}); give a 1-D array "
                         "or one of shape (samples, channels).") from None
    offset, scale = _pcm_scale(array.dtype, source)
    shape, array = array.shape, _by_channels(array, source)
    if array.shape[0] == 0:
        raise AudioError(f"{source}: holds no samples (shape {shape}); give at least one "
                         "sample of audio.")
    if array.dtype == np.float32 and array.shape[1] == 1:
        mono = np.ascontiguousarray(array[:, 0])
        check_finite(mono, source)
    else:
        with np.errstate(over="ignore", invalid="ignore"):    # reported just below
            wide = array.mean(axis=1, dtype=np.float64) if array.shape[1] > 1 else \
                array[:, 0].astype(np.float64)
            mono = ((wide - offset) / scale).astype(np.float32)
        check_finite(wide, source)
        if not np.isfinite(mono).all():
            raise AudioError(f"{source}: samples reach {np.abs(wide).max():g}, beyond what "
                             "float32 holds; give audio scaled to -1..1.")
    return mono


def _pcm_scale(dtype: np.dtype, source: object) -> tuple[float, float]:
    """``(offset, full scale)`` for samples of ``dtype``; AudioError for types that are
    not audio or whose full scale is ambiguous."""
    if dtype.kind == "f":
        return 0.0, 1.0
    if dtype in _PCM_SCALES:
        return _PCM_SCALES[dtype]
    raise AudioError(f"{source}: samples of type {dtype} are not audio earmark reads; give "
                     "floats (full scale -1 to 1) or int16, int32 or uint8 PCM (e.g. "
                     "samples.astype(np.int16) when they are 16-bit values).")


def _by_channels(array: np.ndarray, source: object) -> np.ndarray:
    """``array`` as ``(samples, channels)``; AudioError for any other shape."""
    if array.ndim == 1:
        return array[:, None]
    if array.ndim != 2:
        raise AudioError(f"{source}: an array of shape {array.shape} is not audio; give "
                         "(samples,) for mono or (samples, channels).")
    try:
        check_channels(array.shape[1], f"{source}'s channels")
    except ConfigError:
        flipped = ("; it looks like (channels, samples): pass its transpose, samples.T"
                   if 1 <= array.shape[0] <= MAX_CHANNELS < array.shape[1] else "")
        raise AudioError(f"{source}: shape {array.shape} means {array.shape[1]} channels, "
                         f"outside 1 to {MAX_CHANNELS}; give (samples,) or (samples, "
                         f"channels){flipped}.") from None
    return array


def check_finite(audio: np.ndarray, source: object = "audio") -> None:
    """Raise AudioError when ``audio`` holds NaN or infinite samples."""
    if not np.isfinite(audio).all():
        bad = int(np.count_nonzero(~np.isfinite(audio)))
        raise AudioError(f"{source}: {bad} samples are NaN or infinite; the "
                         "recording is damaged.")


def resample(audio: np.ndarray, from_rate: int, to_rate: int,
             source: object = "audio") -> np.ndarray:
    """Resample a mono float32 array with soxr (high quality).

    Raises AudioError naming ``source`` when samples so large that they
    overflow (finite, but near float32's limit) come out infinite.
    """
    if not (0 < from_rate < math.inf and 0 < to_rate < math.inf):     # NaN hangs soxr
        raise AudioError(f"sample rates must be positive and finite, got {from_rate} -> "
                         f"{to_rate} Hz")
    if from_rate == to_rate or audio.size == 0:
        return np.asarray(audio, dtype=np.float32)
    resampled = soxr.resample(audio, from_rate, to_rate, quality="HQ")
    _check_resampled(resampled, audio, source)
    return resampled.astype(np.float32, copy=False)


def _check_resampled(resampled: np.ndarray, original: np.ndarray, source: object) -> None:
    """AudioError when resampling finite samples overflowed (they were far beyond -1..1)."""
    if not np.isfinite(resampled).all():
        raise AudioError(f"{source}: samples reach {float(np.abs(original).max()):g}, so far "
                         "beyond -1..1 that resampling them overflows; the recording is "
                         "damaged, or give audio scaled to -1..1.")


def read_blocks(path: str | os.PathLike, sample_rate: int, block_seconds: float = 10.0,
                header: AudioInfo | None = None, start: float = 0.0,
                duration: float | None = None) -> Iterator[np.ndarray]:
    """Yield a long file as consecutive float32 mono blocks at ``sample_rate``.

    Memory stays bounded by the block size whatever the file's length (or the
    length its header claims); the blocks join to the same signal
    :func:`load` returns (up to resampler edge effects of a few samples).
    ``start`` and ``duration`` (seconds) read only that part of the file
    (seeking to it, so nothing before it is decoded); ``duration`` past the
    end reads to the end.

    Raises
    ------
    AudioError
        As :func:`load`; a file shorter than its header says fails after its
        last decodable block.
    ConfigError
        A target ``sample_rate`` or ``block_seconds`` out of range.
    """
    sample_rate = check_sample_rate(sample_rate, "the target sample_rate")
    block_seconds = check_positive(block_seconds, "block_seconds")
    header = header or info(path)     # a caller that checked the header already passes it
    if header.frames == 0:
        raise AudioError(f"{path}: the file holds no audio (0 frames).")
    first, wanted = _span_frames(path, header, start, duration)
    block_frames = max(1, min(int(block_seconds * header.sample_rate), wanted,
                              _read_limit(path, header.channels)))
    stream = None
    if header.sample_rate != sample_rate:
        stream = soxr.ResampleStream(header.sample_rate, sample_rate, 1, dtype="float32")
    frames_read = 0
    try:
        with soundfile.SoundFile(str(path)) as sound:
            if first:
                sound.seek(first)
            while frames_read < wanted:
                data = sound.read(min(block_frames, wanted - frames_read), dtype="float32",
                                  always_2d=True)
                frames_read += len(data)
                block = to_mono(data)
                check_finite(block, path)
                last = len(data) < block_frames or frames_read >= wanted
                if stream is not None:
                    resampled = stream.resample_chunk(block, last=last)
                    _check_resampled(resampled, block, path)
                    block = resampled
                if block.size:
                    yield block
                if last:
                    break
    except AudioError:
        raise
    except Exception as error:  # libsndfile raises several types
        raise AudioError(f"{path}: cannot decode audio at frame {first + frames_read}: could "
                         f"not decode it as {_format_name(path)}: {_reason(error)}; the file "
                         "is corrupt or truncated.") from error
    if frames_read < wanted:
        raise AudioError(f"{path}: truncated: the header promises {header.frames} "
                         f"frames but only {first + frames_read} could be read.")


def _span_frames(path: str | os.PathLike, header: AudioInfo, start: float,
                 duration: float | None) -> tuple[int, int]:
    """``(first frame, frames)`` of the part of a file from ``start`` for ``duration`` s."""
    if not (math.isfinite(start) and start >= 0):
        raise ConfigError(f"start = {start} s: give a time of 0 s or more")
    first = int(round(start * header.sample_rate))
    if first >= header.frames:
        raise AudioError(f"{path}: starts at {start:g} s, but the file lasts only "
                         f"{header.duration:.2f} s")
    if duration is None:
        return first, header.frames - first
    duration = check_positive(duration, "duration")
    return first, max(1, min(header.frames - first, int(round(duration * header.sample_rate))))


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
    """AudioError unless ``path`` is a regular file holding at least one byte."""
    try:
        status = os.stat(path)          # one system call for all the checks
    except (FileNotFoundError, NotADirectoryError):
        raise AudioError(f"{path}: no such file; check the path (relative paths are "
                         "read from the current folder or the config's folder).") from None
    except (OSError, ValueError) as error:     # permissions, a name with a NUL byte
        raise AudioError(f"{path}: cannot be read ({getattr(error, 'strerror', None) or error})"
                         "; check the path and its permissions.") from None
    if stat.S_ISDIR(status.st_mode):
        raise AudioError(f"{path}: is a folder, not an audio file.")
    if not stat.S_ISREG(status.st_mode):
        raise AudioError(f"{path}: not a regular file: it is {_file_kind(status.st_mode)}; "
                         "earmark reads files: save the audio to a file first, or pipe raw "
                         "PCM to `earmark listen --stdin`.")
    if status.st_size == 0:
        raise AudioError(f"{path}: the file is empty (0 bytes); remove it or re-record it.")


def _file_kind(mode: int) -> str:
    """What a file that is not a regular file is, in words."""
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a special file"


def _check_header(path: str | os.PathLike, rate: int, channels: int) -> tuple[int, int]:
    """The header's rate and channel count, or AudioError naming the file when earmark
    does not accept them (the bounds of :mod:`earmark.input_limits`)."""
    try:
        rate = check_sample_rate(rate, f"{path}'s header")
    except ConfigError:
        raise AudioError(f"{path}: the header gives a sample rate of {rate} Hz, outside what "
                         f"earmark accepts ({MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz); the "
                         "header is damaged, or the file was written with a wrong rate: "
                         "rewrite it at the rate it was recorded at.") from None
    try:
        channels = check_channels(channels, f"{path}'s header")
    except ConfigError:
        raise AudioError(f"{path}: the header gives {channels} channels, outside the 1 to "
                         f"{MAX_CHANNELS} earmark mixes down; the header is damaged, or split "
                         "the channels into files of their own.") from None
    return rate, channels


def _read_limit(path: str | os.PathLike, channels: int) -> int:
    """The most frames one read allocates: enough for any honest file of this size in
    one piece or a few, whatever length the header claims."""
    return max(1, max(_FIRST_READ_SAMPLES, 32 * os.path.getsize(path)) // channels)


def _read_all(sound: soundfile.SoundFile, path: str | os.PathLike, dtype: str) -> np.ndarray:
    """Every frame of an open file as ``(frames, channels)``, read in pieces of
    :func:`_read_limit` frames so that memory follows what is decoded."""
    piece = max(1, min(sound.frames, _read_limit(path, sound.channels)))
    pieces = []
    try:
        while True:
            data = sound.read(piece, dtype=dtype, always_2d=True)
            pieces.append(data if len(data) == piece else data.copy())   # free the rest
            if len(data) < piece:
                break
    except Exception as error:  # libsndfile raises several types
        raise AudioError(f"{path}: cannot decode audio: could not decode it as {sound.format}: "
                         f"{_reason(error)}; the file is corrupt or truncated.") from error
    return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)


def _check_wav_complete(path: str | os.PathLike) -> None:
    """Raise AudioError when a WAV file holds fewer data bytes than its header says.

    libsndfile quietly shortens a cut-off WAV to the bytes present, so without
    this check a truncated file would load as a shorter recording. A data size
    of 0 or near 4 GiB is what streaming writers put when the length was not
    known; those files are read as they are.
    """
    if not str(path).lower().endswith((".wav", ".wave")):
        return                           # other containers carry their own lengths
    try:
        handle = open(path, "rb")
    except OSError as error:
        raise AudioError(f"{path}: cannot be opened ({error.strerror}); check its "
                         "permissions.") from None
    with handle:
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


def _undecodable(path: str | os.PathLike, error: Exception, what: str) -> AudioError:
    """The AudioError for a file libsndfile could not open, in words about the file."""
    return AudioError(f"{path}: {what}: could not decode it as {_format_name(path)}: "
                      f"{_reason(error)}; the file is corrupt, truncated or not audio earmark "
                      "reads (WAV, FLAC, OGG/Vorbis, Opus, MP3, AIFF).")


def _format_name(path: str | os.PathLike) -> str:
    """The format a file's extension names ("MP3"), or "audio"."""
    return _FORMAT_NAMES.get(Path(path).suffix.lower(), "audio")


def _reason(error: Exception) -> str:
    """libsndfile's reason, without the file name it repeats, in words about the file."""
    text = getattr(error, "error_string", None) or str(error)
    lines = text.strip().splitlines()
    text = lines[-1].strip() if lines else type(error).__name__
    return _LIBSNDFILE_WORDING.get(text, text).rstrip(".")
