"""The live page's log-mel pictures (numpy, torch-free)."""

from __future__ import annotations

import numpy as np
import pytest

from earmark.frontend.filters import mel_edges
from earmark.frontend.spectrogram import LiveSpectrogram, SpectrogramSettings, file_spectrogram


def chirp_and_tone(rate: int, seconds: float = 2.0, tone_hz: float = 1000.0) -> np.ndarray:
    rng = np.random.default_rng(1)
    t = np.arange(int(rate * seconds)) / rate
    return (0.3 * np.sin(2 * np.pi * tone_hz * t)
            + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


def test_blocks_of_any_size_give_the_same_columns():
    rate = 44100
    samples = chirp_and_tone(rate)
    whole = LiveSpectrogram(rate).push(samples)
    live = LiveSpectrogram(rate)
    rng = np.random.default_rng(0)
    pieces, start = [], 0
    while start < len(samples):
        size = int(rng.integers(1, 3000))
        pieces.append(live.push(samples[start:start + size]))
        start += size
    np.testing.assert_array_equal(np.concatenate(pieces), whole)
    assert len(whole) == (len(samples) - 1103) // 441 + 1      # 25 ms frames, 10 ms hop


@pytest.mark.parametrize("tone_hz", [300.0, 1000.0, 3000.0])
def test_a_tone_lights_its_own_mel_band(tone_hz):
    rate, settings = 16000, SpectrogramSettings(n_mels=64, fmax=8000.0)
    columns = LiveSpectrogram(rate, settings).push(chirp_and_tone(rate, tone_hz=tone_hz))
    band = int(np.bincount(columns[10:].argmax(axis=1)).argmax())
    edges = mel_edges(64, settings.fmin, 8000.0)
    assert edges[band] < tone_hz < edges[band + 2]
    assert columns[10:, band].mean() > 240


def test_silence_is_dark_and_the_level_follows_the_peak():
    rate = 16000
    live = LiveSpectrogram(rate)
    assert live.push(np.zeros(rate, np.float32)).max() == 0
    loud = live.push(chirp_and_tone(rate, 1.0))
    assert loud.max() == 255


def test_a_long_file_is_pooled_to_the_width_asked():
    rate = 8000
    samples = chirp_and_tone(rate, seconds=60.0)
    levels, per_second = file_spectrogram(samples, rate, max_columns=500)
    assert 250 < len(levels) <= 500 and levels.shape[1] == 64
    assert per_second * 60 == pytest.approx(len(levels), rel=0.02)
    assert file_spectrogram(np.zeros(10, np.float32), rate)[0].shape == (0, 64)


def test_a_file_computed_in_pieces_equals_one_piece():
    from earmark.frontend.spectrogram import MelAnalysis, to_levels

    rate, settings = 8000, SpectrogramSettings()
    samples = chirp_and_tone(rate, seconds=25.0, tone_hz=700.0)
    levels, per_second = file_spectrogram(samples, rate, settings, max_columns=10 ** 6)
    decibels = MelAnalysis(rate, settings).decibels(samples)
    assert per_second == pytest.approx(100.0)
    np.testing.assert_array_equal(levels, to_levels(decibels, decibels.max(), 80.0))
