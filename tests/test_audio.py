"""earmark.audio: any file to float32 mono at a target rate, or a clear AudioError."""

from __future__ import annotations

import os
import tracemalloc

import numpy as np
import pytest
import soundfile

from conftest import dominant_frequency, tone, write_tone
from earmark import audio
from earmark.errors import AudioError, ConfigError

RATE = 16000

# Largest error each subtype's quantisation may add to a 0.5-amplitude tone.
SUBTYPE_TOLERANCE = {
    "PCM_U8": 1 / 64,
    "PCM_16": 1 / 2**14,
    "PCM_24": 1 / 2**22,
    "PCM_32": 1e-7,
    "FLOAT": 0.0,
}


@pytest.mark.parametrize("subtype", list(SUBTYPE_TOLERANCE))
def test_wav_subtypes_read_as_float32_mono(tmp_path, subtype):
    path = tmp_path / f"tone_{subtype}.wav"
    written = write_tone(path, 0.25, RATE, 440.0, subtype=subtype)
    assert soundfile.info(str(path)).subtype == subtype
    loaded = audio.load(path, RATE)
    assert loaded.dtype == np.float32 and loaded.ndim == 1
    assert len(loaded) == len(written)
    assert np.max(np.abs(loaded - written)) <= SUBTYPE_TOLERANCE[subtype] + 1e-9


@pytest.mark.parametrize("extension, subtype, tolerance", [
    (".flac", "PCM_16", 1 / 2**14),
    (".flac", "PCM_24", 1 / 2**22),
    (".ogg", None, None),          # lossy: compare the tone, not the samples
])
def test_flac_and_ogg(tmp_path, extension, subtype, tolerance):
    path = tmp_path / f"tone{extension}"
    written = write_tone(path, 0.5, RATE, 1000.0, subtype=subtype)
    loaded = audio.load(path, RATE)
    assert loaded.dtype == np.float32 and loaded.ndim == 1
    assert len(loaded) == len(written)
    if tolerance is not None:
        assert np.max(np.abs(loaded - written)) <= tolerance
    else:
        assert dominant_frequency(loaded, RATE) == pytest.approx(1000.0, abs=4)
        assert np.sqrt(np.mean(loaded ** 2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.1)


def test_mp3(tmp_path):
    if "MP3" not in soundfile.available_formats():
        pytest.skip("this libsndfile cannot write MP3")
    path = tmp_path / "tone.mp3"
    write_tone(path, 0.5, RATE, 1000.0, subtype="MPEG_LAYER_III")
    loaded = audio.load(path, 8000)
    assert loaded.dtype == np.float32 and loaded.ndim == 1
    # MP3 frames pad the start and end; the length is within a frame or two.
    assert abs(len(loaded) - 4000) <= 2 * 1152
    assert dominant_frequency(loaded, 8000) == pytest.approx(1000.0, abs=10)


def test_native_rate_kept_without_target(tmp_path):
    path = tmp_path / "tone.wav"
    write_tone(path, 0.2, 22050, 500.0)
    loaded, rate = audio.load_native(path)
    assert rate == 22050 and len(loaded) == 4410
    assert len(audio.load(path)) == 4410
    header = audio.info(path)
    assert (header.sample_rate, header.channels, header.frames) == (22050, 1, 4410)
    assert header.duration == pytest.approx(0.2)


def test_stereo_is_mixed_down(tmp_path):
    path = tmp_path / "stereo.wav"
    written = write_tone(path, 0.2, RATE, 440.0, channels=2, subtype="FLOAT")
    loaded = audio.load(path, RATE)
    assert loaded.ndim == 1 and len(loaded) == len(written)
    np.testing.assert_allclose(loaded, written.mean(axis=1), atol=1e-7)
    # The channels differ (1 and 1/2 amplitude): the mix is neither of them.
    assert np.max(np.abs(loaded - written[:, 0])) > 0.1


@pytest.mark.parametrize("file_rate, freq", [(8000, 1000.0), (44100, 3000.0)])
def test_resampling_keeps_frequency_and_length(tmp_path, file_rate, freq):
    path = tmp_path / f"tone_{file_rate}.wav"
    write_tone(path, 1.0, file_rate, freq, subtype="FLOAT")
    loaded = audio.load(path, RATE)
    assert loaded.dtype == np.float32
    assert len(loaded) == RATE
    assert dominant_frequency(loaded, RATE) == pytest.approx(freq, abs=2)
    # Away from the edges the samples are the tone at the new rate.
    middle = slice(1000, RATE - 1000)
    np.testing.assert_allclose(loaded[middle], tone(1.0, RATE, freq)[middle], atol=2e-3)


# --- bad input --------------------------------------------------------------

def test_missing_file(tmp_path):
    path = tmp_path / "nowhere.wav"
    with pytest.raises(AudioError, match="nowhere.wav.*no such file"):
        audio.load(path, RATE)


def test_folder_is_not_a_file(tmp_path):
    with pytest.raises(AudioError, match="folder"):
        audio.load(tmp_path, RATE)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(AudioError, match="empty.wav.*empty"):
        audio.load(path, RATE)


def test_zero_frame_wav(tmp_path):
    path = tmp_path / "silent.wav"
    soundfile.write(str(path), np.zeros(0, dtype=np.float32), RATE)
    assert path.stat().st_size > 0
    with pytest.raises(AudioError, match="silent.wav.*0 frames"):
        audio.load(path, RATE)
    with pytest.raises(AudioError, match="silent.wav.*0 frames"):
        list(audio.read_blocks(path, RATE))


def test_garbage_bytes(tmp_path):
    path = tmp_path / "garbage.wav"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    with pytest.raises(AudioError, match="garbage.wav.*(corrupt|cannot)"):
        audio.load(path, RATE)
    with pytest.raises(AudioError, match="garbage.wav"):
        audio.info(path)


@pytest.mark.parametrize("extension, subtype", [
    (".wav", "PCM_16"), (".wav", "FLOAT"), (".flac", "PCM_16")])
def test_truncated_file(tmp_path, extension, subtype):
    whole = tmp_path / f"whole{extension}"
    write_tone(whole, 1.0, RATE, 440.0, subtype=subtype)
    data = whole.read_bytes()
    cut = tmp_path / f"cut{extension}"
    cut.write_bytes(data[:len(data) // 2])
    # Neither a silently shortened signal nor one padded with zeros.
    with pytest.raises(AudioError, match=r"cut\.\w+.*(truncated|corrupt)"):
        audio.load(cut, RATE)
    with pytest.raises(AudioError, match=r"cut\.\w+.*(truncated|corrupt)"):
        list(audio.read_blocks(cut, RATE, block_seconds=0.1))


def test_wav_with_unknown_data_size_is_read(tmp_path):
    """Streaming writers (ffmpeg to a pipe) put 0xFFFFFFFF as the data size."""
    path = tmp_path / "streamed.wav"
    written = write_tone(path, 0.2, RATE, 440.0)
    data = bytearray(path.read_bytes())
    at = data.index(b"data")
    data[at + 4:at + 8] = (0xFFFFFFFF).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    loaded = audio.load(path, RATE)
    assert len(loaded) == len(written)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_samples(tmp_path, bad):
    path = tmp_path / "damaged.wav"
    samples = tone(0.1, RATE, 440.0)
    samples[100:103] = bad
    soundfile.write(str(path), samples, RATE, subtype="FLOAT")
    with pytest.raises(AudioError, match="damaged.wav.*3 samples are NaN or infinite"):
        audio.load(path, RATE)
    with pytest.raises(AudioError, match="damaged.wav.*NaN"):
        list(audio.read_blocks(path, RATE))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes (POSIX)")
def test_fifo_is_refused_without_opening_it(tmp_path):
    path = tmp_path / "pipe.wav"
    os.mkfifo(path)                 # opening it would block: nothing writes to it
    for read in (audio.info, audio.load, lambda p: list(audio.read_blocks(p, RATE))):
        with pytest.raises(AudioError, match=r"pipe\.wav: not a regular file: it is a FIFO "
                                             r"\(named pipe\); earmark reads files"):
            read(path)


@pytest.mark.skipif(not os.path.exists("/dev/null"), reason="needs /dev/null")
def test_device_is_refused():
    with pytest.raises(AudioError, match="/dev/null: not a regular file: it is a device"):
        audio.load("/dev/null", RATE)


def test_undecodable_mp3_says_so(tmp_path):
    path = tmp_path / "broken.mp3"
    path.write_bytes(np.random.default_rng(1).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    for read in (audio.info, audio.load, lambda p: list(audio.read_blocks(p, RATE))):
        with pytest.raises(AudioError, match=r"broken\.mp3: cannot read audio header: could not "
                                             r"decode it as MP3: ") as caught:
            read(path)
        assert "pipe" not in str(caught.value) and "does not exist" not in str(caught.value)


def _with_header_rate(path, rate: int) -> None:
    """Overwrite the sample rate in a WAV file's fmt chunk."""
    data = bytearray(path.read_bytes())
    at = data.index(b"fmt ") + 12               # id, size, format tag, channels, then the rate
    data[at:at + 4] = rate.to_bytes(4, "little")
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("rate", [1, 999, 384_001, 5_000_000])
def test_header_with_an_absurd_rate_is_refused(tmp_path, rate):
    path = tmp_path / "odd.wav"
    write_tone(path, 0.1, RATE, 440.0)
    _with_header_rate(path, rate)
    assert soundfile.info(str(path)).samplerate == rate            # libsndfile takes it
    for read in (audio.info, audio.load, lambda p: list(audio.read_blocks(p, RATE))):
        with pytest.raises(AudioError, match=rf"odd\.wav: the header gives a sample rate of "
                                             rf"{rate} Hz, outside what earmark accepts "
                                             r"\(1000 to 384000 Hz\)"):
            read(path)


def test_header_promising_more_frames_than_the_file_holds_costs_no_memory(tmp_path):
    path = tmp_path / "lying.flac"
    write_tone(path, 0.5, RATE, 440.0, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    # STREAMINFO: 36 bits of total samples end at byte 26; claim 2**36 - 1 (48 days at 16 kHz).
    fields = int.from_bytes(data[18:26], "big") | (2**36 - 1)
    data[18:26] = fields.to_bytes(8, "big")
    path.write_bytes(bytes(data))
    assert soundfile.info(str(path)).frames == 2**36 - 1
    tracemalloc.start()
    try:
        with pytest.raises(AudioError, match=r"lying\.flac: .*(truncated|data ends before)"):
            audio.load(path, RATE)
        with pytest.raises(AudioError, match=r"lying\.flac: .*(truncated|data ends before)"):
            list(audio.read_blocks(path, RATE, block_seconds=0.1))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20, f"{peak / 2**20:.0f} MiB for a file of {len(data)} bytes"


def test_read_blocks_checks_its_arguments(tmp_path):
    path = tmp_path / "tone.wav"
    write_tone(path, 0.1, RATE, 440.0)
    with pytest.raises(ConfigError, match="block_seconds"):
        list(audio.read_blocks(path, RATE, block_seconds=0))
    with pytest.raises(ConfigError, match="target sample_rate"):
        list(audio.read_blocks(path, 0))
    with pytest.raises(ConfigError, match="target sample_rate"):
        audio.load(path, 10**9)


# --- arrays from Python ------------------------------------------------------

def test_int_pcm_arrays_are_scaled_like_soundfile_reads_them(tmp_path):
    pcm = np.array([-32768, -16384, 0, 16384, 32767], dtype=np.int16)
    np.testing.assert_array_equal(audio.array_to_mono(pcm), pcm / 32768.0)
    path = tmp_path / "pcm.wav"
    soundfile.write(str(path), pcm, RATE, subtype="PCM_16")
    np.testing.assert_array_equal(audio.array_to_mono(pcm), audio.load(path))
    wide = np.array([-2**31, 0, 2**30], dtype=np.int32)
    np.testing.assert_array_equal(audio.array_to_mono(wide), [-1.0, 0.0, 0.5])
    np.testing.assert_array_equal(audio.array_to_mono(np.array([0, 128, 192], np.uint8)),
                                  [-1.0, 0.0, 0.5])


def test_samples_by_channels_are_mixed_down_like_a_file(tmp_path):
    stereo = tone(0.1, RATE, 440.0, channels=2)
    path = tmp_path / "stereo.wav"
    soundfile.write(str(path), stereo, RATE, subtype="FLOAT")
    mono = audio.array_to_mono(stereo)
    assert mono.dtype == np.float32 and mono.shape == (len(stereo),)
    np.testing.assert_allclose(mono, audio.load(path), atol=1e-7)


@pytest.mark.parametrize("samples, words", [
    (np.zeros(0, np.float32), "holds no samples"),
    (np.zeros((0, 2), np.float32), "holds no samples"),
    (np.zeros((), np.float32), r"shape \(\) is not audio"),
    (np.zeros((10, 2, 2), np.float32), r"shape \(10, 2, 2\) is not audio"),
    (np.zeros((2, 1000), np.float32), r"1000 channels, outside 1 to 64.*samples\.T"),
    (np.zeros(10, np.int64), "type int64 are not audio"),
    (np.zeros(10, np.complex64), "type complex64 are not audio"),
    (np.zeros(10, bool), "type bool are not audio"),
    (np.array(["a", "b"]), "are not audio"),
    ([[0.1, 0.2], [0.3]], "not an array of samples"),
    (np.array([0.0, np.nan, np.inf]), "2 samples are NaN or infinite"),
    (np.array([0.0, 1e39]), "beyond what float32 holds"),
])
def test_arrays_that_are_not_audio_are_refused(samples, words):
    with pytest.raises(AudioError, match=f"clip: .*{words}"):
        audio.array_to_mono(samples, "clip")


def test_samples_that_overflow_when_resampled_are_refused(tmp_path):
    """Found by tests/test_fuzz.py: finite float samples near float32's limit came out of
    the resampler as inf and NaN."""
    path = tmp_path / "huge.wav"
    soundfile.write(str(path), np.where(np.arange(1600) % 2, 3e38, -3e38).astype(np.float32),
                    RATE, subtype="FLOAT")
    for read in (lambda p: audio.load(p, 8000), lambda p: list(audio.read_blocks(p, 8000))):
        with pytest.raises(AudioError, match=r"huge\.wav: samples reach 3e\+38, so far beyond "
                                             "-1..1 that resampling them overflows"):
            read(path)


def test_wrong_rate_is_rejected():
    with pytest.raises(AudioError, match="positive"):
        audio.resample(np.zeros(10, np.float32), 16000, 0)


# --- blocks -------------------------------------------------------------------

@pytest.mark.parametrize("file_rate", [RATE, 44100])
def test_read_blocks_joins_to_load(tmp_path, file_rate):
    path = tmp_path / "long.wav"
    write_tone(path, 3.0, file_rate, 440.0, channels=2, subtype="FLOAT")
    whole = audio.load(path, RATE)
    blocks = list(audio.read_blocks(path, RATE, block_seconds=0.25))
    assert len(blocks) >= 10
    # Bounded: the resampler's chunks vary a little, but none is far over 0.25 s.
    assert max(len(block) for block in blocks) <= 1.25 * 0.25 * RATE
    assert all(block.dtype == np.float32 and block.ndim == 1 for block in blocks)
    joined = np.concatenate(blocks)
    assert abs(len(joined) - len(whole)) <= 2
    common = min(len(joined), len(whole))
    if file_rate == RATE:
        np.testing.assert_array_equal(joined, whole)
    else:
        # The streaming resampler matches the one-shot one away from the ends.
        np.testing.assert_allclose(joined[200:common - 200], whole[200:common - 200],
                                   atol=1e-3)


# --- writing ------------------------------------------------------------------

@pytest.mark.parametrize("extension", [".wav", ".flac"])
def test_write_round_trip_leaves_no_temp_file(tmp_path, extension):
    path = tmp_path / "sub" / f"out{extension}"
    samples = tone(0.2, RATE, 440.0)
    audio.write(path, samples, RATE)
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]
    np.testing.assert_allclose(audio.load(path, RATE), samples, atol=1 / 2**14)


def test_write_float_subtype(tmp_path):
    path = tmp_path / "out.wav"
    samples = tone(0.1, RATE, 440.0)
    audio.write(path, samples, RATE, subtype="FLOAT")
    assert soundfile.info(str(path)).subtype == "FLOAT"
    np.testing.assert_array_equal(audio.load(path, RATE), samples)


def test_write_unsupported_extension_keeps_existing_file(tmp_path):
    path = tmp_path / "out.xyz"
    path.write_bytes(b"precious")
    with pytest.raises(AudioError, match=r"out\.xyz.*\.wav"):
        audio.write(path, tone(0.1, RATE, 440.0), RATE)
    assert path.read_bytes() == b"precious"
    assert os.listdir(tmp_path) == ["out.xyz"]


def test_failed_write_keeps_existing_file(tmp_path):
    path = tmp_path / "out.wav"
    original = write_tone(path, 0.1, RATE, 440.0)
    before = path.read_bytes()
    with pytest.raises(AudioError, match="out.wav"):
        audio.write(path, tone(0.2, RATE, 880.0), RATE, subtype="VORBIS")
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["out.wav"]
    np.testing.assert_allclose(audio.load(path, RATE), original, atol=1 / 2**14)
