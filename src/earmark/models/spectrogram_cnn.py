"""A 2-D CNN for the 128x128 spectrogram image (the seed's spectrogram-as-image recipe)."""

from __future__ import annotations

import torch
from torch import nn

from earmark.models import check_poolable, register


def _conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels), nn.ReLU(), nn.MaxPool2d(2))


@register("spectrogram_cnn")
class SpectrogramCNN(nn.Module):
    """Four conv + max-pool stages (16-32-64-96 channels), global average, dense."""

    def __init__(self, input_shape: tuple[int, int, int], n_classes: int,
                 widths: tuple[int, ...] = (16, 32, 64, 96), dropout: float = 0.3):
        super().__init__()
        check_poolable("spectrogram_cnn", input_shape, len(widths))
        stages, previous = [], input_shape[0]
        for width in widths:
            stages.append(_conv_block(previous, width))
            previous = width
        self.features = nn.Sequential(*stages)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(previous, n_classes))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(features).mean(dim=(2, 3)))
