"""A valid-padded DS-CNN run on a stream: new frames in, one result per new frame out.

In a DS-CNN with ``time_padding="valid"`` every column of every layer depends
only on the frames under it, never on where the window starts. Overlapping
windows therefore share those columns, and a stream can compute each one
once, as its last frame arrives:

- the front-end computes the levels of the new frames (cut by the caller,
  which keeps the samples anyway: framing in the graph cost a fifth of it);
- the stem (time kernel ``K``, time stride ``D``) is evaluated at *every*
  frame, on the last ``K`` frames (the ``K - 1`` before the new ones are
  state); a window uses every ``D``-th column, the ones of its own phase;
- each block's depthwise 3-tap time kernel then reads its input at columns
  ``p - 2D, p - D, p`` (dilation ``D``), kept in a history of ``2D`` columns,
  and writes the column centred ``D`` earlier;
- the block stack's output is averaged over frequency per column, and the
  classifier weighs the window's ``T`` columns (equally for mean pooling,
  by position for ``time_pooling="flatten"``): a convolution over the
  column sequence with dilation ``D``, whose last ``D (T - 1)`` columns are
  state too.

So one call of :class:`DSCNNStream` on a block's new frames gives, for every
new frame, the probabilities of the window whose last column it completes
(:func:`stream_layout` says which window that is). The scores are exactly
the whole-window model's; the work per frame is one column per layer.
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
                   and frontend.config.top_db <= 0 and not frontend.config.mean_normalize)
    return isinstance(model, DSCNN) and model.time_padding == "valid" and frame_local


class DSCNNStream(nn.Module):
    """``(frames, recent, histories, columns)`` -> ``(probabilities, *next states)``.

    - ``frames`` (1, M, n_fft): the ``M`` new frames, each ``n_fft`` samples,
      ``hop`` apart;
    - ``recent`` (1, rows, K - 1): the frames before them (for the stem);
    - ``histories`` (blocks, C, 2D, F'): each block's last input columns;
    - ``columns`` (1, P, D (T - 1)): the last output columns, averaged over
      frequency (``P = C``) and, for mean pooling, already projected to the
      classes (``P = classes``).

    ``probabilities`` is (1, classes, M): one result per new frame. Every
    state is zeros when a stream starts; results are valid once a whole
    window has been seen (:func:`stream_layout`).
    """

    def __init__(self, model: DSCNN, frontend):
        super().__init__()
        if not supports_streaming(model, frontend):
            raise ConfigError("only a DS-CNN with model.time_padding = \"valid\" on a "
                              "frame-local front-end (no deltas, top_db = 0, no "
                              "mean_normalize) can stream")
        self.frontend = frontend
        self.model = model
        self.dilation = model.stride_time
        # Time-major inside the step, (1, C, time, F'): the histories then join
        # and split along whole rows of bands, a few large copies per block
        # instead of one tiny copy per band (that was a third of each call).
        self.register_buffer("stem_weight", _time_major(model.stem[0].weight), persistent=False)
        for index, block in enumerate(model.blocks):
            self.register_buffer(f"depthwise_{index}", _time_major(block.depthwise[0].weight),
                                 persistent=False)
        self._head(model)

    def _head(self, model: DSCNN) -> None:
        """Mean pooling: project each column to class logits once and sum the window's
        (the state holds projected columns); a positional head weighs each of the
        window's columns by its place (the state holds the columns themselves)."""
        weight, columns = model.classifier.weight.detach(), model.columns
        self.projected = projects_columns(model)
        if self.projected:
            self.register_buffer("projection", (weight / columns)[:, :, None].contiguous(),
                                 persistent=False)
            head = torch.ones(weight.shape[0], 1, columns)
        else:
            head = weight.reshape(weight.shape[0], -1, columns)
        self.register_buffer("head_weight", head.contiguous(), persistent=False)
        self.register_buffer("head_bias", model.classifier.bias.detach().clone(),
                             persistent=False)

    def forward(self, frames: torch.Tensor, recent: torch.Tensor, histories: torch.Tensor,
                columns: torch.Tensor):
        levels = torch.cat([recent, self.frontend.levels_of_frames(frames)], dim=-1)
        x = self._stem_columns(self.frontend.finish(levels))      # (1, C, M, F')
        next_histories = []
        for index, block in enumerate(self.model.blocks):
            window = torch.cat([histories[index:index + 1], x], dim=2)
            x = self._block_columns(index, block, window)
            next_histories.append(_last(window, histories.shape[2], dim=2))
        pooled = x.mean(dim=3)                                       # (1, C, M)
        if self.projected:
            pooled = F.conv1d(pooled, self.projection)               # (1, classes, M)
        sequence = torch.cat([columns, pooled], dim=-1)              # (1, ., D (T - 1) + M)
        logits = F.conv1d(sequence, self.head_weight, self.head_bias, dilation=self.dilation,
                          groups=sequence.shape[1] if self.projected else 1)
        return (torch.softmax(logits, dim=1), _last(levels, recent.shape[-1], dim=-1),
                torch.cat(next_histories, dim=0), _last(sequence, columns.shape[-1], dim=-1))

    def _stem_columns(self, features: torch.Tensor) -> torch.Tensor:
        """The stem at every frame (time stride 1): each window uses its own phase."""
        conv, norm, relu = self.model.stem[:3]
        x = F.conv2d(self.model.normalize(features).transpose(2, 3), self.stem_weight,
                     stride=(1, conv.stride[0]), padding=(0, conv.padding[0]))
        return relu(norm(x))

    def _block_columns(self, index: int, block, window: torch.Tensor) -> torch.Tensor:
        conv, norm, relu = block.depthwise
        out = F.conv2d(window, getattr(self, f"depthwise_{index}"), padding=(0, 1),
                       dilation=(self.dilation, 1), groups=conv.groups)
        out = block.pointwise(relu(norm(out)))
        if block.residual:
            out = out + window[:, :, self.dilation:window.shape[2] - self.dilation]
        return torch.relu(out)


def _last(x: torch.Tensor, count: int, dim: int) -> torch.Tensor:
    """The last ``count`` entries along ``dim``, a static slice (``count`` is a state's
    fixed size): counting from the end needs no shape arithmetic in the graph."""
    if count == 0:
        return x.narrow(dim, 0, 0)
    index = [slice(None)] * x.dim()
    index[dim] = slice(-count, None)
    return x[tuple(index)]


def projects_columns(model: DSCNN) -> bool:
    """Whether the step keeps each output column already projected to the classes:
    with mean pooling the window's logits are the sum of its projected columns."""
    return model.time_pooling != "flatten"


def _time_major(weight: torch.Tensor) -> torch.Tensor:
    """A (frequency, time) convolution kernel as (time, frequency)."""
    return weight.detach().transpose(2, 3).contiguous()


def state_shapes(model: DSCNN, frontend) -> dict[str, list[int]]:
    """Shapes of :class:`DSCNNStream`'s states (all zeros when a stream starts)."""
    training = model.training
    model.eval()
    with torch.no_grad():
        rows = frontend.frames(torch.zeros(1, frontend.min_samples)).shape[1]
        frames = torch.zeros(1, rows, model.kernel_time)
        column = model.stem(model.normalize(frontend.finish(frames)))
    model.train(training)
    channels, bands, dilation = column.shape[1], column.shape[2], model.stride_time
    pooled = model.classifier.out_features if projects_columns(model) else channels
    return {"recent": [1, rows, model.kernel_time - 1],
            "histories": [len(model.blocks), channels, 2 * dilation, bands],
            "columns": [1, pooled, dilation * (model.columns - 1)]}


def stream_layout(model: DSCNN, window_frames: int) -> dict:
    """Which window each stream result belongs to.

    The result of frame ``n`` (counting from the stream's first frame) is the
    window whose last column that frame completes: the window starting at
    frame ``n - last``. Its columns are those of frames ``s + first + stride k``
    for ``k < columns``, the stem input of each ending ``stride * blocks``
    frames before it (the blocks' delay).
    """
    kernel, stride, blocks = model.kernel_time, model.stride_time, len(model.blocks)
    columns = (window_frames - kernel) // stride + 1 - 2 * blocks
    if columns < 1 or columns != model.columns:
        raise ConfigError(f"a window of {window_frames} frames does not match this DS-CNN "
                          f"(time kernel {kernel}, {blocks} valid blocks, {model.columns} "
                          "columns)")
    first = kernel - 1 + 2 * stride * blocks
    return {"step_frames": kernel, "stride": stride, "columns": columns, "first": first,
            "last": first + stride * (columns - 1)}
