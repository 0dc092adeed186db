"""The pretrained speech embedding as a training network's first stage (torch outside).

:class:`EmbeddingFrontEnd` (an :class:`~earmark.frontend.outside.OutsideFrontEnd`):
``(batch, samples)`` at 16 kHz in, ``(batch, 1, 96, n)`` out, one column
every 80 ms. The embedding is frozen (computed in onnxruntime), so a model
on top learns the phrase from few or synthesized takes while the embedding
brings what it learned from real speech. With ``features.embedding_blocks``
below 5 it is the network's first blocks only (:class:`~earmark.frontend.
speech_embedding.Depth`): their columns, finer in time, for a model small
enough for a device to take over from. With ``features.embedding_int8`` its
convolutions run in int8 (:mod:`~earmark.frontend.embedding_int8`), in
training as in the bundle.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from earmark.config import FeatureConfig
from earmark.errors import ConfigError
from earmark.frontend import sliding_embedding as sliding
from earmark.frontend import speech_embedding as embedding
from earmark.frontend.outside import OutsideFrontEnd, refuse_own_settings

KIND = embedding.KIND


def check_embedding(config: FeatureConfig, sample_rate: int) -> None:
    """Refuse settings the fixed embedding cannot honour, saying what it computes."""
    fixed = ("the speech embedding computes 96 numbers every 80 ms at 16 kHz from its own "
             "32 mel bands")
    embedding.depth(config.embedding_blocks)
    if sample_rate != embedding.SAMPLE_RATE:
        raise ConfigError(f"features.kind = \"embedding\" needs data.sample_rate = 16000 "
                          f"(got {sample_rate}): {fixed}")
    refuse_own_settings(config, fixed)


@functools.lru_cache(maxsize=2)
def shared_embedding(threads: int, blocks: int = embedding.BLOCKS,
                     int8: bool = False) -> sliding.SpeechEmbedding:
    """One set of onnxruntime sessions per process (they cannot be copied or pickled)."""
    return sliding.SpeechEmbedding(threads, blocks, int8)


class EmbeddingFrontEnd(OutsideFrontEnd):
    """``(batch, samples)`` at 16 kHz -> ``(batch, 1, 96, n)`` speech embeddings
    (``(batch, 1, dimensions, n)`` of the first ``features.embedding_blocks``)."""

    kind = KIND
    what = "a fixed pretrained graph"

    def __init__(self, config: FeatureConfig, sample_rate: int):
        super().__init__(config, sample_rate)
        self.depth = embedding.depth(config.embedding_blocks)
        self.int8 = config.embedding_int8
        self.bands = self.depth.dimensions
        self.window_length = self.min_samples = self.depth.window_samples
        self.hop_length = self.depth.hop_samples

    def check(self, config: FeatureConfig, sample_rate: int) -> None:
        check_embedding(config, sample_rate)
        embedding.model_files()                  # shipped intact? (before training)

    def count(self, samples: int) -> int:
        return self.depth.count(samples)

    def compute(self, waveforms: np.ndarray) -> np.ndarray:
        return shared_embedding(max(1, torch.get_num_threads()), self.depth.blocks,
                                self.int8)(waveforms)
