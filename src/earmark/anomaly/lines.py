"""The machine's tonal lines: a fine spectrum at the lines of its normal sound, and the
distance to the nearest normal windows.

A rotating machine (fan, pump, motor, gearbox) hums at its rotation rate and
its harmonics; most faults move, split, modulate or reweigh those lines
(a fan slowed by clogging, an imbalance, a worn bearing) long before they
change the broadband sound. A log-mel front-end at 16 kHz has bands tens of
hertz wide and cannot see a line move by 1 Hz; this method can:

1. the power spectrum at ``resolution_hz`` (a 16384-point FFT at 16 kHz),
   averaged over a window's frames, in dB;
2. the lines: local maxima of the normal windows' mean spectrum standing
   ``prominence_db`` above the running median around them (40 Hz wide), the
   ``max_lines`` most prominent, each with ``line_bins`` bins either side;
3. each window's levels at those bins relative to their own mean (so a
   machine heard louder or closer scores the same), divided by the normal
   windows' spread per bin;
4. the distance to the ``neighbours`` nearest normal windows.

Faults that leave the lines alone (a bearing's impacts, a loose part's
rattle) change how the sound moves in time instead, so a second view scores
the *texture*: the spread over time of 32 log-mel bands in 16 ms frames (in
dB, so also blind to loudness), with its own bank and nearest neighbours
(``anomaly.texture = true``). Each view's distance is divided by its typical
distance among the normal windows (the median over the bank of each window's
distance to the nearest windows of other recordings): a score of 1 is as far
from normal as normal recordings are from each other; with both views, the
score is the sum. The texture view is off by default: it finds impacts and
rattles on synthetic machines, but on the real MIMII fan one normal clip of
unusual texture then outscores faulty ones (pAUC 1.0 -> 0.3 over ten splits).

The bank of normal windows, the bins and the spreads are buffers of the
module: the exported graph carries them as constants.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from earmark.config import AnomalyConfig, FeatureConfig
from earmark.errors import ConfigError, DataError
from earmark.frontend.filters import periodic_hann
from earmark.frontend.fourier import FramePower
from earmark.frontend.module import FrontEnd

#: Added to each bin's spread (dB) so that a bin that never moved cannot dominate.
SPREAD_FLOOR_DB = 0.5
#: Width of the running median a line must stand above (Hz).
BASELINE_HZ = 40.0
#: The most normal windows kept in the bank (evenly spread over the training windows).
MAX_BANK = 4096
POWER_FLOOR = 1e-12
#: The texture view's front-end: 32 log-mel bands of 16 ms frames every 8 ms.
TEXTURE = FeatureConfig(kind="logmel", window_ms=16.0, hop_ms=8.0, n_fft=256, n_mels=32,
                        fmin=0.0, log_floor=1e-10)


def fft_size(sample_rate: int, resolution_hz: float) -> int:
    """The power of two whose bins are at most ``resolution_hz`` apart."""
    return 1 << max(4, math.ceil(math.log2(sample_rate / resolution_hz)))


class LineSpectrum(torch.nn.Module):
    """Waveform windows ``(batch, samples)`` -> mean dB level of chosen FFT bins."""

    def __init__(self, n_fft: int, bins: np.ndarray):
        super().__init__()
        self.n_fft = int(n_fft)
        self.power = FramePower(periodic_hann(self.n_fft), self.n_fft // 2, int(np.max(bins)))
        real = torch.as_tensor(self.power.position_of(np.asarray(bins)), dtype=torch.long)
        self.register_buffer("real_at", real, persistent=False)
        self.register_buffer("imaginary_at", real + self.power.depth, persistent=False)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        squared = self.power(waveform).flatten(2)                   # (batch, frames, -1)
        power = squared[..., self.real_at] + squared[..., self.imaginary_at]
        return 10.0 * torch.log10(torch.clamp(power.mean(dim=1), min=POWER_FLOOR))


class Texture(torch.nn.Module):
    """Waveform windows -> the spread over time (dB) of each of 32 log-mel bands."""

    def __init__(self, sample_rate: int):
        super().__init__()
        self.frontend = FrontEnd(TEXTURE, sample_rate)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return self.frontend(waveform)[:, 0].std(dim=-1)


def rms_distances(features: torch.Tensor, bank: torch.Tensor) -> torch.Tensor:
    """``(n, bank)``: the RMS distance of each row of ``features`` to each bank row.

    Computed as |f|^2 - 2 f.b + |b|^2 (one matrix product, no ``(n, bank, dims)``
    difference), after taking the bank's mean from both sides: the distances are the
    same, but the squares no longer carry the large level all rows share, whose float32
    rounding swamped distances near zero (a steady machine's windows: 0.005 where the
    distance was 0, and onnxruntime's rounding differed from torch's).
    """
    centre = bank.mean(dim=0)
    features, bank = features - centre, bank - centre
    squared = ((features * features).sum(-1, keepdim=True) - 2.0 * features @ bank.T
               + (bank * bank).sum(-1))
    return torch.sqrt(torch.clamp(squared, min=0.0) / features.shape[-1])


def nearest_distance(features: torch.Tensor, bank: torch.Tensor, neighbours: int) -> torch.Tensor:
    """Mean RMS distance of each row of ``features`` to its ``neighbours`` nearest bank rows."""
    distance = rms_distances(features, bank)
    return (-torch.topk(-distance, neighbours, dim=-1).values).mean(dim=-1)


class LineScorer(torch.nn.Module):
    """Waveform windows -> how far from normal, at the machine's lines or in its texture."""

    method = "lines"

    def __init__(self, sample_rate: int, window_samples: int, n_fft: int,
                 bins: np.ndarray, bank_size: int, neighbours: int, texture: bool = False):
        super().__init__()
        self.sample_rate, self.window_samples = int(sample_rate), int(window_samples)
        self.use_texture = bool(texture)
        self.neighbours = int(min(neighbours, bank_size))
        bins = np.asarray(bins, dtype=np.int64)
        self.register_buffer("bins", torch.as_tensor(bins))
        self.spectrum = LineSpectrum(n_fft, bins)
        self.texture = Texture(sample_rate)
        self.register_buffer("spread", torch.ones(len(bins)))
        self.register_buffer("bank", torch.zeros(bank_size, len(bins)))
        self.register_buffer("texture_spread", torch.ones(TEXTURE.n_mels))
        self.register_buffer("texture_bank", torch.zeros(bank_size, TEXTURE.n_mels))
        self.register_buffer("typical", torch.ones(2))     # lines, texture

    def settings(self) -> dict:
        """What rebuilds the module's shapes (the buffers come from its state dict)."""
        return {"method": self.method, "sample_rate": self.sample_rate,
                "window_samples": self.window_samples, "n_fft": self.spectrum.n_fft,
                "bins": [int(b) for b in self.bins], "bank_size": int(self.bank.shape[0]),
                "neighbours": self.neighbours, "texture": self.use_texture}

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        levels = self.spectrum(waveform)
        lines = (levels - levels.mean(dim=-1, keepdim=True)) / self.spread
        score = nearest_distance(lines, self.bank, self.neighbours) / self.typical[0]
        if self.use_texture:                # decided when built: the graph holds one branch
            texture = self.texture(waveform) / self.texture_spread
            score = score + (nearest_distance(texture, self.texture_bank, self.neighbours)
                             / self.typical[1])
        return score


def find_lines(mean_db: np.ndarray, resolution_hz: float, settings: AnomalyConfig) -> np.ndarray:
    """Bins of the ``max_lines`` most prominent lines of a mean dB spectrum (bins from 1),
    with ``line_bins`` neighbours either side; empty when no line stands out."""
    half = max(1, int(round(BASELINE_HZ / resolution_hz / 2)))
    padded = np.pad(mean_db, half, mode="edge")
    baseline = np.median(np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1), axis=1)
    prominence = mean_db - baseline
    inner = prominence[1:-1]
    peaks = np.flatnonzero((inner >= settings.prominence_db) & (inner > prominence[:-2])
                           & (inner >= prominence[2:])) + 1     # a flat top counts once
    peaks = peaks[np.argsort(-prominence[peaks], kind="stable")][:settings.max_lines]
    spread = np.arange(-settings.line_bins, settings.line_bins + 1)
    chosen = {int(p + d) for p in peaks for d in spread if 0 <= p + d < len(mean_db)}
    return np.array(sorted(chosen), dtype=np.int64) + 1        # bin 0 (DC) is never a line


def fit_lines(windows: np.ndarray, sample_rate: int, settings: AnomalyConfig,
              owners: np.ndarray | None = None, batch: int = 64) -> LineScorer:
    """A :class:`LineScorer` learned from normal training windows ``(n, samples)``;
    ``owners`` names the recording of each window (default: each its own).

    Raises
    ------
    ConfigError
        When a window is shorter than one FFT frame at ``resolution_hz``.
    DataError
        When the normal sound has no tonal line to learn.
    """
    n_fft = fft_size(sample_rate, settings.resolution_hz)
    if windows.shape[1] < n_fft:
        raise ConfigError(f"anomaly.resolution_hz = {settings.resolution_hz} needs windows of "
                          f"at least {n_fft / sample_rate:.2f} s; raise data.clip_seconds or "
                          "anomaly.resolution_hz")
    top = sample_rate / 2 if settings.max_hz <= 0 else min(settings.max_hz, sample_rate / 2)
    every_bin = np.arange(1, int(top * n_fft / sample_rate))
    levels = _levels(LineSpectrum(n_fft, every_bin), windows, batch)
    resolution = sample_rate / n_fft
    bins = find_lines(levels.mean(axis=0), resolution, settings)
    if len(bins) == 0:
        raise DataError(f"the normal recordings have no tonal line {settings.prominence_db} dB "
                        "above its surroundings: the 'lines' method suits rotating machines; "
                        "use anomaly.method = 'autoencoder' (or lower anomaly.prominence_db)")
    relative = levels[:, bins - 1] - levels[:, bins - 1].mean(axis=1, keepdims=True)
    keep = np.linspace(0, len(relative) - 1, min(len(relative), MAX_BANK)).round().astype(int)
    scorer = LineScorer(sample_rate, windows.shape[1], n_fft, bins, len(keep),
                        settings.neighbours, settings.texture)
    texture = _levels(scorer.texture, windows[keep], batch)
    for values, spread, bank in ((relative[keep], scorer.spread, scorer.bank),
                                 (texture, scorer.texture_spread, scorer.texture_bank)):
        spread.copy_(torch.as_tensor(values.std(axis=0) + SPREAD_FLOOR_DB))
        bank.copy_(torch.as_tensor(values / spread.numpy(), dtype=torch.float32))
    owners = np.arange(len(windows)) if owners is None else np.asarray(owners)
    scorer.typical.copy_(torch.as_tensor([_typical(scorer.bank, owners[keep], scorer.neighbours),
                                          _typical(scorer.texture_bank, owners[keep],
                                                   scorer.neighbours)]))
    return scorer.eval()


def _typical(bank: torch.Tensor, owners: np.ndarray, neighbours: int) -> float:
    """The median over the bank of each window's distance to its nearest windows of *other*
    recordings (windows of one recording overlap and would look closer than new ones)."""
    with torch.no_grad():
        distance = rms_distances(bank, bank)
    same = torch.as_tensor(owners[:, None] == owners[None, :])
    distance[same] = float("inf")
    usable = torch.isfinite(distance).sum(-1) >= neighbours
    if not bool(usable.any()):
        return 1.0                          # one recording: nothing to compare with
    nearest = -torch.topk(-distance[usable], neighbours, dim=-1).values
    return max(float(nearest.mean(dim=-1).median()), 1e-6)


def _levels(spectrum: torch.nn.Module, windows: np.ndarray, batch: int) -> np.ndarray:
    with torch.no_grad():
        return np.concatenate([spectrum(torch.as_tensor(windows[i:i + batch])).numpy()
                               for i in range(0, len(windows), batch)])
