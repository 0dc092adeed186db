"""A two-class :class:`~earmark.models.tcn.CausalTCN` one call at a time: ``stride`` new
frames in, the wake word's probability out, the state passed in and out explicitly.

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
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from earmark.models.tcn import CausalTCN


class TCNStream(nn.Module):
    """``(frames (1, stride, bands), *states)`` -> ``(probability (1, 1), *next states)``
    for a two-class model: the probability of class ``target``, a sigmoid of the two
    logits' difference (what the softmax gives).

    Written with dense operations only (fully connected layers, elementwise multiply,
    mean, strided slices, concatenation), time-major like its states, so the
    converted graph needs no transposes and only the operators ESPHome's
    ``micro_wake_word`` registers: each convolution here computes one column, so
    the stem is a fully connected layer over its window of frames, a dilated
    depthwise convolution a strided slice of its taps weighed and averaged, a
    pointwise one a fully connected layer. Batch norm is folded in first.
    """

    def __init__(self, model: CausalTCN, target: int):
        super().__init__()
        if model.head.out_features != 2:
            raise ValueError("a stream step answers one probability: the model must have "
                             "two classes")
        model = folded(model)
        self.stem_kernel, self.stride = model.stem_kernel, model.stride
        self.bands = model.stem[0].in_channels
        self.channels = model.stem[0].out_channels
        self.head_columns = model.head_columns
        stem = model.stem[0]
        self.register_buffer("stem_weight", stem.weight.detach().permute(0, 2, 1)
                             .reshape(self.channels, -1).contiguous())
        self.register_buffer("stem_bias", stem.bias.detach().clone())
        self.dilations = [block.depthwise[0].dilation[0] for block in model.blocks]
        self.histories = [block.history for block in model.blocks]
        for index, block in enumerate(model.blocks):
            depthwise, pointwise = block.depthwise[0], block.pointwise[0]
            taps = depthwise.weight.shape[-1]
            # A mean over the taps stands for their sum: the weights carry the count.
            self.register_buffer(f"taps_{index}", (depthwise.weight.detach()[:, 0].T * taps)
                                 .contiguous())
            self.register_buffer(f"taps_bias_{index}", depthwise.bias.detach().clone())
            self.register_buffer(f"mix_{index}", pointwise.weight.detach()[:, :, 0].clone())
            self.register_buffer(f"mix_bias_{index}", pointwise.bias.detach().clone())
        self._head(model.head, int(target))

    def _head(self, head: nn.Linear, target: int) -> None:
        """The head over time-major columns, as one logit: target's minus the other's."""
        other = 1 - target
        weight = head.weight.detach().reshape(2, self.channels, self.head_columns)
        weight = weight.permute(0, 2, 1).reshape(2, -1)
        self.register_buffer("head_weight", (weight[target] - weight[other])[None].contiguous())
        bias = head.bias.detach()
        self.register_buffer("head_bias", (bias[target] - bias[other])[None].clone())

    def state_shapes(self) -> list[tuple[int, int, int]]:
        """The states' shapes, in the order the step takes and returns them."""
        return ([(1, self.stem_kernel - self.stride, self.bands)]
                + [(1, history, self.channels) for history in self.histories]
                + [(1, self.head_columns - 1, self.channels)])

    def zero_states(self) -> list[torch.Tensor]:
        return [torch.zeros(shape) for shape in self.state_shapes()]

    def forward(self, frames: torch.Tensor, *states: torch.Tensor):
        window = torch.cat([states[0], frames], dim=1)                 # (1, stem_kernel, bands)
        next_states = [_newest(window, states[0])]
        column = torch.relu(F.linear(window.reshape(1, -1), self.stem_weight, self.stem_bias))
        for index, state in enumerate(states[1:-1]):
            window = torch.cat([state, column.reshape(1, 1, -1)], dim=1)  # (1, history + 1, C)
            next_states.append(_newest(window, state))
            taps = window[:, ::self.dilations[index]]                     # (1, kernel, C)
            mixed = (taps * getattr(self, f"taps_{index}")).mean(dim=1)
            depthwise = torch.relu(mixed + getattr(self, f"taps_bias_{index}"))
            column = torch.relu(F.linear(depthwise, getattr(self, f"mix_{index}"),
                                         getattr(self, f"mix_bias_{index}")) + column)
        window = torch.cat([states[-1], column.reshape(1, 1, -1)], dim=1)  # (1, head_columns, C)
        next_states.append(_newest(window, states[-1]))
        logit = F.linear(window.reshape(1, -1), self.head_weight, self.head_bias)
        return (torch.sigmoid(logit), *next_states)


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
