"""The pretrained speech embedding as a training network's first stage (torch outside).

:class:`EmbeddingFrontEnd` stands where :class:`~earmark.frontend.module.FrontEnd`
stands in a :class:`~earmark.network.WaveformClassifier`: ``(batch, samples)``
at 16 kHz in, ``(batch, 1, 96, n)`` out, one column every 80 ms. The
embedding is frozen (computed in onnxruntime, no gradients), so a model on
top learns the phrase from few or synthesized takes while the embedding
brings what it learned from real speech.
"""

from __future__ import annotations

import functools

import torch

from earmark.config import FeatureConfig
from earmark.errors import ConfigError
from earmark.frontend import speech_embedding as embedding

KIND = "embedding"


def check_embedding(config: FeatureConfig, sample_rate: int) -> None:
    """Refuse settings the fixed embedding cannot honour, saying what it computes."""
    fixed = ("the speech embedding computes 96 numbers every 80 ms at 16 kHz from its own "
             "32 mel bands")
    if sample_rate != embedding.SAMPLE_RATE:
        raise ConfigError(f"features.kind = \"embedding\" needs data.sample_rate = 16000 "
                          f"(got {sample_rate}): {fixed}")
    if config.deltas or config.center or config.top_db > 0 or config.mean_normalize:
        raise ConfigError(f"features.kind = \"embedding\" takes no deltas, center, top_db or "
                          f"mean_normalize: {fixed}")


@functools.lru_cache(maxsize=2)
def shared_embedding(threads: int) -> embedding.SpeechEmbedding:
    """One set of onnxruntime sessions per process (they cannot be copied or pickled)."""
    return embedding.SpeechEmbedding(threads)


class EmbeddingFrontEnd(torch.nn.Module):
    """``(batch, samples)`` at 16 kHz -> ``(batch, 1, 96, n)`` speech embeddings."""

    kind = KIND
    channels = 1
    bands = embedding.DIMENSIONS
    window_length = embedding.WINDOW_SAMPLES
    hop_length = embedding.HOP_SAMPLES
    min_samples = embedding.WINDOW_SAMPLES

    def __init__(self, config: FeatureConfig, sample_rate: int):
        super().__init__()
        check_embedding(config, sample_rate)
        embedding.model_files()                  # installed? (says how, before training)
        self.config = config
        self.sample_rate = int(sample_rate)

    def frames_for(self, samples: int) -> int:
        count = embedding.embedding_count(int(samples))
        if count < 1:
            raise ConfigError(f"{samples} samples are shorter than the speech embedding's "
                              f"{embedding.WINDOW_SAMPLES}-sample window (0.92 s): use "
                              "a longer data.clip_seconds")
        return count

    def output_shape(self, samples: int) -> tuple[int, int, int]:
        return (1, embedding.DIMENSIONS, self.frames_for(samples))

    def extra_repr(self) -> str:
        return "kind='embedding', sample_rate=16000, hop_length=1280, dimensions=96"

    def forward(self, waveform: torch.Tensor,
                frequency_scale: torch.Tensor | None = None) -> torch.Tensor:
        if waveform.dim() != 2:
            raise ValueError(f"EmbeddingFrontEnd expects (batch, samples), got shape "
                             f"{tuple(waveform.shape)}")
        if frequency_scale is not None:
            raise ConfigError("augment.frequency_warp needs a front-end inside the network; "
                              "the speech embedding is a fixed pretrained graph: leave it out")
        self.frames_for(waveform.shape[-1])
        threads = max(1, torch.get_num_threads())
        features = shared_embedding(threads)(waveform.detach().float().cpu().numpy())
        return (torch.from_numpy(features).transpose(1, 2).unsqueeze(1)
                .to(device=waveform.device, dtype=waveform.dtype))
