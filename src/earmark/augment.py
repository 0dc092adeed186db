"""Batched training augmentation on waveforms and on features (torch).

Waveform transforms take and return ``(batch, samples)``; SpecAugment takes
``(batch, channels, bands, frames)``. Each draws its randomness from the
``torch.Generator`` it is given, so a seeded run is repeatable.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from earmark import audio
from earmark.config import AugmentConfig
from earmark.errors import ConfigError

#: ``[augment]`` settings that make synthetic speech sound recorded: rooms, microphone EQ,
#: band limits, noise at an SNR, other talkers, clipping, level, speed, vocal tract length.
RECORDED_SOUND = {"noise_probability": 0.8, "noise_mix": "snr", "noise_snr_db": [0.0, 25.0],
                  "gain_db": [-20.0, 6.0], "speed": [0.85, 1.15],
                  "frequency_warp": [0.85, 1.15], "equalizer_db": 6.0,
                  "band_limit_probability": 0.2, "lowpass_hz": [3400.0, 7600.0],
                  "highpass_hz": [50.0, 300.0], "reverb_probability": 0.5,
                  "reverb_rt60": [0.2, 1.0], "babble_probability": 0.2,
                  "babble_snr_db": [5.0, 20.0], "clipping_probability": 0.1}


def _uniform(low: float, high: float, size: int, generator: torch.Generator,
             device: torch.device) -> torch.Tensor:
    return torch.rand(size, generator=generator, device=device) * (high - low) + low


def time_shift(waveform: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Shift each example by a random number of samples in [-max_shift, max_shift], zero-filled."""
    if max_shift <= 0:
        return waveform
    batch, length = waveform.shape
    shifts = torch.randint(-max_shift, max_shift + 1, (batch, 1), generator=generator,
                           device=waveform.device)
    source = torch.arange(length, device=waveform.device)[None, :] - shifts
    valid = (source >= 0) & (source < length)
    shifted = torch.gather(waveform, 1, source.clamp(0, length - 1))
    return shifted * valid


def random_gain(waveform: torch.Tensor, gain_db: tuple[float, float],
                generator: torch.Generator) -> torch.Tensor:
    """Scale each example by a random gain in dB."""
    low, high = gain_db
    if low == high == 0:
        return waveform
    gains = _uniform(low, high, waveform.shape[0], generator, waveform.device)
    return waveform * (10.0 ** (gains / 20.0))[:, None]


def change_speed(waveform: torch.Tensor, speed: tuple[float, float],
                 generator: torch.Generator) -> torch.Tensor:
    """Play each example faster or slower (pitch follows, like tape), keeping its length.

    A speed of 1.1 reads the source 10% faster, so the word gets shorter;
    the reading is centred and padded with zeros.
    """
    low, high = speed
    if low == high == 1.0:
        return waveform
    batch, length = waveform.shape
    factors = _uniform(low, high, batch, generator, waveform.device)
    # grid_sample positions in [-1, 1]; scaling the grid about 0 changes speed.
    positions = torch.linspace(-1.0, 1.0, length, device=waveform.device)
    grid_x = positions[None, :] * factors[:, None]
    grid = torch.stack([grid_x, torch.zeros_like(grid_x)], dim=-1)[:, None]  # (B,1,L,2)
    image = waveform[:, None, None, :]                                      # (B,1,1,L)
    out = F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros",
                        align_corners=True)
    return out[:, 0, 0, :]


def random_equalizer(waveform: torch.Tensor, max_db: float, sample_rate: int,
                     generator: torch.Generator, terms: int = 4) -> torch.Tensor:
    """Filter each example by a random smooth EQ curve of up to about +/- ``max_db``.

    Microphones, rooms and codecs colour a recording by a fixed gain per
    frequency; a model trained on a few recording setups learns theirs. The
    curve is a sum of ``terms`` cosines over log frequency (50 Hz to Nyquist)
    with random amplitudes, applied in the frequency domain (the FFT of the
    whole clip; a smooth curve has a short response, so wrap-around is
    negligible). Loudness is kept: the curve's mean dB is removed.
    """
    if max_db <= 0:
        return waveform
    batch, length = waveform.shape
    device = waveform.device
    frequencies = torch.fft.rfftfreq(length, 1.0 / sample_rate).to(device)
    position = torch.log(frequencies.clamp_min(50.0) / 50.0) / math.log(sample_rate / 100.0)
    orders = torch.arange(1, terms + 1, device=device, dtype=waveform.dtype)
    amplitudes = _uniform(-1.0, 1.0, batch * terms, generator, device).view(batch, terms)
    curve_db = (amplitudes[:, :, None] * torch.cos(math.pi * orders[None, :, None]
                                                   * position[None, None, :])).sum(dim=1)
    curve_db = curve_db * (max_db / math.sqrt(terms))
    curve_db = curve_db - curve_db.mean(dim=1, keepdim=True)
    spectrum = torch.fft.rfft(waveform, dim=1) * (10.0 ** (curve_db / 20.0))
    return torch.fft.irfft(spectrum, n=length, dim=1)


def random_band_limit(waveform: torch.Tensor, lowpass_hz: tuple[float, float],
                      highpass_hz: tuple[float, float], probability: float, sample_rate: int,
                      generator: torch.Generator, order: int = 6) -> torch.Tensor:
    """Low-pass and/or high-pass a random share of examples at random cut-offs.

    Recordings differ in bandwidth (telephone and laptop microphones, codecs,
    8 kHz sources resampled): a model that has only heard full-band speech
    fails on speech with nothing above 2 kHz. Each chosen example gets a
    Butterworth-shaped magnitude response (``order``, zero phase, applied to
    its FFT) with a cut-off drawn uniformly from each range; ``(0, 0)``
    leaves that side alone.
    """
    if probability <= 0 or (max(lowpass_hz) <= 0 and max(highpass_hz) <= 0):
        return waveform
    batch, length = waveform.shape
    device = waveform.device
    frequencies = torch.fft.rfftfreq(length, 1.0 / sample_rate).to(device)[None, :]
    chosen = (torch.rand(batch, generator=generator, device=device) < probability)[:, None]
    gain = torch.ones(batch, frequencies.shape[1], device=device)
    if max(lowpass_hz) > 0:
        cutoff = _uniform(*lowpass_hz, batch, generator, device)[:, None]
        gain = gain / torch.sqrt(1 + (frequencies / cutoff) ** (2 * order))
    if max(highpass_hz) > 0:
        cutoff = _uniform(*highpass_hz, batch, generator, device)[:, None]
        ratio = cutoff / frequencies.clamp_min(1e-3)
        gain = gain / torch.sqrt(1 + ratio ** (2 * order))
    gain = torch.where(chosen, gain, torch.ones_like(gain))
    return torch.fft.irfft(torch.fft.rfft(waveform, dim=1) * gain, n=length, dim=1)


class NoiseBank:
    """Background recordings held in memory; draws random segments of them."""

    def __init__(self, recordings: list[np.ndarray]):
        if not recordings:
            raise ConfigError("the noise folder holds no readable recordings")
        self.recordings = [torch.from_numpy(np.ascontiguousarray(r)) for r in recordings]

    @classmethod
    def from_folder(cls, folder: str, sample_rate: int) -> "NoiseBank":
        return cls(audio.load_folder(folder, sample_rate, "augment.noise_dir"))

    def draw(self, count: int, length: int, generator: torch.Generator) -> torch.Tensor:
        """``count`` random noise segments of ``length`` samples (looped if short)."""
        out = torch.empty(count, length)
        choices = torch.randint(len(self.recordings), (count,), generator=generator)
        for row, choice in enumerate(choices.tolist()):
            source = self.recordings[choice]
            if len(source) < length:
                source = source.repeat(math.ceil(length / len(source)) + 1)
            start = int(torch.randint(len(source) - length + 1, (1,), generator=generator))
            out[row] = source[start:start + length]
        return out


class RoomBank:
    """Impulse responses of simulated rooms (:mod:`earmark.rooms`), one drawn per example."""

    def __init__(self, responses: list[np.ndarray]):
        if not responses:
            raise ConfigError("no room impulse responses to reverberate with")
        longest = max(len(r) for r in responses)
        self.responses = torch.stack([torch.from_numpy(np.pad(np.asarray(r, np.float32),
                                                              (0, longest - len(r))))
                                      for r in responses])
        self._spectra_by_size: dict[tuple[int, str], torch.Tensor] = {}

    @classmethod
    def simulate(cls, sample_rate: int, rt60: tuple[float, float], count: int,
                 seed: int) -> "RoomBank":
        """``count`` rooms with RT60s drawn from ``rt60``, the talker 1-3 m away."""
        from earmark.rooms import room_impulse

        rng = np.random.default_rng([seed, 60])
        return cls([room_impulse(sample_rate, float(rng.uniform(*rt60)),
                                 float(rng.uniform(1.0, 3.0)), rng) for _ in range(count)])

    def reverberate(self, waveform: torch.Tensor, probability: float,
                    generator: torch.Generator) -> torch.Tensor:
        """A random share of examples convolved with a random room, kept at their power
        and length (the tail past the end is cut)."""
        if probability <= 0:
            return waveform
        batch, length = waveform.shape
        device = waveform.device
        chosen = torch.rand(batch, generator=generator, device=device) < probability
        drawn = torch.randint(len(self.responses), (batch,), generator=generator)
        rows = chosen.nonzero().flatten()
        if len(rows) == 0:
            return waveform
        size = 1 << (length + self.responses.shape[1] - 1).bit_length()   # a fast FFT length
        dry = waveform[rows]
        wet = torch.fft.irfft(torch.fft.rfft(dry, n=size)
                              * self._spectra(size, device)[drawn[rows.cpu()].to(device)],
                              n=size)[:, :length]
        scale = torch.sqrt(dry.pow(2).mean(1) / wet.pow(2).mean(1).clamp_min(1e-12))
        out = waveform.clone()
        out[rows] = wet * scale[:, None]
        return out

    def _spectra(self, size: int, device: torch.device) -> torch.Tensor:
        """The rooms' spectra for FFTs of ``size`` points, computed once per size."""
        key = (size, str(device))
        if key not in self._spectra_by_size:
            self._spectra_by_size[key] = torch.fft.rfft(self.responses.to(device), n=size)
        return self._spectra_by_size[key]


def add_noise(waveform: torch.Tensor, noise: torch.Tensor, config: AugmentConfig,
              generator: torch.Generator) -> torch.Tensor:
    """Mix ``noise`` into a random share of examples, at a random SNR or volume."""
    batch = waveform.shape[0]
    device = waveform.device
    noise = noise.to(device)
    chosen = torch.rand(batch, generator=generator, device=device) < config.noise_probability
    if config.noise_mix == "snr":
        snr_db = _uniform(*config.noise_snr_db, batch, generator, device)
        signal_power = waveform.pow(2).mean(dim=1).clamp_min(1e-10)
        noise_power = noise.pow(2).mean(dim=1).clamp_min(1e-10)
        scale = torch.sqrt(signal_power / (noise_power * 10.0 ** (snr_db / 10.0)))
    else:
        scale = _uniform(*config.noise_volume, batch, generator, device)
    return waveform + noise * (scale * chosen)[:, None]


def add_babble(waveform: torch.Tensor, probability: float, snr_db: tuple[float, float],
               talkers: int, generator: torch.Generator) -> torch.Tensor:
    """Put other examples of the batch behind a random share of examples, at a random SNR.

    The babble of each example is the sum of ``talkers`` other examples (rolled
    batches, so never the example itself): other people talking nearby, the
    condition a model trained on clean words fails first.
    """
    batch = waveform.shape[0]
    if probability <= 0 or batch < 2:
        return waveform
    device = waveform.device
    talkers = min(talkers, batch - 1)
    offsets = torch.randperm(batch - 1, generator=generator)[:talkers] + 1
    babble = sum(torch.roll(waveform, int(offset), dims=0) for offset in offsets)
    chosen = torch.rand(batch, generator=generator, device=device) < probability
    snr = _uniform(*snr_db, batch, generator, device)
    signal_power = waveform.pow(2).mean(dim=1).clamp_min(1e-10)
    babble_power = babble.pow(2).mean(dim=1).clamp_min(1e-10)
    scale = torch.sqrt(signal_power / (babble_power * 10.0 ** (snr / 10.0)))
    return waveform + babble * (scale * chosen)[:, None]


def random_clipping(waveform: torch.Tensor, probability: float, overdrive_db: tuple[float, float],
                    generator: torch.Generator) -> torch.Tensor:
    """Drive a random share of examples ``overdrive_db`` above full scale into hard clipping.

    The example's peak is raised to that level, clipped at +/-1 and brought
    back to its own level, so only the distortion changes, not the loudness.
    """
    if probability <= 0:
        return waveform
    batch = waveform.shape[0]
    device = waveform.device
    chosen = torch.rand(batch, generator=generator, device=device) < probability
    drive = 10.0 ** (_uniform(*overdrive_db, batch, generator, device) / 20.0)
    peak = waveform.abs().amax(dim=1).clamp_min(1e-6)
    gain = (drive / peak)[:, None]
    clipped = (waveform * gain).clamp(-1.0, 1.0) / gain
    return torch.where(chosen[:, None], clipped, waveform)


def spec_augment(features: torch.Tensor, time_masks: int, time_width: int,
                 freq_masks: int, freq_width: int, generator: torch.Generator) -> torch.Tensor:
    """SpecAugment: zero random bands and frame spans (after per-example mean fill)."""
    if time_masks == 0 and freq_masks == 0:
        return features
    batch, _, bands, frames = features.shape
    device = features.device
    keep = torch.ones(batch, 1, bands, frames, device=device, dtype=torch.bool)
    keep &= _mask(batch, freq_masks, freq_width, bands, generator, device)[:, None, :, None]
    keep &= _mask(batch, time_masks, time_width, frames, generator, device)[:, None, None, :]
    fill = features.mean(dim=(2, 3), keepdim=True)
    return torch.where(keep, features, fill)


def _mask(batch: int, count: int, width: int, size: int, generator: torch.Generator,
          device: torch.device) -> torch.Tensor:
    """``(batch, size)`` True where kept, after ``count`` random spans of <= ``width``."""
    keep = torch.ones(batch, size, dtype=torch.bool, device=device)
    positions = torch.arange(size, device=device)[None, :]
    for _ in range(count):
        widths = torch.randint(0, max(width, 0) + 1, (batch, 1), generator=generator,
                               device=device)
        starts = (torch.rand(batch, 1, generator=generator, device=device)
                  * (size - widths + 1).clamp_min(1)).long()
        keep &= ~((positions >= starts) & (positions < starts + widths))
    return keep


def mixup(features: torch.Tensor, targets: torch.Tensor, alpha: float,
          generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Blend pairs of examples and their one-hot ``targets`` (batch, classes)."""
    if alpha <= 0:
        return features, targets
    lam = float(np.random.default_rng(int(torch.randint(2**31, (1,), generator=generator)))
                .beta(alpha, alpha))
    order = torch.randperm(features.shape[0], generator=generator).to(features.device)
    return (lam * features + (1 - lam) * features[order],
            lam * targets + (1 - lam) * targets[order])


def frequency_warp_factors(batch: int, warp: tuple[float, float], generator: torch.Generator,
                           device: torch.device) -> torch.Tensor | None:
    """Random vocal tract length factors for :meth:`FrontEnd.forward`, or None when off."""
    low, high = warp
    if low == high == 1.0:
        return None
    return _uniform(low, high, batch, generator, device)


class WaveformAugmenter:
    """Applies the ``[augment]`` waveform transforms of a config to a batch."""

    def __init__(self, config: AugmentConfig, sample_rate: int, noise: NoiseBank | None,
                 rooms: RoomBank | None = None):
        self.config = config
        self.max_shift = int(round(config.shift_ms * sample_rate / 1000))
        self.sample_rate = sample_rate
        self.noise = noise
        self.rooms = rooms

    def __call__(self, waveform: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        c = self.config
        waveform = change_speed(waveform, tuple(c.speed), generator)
        waveform = time_shift(waveform, self.max_shift, generator)
        waveform = random_equalizer(waveform, c.equalizer_db, self.sample_rate, generator)
        waveform = random_band_limit(waveform, tuple(c.lowpass_hz), tuple(c.highpass_hz),
                                     c.band_limit_probability, self.sample_rate, generator)
        if self.rooms is not None:
            waveform = self.rooms.reverberate(waveform, c.reverb_probability, generator)
        waveform = add_babble(waveform, c.babble_probability, tuple(c.babble_snr_db),
                              c.babble_talkers, generator)
        waveform = random_clipping(waveform, c.clipping_probability, tuple(c.clipping_db),
                                   generator)
        waveform = random_gain(waveform, tuple(c.gain_db), generator)
        if self.noise is not None and c.noise_probability > 0:
            noise = self.noise.draw(waveform.shape[0], waveform.shape[1], generator)
            waveform = add_noise(waveform, noise, c, generator)
        return waveform
