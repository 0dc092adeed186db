"""The speech embedding's graphs in a bundle (``features.kind = "embedding"``).

A bundle holds its front-end inside its graph; for the embedding that is
openWakeWord's two pretrained graphs (:mod:`earmark.frontend.speech_embedding`,
the mel with its fixed floor) joined by a few nodes of earmark's own:

    waveform (batch, samples) -> clip, 16-bit scale -> mel (batch, 1, frames, 32)
      -> x / 10 + 2 -> the windows of 76 frames every 8 (a Gather)
      -> embedding (batch * n, 96) -> frames (batch, 96, n)

``frames`` is what a stream computes incrementally (``stream/frames.onnx``:
a frame is 12,512 samples, one every 1,280); the model on top, exported
from torch, reads a window of them (``stream/window.onnx``); joined, they
are ``model.onnx``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from earmark.export.graph import at_opset, export_module
from earmark.frontend import speech_embedding as embedding

#: The opset the pretrained graphs are brought to (joined with the head at the later of
#: this and the head's).
OPSET = 18


class _WindowHead(torch.nn.Module):
    """A window of embedding columns ``(batch, 96, n)`` -> probabilities."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(frames.unsqueeze(1)), dim=-1)


def export_head(model: torch.nn.Module, columns: int, path: Path) -> None:
    """The model on a window of ``columns`` embedding columns, as ONNX (``frames`` ->
    ``probabilities``)."""
    example = torch.zeros(2, embedding.DIMENSIONS, columns)
    export_module(_WindowHead(model), example, path, "frames", "probabilities",
                  dynamic_length=False)


def features_graph(opset: int = OPSET) -> onnx.ModelProto:
    """``waveform`` (batch, samples) -> ``frames`` (batch, 96, n): the pretrained graphs
    and earmark's glue, one graph at ``opset``."""
    files = embedding.model_files()
    mel = _at_opset(onnx.compose.add_prefix(
        embedding.frame_local_mel_graph(files["mel"]), "mel/"), opset)
    net = _at_opset(onnx.compose.add_prefix(onnx.load(str(files["embedding"])), "embedding/"),
                    opset)
    nodes = [*_scale_nodes(mel.graph.input[0].name), *mel.graph.node,
             *_window_nodes(mel.graph.output[0].name, net.graph.input[0].name),
             *net.graph.node, *_column_nodes(net.graph.output[0].name)]
    graph = helper.make_graph(
        nodes, "earmark_speech_embedding",
        [helper.make_tensor_value_info("waveform", TensorProto.FLOAT, ["batch", "samples"])],
        [helper.make_tensor_value_info("frames", TensorProto.FLOAT,
                                       ["batch", embedding.DIMENSIONS, "columns"])],
        [*mel.graph.initializer, *net.graph.initializer, *_constants()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
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
              "c/frames": np.array(embedding.EMBEDDING_FRAMES, np.int64),
              "c/step": np.array(embedding.EMBEDDING_STEP, np.int64),
              "c/zero": np.array(0, np.int64), "c/one_i": np.array(1, np.int64),
              "c/window_shape": np.array([-1, embedding.EMBEDDING_FRAMES,
                                          embedding.MEL_BANDS, 1], np.int64),
              "c/batch_axis": np.array([0], np.int64),
              "c/column_tail": np.array([embedding.DIMENSIONS], np.int64)}
    return [numpy_helper.from_array(np.asarray(value), name) for name, value in values.items()]


def _scale_nodes(mel_input: str) -> list[onnx.NodeProto]:
    """Samples in [-1, 1] to the 16-bit scale the mel graph reads."""
    return [helper.make_node("Clip", ["waveform", "c/minus_one", "c/one"], ["g/clipped"]),
            helper.make_node("Mul", ["g/clipped", "c/pcm"], [mel_input])]


def _window_nodes(mel_output: str, embedding_input: str) -> list[onnx.NodeProto]:
    """(batch, 1, frames, 32) -> (batch * n, 76, 32, 1): every 8th run of 76 frames."""
    make = helper.make_node
    return [
        make("Div", [mel_output, "c/ten"], ["g/tenth"]),
        make("Add", ["g/tenth", "c/two"], ["g/scaled"]),
        make("Squeeze", ["g/scaled", "c/axis1"], ["g/mel"]),              # (B, F, 32)
        make("Shape", ["g/mel"], ["g/mel_shape"]),
        make("Gather", ["g/mel_shape", "c/one_i"], ["g/frame_count"], axis=0),
        make("Sub", ["g/frame_count", "c/frames"], ["g/spare"]),
        make("Div", ["g/spare", "c/step"], ["g/steps"]),
        make("Add", ["g/steps", "c/one_i"], ["g/columns"]),
        make("Range", ["c/zero", "g/columns", "c/one_i"], ["g/column_index"]),
        make("Mul", ["g/column_index", "c/step"], ["g/starts"]),
        make("Unsqueeze", ["g/starts", "c/axis1"], ["g/starts_2d"]),       # (n, 1)
        make("Range", ["c/zero", "c/frames", "c/one_i"], ["g/offsets"]),  # (76,)
        make("Add", ["g/starts_2d", "g/offsets"], ["g/frame_index"]),     # (n, 76)
        make("Gather", ["g/mel", "g/frame_index"], ["g/windows"], axis=1),  # (B, n, 76, 32)
        make("Reshape", ["g/windows", "c/window_shape"], [embedding_input]),
        make("Shape", ["waveform"], ["g/wave_shape"]),
        make("Slice", ["g/wave_shape", "c/batch_axis", "c/axis1"], ["g/batch"]),
        make("Unsqueeze", ["g/columns", "c/batch_axis"], ["g/columns_1d"]),
    ]


def _column_nodes(embedding_output: str) -> list[onnx.NodeProto]:
    """(batch * n, 1, 1, 96) -> (batch, 96, n)."""
    make = helper.make_node
    return [make("Concat", ["g/batch", "g/columns_1d", "c/column_tail"], ["g/column_shape"],
                 axis=0),
            make("Reshape", [embedding_output, "g/column_shape"], ["g/columns_last"]),
            make("Transpose", ["g/columns_last"], ["frames"], perm=[0, 2, 1])]
