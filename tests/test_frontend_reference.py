"""The numpy front-end (geometry, reference, logmel) against librosa and the torch FrontEnd."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from earmark.config import FeatureConfig
from earmark.errors import ConfigError
from earmark.frontend.filters import centred_window
from earmark.frontend.geometry import (SpectralLayout, frame_count, frame_geometry,
                                       min_samples, spectral_layout)
from earmark.frontend.module import FrontEnd
from earmark.frontend.reference import (logmel, power_spectrogram, power_to_db,
                                        reference_features)
from earmark.frontend.spectrogram import MelAnalysis, SpectrogramSettings

librosa = pytest.importorskip("librosa")


def noisy_chirp(sample_rate: int, seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    """White noise plus a linear chirp from 50 Hz to just below Nyquist (float64)."""
    rng = np.random.default_rng(seed)
    time = np.arange(int(round(seconds * sample_rate))) / sample_rate
    sweep = (sample_rate / 2 - 150) / seconds
    return 0.5 * np.sin(2 * np.pi * (50 * time + sweep / 2 * time ** 2)) \
        + 0.1 * rng.standard_normal(len(time))


@pytest.mark.parametrize("sample_rate, n_fft, window_length, hop_length, n_mels, fmax", [
    (16000, 512, 480, 160, 40, None),
    (16000, 400, None, 160, 64, 7600.0),
    (8000, 256, 200, 80, 23, 3800.0),
])
@pytest.mark.parametrize("center", [False, True])
def test_logmel_matches_librosa(sample_rate, n_fft, window_length, hop_length, n_mels, fmax,
                                center):
    clip = noisy_chirp(sample_rate)
    ours = logmel(clip, sample_rate, n_fft=n_fft, hop_length=hop_length,
                  window_length=window_length, n_mels=n_mels, fmin=20.0, fmax=fmax,
                  center=center, amin=1e-6)
    mel = librosa.feature.melspectrogram(
        y=clip, sr=sample_rate, n_fft=n_fft, hop_length=hop_length, win_length=window_length,
        window="hann", center=center, pad_mode="reflect", power=2.0, n_mels=n_mels,
        fmin=20.0, fmax=fmax)
    theirs = librosa.power_to_db(mel, ref=1.0, amin=1e-6, top_db=None)
    assert ours.shape == theirs.shape and ours.dtype == np.float64
    assert np.abs(ours - theirs).max() <= 1e-6


@pytest.mark.parametrize("center", [False, True])
def test_logmel_matches_the_torch_front_end(center):
    config = FeatureConfig(kind="logmel", window_ms=30.0, hop_ms=10.0, center=center)
    clip = noisy_chirp(16000)
    front_end = FrontEnd(config, 16000).double()
    with torch.no_grad():
        theirs = front_end(torch.from_numpy(clip)[None])[0, 0].numpy()
    ours = logmel(clip, 16000, n_fft=front_end.n_fft, hop_length=front_end.hop_length,
                  window_length=front_end.window_length, n_mels=config.n_mels,
                  fmin=config.fmin, center=center, amin=config.log_floor)
    assert ours.shape == theirs.shape
    assert np.abs(ours - theirs).max() <= 1e-3     # tables made in float32, then widened
    # The reference features of the same config are the very same numbers.
    np.testing.assert_array_equal(ours, reference_features(clip, config, 16000)[0])


def test_power_spectrogram_and_power_to_db_match_librosa():
    clip = noisy_chirp(8000)
    ours = power_spectrogram(clip, n_fft=256, hop_length=100, window_length=200)
    theirs = np.abs(librosa.stft(clip, n_fft=256, hop_length=100, win_length=200,
                                 window="hann", center=False)) ** 2
    assert ours.shape == theirs.shape == (129, 1 + (8000 - 256) // 100)
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-9 * theirs.max())
    np.testing.assert_allclose(power_to_db(ours), librosa.power_to_db(ours, top_db=None))
    assert power_to_db(np.zeros(3), amin=1e-6).tolist() == [-60.0, -60.0, -60.0]


def test_power_spectrogram_refuses_what_is_not_one_long_enough_clip():
    with pytest.raises(ValueError, match="at least 512 samples"):
        power_spectrogram(np.zeros(511), n_fft=512, hop_length=160)
    with pytest.raises(ValueError, match="one clip"):
        power_spectrogram(np.zeros((2, 1000)), n_fft=512, hop_length=160)
    assert power_spectrogram(np.zeros(257), 512, 160, center=True).shape == (257, 2)


def test_the_pictures_agree_with_logmel():
    """The live page's analysis frames differently (window first, float32) but hears
    the same: on the same samples its levels are logmel's to a small fraction of a dB."""
    rate, settings = 16000, SpectrogramSettings()
    analysis = MelAnalysis(rate, settings)
    clip = noisy_chirp(rate).astype(np.float32)
    left = (analysis.n_fft - analysis.window_length) // 2
    right = analysis.n_fft - analysis.window_length - left
    padded = np.pad(clip, (left, right))          # logmel centres the window in its frame
    ours = logmel(padded, rate, n_fft=analysis.n_fft, hop_length=analysis.frame_hop,
                  window_length=analysis.window_length, n_mels=settings.n_mels,
                  fmin=settings.fmin, fmax=settings.fmax, amin=1e-10)
    np.testing.assert_allclose(analysis.decibels(clip).T, ours, atol=1e-3)


# ---------------------------------------------------------------- geometry


@pytest.mark.parametrize("kind, expected", [
    ("spectrogram", SpectralLayout(512, 480, 16, 0, 256, symmetric_window=False)),
    ("spectrogram128", SpectralLayout(512, 512, 0, 1, 128, symmetric_window=True)),
])
def test_spectral_layout(kind, expected):
    layout = spectral_layout(FeatureConfig(kind=kind, window_ms=30.0), 16000)
    assert layout == expected
    assert layout.bins.tolist() == list(range(expected.first_bin, expected.last_bin + 1))
    assert len(layout.window) == expected.window_length
    assert len(layout.frame_window) == expected.n_fft
    if kind == "spectrogram":
        np.testing.assert_array_equal(layout.frame_window, centred_window(480, 512))
    inside = slice(layout.first_sample, layout.first_sample + layout.window_length)
    np.testing.assert_array_equal(layout.frame_window[inside], layout.window)
    assert not layout.frame_window[:layout.first_sample].any()


def test_mel_layout_computes_only_the_bins_some_filter_weighs():
    config = FeatureConfig(kind="logmel", window_ms=25.0, fmin=300.0, fmax=3400.0)
    layout = spectral_layout(config, 16000)
    hz_per_bin = 16000 / layout.n_fft
    assert layout.first_bin * hz_per_bin > 300.0 - hz_per_bin
    assert layout.last_bin * hz_per_bin < 3400.0 + hz_per_bin
    front_end = FrontEnd(config, 16000)
    assert front_end.layout == layout
    assert front_end.spectrum.n_fft == layout.n_fft == front_end.n_fft


def test_frame_geometry_counts_and_minimum():
    config = FeatureConfig(window_ms=25.0, hop_ms=10.0)
    assert frame_geometry(config, 16000) == (400, 160, 512)
    assert frame_geometry(FeatureConfig(kind="spectrogram128"), 16000) == (512, 121, 512)
    assert min_samples("logmel", False, 512) == 512
    assert min_samples("logmel", True, 512) == 257
    assert frame_count("logmel", False, 512, 160, 16000) == 97
    assert frame_count("logmel", True, 512, 160, 16000) == 101
    assert frame_count("spectrogram128", False, 512, 121, 10) == 128
    with pytest.raises(ConfigError, match="at least 512 samples"):
        frame_count("logmel", False, 512, 160, 511)


def test_the_numpy_front_end_imports_no_torch():
    code = ("import sys, earmark.frontend, earmark.frontend.geometry, "
            "earmark.frontend.reference, earmark.frontend.filters, "
            "earmark.frontend.spectrogram\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True)
