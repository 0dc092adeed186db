"""`earmark spectrogram`: pictures of any length, and hearing what a model hears."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from conftest import SHARED_DATA
from earmark import audio
from earmark.cli import main
from earmark.config import FeatureConfig
from earmark.errors import AudioError, ConfigError
from earmark.frontend.filters import centred_window
from earmark.frontend.inversion import griffin_lim, hear, spectral_convergence, stft
from earmark.frontend.spectrogram import (SpectrogramSettings, band_frequencies,
                                          file_spectrogram, pooled_decibels)
from earmark.runtime.hear import bundle_front_end, hear_file

FIXTURE_BUNDLE = Path(__file__).parent / "fixtures" / "bundle_v1"
PNG = b"\x89PNG\r\n\x1a\n"


def harmonic(rate: int, seconds: float = 2.0, pitch: float = 220.0) -> np.ndarray:
    """Five harmonics of ``pitch``, falling as 1/k: a voiced, steady sound."""
    t = np.arange(int(rate * seconds)) / rate
    return sum(0.2 / k * np.sin(2 * np.pi * pitch * k * t) for k in range(1, 6))


def write_long(path: Path, minutes: float, rate: int = 8000) -> None:
    """Noise with a 1 kHz tone in the second minute, written 10 s at a time."""
    rng = np.random.default_rng(0)
    with soundfile.SoundFile(path, "w", rate, 1, format="FLAC") as sink:
        for block in range(int(minutes * 6)):
            samples = 0.02 * rng.standard_normal(10 * rate)
            if 6 <= block < 12:
                samples += 0.3 * np.sin(2 * np.pi * 1000 * np.arange(10 * rate) / rate)
            sink.write(samples.astype(np.float32))


# --- pictures --------------------------------------------------------------------------

def test_a_long_file_is_pictured_in_at_most_the_columns_asked(tmp_path, capsys):
    path = tmp_path / "long.flac"
    write_long(path, minutes=20)
    out = tmp_path / "long.png"
    assert main(["spectrogram", str(path), "--out", str(out), "--columns", "800", "-q"]) == 0
    assert out.read_bytes()[:8] == PNG
    columns = int(capsys.readouterr().err.split("(")[1].split()[0])
    assert 400 < columns <= 800


def test_a_stretch_of_a_file_as_a_linear_spectrogram(tmp_path):
    path = tmp_path / "long.flac"
    write_long(path, minutes=3)
    out = tmp_path / "stretch.png"
    assert main(["spectrogram", str(path), "--out", str(out), "--kind", "linear",
                 "--start", "55", "--duration", "10", "-q"]) == 0
    assert out.read_bytes()[:8] == PNG


def test_blocks_give_the_picture_of_the_whole_signal():
    rate = 8000
    samples = harmonic(rate, 30.0).astype(np.float32)
    settings = SpectrogramSettings(kind="linear")
    whole, seconds = pooled_decibels([samples], rate, len(samples), settings, 700)
    pieces, same = pooled_decibels(np.array_split(samples, 37), rate, len(samples), settings,
                                   700)
    assert seconds == same and whole.shape == pieces.shape and len(whole) <= 700
    np.testing.assert_array_equal(whole, pieces)
    assert whole.shape[1] == len(band_frequencies(rate, settings)) == 129
    levels, per_second = file_spectrogram(samples, rate, max_columns=700)   # the live page's
    assert len(levels) == len(whole) and per_second == pytest.approx(1 / seconds)


def test_the_loudest_row_of_a_tone_is_at_its_frequency():
    rate = 16000
    t = np.arange(2 * rate) / rate
    samples = (0.3 * np.sin(2 * np.pi * 3000 * t)).astype(np.float32)
    for kind in ("logmel", "linear"):
        settings = SpectrogramSettings(kind=kind, fmax=rate / 2)
        decibels, _ = pooled_decibels([samples], rate, len(samples), settings)
        row = int(np.bincount(decibels.argmax(axis=1)).argmax())
        assert band_frequencies(rate, settings)[row] == pytest.approx(3000, rel=0.06)


def test_read_blocks_reads_only_the_stretch_asked(tmp_path):
    rate = 8000
    samples = np.random.default_rng(0).uniform(-0.5, 0.5, 5 * rate).astype(np.float32)
    soundfile.write(tmp_path / "x.wav", samples, rate, subtype="FLOAT")
    got = np.concatenate(list(audio.read_blocks(tmp_path / "x.wav", rate, 0.3, start=1.5,
                                                duration=2.0)))
    np.testing.assert_array_equal(got, samples[12000:28000])
    tail = np.concatenate(list(audio.read_blocks(tmp_path / "x.wav", rate, start=4.0,
                                                 duration=60.0)))
    np.testing.assert_array_equal(tail, samples[32000:])
    with pytest.raises(AudioError, match="lasts only"):
        list(audio.read_blocks(tmp_path / "x.wav", rate, start=5.0))
    with pytest.raises(ConfigError, match="start"):
        list(audio.read_blocks(tmp_path / "x.wav", rate, start=-1.0))


def test_the_command_needs_something_to_write(tmp_path, capsys):
    soundfile.write(tmp_path / "x.wav", harmonic(8000, 0.5).astype(np.float32), 8000)
    assert main(["spectrogram", str(tmp_path / "x.wav"), "-q"]) == 2
    assert "--out" in capsys.readouterr().err


# --- hearing what the model hears -------------------------------------------------------

def test_griffin_lim_rebuilds_a_magnitude_it_is_given():
    """Phase from magnitude alone: a harmonic sound comes back within 0.12 spectral
    convergence (measured 0.086 with 32 iterations; librosa.griffinlim gives 0.100)."""
    samples = harmonic(16000)
    window = centred_window(480, 512)
    magnitude = np.abs(stft(samples, 512, 160, window))
    rebuilt = griffin_lim(magnitude, 160, window, len(samples))
    assert len(rebuilt) == len(samples)
    assert spectral_convergence(magnitude, np.abs(stft(rebuilt, 512, 160, window))) < 0.12


def test_griffin_lim_is_as_good_as_librosas():
    librosa = pytest.importorskip("librosa")
    samples = harmonic(16000)
    window = centred_window(480, 512)
    magnitude = np.abs(stft(samples, 512, 160, window))
    theirs = librosa.griffinlim(magnitude, n_iter=32, hop_length=160, win_length=512,
                                window=window, n_fft=512, length=len(samples))
    ours = griffin_lim(magnitude, 160, window, len(samples))
    score = [spectral_convergence(magnitude, np.abs(stft(y, 512, 160, window)))
             for y in (ours, theirs)]
    assert score[0] <= 1.1 * score[1], score


def test_hearing_the_default_log_mel_of_a_harmonic_sound():
    """40 mel bands keep the harmonics below 1 kHz apart: the sound comes back within 0.3
    spectral convergence (measured 0.25), its mel bands within 0.15 (measured 0.10)."""
    heard = hear(harmonic(16000), 16000)
    assert heard.spectral_convergence < 0.3 and heard.feature_convergence < 0.15
    assert heard.audio.dtype == np.float32 and np.abs(heard.audio).max() <= 1
    fine = hear(harmonic(16000), 16000, FeatureConfig(kind="spectrogram"))
    assert fine.spectral_convergence < 0.12            # no mel smoothing: Griffin-Lim alone
    mfcc = hear(harmonic(16000), 16000, FeatureConfig(kind="mfcc", n_mfcc=13))
    assert mfcc.feature_convergence < 0.1              # the envelope the MFCCs keep is kept
    with pytest.raises(ConfigError, match="spectrogram128"):
        hear(harmonic(16000), 16000, FeatureConfig(kind="spectrogram128"))


def test_silence_has_no_spectral_convergence():
    assert np.isnan(spectral_convergence(np.zeros((5, 4)), np.ones((5, 4))))


def test_hear_command_uses_the_bundles_front_end(tmp_path, capsys):
    soundfile.write(tmp_path / "x.flac", harmonic(16000, 1.5).astype(np.float32), 16000)
    out = tmp_path / "heard.wav"
    assert main(["spectrogram", str(tmp_path / "x.flac"), "--hear", str(out), "--bundle",
                 str(FIXTURE_BUNDLE), "-q"]) == 0
    assert "spectral convergence" in capsys.readouterr().out
    samples, rate = soundfile.read(out)
    config, bundle_rate = bundle_front_end(FIXTURE_BUNDLE)
    assert rate == bundle_rate == 8000 and config.n_mels == 16
    assert len(samples) == pytest.approx(1.5 * rate, abs=2)


@pytest.mark.realdata
def test_real_recordings_come_back_recognisably():
    """ESC-10 pieces through the default 40-band log-mel: median spectral convergence under
    0.45 (measured 0.35 on 39 pieces; librosa's mel_to_audio: 0.40)."""
    pieces = sorted((SHARED_DATA / "esc10_pieces").glob("*/*.flac"))
    if not pieces:
        pytest.skip("no ESC-10 pieces in ../shared/data")
    scores = [hear_file(path).spectral_convergence for path in pieces[::160]]
    scores = [s for s in scores if not np.isnan(s)]      # digital-silence padding pieces
    assert scores and np.median(scores) < 0.45
