"""Several heads on the speech embedding's columns, their probabilities averaged.

``earmark wakeword`` trains its heads one by one (:mod:`earmark.wakeword.ensemble`)
and joins them here for the bundle: one graph, the embedding computed once, each
head reading the same columns. The output is the log of the heads' mean
probability, so a softmax over it (what every earmark runtime takes of a
network's output) gives the mean probability itself.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from earmark.errors import ConfigError
from earmark.models import register
from earmark.models.embedding_head import EmbeddingHead


@register("embedding_ensemble")
class EmbeddingEnsemble(nn.Module):
    def __init__(self, input_shape: tuple[int, int, int], n_classes: int, members: int = 3,
                 hidden: int = 128, column_width: int = 64, layers: int = 2,
                 dropout: float = 0.2):
        super().__init__()
        if members < 1:
            raise ConfigError("[model] embedding_ensemble needs members >= 1")
        self.members = nn.ModuleList(
            EmbeddingHead(input_shape, n_classes, hidden, column_width, layers, dropout)
            for _ in range(members))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        log_probabilities = torch.stack([member(features).log_softmax(-1)
                                         for member in self.members])
        return torch.logsumexp(log_probabilities, 0) - math.log(len(self.members))
