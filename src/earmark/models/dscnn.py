"""DS-CNN: the depthwise-separable keyword-spotting CNN of Hello Edge (Zhang et al. 2017).

With the defaults (64 channels, 4 blocks) on 49x10 MFCC it is the DS-CNN-S
size, about 24k parameters. ``residual=True`` adds skip connections, which
help deeper or wider variants train on little data.
"""

from __future__ import annotations

import torch
from torch import nn

from earmark.models import register


class SeparableBlock(nn.Module):
    """Depthwise 3x3 then pointwise 1x1 convolution, each with BN + ReLU."""

    def __init__(self, channels: int, residual: bool):
        super().__init__()
        self.depthwise = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False),
            nn.BatchNorm2d(channels), nn.ReLU())
        self.pointwise = nn.Sequential(
            nn.Conv2d(channels, channels, 1, bias=False), nn.BatchNorm2d(channels))
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.pointwise(self.depthwise(x))
        return torch.relu(out + x if self.residual else out)


@register("dscnn")
class DSCNN(nn.Module):
    def __init__(self, input_shape: tuple[int, int, int], n_classes: int,
                 channels: int = 64, blocks: int = 4, kernel: tuple[int, int] = (10, 4),
                 stride: tuple[int, int] = (2, 2), dropout: float = 0.2,
                 residual: bool = False):
        super().__init__()
        in_channels = input_shape[0]
        # kernel/stride are given as (time, frequency), as in the paper;
        # features arrive as (bands, frames), so swap them.
        kernel_fb = (kernel[1], kernel[0])
        stride_fb = (stride[1], stride[0])
        padding = (kernel_fb[0] // 2, kernel_fb[1] // 2)
        self.normalize = nn.BatchNorm2d(in_channels)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, channels, kernel_fb, stride=stride_fb, padding=padding,
                      bias=False),
            nn.BatchNorm2d(channels), nn.ReLU(), nn.Dropout(dropout))
        self.blocks = nn.Sequential(*[SeparableBlock(channels, residual) for _ in range(blocks)])
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(channels, n_classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(self.normalize(features)))
        x = x.mean(dim=(2, 3))
        return self.classifier(self.dropout(x))
