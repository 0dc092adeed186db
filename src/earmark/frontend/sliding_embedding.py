"""The speech embedding slid along a clip: every column in one pass, or one column a step.

The pretrained embedding network (``embedding_model.onnx``) reads 76 mel
frames and gives one column of 96 numbers. Along time it is a plain
convolutional stack: its time convolutions (kernel 3) are unpadded and its
three time poolings halve, so its stride along time is 8 frames, the step
between columns. Run on ``F`` frames instead of 76 it gives the column of
every 76-frame window 8 frames apart, the same numbers as cutting the
windows out and running each, while each layer's output is computed once
for all the windows that share it: about 5.6 million multiply-adds a column
instead of 42 million.

- :func:`sliding_graph`: ``(batch, frames, 32, 1)`` -> ``(batch, 96, columns)``,
  every column of the clip in one call (``model.onnx``, and :class:`SpeechEmbedding`,
  which runs the mel and it in onnxruntime for training);
- :func:`stepped_graph`: the same with each time convolution's last two
  input positions as explicit states, so a stream gives it only the 8 new mel
  frames of each new column. Its first call takes the first 76 frames with
  empty states (time length 0) and every later call 8 frames a column; the
  columns are those of :func:`sliding_graph` over the whole stream.

Both are rewrites of the shipped graph (its weights untouched), checked to
be the network earmark ships; numpy and onnx only.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import numpy as np

from earmark.audio import check_finite
from earmark.errors import ConfigError
from earmark.frontend import speech_embedding as embedding
from earmark.frontend.embedding_int8 import quantize_network
from earmark.frontend.embedding_mel import macs_per_frame, mel_graph

if TYPE_CHECKING:
    import onnx

#: Mel frames per onnxruntime call of :class:`SpeechEmbedding` (bounds its memory).
EMBED_CHUNK_FRAMES = 8192
#: Input positions a time convolution of kernel 3 keeps between steps.
STATE_POSITIONS = 2
#: What the network ends with, per column.
OUTPUT_SHAPE = [0, embedding.DIMENSIONS, -1]


def sliding_graph(blocks: int = embedding.BLOCKS, int8: bool = False) -> onnx.ModelProto:
    """The embedding network over any number of mel frames: ``mel`` ``(batch, frames, 32,
    1)`` -> ``columns`` ``(batch, 96, n)``, one column per 76-frame window 8 frames apart;
    with fewer ``blocks``, the columns of its first blocks (:class:`~earmark.frontend.
    speech_embedding.Depth`); with ``int8``, its convolutions in int8
    (:mod:`~earmark.frontend.embedding_int8`)."""
    model, _ = _rewritten(stepped=False, blocks=blocks, int8=int8)
    return model


def stepped_graph(blocks: int = embedding.BLOCKS, int8: bool = False
                  ) -> tuple[onnx.ModelProto, dict[str, tuple[int, int]]]:
    """The embedding network a column at a time, its time convolutions' last inputs carried
    as states: ``mel`` ``(1, frames, 32, 1)`` and ``state_k`` ``(1, channels, positions,
    bands)`` -> ``columns`` ``(1, 96, n)`` and ``state_k_next``.

    Returns the graph and the states' shapes without their time length (``{name:
    (channels, bands)}``): empty (0 positions) before the first call, which takes at least
    76 frames, then :data:`STATE_POSITIONS` positions, with 8 frames a column (with fewer
    ``blocks``: their first and step frames). With ``int8`` the convolutions are
    :func:`sliding_graph`'s in int8: the same numbers as it gives.
    """
    return _rewritten(stepped=True, blocks=blocks, int8=int8)


def macs(samples: int, blocks: int = embedding.BLOCKS) -> int:
    """Multiply-accumulates of the mel and the slid embedding (its first ``blocks``) over
    ``samples`` samples: the convolutions' outputs times their kernels, from the graph's
    own shapes."""
    frames = embedding.mel_frame_count(samples)
    mel = frames * macs_per_frame()
    if embedding.depth(blocks).columns(frames) < 1:
        return int(mel)
    return int(mel + _network_macs(frames, blocks))


@functools.lru_cache(maxsize=8)
def _network_macs(frames: int, blocks: int) -> int:
    from onnx import shape_inference

    model = sliding_graph(blocks)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[0].dim_value, dims[1].dim_value = 1, frames
    graph = shape_inference.infer_shapes(model, data_prop=True).graph
    shapes = {value.name: [d.dim_value for d in value.type.tensor_type.shape.dim]
              for value in [*graph.value_info, *graph.output]}
    kernels = {tensor.name: tensor.dims for tensor in graph.initializer}
    return sum(int(np.prod(shapes[node.output[0]])) * int(np.prod(kernels[node.input[1]][1:]))
               for node in graph.node if node.op_type == "Conv")


def _rewritten(stepped: bool, blocks: int = embedding.BLOCKS, int8: bool = False
               ) -> tuple[onnx.ModelProto, dict[str, tuple[int, int]]]:
    """The shipped graph's first ``blocks`` blocks with a free number of frames in and
    ``(batch, dimensions, columns)`` out, checked to slide; with ``stepped``, its time
    convolutions' states added; with ``int8``, its convolutions quantized."""
    import onnx
    from onnx import helper

    depth = embedding.depth(blocks)
    model = onnx.load(str(embedding.model_files()["embedding"]))
    graph = model.graph
    nodes = list(graph.node)
    first, last = nodes[0], nodes[-1]
    if first.op_type != "Reshape" or last.op_type != "Reshape":
        raise ConfigError("embedding_model.onnx is not the graph earmark ships; reinstall earmark")
    _set_initializer(graph, first.input[1], np.array([0, 1, -1, embedding.MEL_BANDS], np.int64))
    if blocks == embedding.BLOCKS:
        _set_initializer(graph, last.input[1], np.array(OUTPUT_SHAPE, np.int64))
        output = last.output[0]
    else:
        output = _cut(graph, depth)
    graph.input[0].type.tensor_type.shape.dim[1].dim_param = "frames"
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info(
        output, onnx.TensorProto.FLOAT, ["batch", depth.dimensions, "columns"]))
    del graph.value_info[:]
    convolutions = _time_convolutions(graph)
    states = _add_states(graph, convolutions, _input_shapes()) if stepped else {}
    if int8:
        quantize_network(model)
    onnx.checker.check_model(model)
    return model, states


def _cut(graph: onnx.GraphProto, depth: embedding.Depth) -> str:
    """Keep the nodes up to the pooling that ends block ``depth.blocks`` (and the weights
    they use); its ``(batch, channels, frames, bands)`` as ``(batch, channels x bands,
    columns)``. Returns the new output's name."""
    from onnx import helper, numpy_helper

    nodes = list(graph.node)
    poolings = [i for i, node in enumerate(nodes) if node.op_type == "MaxPool"]
    if len(poolings) != embedding.BLOCKS:
        raise ConfigError("embedding_model.onnx is not the graph earmark ships; reinstall earmark")
    kept = nodes[:poolings[depth.blocks - 1] + 1]
    shape = numpy_helper.from_array(np.array([0, depth.dimensions, -1], np.int64), "cut/shape")
    kept += [helper.make_node("Transpose", [kept[-1].output[0]], ["cut/bands_first"],
                              perm=[0, 1, 3, 2]),
             helper.make_node("Reshape", ["cut/bands_first", "cut/shape"], ["cut/columns"])]
    del graph.node[:]
    graph.node.extend(kept)
    used = {name for node in kept for name in node.input}
    for tensor in [t for t in graph.initializer if t.name not in used]:
        graph.initializer.remove(tensor)
    graph.initializer.append(shape)
    return "cut/columns"


def _set_initializer(graph: onnx.GraphProto, name: str, value: np.ndarray) -> None:
    from onnx import numpy_helper

    tensor = next(t for t in graph.initializer if t.name == name)
    tensor.CopyFrom(numpy_helper.from_array(value, name))


def _time_convolutions(graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    """The convolutions with a time kernel of 3; every convolution checked to be unpadded
    along time (otherwise the network would not slide)."""
    from onnx import helper

    found = []
    for node in graph.node:
        if node.op_type != "Conv":
            continue
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        kernel, pads = attributes["kernel_shape"], attributes.get("pads", [0, 0, 0, 0])
        strides = attributes.get("strides", [1, 1])
        if pads[0] or pads[2] or strides[0] != 1 or kernel[0] not in (1, STATE_POSITIONS + 1):
            raise ConfigError("embedding_model.onnx is not the graph earmark ships (a time "
                              "convolution is padded or strided); reinstall earmark")
        if kernel[0] > 1:
            found.append(node)
    return found


@functools.lru_cache(maxsize=1)
def _input_shapes() -> dict[str, tuple[int, int]]:
    """Channels and bands of every tensor in the shipped graph (by shape inference)."""
    import onnx
    from onnx import shape_inference

    model = onnx.load(str(embedding.model_files()["embedding"]))
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    inferred = shape_inference.infer_shapes(model).graph
    return {value.name: (value.type.tensor_type.shape.dim[1].dim_value,
                         value.type.tensor_type.shape.dim[3].dim_value)
            for value in inferred.value_info if len(value.type.tensor_type.shape.dim) == 4}


def _add_states(graph: onnx.GraphProto, convolutions: list[onnx.NodeProto],
                shapes: dict[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
    """Before each time convolution: its state joined in front of its input; after: the
    joined input's last positions, the next state. Returns ``{state: (channels, bands)}``."""
    import onnx
    from onnx import helper, numpy_helper

    graph.initializer.extend([
        numpy_helper.from_array(np.array([-STATE_POSITIONS], np.int64), "state/start"),
        numpy_helper.from_array(np.array([np.iinfo(np.int64).max], np.int64), "state/end"),
        numpy_helper.from_array(np.array([2], np.int64), "state/axis")])
    states, nodes = {}, []
    stateful = {id(node) for node in convolutions}
    for node in graph.node:
        if id(node) in stateful:
            index = len(states)
            name, joined = f"state_{index}", f"state_{index}/joined"
            channels, bands = shapes[node.input[0]]
            states[name] = (channels, bands)
            graph.input.append(helper.make_tensor_value_info(
                name, onnx.TensorProto.FLOAT, [1, channels, "positions", bands]))
            graph.output.append(helper.make_tensor_value_info(
                f"{name}_next", onnx.TensorProto.FLOAT, [1, channels, STATE_POSITIONS, bands]))
            nodes += [helper.make_node("Concat", [name, node.input[0]], [joined], axis=2),
                      helper.make_node("Slice", [joined, "state/start", "state/end",
                                                 "state/axis"], [f"{name}_next"])]
            node.input[0] = joined
        nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    return states


class SpeechEmbedding:
    """The frozen embedding (or its first ``blocks``) in onnxruntime, slid along each clip:
    waveforms in, ``(batch, n, 96)`` out (``(batch, n, dimensions)`` with fewer blocks);
    with ``int8``, the network's convolutions in int8."""

    def __init__(self, threads: int = 1, blocks: int = embedding.BLOCKS, int8: bool = False):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = max(1, int(threads))
        # Idle onnxruntime threads would spin against torch's while training.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = ["CPUExecutionProvider"]
        self._mel = ort.InferenceSession(mel_graph().SerializeToString(), options,
                                         providers=providers)
        self.depth = embedding.depth(blocks)
        self._embedding = ort.InferenceSession(sliding_graph(blocks, int8).SerializeToString(),
                                               options, providers=providers)
        self._embedding_input = self._embedding.get_inputs()[0].name

    def mel(self, waveforms: np.ndarray) -> np.ndarray:
        """``(batch, samples)`` in [-1, 1] -> ``(batch, frames, 32)``, scaled for the
        embedding."""
        waveforms = np.asarray(waveforms, np.float32)
        if waveforms.ndim != 2 or waveforms.shape[1] < embedding.MEL_WINDOW:
            raise ValueError(f"the speech embedding needs (batch, >= {embedding.MEL_WINDOW} "
                             f"samples), got shape {waveforms.shape}")
        check_finite(waveforms, "audio for the speech embedding")
        pcm = np.clip(waveforms, -1, 1) * 32767.0
        out = self._mel.run(None, {"input": pcm})[0]
        return out[:, 0] / 10.0 + 2.0

    def embed(self, mel: np.ndarray) -> np.ndarray:
        """``(batch, frames, 32)`` -> ``(batch, n, dimensions)``: a column every
        ``depth.step_frames`` frames (the embedding: 96 every 8), the network slid along each
        clip (each layer computed once for all its columns)."""
        batch, frames, _ = mel.shape
        if self.depth.columns(frames) < 1:
            raise ValueError(f"the speech embedding needs {self.depth.first_frames} mel frames "
                             f"({self.depth.window_samples} samples), got {frames}")
        clips = np.asarray(mel, np.float32)[..., None]
        # In chunks: onnxruntime keeps the memory its largest call needed.
        step = max(1, EMBED_CHUNK_FRAMES // frames)
        out = [self._embedding.run(None, {self._embedding_input: clips[i:i + step]})[0]
               for i in range(0, batch, step)]
        return np.concatenate(out).transpose(0, 2, 1)

    def __call__(self, waveforms: np.ndarray) -> np.ndarray:
        return self.embed(self.mel(waveforms))
