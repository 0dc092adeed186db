"""A small network on the speech embedding's columns (``features.kind = "embedding"``).

The embedding already turns sound into speech-like units (96 numbers every
80 ms), so the model only has to recognise the phrase's sequence of them:
each column is normalised and projected, the window's columns are read
together by a fully connected layer, as openWakeWord's heads do (its
default: 16 columns, two layers of 128). Columns keep their order, so the
phrase's end has to fall near the window's end, which a stream gives every
80 ms.
"""

from __future__ import annotations

import torch
from torch import nn

from earmark.errors import ConfigError
from earmark.models import register


@register("embedding_mlp")
class EmbeddingHead(nn.Module):
    def __init__(self, input_shape: tuple[int, int, int], n_classes: int,
                 hidden: int = 128, column_width: int = 64, layers: int = 2,
                 dropout: float = 0.2):
        super().__init__()
        channels, dimensions, columns = input_shape
        if channels != 1:
            raise ConfigError("[model] embedding_mlp takes one feature channel (no deltas)")
        if layers < 1 or hidden < 1 or column_width < 1:
            raise ConfigError("[model] embedding_mlp needs layers, hidden and column_width "
                              ">= 1")
        self.columns = nn.Sequential(nn.LayerNorm(dimensions),
                                     nn.Linear(dimensions, column_width), nn.GELU())
        stack: list[nn.Module] = []
        width = column_width * columns
        for _ in range(layers):
            stack += [nn.Dropout(dropout), nn.Linear(width, hidden), nn.LayerNorm(hidden),
                      nn.GELU()]
            width = hidden
        self.window = nn.Sequential(*stack)
        self.classifier = nn.Linear(hidden, n_classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        columns = self.columns(features[:, 0].transpose(1, 2))     # (B, n, width)
        return self.classifier(self.window(columns.flatten(1)))
