"""A causal temporal CNN for wake words on the micro front-end, built to stream as
microWakeWord's models do.

The features' 40 channels are the input channels of 1-D convolutions over
time; nothing looks ahead, nothing is padded:

- the stem (kernel ``stem_kernel`` frames, stride ``stride``) gives one
  column every ``stride`` frames, the frames a device feeds per call
  (microWakeWord's stride is 3: one result every 30 ms);
- each block is a depthwise temporal convolution (``kernel`` taps, dilation
  1, 2, 4 ...) and a pointwise one, with a residual connection;
- the head weighs the last ``head_columns`` columns by their place (all the
  window's columns by default) and gives the class scores.

A window's scores depend only on its last frames (:attr:`CausalTCN.receptive_frames`),
so the stream step (:mod:`earmark.models.tcn_stream`) keeps, per layer, the
few last columns it reads, and gives exactly the window model's result at
every stride. Batch norm folds into the convolutions when exported.
"""

from __future__ import annotations

import torch
from torch import nn

from earmark.errors import ConfigError
from earmark.models import register


class TemporalBlock(nn.Module):
    """Depthwise causal convolution over time, pointwise mixing, residual; (B, C, T) ->
    (B, C, T - (kernel - 1) * dilation)."""

    def __init__(self, channels: int, kernel: int, dilation: int):
        super().__init__()
        self.depthwise = nn.Sequential(
            nn.Conv1d(channels, channels, kernel, dilation=dilation, groups=channels,
                      bias=False), nn.BatchNorm1d(channels), nn.ReLU())
        self.pointwise = nn.Sequential(nn.Conv1d(channels, channels, 1, bias=False),
                                       nn.BatchNorm1d(channels))
        self.history = (kernel - 1) * dilation      #: input columns before the newest

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.pointwise(self.depthwise(x)) + x[..., self.history:])


@register("tcn")
class CausalTCN(nn.Module):
    def __init__(self, input_shape: tuple[int, int, int], n_classes: int,
                 channels: int = 48, stem_kernel: int = 5, stride: int = 3, kernel: int = 3,
                 dilations: tuple[int, ...] = (1, 2, 4, 8), head_columns: int = 0,
                 dropout: float = 0.1):
        super().__init__()
        in_channels, bands, frames = input_shape
        if in_channels != 1:
            raise ConfigError("[model] tcn takes one feature channel (no deltas)")
        if stem_kernel < stride or stride < 1 or kernel < 2:
            raise ConfigError("[model] tcn needs stem_kernel >= stride >= 1 and kernel >= 2")
        self.stem_kernel, self.stride = stem_kernel, stride
        self.stem = nn.Sequential(nn.Conv1d(bands, channels, stem_kernel, stride=stride,
                                            bias=False),
                                  nn.BatchNorm1d(channels), nn.ReLU())
        self.blocks = nn.ModuleList(TemporalBlock(channels, kernel, int(d)) for d in dilations)
        columns = 1 + (frames - stem_kernel) // stride - sum(b.history for b in self.blocks)
        if columns < max(1, head_columns):
            raise ConfigError(f"[model] tcn: a window of {frames} frames is shorter than its "
                              f"receptive field; use a longer data.clip_seconds, fewer "
                              f"dilations or fewer head_columns")
        self.head_columns = head_columns or columns
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(channels * self.head_columns, n_classes)

    @property
    def receptive_frames(self) -> int:
        """The frames one result depends on: the last ones of a window."""
        columns = self.head_columns + sum(b.history for b in self.blocks)
        return self.stem_kernel + self.stride * (columns - 1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = features[:, 0, :, -self.receptive_frames:]          # (B, bands, frames)
        if x.shape[-1] < self.receptive_frames:
            raise ValueError(f"the tcn needs {self.receptive_frames} frames, got "
                             f"{x.shape[-1]}")
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        return self.head(self.dropout(x[..., -self.head_columns:].flatten(1)))
