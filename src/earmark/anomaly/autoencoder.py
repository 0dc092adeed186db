"""The DCASE 2020 task 2 baseline: a dense autoencoder on stacked log-mel frames.

As Koizumi et al. published it for DCASE 2020: 128 log-mel bands (1024-point
FFT, hop 512 at 16 kHz), 5 consecutive frames stacked into a 640-value vector,
an autoencoder of four 128-unit layers, an 8-unit bottleneck and four more
(dense, batch norm, ReLU), trained with Adam to reconstruct normal vectors;
the score of a window is the mean squared reconstruction error of its
vectors. earmark keeps it as the reference every other method is compared
with. The front-end comes from ``[features]``, epochs, batch size, learning
rate and seed from ``[train]``.
"""

from __future__ import annotations

import logging
from dataclasses import asdict

import numpy as np
import torch
from torch import nn

from earmark.config import ExperimentConfig, FeatureConfig
from earmark.errors import ConfigError
from earmark.frontend.module import FrontEnd
from earmark.progress import ProgressLike, as_progress

log = logging.getLogger(__name__)
#: The baseline's four hidden layers either side of the bottleneck.
DEPTH = 4


def dense_autoencoder(inputs: int, hidden: int, bottleneck: int) -> nn.Sequential:
    """Dense + batch norm + ReLU layers: inputs -> hidden x4 -> bottleneck -> hidden x4 -> inputs."""
    sizes = [inputs] + [hidden] * DEPTH + [bottleneck] + [hidden] * DEPTH
    layers: list[nn.Module] = []
    for width_in, width_out in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(width_in, width_out), nn.BatchNorm1d(width_out), nn.ReLU()]
    layers.append(nn.Linear(hidden, inputs))
    return nn.Sequential(*layers)


class AutoencoderScorer(nn.Module):
    """Waveform windows -> mean reconstruction error of their stacked log-mel frames."""

    method = "autoencoder"

    def __init__(self, features: FeatureConfig, sample_rate: int, window_samples: int,
                 context: int, hidden: int, bottleneck: int):
        super().__init__()
        self.sample_rate, self.window_samples = int(sample_rate), int(window_samples)
        self.features_config, self.context = features, int(context)
        self.hidden, self.bottleneck = int(hidden), int(bottleneck)
        self.frontend = FrontEnd(features, sample_rate)
        frames = self.frontend.frames_for(self.window_samples)
        if frames < self.context:
            raise ConfigError(f"anomaly.context_frames = {self.context} but a window of "
                              f"{self.window_samples / self.sample_rate:.3g} s has {frames} "
                              "frames: lower anomaly.context_frames or raise "
                              "data.clip_seconds")
        self.network = dense_autoencoder(self.frontend.bands * self.context, hidden, bottleneck)

    def settings(self) -> dict:
        return {"method": self.method, "sample_rate": self.sample_rate,
                "window_samples": self.window_samples, "features": asdict(self.features_config),
                "context": self.context, "hidden": self.hidden, "bottleneck": self.bottleneck}

    def vectors(self, waveform: torch.Tensor) -> torch.Tensor:
        """``(batch, vectors, bands * context)``: each run of ``context`` frames, stacked."""
        frames = self.frontend(waveform)[:, 0].transpose(1, 2)      # (batch, frames, bands)
        count = frames.shape[1] - self.context + 1
        return torch.cat([frames[:, i:i + count] for i in range(self.context)], dim=-1)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        vectors = self.vectors(waveform)
        rebuilt = self.network(vectors.flatten(0, 1)).reshape(vectors.shape)
        return ((rebuilt - vectors) ** 2).mean(dim=(1, 2))


def fit_autoencoder(windows: np.ndarray, config: ExperimentConfig,
                    progress: ProgressLike = None) -> AutoencoderScorer:
    """Train the baseline on normal training windows ``(n, samples)`` (Adam, MSE)."""
    torch.manual_seed(config.train.seed)
    if config.train.threads > 0:
        torch.set_num_threads(config.train.threads)
    settings = config.anomaly
    scorer = AutoencoderScorer(config.features, config.data.sample_rate, windows.shape[1],
                               settings.context_frames, settings.hidden, settings.bottleneck)
    with torch.no_grad():
        vectors = torch.cat([scorer.vectors(torch.as_tensor(windows[i:i + 64]))
                             .flatten(0, 1) for i in range(0, len(windows), 64)])
    optimiser = torch.optim.Adam(scorer.network.parameters(), lr=config.train.learning_rate)
    generator = torch.Generator().manual_seed(config.train.seed)
    scorer.network.train()
    with as_progress(progress)(config.train.epochs, "autoencoder", "epoch") as advance:
        for epoch in range(config.train.epochs):
            loss = _epoch(scorer.network, vectors, optimiser, config.train.batch_size, generator)
            log.debug("epoch %d: reconstruction error %.4f", epoch + 1, loss)
            advance(1)
    return scorer.eval()


def _epoch(network: nn.Module, vectors: torch.Tensor, optimiser, batch: int,
           generator: torch.Generator) -> float:
    order = torch.randperm(len(vectors), generator=generator)
    total = 0.0
    for start in range(0, len(order), batch):
        chosen = vectors[order[start:start + batch]]
        if len(chosen) < 2:
            continue                         # batch norm needs two vectors
        loss = ((network(chosen) - chosen) ** 2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        total += loss.item() * len(chosen)
    return total / max(len(order), 1)
