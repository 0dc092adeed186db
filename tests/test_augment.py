"""Batched augmentation: each transform does what it says, seeded runs repeat."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from earmark.augment import (NoiseBank, WaveformAugmenter, add_babble, add_noise, change_speed,
                             frequency_warp_factors, mixup, random_band_limit, random_equalizer,
                             random_clipping, random_gain, spec_augment, time_shift)
from earmark.config import AugmentConfig, from_dict
from earmark.errors import ConfigError

from conftest import dominant_frequency, write_noise

RATE = 16000


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def rms(x: torch.Tensor) -> torch.Tensor:
    return x.pow(2).mean(dim=-1).sqrt()


def centred_burst(length: int, burst: int, freq: float = 1000.0) -> torch.Tensor:
    """Zeros with a tone of ``burst`` samples in the middle."""
    wave = torch.zeros(length)
    start = (length - burst) // 2
    t = torch.arange(burst) / RATE
    wave[start:start + burst] = 0.5 * torch.sin(2 * torch.pi * freq * t)
    return wave


def extent(row: torch.Tensor, threshold: float = 1e-4) -> int:
    """Samples between the first and last sample above ``threshold``."""
    nonzero = torch.nonzero(row.abs() > threshold).flatten()
    return int(nonzero[-1] - nonzero[0] + 1)


# ------------------------------------------------------------------ time shift
def test_time_shift_moves_a_click_by_at_most_max_shift_and_keeps_its_energy():
    length, position, max_shift = 1000, 500, 40
    clicks = torch.zeros(64, length)
    clicks[:, position] = 1.0
    out = time_shift(clicks, max_shift, gen(1))
    assert out.shape == clicks.shape
    moved = out.argmax(dim=1) - position
    assert moved.abs().max() <= max_shift
    assert len(set(moved.tolist())) > 5           # the amount really is drawn
    # the click is never shifted out here, so the energy stays and nothing else appears
    torch.testing.assert_close(out.pow(2).sum(dim=1), torch.ones(64))
    assert torch.count_nonzero(out, dim=1).eq(1).all()


def test_time_shift_is_a_zero_filled_shift_of_the_whole_row():
    max_shift = 25
    signal = torch.randn(32, 400, generator=gen(7)) + 3.0   # never zero
    out = time_shift(signal, max_shift, gen(2))
    for row_in, row_out in zip(signal, out):
        zeros_front = int((row_out == 0).cumprod(0).sum())
        zeros_back = int((row_out.flip(0) == 0).cumprod(0).sum())
        assert min(zeros_front, zeros_back) == 0
        assert max(zeros_front, zeros_back) <= max_shift
        if zeros_front:      # shifted right by zeros_front samples
            torch.testing.assert_close(row_out[zeros_front:], row_in[:-zeros_front])
        elif zeros_back:     # shifted left
            torch.testing.assert_close(row_out[:-zeros_back], row_in[zeros_back:])
        else:
            torch.testing.assert_close(row_out, row_in)
    assert (out == 0).any()


def test_time_shift_by_zero_is_identity():
    signal = torch.randn(4, 300, generator=gen(0))
    assert torch.equal(time_shift(signal, 0, gen(0)), signal)


# ------------------------------------------------------------------------ gain
def test_random_gain_stays_within_the_db_range():
    signal = torch.randn(200, 512, generator=gen(3))
    out = random_gain(signal, (-6.0, 3.0), gen(4))
    ratio_db = 20 * torch.log10(rms(out) / rms(signal))
    assert ratio_db.min() >= -6.0 - 1e-3 and ratio_db.max() <= 3.0 + 1e-3
    assert ratio_db.max() - ratio_db.min() > 6.0       # spread over the range
    # a gain is one factor per example: the shape of the wave is untouched
    torch.testing.assert_close(out / signal, (out / signal)[:, :1].expand_as(out))


def test_random_gain_of_zero_db_is_identity():
    signal = torch.randn(3, 100, generator=gen(0))
    assert torch.equal(random_gain(signal, (0.0, 0.0), gen(0)), signal)


# ----------------------------------------------------------------------- speed
def test_change_speed_keeps_length_and_speed_one_is_identity():
    signal = torch.randn(5, 1234, generator=gen(0))
    assert torch.equal(change_speed(signal, (1.0, 1.0), gen(0)), signal)
    out = change_speed(signal, (0.8, 1.25), gen(1))
    assert out.shape == signal.shape
    assert not torch.allclose(out, signal)


def test_faster_speed_shortens_a_centred_burst():
    burst = centred_burst(RATE, 6000)[None, :]
    for factor in (1.5, 2.0):
        out = change_speed(burst, (factor, factor), gen(0))
        assert out.shape == burst.shape
        assert extent(out[0]) == pytest.approx(6000 / factor, abs=4)
        # still centred
        nonzero = torch.nonzero(out[0].abs() > 1e-4).flatten().float()
        assert nonzero.mean() == pytest.approx(RATE / 2, abs=4)
    slower = change_speed(burst, (0.8, 0.8), gen(0))
    assert extent(slower[0]) == pytest.approx(6000 / 0.8, abs=4)


def test_faster_speed_raises_a_tones_pitch_by_the_factor():
    t = torch.arange(RATE) / RATE
    tone = (0.5 * torch.sin(2 * torch.pi * 500.0 * t))[None, :]
    factor = 1.3
    out = change_speed(tone, (factor, factor), gen(0))[0].numpy()
    # the middle (where the sped-up reading has content)
    middle = out[RATE // 2 - 4000:RATE // 2 + 4000]
    assert dominant_frequency(middle, RATE) == pytest.approx(500.0 * factor, rel=0.02)


# --------------------------------------------------------- equalizer, band limits
def band_level_db(wave: torch.Tensor, low: float, high: float) -> float:
    spectrum = torch.fft.rfft(wave).abs().pow(2)
    frequencies = torch.fft.rfftfreq(wave.shape[-1], 1 / RATE)
    band = (frequencies >= low) & (frequencies < high)
    return float(10 * torch.log10(spectrum[..., band].mean()))


def test_band_limit_removes_what_lies_beyond_the_cut_offs_and_keeps_the_middle():
    noise = torch.randn(8, RATE, generator=gen(3))
    out = random_band_limit(noise, (2000.0, 2500.0), (200.0, 300.0), 1.0, RATE, gen(0))
    for row_in, row_out in zip(noise, out):
        assert band_level_db(row_out, 800, 1200) == pytest.approx(
            band_level_db(row_in, 800, 1200), abs=0.5)
        assert band_level_db(row_out, 5000, 8000) < band_level_db(row_in, 5000, 8000) - 40
        assert band_level_db(row_out, 0, 60) < band_level_db(row_in, 0, 60) - 25


def test_band_limit_touches_only_the_chosen_share_and_off_is_identity():
    noise = torch.randn(200, 4000, generator=gen(3))
    assert torch.equal(random_band_limit(noise, (0, 0), (0, 0), 1.0, RATE, gen(0)), noise)
    out = random_band_limit(noise, (1000.0, 1000.0), (0, 0), 0.3, RATE, gen(0))
    touched = (out - noise).abs().amax(dim=1) > 1e-3
    assert 0.15 < touched.float().mean() < 0.45


def test_equalizer_colours_the_spectrum_within_its_range_and_keeps_loudness():
    noise = torch.randn(16, RATE, generator=gen(4))
    out = random_equalizer(noise, 6.0, RATE, gen(0))
    change = [band_level_db(o, a, a * 1.5) - band_level_db(n, a, a * 1.5)
              for o, n in zip(out, noise) for a in (200, 1000, 4000)]
    assert max(abs(c) for c in change) > 1.0          # it does colour
    assert max(abs(c) for c in change) < 20.0         # within about the range
    assert (rms(out) / rms(noise)).log10().abs().max() * 20 < 3.0
    assert torch.equal(random_equalizer(noise, 0.0, RATE, gen(0)), noise)


def test_frequency_warp_factors_lie_in_the_range_and_one_is_off():
    assert frequency_warp_factors(4, (1.0, 1.0), gen(0), torch.device("cpu")) is None
    factors = frequency_warp_factors(1000, (0.9, 1.1), gen(0), torch.device("cpu"))
    assert factors.min() >= 0.9 and factors.max() <= 1.1 and factors.std() > 0.03


# ----------------------------------------------------------------- noise bank
def test_noise_bank_from_a_missing_or_empty_folder_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="no such folder"):
        NoiseBank.from_folder(str(tmp_path / "absent"), RATE)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("no audio here")
    with pytest.raises(ConfigError, match="no audio"):
        NoiseBank.from_folder(str(tmp_path / "notes"), RATE)
    with pytest.raises(ConfigError):
        NoiseBank([])


def test_noise_bank_draws_segments_of_the_recordings(tmp_path):
    written = write_noise(tmp_path / "noise" / "white.wav", 0.5, RATE, seed=3, subtype="FLOAT")
    bank = NoiseBank.from_folder(str(tmp_path / "noise"), RATE)
    out = bank.draw(6, 1000, gen(0))
    assert out.shape == (6, 1000)
    source = torch.from_numpy(written)
    for row in out:
        # each row is a contiguous piece of the recording
        starts = torch.nonzero(source == row[0]).flatten().tolist()
        assert any(torch.equal(source[s:s + 1000], row) for s in starts)


def test_noise_bank_loops_short_recordings():
    short = np.linspace(-0.5, 0.5, 100, dtype=np.float32)
    bank = NoiseBank([short])
    out = bank.draw(4, 1000, gen(5))
    assert out.shape == (4, 1000)
    torch.testing.assert_close(out[:, 100:], out[:, :-100])       # period = the recording
    assert set(np.round(out[0, :100].numpy(), 6)) == set(np.round(short, 6))


# ---------------------------------------------------------------------- noise
def test_add_noise_hits_the_requested_snr():
    signal = 0.3 * torch.randn(16, 4000, generator=gen(0))
    noise = torch.rand(16, 4000, generator=gen(1)) - 0.5
    config = AugmentConfig(noise_snr_db=[10.0, 10.0], noise_probability=1.0)
    out = add_noise(signal, noise, config, gen(2))
    added = out - signal
    snr = 10 * torch.log10(signal.pow(2).mean(dim=1) / added.pow(2).mean(dim=1))
    assert torch.all((snr - 10.0).abs() < 0.5), snr


def test_add_noise_with_probability_zero_leaves_the_waveform():
    signal = torch.randn(8, 500, generator=gen(0))
    noise = torch.randn(8, 500, generator=gen(1))
    config = AugmentConfig(noise_probability=0.0)
    assert torch.equal(add_noise(signal, noise, config, gen(2)), signal)


def test_add_noise_with_probability_half_touches_some_examples():
    signal = torch.randn(200, 64, generator=gen(0))
    noise = torch.randn(200, 64, generator=gen(1))
    config = AugmentConfig(noise_probability=0.5, noise_snr_db=[5.0, 5.0])
    changed = (add_noise(signal, noise, config, gen(2)) != signal).any(dim=1)
    assert 50 < int(changed.sum()) < 150


def test_add_noise_volume_mode_scales_the_noise():
    signal = torch.randn(4, 300, generator=gen(0))
    noise = torch.randn(4, 300, generator=gen(1))
    config = AugmentConfig(noise_mix="volume", noise_volume=[0.05, 0.05], noise_probability=1.0)
    out = add_noise(signal, noise, config, gen(2))
    torch.testing.assert_close(out - signal, 0.05 * noise)


# ---------------------------------------------------------------- SpecAugment
def test_spec_augment_masks_at_most_the_configured_widths():
    features = torch.randn(32, 1, 20, 50, generator=gen(0))
    time_masks, time_width, freq_masks, freq_width = 2, 6, 2, 3
    out = spec_augment(features, time_masks, time_width, freq_masks, freq_width, gen(1))
    assert out.shape == features.shape
    fill = features.mean(dim=(2, 3))
    total_masked = 0
    for example, original, value in zip(out[:, 0], features[:, 0], fill[:, 0]):
        filled = example == value
        rows = filled.all(dim=1)       # masked bands
        cols = filled.all(dim=0)       # masked frames
        assert int(rows.sum()) <= freq_masks * freq_width
        assert int(cols.sum()) <= time_masks * time_width
        covered = rows[:, None] | cols[None, :]
        # everything masked is in a masked band or frame span; the rest is untouched
        assert torch.equal(filled, covered)
        assert torch.equal(example[~covered], original[~covered])
        total_masked += int(rows.sum()) + int(cols.sum())
    assert total_masked > 0


def test_spec_augment_without_masks_is_identity():
    features = torch.randn(2, 1, 8, 8, generator=gen(0))
    assert torch.equal(spec_augment(features, 0, 10, 0, 5, gen(0)), features)


# --------------------------------------------------------------------- mixup
def test_mixup_with_alpha_zero_is_identity():
    features = torch.randn(4, 1, 5, 6, generator=gen(0))
    targets = torch.eye(4)
    out_f, out_t = mixup(features, targets, 0.0, gen(0))
    assert torch.equal(out_f, features) and torch.equal(out_t, targets)


def test_mixup_blends_features_and_targets_alike():
    batch = 8
    features = torch.randn(batch, 1, 5, 6, generator=gen(0))
    targets = torch.eye(batch)                     # example i is class i
    out_f, out_t = mixup(features, targets, 0.4, gen(3))
    torch.testing.assert_close(out_t.sum(dim=1), torch.ones(batch))
    assert not torch.equal(out_t, targets)
    # read each row's mix back from its targets and check the features follow it
    for i in range(batch):
        expected = (out_t[i][:, None, None, None] * features).sum(dim=0)
        torch.testing.assert_close(out_f[i], expected)


# -------------------------------------------------------------- determinism
def full_config(**extra) -> AugmentConfig:
    return AugmentConfig(shift_ms=5.0, gain_db=[-6.0, 6.0], speed=[0.9, 1.1],
                         noise_probability=0.7, noise_snr_db=[0.0, 20.0], **extra)


def test_same_seed_gives_identical_output_and_another_seed_differs():
    signal = torch.randn(6, 2000, generator=gen(0))
    bank = NoiseBank([np.random.default_rng(0).standard_normal(3000).astype(np.float32)])
    augmenter = WaveformAugmenter(full_config(), RATE, bank)
    first = augmenter(signal, gen(42))
    again = augmenter(signal, gen(42))
    other = augmenter(signal, gen(43))
    assert torch.equal(first, again)
    assert not torch.allclose(first, other)
    spec = torch.randn(4, 1, 10, 30, generator=gen(0))
    assert torch.equal(spec_augment(spec, 2, 5, 2, 3, gen(9)), spec_augment(spec, 2, 5, 2, 3, gen(9)))
    targets = torch.eye(4)
    a, b = mixup(spec, targets, 0.3, gen(9)), mixup(spec, targets, 0.3, gen(9))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_augmenter_composes_speed_shift_gain_and_noise():
    signal = torch.randn(6, 2000, generator=gen(0))
    bank = NoiseBank([np.random.default_rng(0).standard_normal(3000).astype(np.float32)])
    config = full_config()
    augmenter = WaveformAugmenter(config, RATE, bank)
    assert augmenter.max_shift == 80                       # 5 ms at 16 kHz
    out = augmenter(signal, gen(11))

    g = gen(11)
    expected = change_speed(signal, (0.9, 1.1), g)
    expected = time_shift(expected, 80, g)
    expected = random_gain(expected, (-6.0, 6.0), g)
    noise = bank.draw(6, 2000, g)
    expected = add_noise(expected, noise, config, g)
    torch.testing.assert_close(out, expected)


def test_augmenter_with_only_gain_applies_only_gain():
    signal = torch.randn(5, 800, generator=gen(0))
    config = AugmentConfig(gain_db=[-3.0, 3.0])
    out = WaveformAugmenter(config, RATE, None)(signal, gen(1))
    ratios = out / signal
    torch.testing.assert_close(ratios, ratios[:, :1].expand_as(ratios))
    ratio_db = 20 * torch.log10(ratios[:, 0])
    assert ratio_db.abs().max() <= 3.0 + 1e-4 and ratio_db.abs().max() > 0


def test_augmenter_skips_noise_when_its_probability_is_zero():
    signal = torch.randn(3, 500, generator=gen(0))
    bank = NoiseBank([np.ones(600, dtype=np.float32)])
    config = AugmentConfig(noise_probability=0.0)
    assert torch.equal(WaveformAugmenter(config, RATE, bank)(signal, gen(0)), signal)


def test_rooms_reverberate_a_share_of_examples_at_their_power_and_length():
    from earmark.augment import RoomBank

    decay = np.exp(-np.arange(800) / 100.0) * np.random.default_rng(0).standard_normal(800)
    decay[0] = 1.0
    bank = RoomBank([decay.astype(np.float32), np.array([1.0], np.float32)])
    clicks = torch.zeros(64, 4000)
    clicks[:, 1000] = 1.0
    generator = torch.Generator().manual_seed(0)
    out = bank.reverberate(clicks, 0.5, generator)
    assert out.shape == clicks.shape
    torch.testing.assert_close(out.pow(2).mean(1), clicks.pow(2).mean(1))
    tails = (out[:, 1100:1800].abs().sum(1) > 1e-3)
    assert 10 < int(tails.sum()) < 40                       # about half hear the long room
    assert torch.equal(bank.reverberate(clicks, 0.0, generator), clicks)


def test_simulated_rooms_come_from_the_config():
    pytest.importorskip("pyroomacoustics")
    from earmark.augment import RoomBank
    from earmark.rooms import measured_rt60

    bank = RoomBank.simulate(8000, (0.3, 0.4), 2, seed=1)
    assert len(bank.responses) == 2
    for response in bank.responses.numpy():
        assert 0.25 < measured_rt60(np.trim_zeros(response, "b"), 8000) < 0.5
    with pytest.raises(ConfigError, match="reverb_rt60"):
        from_dict({"augment": {"reverb_rt60": [0.5, 3.0]}})


def test_rooms_without_pyroomacoustics_say_what_to_install(monkeypatch):
    """The `train` install has no pyroomacoustics: a config with rooms names the extra."""
    import sys

    from earmark.augment import RoomBank

    monkeypatch.setitem(sys.modules, "pyroomacoustics", None)      # import fails
    with pytest.raises(ConfigError, match=r"earmark\[robustness\].*reverb_probability = 0"):
        RoomBank.simulate(8000, (0.3, 0.4), 2, seed=1)


def tones(frequencies: list[float], length: int = 8000) -> torch.Tensor:
    t = torch.arange(length) / RATE
    return torch.stack([0.3 * torch.sin(2 * torch.pi * f * t) for f in frequencies])


def test_babble_is_other_examples_at_the_asked_snr():
    clean = tones([300.0, 700.0, 1100.0, 1900.0, 2300.0])
    mixed = add_babble(clean, 1.0, (7.0, 7.0), 2, gen())
    babble = mixed - clean
    snr = 10 * torch.log10(clean.pow(2).mean(1) / babble.pow(2).mean(1))
    assert torch.allclose(snr, torch.full_like(snr, 7.0), atol=0.01)
    spectra = torch.fft.rfft(babble).abs()
    own_bins = (torch.tensor([300.0, 700.0, 1100.0, 1900.0, 2300.0]) * 8000 / RATE).long()
    for row, own in enumerate(own_bins):
        assert spectra[row, own] < 1e-3 * spectra[row].max(), "an example babbled over itself"
        assert (spectra[row] > 0.1 * spectra[row].max()).sum() == 2, "not two other talkers"


def test_babble_touches_only_its_share_and_is_off_for_one_example():
    clean = tones([300.0, 700.0] * 200)
    mixed = add_babble(clean, 0.25, (0.0, 20.0), 3, gen())
    touched = (mixed - clean).abs().amax(1) > 0
    assert 0.18 < touched.float().mean() < 0.32
    single = tones([300.0])
    assert torch.equal(add_babble(single, 1.0, (0.0, 0.0), 3, gen()), single)


def test_clipping_distorts_at_the_same_peak_and_only_the_chosen_share():
    clean = tones([440.0] * 400)
    clipped = random_clipping(clean, 0.5, (12.0, 12.0), gen())
    changed = (clipped - clean).abs().amax(1) > 1e-6
    assert 0.4 < changed.float().mean() < 0.6
    row = clipped[changed][0]
    # 12 dB of overdrive: flat tops at a quarter of the original peak
    assert torch.isclose(row.abs().max(), torch.tensor(0.3 / 10 ** (12 / 20)), rtol=1e-3)
    assert torch.equal(random_clipping(clean, 0.0, (12.0, 12.0), gen()), clean)


@pytest.mark.parametrize("section", [
    {"babble_talkers": 0}, {"babble_snr_db": [20.0, 0.0]}, {"clipping_db": [-5.0, 10.0]},
    {"clipping_probability": 1.5}, {"babble_probability": -0.1}])
def test_bad_babble_and_clipping_settings_are_refused(section):
    with pytest.raises(ConfigError, match="augment"):
        from_dict({"augment": section})
