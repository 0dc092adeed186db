"""BirdNET's embedding as a training network's first stage (torch outside).

:class:`BirdFrontEnd` (an :class:`~earmark.frontend.outside.OutsideFrontEnd`):
``(batch, samples)`` in, ``(batch, 1, 1024 * views, n)`` out, one column for
every 3 s, a second apart (a view for each of ``features.playback_rates``). The
embedding is frozen (computed in LiteRT), so a small model on top learns the
classes from few recordings while the embedding brings what it learned from
BirdNET's field recordings. A run on it trains, evaluates, teaches
(``train.teacher``) and exports: its bundle holds the model on the embedding,
and the runtime runs BirdNET beside it (:mod:`earmark.runtime.graph_input`).
"""

from __future__ import annotations

import numpy as np
import torch

from earmark.config import FeatureConfig
from earmark.frontend import bird_embedding as bird
from earmark.frontend.outside import OutsideFrontEnd, refuse_own_settings

KIND = bird.KIND


def check_bird(config: FeatureConfig) -> None:
    """Refuse settings the fixed embedding cannot honour, saying what it computes."""
    refuse_own_settings(config, "BirdNET computes 1,024 numbers for every 3 s from its own "
                                "spectrogram")
    bird.check_playback_rates(config.playback_rates)


class BirdFrontEnd(OutsideFrontEnd):
    """``(batch, samples)`` -> ``(batch, 1, 1024 * views, n)`` BirdNET embeddings."""

    kind = KIND
    what = "BirdNET, a fixed pretrained network"

    def __init__(self, config: FeatureConfig, sample_rate: int):
        super().__init__(config, sample_rate)
        self.playback_rates = tuple(map(float, config.playback_rates))    # checked above
        self.bands = bird.DIMENSIONS * len(self.playback_rates)
        self.window_length = bird.window_samples(self.sample_rate)
        self.hop_length = bird.hop_samples(self.sample_rate)
        self.min_samples = self.window_length

    def check(self, config: FeatureConfig, sample_rate: int) -> None:
        check_bird(config)
        bird.model_file()                     # installed and intact? (before training)

    def count(self, samples: int) -> int:
        return bird.embedding_count(samples, self.sample_rate)

    def compute(self, waveforms: np.ndarray) -> np.ndarray:
        return bird.BirdEmbedding(self.sample_rate, torch.get_num_threads(),
                                  self.playback_rates)(waveforms)
