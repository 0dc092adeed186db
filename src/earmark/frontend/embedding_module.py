"""The pretrained speech embedding as a training network's first stage (torch outside).

:class:`EmbeddingFrontEnd` (an :class:`~earmark.frontend.outside.OutsideFrontEnd`):
``(batch, samples)`` at 16 kHz in, ``(batch, 1, 96, n)`` out, one column
every 80 ms. The embedding is frozen (computed in onnxruntime), so a model
on top learns the phrase from few or synthesized takes while the embedding
brings what it learned from real speech.
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
    if sample_rate != embedding.SAMPLE_RATE:
        raise ConfigError(f"features.kind = \"embedding\" needs data.sample_rate = 16000 "
                          f"(got {sample_rate}): {fixed}")
    refuse_own_settings(config, fixed)


@functools.lru_cache(maxsize=2)
def shared_embedding(threads: int) -> sliding.SpeechEmbedding:
    """One set of onnxruntime sessions per process (they cannot be copied or pickled)."""
    return sliding.SpeechEmbedding(threads)


class EmbeddingFrontEnd(OutsideFrontEnd):
    """``(batch, samples)`` at 16 kHz -> ``(batch, 1, 96, n)`` speech embeddings."""

    kind = KIND
    what = "a fixed pretrained graph"
    bands = embedding.DIMENSIONS
    window_length = embedding.WINDOW_SAMPLES
    hop_length = embedding.HOP_SAMPLES
    min_samples = embedding.WINDOW_SAMPLES

    def check(self, config: FeatureConfig, sample_rate: int) -> None:
        check_embedding(config, sample_rate)
        embedding.model_files()                  # shipped intact? (before training)

    def count(self, samples: int) -> int:
        return embedding.embedding_count(samples)

    def compute(self, waveforms: np.ndarray) -> np.ndarray:
        return shared_embedding(max(1, torch.get_num_threads()))(waveforms)
