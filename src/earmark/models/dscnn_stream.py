"""A valid-padded DS-CNN run one frame at a time, for streams.

In a DS-CNN with ``time_padding="valid"`` every column of every layer depends
only on the frames under it, never on where the window starts. Overlapping
windows therefore share those columns, and a stream can compute each one
once, as its last frame arrives:

- the stem (time kernel ``K``, time stride ``D``) is evaluated at *every*
  frame, on the last ``K`` frames; a window uses every ``D``-th column, the
  ones of its own phase;
- each block's depthwise 3-tap time kernel then reads its input at columns
  ``p - 2D, p - D, p`` (dilation ``D``), kept in a history of ``2D`` columns,
  and writes the column centred ``D`` earlier;
- the block stack's output is averaged over frequency per column; a window's
  pooled vector is the mean of its columns, and the classifier (linear +
  softmax) is applied to that mean.

:func:`stream_layout` says which step outputs make up the window that
starts at a given frame; the scores are exactly the whole-window model's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from earmark.errors import ConfigError
from earmark.models.dscnn import DSCNN


def supports_streaming(model: nn.Module, frontend) -> bool:
    """Whether ``model`` on ``frontend``'s features can be stepped one frame at a time."""
    frame_local = (frontend.kind in ("logmel", "mfcc", "spectrogram")
                   and not frontend.config.center and frontend.config.deltas == 0
                   and frontend.config.top_db <= 0)
    return isinstance(model, DSCNN) and model.time_padding == "valid" and frame_local


class DSCNNStep(nn.Module):
    """Frames in (the ``K - 1`` before the new ones, then ``M`` new ones) and the blocks'
    histories ``(blocks, C, F', 2D)``; the ``M`` new frequency-averaged columns
    ``(1, C, M)`` and the next histories out."""

    def __init__(self, model: DSCNN, frontend):
        super().__init__()
        if not supports_streaming(model, frontend):
            raise ConfigError("only a DS-CNN with model.time_padding = \"valid\" on a "
                              "frame-local front-end (no deltas, top_db = 0) can stream")
        self.frontend = frontend
        self.model = model
        self.dilation = model.stride_time

    def forward(self, frames: torch.Tensor, histories: torch.Tensor):
        x = self._stem_columns(self.frontend.finish(frames))   # (1, C, F', M)
        kept = histories.shape[-1]
        new_histories = []
        for index, block in enumerate(self.model.blocks):
            window = torch.cat([histories[index:index + 1], x], dim=-1)   # (1, C, F', 2D + M)
            x = self._block_columns(block, window)
            new_histories.append(window[..., -kept:])
        return x.mean(dim=2), torch.cat(new_histories, dim=0)

    def _stem_columns(self, features: torch.Tensor) -> torch.Tensor:
        """The stem at every frame (time stride 1): each window uses its own phase."""
        conv, norm, relu = self.model.stem[:3]
        x = F.conv2d(self.model.normalize(features), conv.weight,
                     stride=(conv.stride[0], 1), padding=conv.padding)
        return relu(norm(x))

    def _block_columns(self, block, window: torch.Tensor) -> torch.Tensor:
        conv, norm, relu = block.depthwise
        out = F.conv2d(window, conv.weight, padding=(1, 0), dilation=(1, self.dilation),
                       groups=conv.groups)
        out = block.pointwise(relu(norm(out)))
        if block.residual:
            out = out + window[..., self.dilation:window.shape[-1] - self.dilation]
        return torch.relu(out)


def history_shape(model: DSCNN, frontend) -> tuple[int, ...]:
    """Shape of the blocks' histories ``(blocks, C, F', 2D)`` (zeros when a stream starts)."""
    training = model.training
    model.eval()
    with torch.no_grad():
        frames = frontend.frames(torch.zeros(1, frontend.min_samples))
        frames = torch.zeros(1, frames.shape[1], model.kernel_time)
        column = model.stem(model.normalize(frontend.finish(frames)))
    model.train(training)
    return (len(model.blocks), column.shape[1], column.shape[2], 2 * model.stride_time)


def stream_layout(model: DSCNN, window_frames: int) -> dict:
    """Which step outputs form the window of ``window_frames`` frames starting at frame ``s``.

    Step ``n`` (run when frame ``n`` arrives) outputs the column whose stem
    input ends at frame ``n - delay``. The window's columns are the steps
    ``s + first + stride * k`` for ``k < columns``.
    """
    kernel, stride, blocks = model.kernel_time, model.stride_time, len(model.blocks)
    stem_columns = (window_frames - kernel) // stride + 1
    columns = stem_columns - 2 * blocks
    if columns < 1:
        raise ConfigError(f"a window of {window_frames} frames is too short for this DS-CNN "
                          f"(time kernel {kernel}, {blocks} valid blocks)")
    delay = stride * blocks
    return {"step_frames": kernel, "stride": stride, "columns": columns,
            "first": kernel - 1 + stride * blocks + delay}
