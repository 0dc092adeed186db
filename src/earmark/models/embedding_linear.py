"""A linear probe on a frozen embedding (``model.name = "embedding_linear"``).

The usual first judge of an embedding, and often the best on few recordings:
each of the window's numbers standardised by its mean and spread over the
training windows, then one linear layer. Regularised by ``train.weight_decay``
(AdamW's, so values about 1 rather than 0.01), not by mixup, which blurs the
linear boundaries it learns. Beside :mod:`~earmark.models.embedding_head`'s
small network it has fewer choices to make and varies less with the seed.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional

from earmark.errors import ConfigError
from earmark.models import register


class Standardise(nn.BatchNorm1d):
    """Each number less its mean over the training windows, over its spread.

    Batch normalisation without scale or shift, its running statistics a plain
    average over every training batch (``momentum=None``), so that judging
    uses the training set's mean and spread, as a standard scaler would. A
    batch of one example (the last of an epoch) is standardised with the
    statistics so far instead of its own, which it cannot give.
    """

    def __init__(self, size: int):
        super().__init__(size, affine=False, momentum=None)

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        if self.training and values.shape[0] < 2:
            return functional.batch_norm(values, self.running_mean, self.running_var,
                                         training=False, eps=self.eps)
        return super().forward(values)


@register("embedding_linear")
class EmbeddingLinear(nn.Module):
    def __init__(self, input_shape: tuple[int, int, int], n_classes: int,
                 dropout: float = 0.0):
        super().__init__()
        channels, dimensions, columns = input_shape
        if channels != 1:
            raise ConfigError("[model] embedding_linear takes one feature channel (no deltas)")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"[model] embedding_linear: dropout = {dropout} must lie in "
                              "[0, 1)")
        self.standardise = Standardise(dimensions * columns)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(dimensions * columns, n_classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.standardise(features.flatten(1))))
