"""earmark.audio: any file to float32 mono at a target rate, or a clear AudioError."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile

from conftest import dominant_frequency, tone, write_tone
from earmark import audio
from earmark.errors import AudioError

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
