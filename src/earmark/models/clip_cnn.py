"""A clip model for variable-length input: conv blocks, then pooling over time.

Log-mel (+ delta) channels in; four blocks of two 3x3 convolutions with
batch norm, max pooling and dropout; frequency averaged away; then global
max pooling (or attention pooling) over whatever number of frames is left,
so one set of weights judges a 1 s window or a 60 s recording.
"""

from __future__ import annotations

import torch
from torch import nn

from earmark.errors import ConfigError
from earmark.models import check_poolable, register


def _conv_block(in_channels: int, out_channels: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels), nn.ReLU(),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels), nn.ReLU(),
        nn.MaxPool2d(2), nn.Dropout(dropout))


class AttentionPool(nn.Module):
    """Softmax-weighted average over time, one weight per frame."""

    def __init__(self, channels: int):
        super().__init__()
        self.score = nn.Conv1d(channels, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (batch, channels, frames)
        weights = torch.softmax(self.score(x), dim=-1)
        return (x * weights).sum(dim=-1)


@register("clip_cnn")
class ClipCNN(nn.Module):
    def __init__(self, input_shape: tuple[int, int, int], n_classes: int,
                 widths: tuple[int, ...] = (16, 32, 64, 64), dropout: float = 0.2,
                 pooling: str = "max"):
        super().__init__()
        if pooling not in ("max", "attention", "mean"):
            raise ConfigError(f"[model] clip_cnn pooling = {pooling!r} is not one of "
                              "'max', 'attention' or 'mean'")
        check_poolable("clip_cnn", input_shape, len(widths))
        blocks, previous = [], input_shape[0]
        for width in widths:
            blocks.append(_conv_block(previous, width, dropout))
            previous = width
        self.normalize = nn.BatchNorm2d(input_shape[0])
        self.blocks = nn.Sequential(*blocks)
        self.pooling = pooling
        self.attention = AttentionPool(previous) if pooling == "attention" else None
        self.classifier = nn.Linear(previous, n_classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.normalize(features)).mean(dim=2)   # (batch, channels, frames)
        if self.attention is not None:
            pooled = self.attention(x)
        elif self.pooling == "max":
            pooled = x.amax(dim=-1)
        else:
            pooled = x.mean(dim=-1)
        return self.classifier(pooled)
