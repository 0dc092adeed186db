"""A :class:`~earmark.models.tcn.CausalTCN` one call at a time: ``stride`` new frames in,
one score out, the state passed in and out explicitly.

Every state is the last few input columns of one layer, time-major
``(1, columns, channels)`` as microWakeWord keeps them:

- ``stem``: the ``stem_kernel - stride`` frames before the new ones;
- one per block: its ``(kernel - 1) * dilation`` last input columns;
- ``head``: the ``head_columns - 1`` last output columns.

Each new state is the old one joined with the new column, minus its oldest
columns: data moved, never computed, so an int8 graph can keep a state in
the same quantization it reads it in (:mod:`earmark.export.tflite_variables`
turns these inputs and outputs into the graph's own variables). From zero
states, the score equals the window model's once ``receptive_frames`` have
been fed. Batch norm is folded into the convolutions first (:func:`folded`).
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from earmark.models.tcn import CausalTCN


class TCNStream(nn.Module):
    """``(frames (1, stride, bands), *states)`` -> ``(probability (1, 1), *next states)``;
    the probability is the softmax score of class ``target``."""

    def __init__(self, model: CausalTCN, target: int):
        super().__init__()
        self.model, self.target = folded(model), int(target)

    def state_shapes(self) -> list[tuple[int, int, int]]:
        """The states' shapes, in the order the step takes and returns them."""
        model = self.model
        channels = model.head.in_features // model.head_columns
        bands = model.stem[0].in_channels
        return ([(1, model.stem_kernel - model.stride, bands)]
                + [(1, block.history, channels) for block in model.blocks]
                + [(1, model.head_columns - 1, channels)])

    def zero_states(self) -> list[torch.Tensor]:
        return [torch.zeros(shape) for shape in self.state_shapes()]

    def forward(self, frames: torch.Tensor, *states: torch.Tensor):
        model = self.model
        window = torch.cat([states[0], frames], dim=1)                 # (1, stem_kernel, bands)
        next_states = [_newest(window, states[0])]
        column = model.stem(window.transpose(1, 2))                      # (1, C, 1)
        for block, state in zip(model.blocks, states[1:-1]):
            window = torch.cat([state, column.transpose(1, 2)], dim=1)  # (1, history + 1, C)
            next_states.append(_newest(window, state))
            column = block(window.transpose(1, 2))
        window = torch.cat([states[-1], column.transpose(1, 2)], dim=1)  # (1, head_columns, C)
        next_states.append(_newest(window, states[-1]))
        logits = model.head(window.transpose(1, 2).flatten(1))
        probability = torch.softmax(logits, dim=1)[:, self.target:self.target + 1]
        return (probability, *next_states)


def _newest(window: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
    """The window's last ``state``-many columns: the next call's state."""
    return window[:, window.shape[1] - state.shape[1]:]


def folded(model: CausalTCN) -> CausalTCN:
    """A copy of ``model`` (in eval mode) with every batch norm folded into the convolution
    before it: one integer operation each instead of three (a convolution, a multiply
    and an add, each rounded to int8)."""
    model = copy.deepcopy(model).eval()
    pairs = [model.stem] + [part for block in model.blocks
                            for part in (block.depthwise, block.pointwise)]
    for sequence in pairs:
        sequence[0] = fuse_conv_bn_eval(sequence[0], sequence[1])
        sequence[1] = nn.Identity()
    return model
