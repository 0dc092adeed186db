"""The speech embedding's graphs in a bundle (``features.kind = "embedding"``).

A bundle holds its front-end inside its graph; for the embedding that is
openWakeWord's two pretrained graphs (:mod:`earmark.frontend.speech_embedding`,
the mel with its fixed floor) joined by a few nodes of earmark's own:

    waveform (batch, samples) -> clip, 16-bit scale -> mel (batch, 1, frames, 32)
      -> x / 10 + 2 -> (batch, frames, 32, 1)
      -> the embedding slid along the frames -> frames (batch, 96, n)

With ``features.embedding_blocks`` below 5 the network is its first blocks
and ``frames`` their columns (:class:`~earmark.frontend.speech_embedding.Depth`).

``frames`` is what a stream computes incrementally (a frame is 12,512
samples, one every 1,280): ``stream/frames.onnx`` from whole frames,
``stream/frames_step.onnx`` a column at a time with the network's states;
the model on top, exported from torch, reads a window of them
(``stream/window.onnx``); joined, they are ``model.onnx``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from earmark.export.graph import at_opset, export_module
from earmark.frontend import sliding_embedding as sliding
from earmark.frontend import speech_embedding as embedding
from earmark.frontend.embedding_mel import mel_graph

#: The opset the pretrained graphs are brought to (joined with the head at the later of
#: this and the head's).
OPSET = 18
#: Samples a stepped call needs before its new columns' 1,280 each: the rest of the first
#: new mel frame's 512-sample window.
STEP_CONTEXT_SAMPLES = embedding.MEL_WINDOW - embedding.MEL_HOP


class _WindowHead(torch.nn.Module):
    """A window of embedding columns ``(batch, dimensions, n)`` -> probabilities."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(frames.unsqueeze(1)), dim=-1)


def export_head(model: torch.nn.Module, columns: int, path: Path,
                dimensions: int = embedding.DIMENSIONS) -> None:
    """The model on a window of ``columns`` embedding columns of ``dimensions`` numbers
    (the speech embedding's, or BirdNET's), as ONNX (``frames`` -> ``probabilities``)."""
    example = torch.zeros(2, dimensions, columns)
    export_module(_WindowHead(model), example, path, "frames", "probabilities",
                  dynamic_length=False)


def features_graph(opset: int = OPSET, blocks: int = embedding.BLOCKS,
                   int8: bool = False) -> onnx.ModelProto:
    """``waveform`` (batch, samples) -> ``frames`` (batch, 96, n): the pretrained graphs
    and earmark's glue, one graph at ``opset``; the network (its first ``blocks``, with
    ``int8`` its convolutions in int8) slides along the clip, each layer computed once for
    every column (:mod:`earmark.frontend.sliding_embedding`)."""
    return _joined(sliding.sliding_graph(blocks, int8), {}, opset)


def frames_step_graph(opset: int = OPSET, blocks: int = embedding.BLOCKS, int8: bool = False
                      ) -> tuple[onnx.ModelProto, dict[str, list[int]]]:
    """The stream's embedding a column at a time: ``samples`` (1, samples) and the
    states -> ``frames`` (1, 96, n) and the next states (``<state>_next``).

    The first call takes whole frames (12,512 samples, then 1,280 a column; with fewer
    ``blocks``, their window and hop samples) with empty states (time length 0); every
    later call the samples of its new columns and the :data:`STEP_CONTEXT_SAMPLES` before
    them. Returns the graph and the states' shapes ``[1, channels, positions, bands]``
    after the first call. With ``int8``, :func:`features_graph`'s int8 network stepped.
    """
    network, states = sliding.stepped_graph(blocks, int8)
    graph = _joined(network, states, opset)
    shapes = {name: [1, channels, sliding.STATE_POSITIONS, bands]
              for name, (channels, bands) in states.items()}
    return graph, shapes


def _joined(network: onnx.ModelProto, states: dict[str, tuple[int, int]],
            opset: int) -> onnx.ModelProto:
    """The mel graph, earmark's glue and ``network`` (a rewrite of the embedding), one graph;
    the network's state inputs and outputs (``states``) become the graph's, of the type the
    network gives them (uint8 where int8 carries them)."""
    mel = _at_opset(onnx.compose.add_prefix(mel_graph(), "mel/"), opset)
    net = _at_opset(onnx.compose.add_prefix(network, "embedding/"), opset)
    waveform = "samples" if states else "waveform"
    nodes = [*(helper.make_node("Identity", [name], [f"embedding/{name}"]) for name in states),
             *_scale_nodes(waveform, mel.graph.input[0].name), *mel.graph.node,
             *_glue_nodes(mel.graph.output[0].name, net.graph.input[0].name),
             *net.graph.node,
             helper.make_node("Identity", [net.graph.output[0].name], ["frames"])]
    nodes += [helper.make_node("Identity", [f"embedding/{name}_next"], [f"{name}_next"])
              for name in states]
    batch = 1 if states else "batch"
    dimensions = net.graph.output[0].type.tensor_type.shape.dim[1].dim_value
    inputs = [helper.make_tensor_value_info(waveform, TensorProto.FLOAT, [batch, "samples"])]
    outputs = [helper.make_tensor_value_info("frames", TensorProto.FLOAT,
                                             [batch, dimensions, "columns"])]
    types = {value.name: value.type.tensor_type.elem_type for value in network.graph.input}
    for name, (channels, bands) in states.items():
        inputs.append(helper.make_tensor_value_info(name, types[name],
                                                    [1, channels, "positions", bands]))
        outputs.append(helper.make_tensor_value_info(
            f"{name}_next", types[name], [1, channels, sliding.STATE_POSITIONS, bands]))
    graph = helper.make_graph(nodes, "earmark_speech_embedding", inputs, outputs,
                              [*mel.graph.initializer, *net.graph.initializer, *_constants()])
    others = [o for o in net.opset_import if o.domain not in ("", "ai.onnx")]
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset), *others],
                              producer_name="earmark")
    model.ir_version = min(model.ir_version, 10)
    onnx.checker.check_model(model)
    return model


def _at_opset(model: onnx.ModelProto, opset: int) -> onnx.ModelProto:
    """The graph at ``opset``, without the operator sets it declares and never uses (the
    embedding declares ai.onnx.ml)."""
    model = at_opset(model, opset)
    used = {node.domain for node in model.graph.node}
    kept = [o for o in model.opset_import if o.domain in ("", "ai.onnx") or o.domain in used]
    del model.opset_import[:]
    model.opset_import.extend(kept)
    return model


def _constants() -> list[onnx.TensorProto]:
    values = {"c/one": np.float32(1.0), "c/minus_one": np.float32(-1.0),
              "c/pcm": np.float32(32767.0), "c/ten": np.float32(10.0),
              "c/two": np.float32(2.0), "c/axis1": np.array([1], np.int64),
              "c/axis3": np.array([3], np.int64)}
    return [numpy_helper.from_array(np.asarray(value), name) for name, value in values.items()]


def _scale_nodes(waveform: str, mel_input: str) -> list[onnx.NodeProto]:
    """Samples in [-1, 1] to the 16-bit scale the mel graph reads."""
    return [helper.make_node("Clip", [waveform, "c/minus_one", "c/one"], ["g/clipped"]),
            helper.make_node("Mul", ["g/clipped", "c/pcm"], [mel_input])]


def _glue_nodes(mel_output: str, embedding_input: str) -> list[onnx.NodeProto]:
    """(batch, 1, frames, 32) -> (batch, frames, 32, 1), scaled as the embedding expects."""
    make = helper.make_node
    return [make("Div", [mel_output, "c/ten"], ["g/tenth"]),
            make("Add", ["g/tenth", "c/two"], ["g/scaled"]),
            make("Squeeze", ["g/scaled", "c/axis1"], ["g/mel"]),              # (B, F, 32)
            make("Unsqueeze", ["g/mel", "c/axis3"], [embedding_input])]       # (B, F, 32, 1)
