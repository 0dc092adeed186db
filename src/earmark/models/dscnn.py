"""DS-CNN: the depthwise-separable keyword-spotting CNN of Hello Edge (Zhang et al. 2017).

With the defaults (64 channels, 4 blocks) on 49x10 MFCC it is the DS-CNN-S
size, about 24k parameters. ``residual=True`` adds skip connections, which
help deeper or wider variants train on little data.

``time_padding="valid"`` pads only along frequency: no output then depends
on zeros beyond the window's edges, so a stream can compute each layer's
new columns once and share them between overlapping windows
(:mod:`earmark.models.dscnn_stream`), at a small fraction of the cost of
running the whole window at every stride.

``time_pooling="flatten"`` keeps the order of the output columns: the
classifier weighs each column by its place in the window (averaged over
frequency only) instead of averaging them. A valid-padded network cannot
tell where in the window a sound lies from its zero padding, as a
"same"-padded one can; the flattened head gives that back (and streams
just as well: a window's scores are a weighted sum of its columns).
"""

from __future__ import annotations

import torch
from torch import nn

from earmark.errors import ConfigError
from earmark.models import register


class SeparableBlock(nn.Module):
    """Depthwise 3x3 then pointwise 1x1 convolution, each with BN + ReLU."""

    def __init__(self, channels: int, residual: bool, time_padding: int = 1,
                 time_dilation: int = 1):
        super().__init__()
        self.depthwise = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=(1, time_padding),
                      dilation=(1, time_dilation), groups=channels, bias=False),
            nn.BatchNorm2d(channels), nn.ReLU())
        self.pointwise = nn.Sequential(
            nn.Conv2d(channels, channels, 1, bias=False), nn.BatchNorm2d(channels))
        self.residual = residual
        self.crop = time_dilation * (1 - time_padding)   # columns lost on each side

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.pointwise(self.depthwise(x))
        if self.residual:
            out = out + (x[..., self.crop:x.shape[-1] - self.crop] if self.crop else x)
        return torch.relu(out)


@register("dscnn")
class DSCNN(nn.Module):
    def __init__(self, input_shape: tuple[int, int, int], n_classes: int,
                 channels: int = 64, blocks: int = 4, kernel: tuple[int, int] = (10, 4),
                 stride: tuple[int, int] = (2, 2), dropout: float = 0.2,
                 residual: bool = False, time_padding: str = "same",
                 time_pooling: str = "mean"):
        super().__init__()
        if time_padding not in ("same", "valid"):
            raise ConfigError(f"model.time_padding {time_padding!r} is not 'same' or 'valid'")
        if time_pooling not in ("mean", "flatten"):
            raise ConfigError(f"model.time_pooling {time_pooling!r} is not 'mean' or 'flatten'")
        self.time_padding, self.time_pooling = time_padding, time_pooling
        self.kernel_time, self.stride_time = kernel[0], stride[0]
        in_channels = input_shape[0]
        # kernel/stride are given as (time, frequency), as in the paper;
        # features arrive as (bands, frames), so swap them.
        kernel_fb = (kernel[1], kernel[0])
        stride_fb = (stride[1], stride[0])
        valid = time_padding == "valid"
        padding = (kernel_fb[0] // 2, 0 if valid else kernel_fb[1] // 2)
        self.normalize = nn.BatchNorm2d(in_channels)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, channels, kernel_fb, stride=stride_fb, padding=padding,
                      bias=False),
            nn.BatchNorm2d(channels), nn.ReLU(), nn.Dropout(dropout))
        self.blocks = nn.Sequential(*[SeparableBlock(channels, residual, 0 if valid else 1)
                                      for _ in range(blocks)])
        self.dropout = nn.Dropout(dropout)
        self.columns = self._output_columns(input_shape[2], blocks, padding[1])
        if self.columns < 1:
            raise ConfigError(f"{input_shape[2]} frames are too few for this DS-CNN (time "
                              f"kernel {kernel[0]}, stride {stride[0]}, {blocks} blocks, "
                              f"{time_padding} padding); use a longer window or fewer blocks")
        pooled = channels * (self.columns if time_pooling == "flatten" else 1)
        self.classifier = nn.Linear(pooled, n_classes)

    def _output_columns(self, frames: int, blocks: int, stem_padding: int) -> int:
        """Time columns after the stem and the blocks (valid blocks lose one per side)."""
        stem = (frames + 2 * stem_padding - self.kernel_time) // self.stride_time + 1
        return stem - (2 * blocks if self.time_padding == "valid" else 0)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(self.normalize(features)))
        if self.time_pooling == "flatten":
            x = x.mean(dim=2).flatten(1)          # (batch, channels * columns), column order kept
        else:
            x = x.mean(dim=(2, 3))
        return self.classifier(self.dropout(x))
