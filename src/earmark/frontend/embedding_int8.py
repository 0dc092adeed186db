"""The speech embedding's convolutions in int8, at ranges fixed once for every run.

``features.embedding_int8`` runs the pretrained embedding network with 19 of
its 20 convolutions in integer arithmetic: onnxruntime's ``QLinearConv`` (VNNI
on recent x86, dot-product on ARM), uint8 inputs, int8 weights per output
channel. Between two of them the activations stay uint8: the network's
``Max(LeakyRelu(x), -0.4)`` becomes one ``QLinearLeakyRelu`` (onnxruntime's
contrib operator) whose output range starts at -0.4, so uint8's floor is the
``Max``; pooling and the stream's states (``Concat``, ``Slice``) move uint8 as
they are. These are the same numbers as quantizing each convolution's input
and dequantizing its output, with 71 nodes instead of 125 in the network's
step. On this project's 2-core x86 machine the network costs about half its
float time a column (benchmarks/wake_words.py).

The first convolution stays float (:data:`KEPT_FLOAT`): with one input channel
and nine weights a channel it made half the int8 network's error, for 1% of
its multiply-adds. The columns then differ from the float network's by about
6% of their mean magnitude (correlation 0.998); a model trains on them.

The ranges are not calibrated per run: they ship in ``pretrained/embedding_int8.json``
(each convolution's input and output, measured by ``tools/embedding-int8-ranges`` on
recordings that are not in any benchmark), so training, threshold calibration, the
bundle's clip graph and its stream step all compute the same numbers, and a
model trained on these columns hears them again when deployed.

Weights use 7 of their 8 bits: on x86 CPUs without VNNI onnxruntime multiplies
uint8 by int8 with an instruction that saturates when both use their full
range (onnxruntime's quantization guide), and 7-bit weights never reach it, so
every CPU computes the columns the model was trained on.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from earmark.errors import ConfigError

#: The ranges' file, beside the pretrained graphs.
RANGES_FILE = "embedding_int8.json"
#: The largest weight magnitude (7 bits, see the module's note).
WEIGHT_LEVELS = 63
#: Convolutions left in float (see the module's note).
KEPT_FLOAT = frozenset({"model/conv2d/Conv2D"})
#: onnxruntime's operator set that holds ``QLinearLeakyRelu``.
CONTRIB_DOMAIN = "com.microsoft"
#: What a bundle's metadata says of its embedding.
DESCRIPTION = ("speech embedding int8 (19 of 20 convolutions QLinearConv at shipped ranges, "
               "7-bit weights per channel, uint8 activations between them; the mel, the "
               "first convolution and the model float)")

Ranges = dict[str, dict[str, list[float]]]


@functools.lru_cache(maxsize=1)
def shipped_ranges() -> Ranges:
    """``{convolution node: {"input": [low, high], "output": [low, high]}}`` as shipped."""
    path = Path(str(resources.files("earmark.frontend") / "pretrained" / RANGES_FILE))
    try:
        return json.loads(path.read_text())["convolutions"]
    except (OSError, ValueError, KeyError) as error:
        raise ConfigError(f"{path}: missing or damaged ({error}); reinstall earmark") from None


def activation_scale(low: float, high: float) -> tuple[np.float32, np.uint8]:
    """uint8 scale and zero point covering ``[low, high]`` (zero always representable)."""
    low, high = min(float(low), 0.0), max(float(high), 0.0)
    scale = np.float32(max(high - low, 1e-8) / 255.0)
    return scale, np.uint8(np.clip(round(-low / float(scale)), 0, 255))


def quantize_network(model, ranges: Ranges | None = None) -> None:
    """The embedding network ``model`` (an ``onnx.ModelProto`` with the shipped node names:
    slid, stepped or cut) in int8, in place, at ``ranges`` (default: the shipped ones).

    A state that now carries uint8 (``state_k``, ``state_k_next``) becomes a uint8 input
    and output of the graph; the columns stay float.
    """
    from onnx import helper

    rewrite = _Rewrite(model.graph, shipped_ranges() if ranges is None else ranges)
    nodes = []
    for node in model.graph.node:
        nodes += rewrite.node(node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    rewrite.drop_unused_weights()
    if not any(o.domain == CONTRIB_DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(CONTRIB_DOMAIN, 1))


@dataclass(frozen=True)
class _Quantized:
    """A tensor held as uint8: its name and its scale's and zero point's."""

    name: str
    scale: str
    zero: str


class _Rewrite:
    """The float graph's nodes, one at a time, as their int8 counterparts."""

    def __init__(self, graph, ranges: Ranges):
        self.graph, self.ranges = graph, ranges
        self.weights = {tensor.name: tensor for tensor in graph.initializer}
        self.consumers: dict[str, list] = {}
        for node in graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
        self.held: dict[str, _Quantized] = {}      # float tensor name -> its uint8 stand-in
        self.folded: set[str] = set()     # outputs of the Max nodes a QLinearLeakyRelu took

    def node(self, node) -> list:
        """What stands for ``node``: itself, or its int8 nodes."""
        if node.op_type == "Max" and node.output[0] in self.folded:
            return []
        op, first = node.op_type, node.input[0] if node.input else ""
        if op == "Conv" and node.name not in KEPT_FLOAT:
            return self._convolution(node)
        reader = self._next_convolution(node.output[0]) if op == "LeakyRelu" else None
        if first in self.held and reader is not None:
            return self._activation(node, reader)
        if first in self.held and op == "MaxPool":
            return self._carried(node, node.input[0], [self.held[first].name])
        if op == "Concat" and node.input[-1] in self.held:
            self._to_uint8(self.graph.input, node.input[0])
            return self._carried(node, node.input[-1],
                                 [node.input[0], self.held[node.input[-1]].name])
        if first in self.held and op == "Slice":
            self._to_uint8(self.graph.output, node.output[0])
            return [_copy(node, [self.held[first].name, *node.input[1:]], node.output)]
        return [*self._dequantized(node), node]

    def _convolution(self, node) -> list:
        name, span = node.name, self._range(node)
        nodes = []
        source = self.held.get(node.input[0])
        if source is None:
            source = self._constants(f"{name}/x", *span["input"])
            nodes.append(_make("QuantizeLinear", [node.input[0], source.scale, source.zero],
                               [f"{name}/x_q"]))
            source = _Quantized(f"{name}/x_q", source.scale, source.zero)
        out = self._constants(f"{name}/y", *span["output"])
        weights, scales, bias = self._weights(node, self._value(source.scale))
        attributes = {a.name: _attribute(a) for a in node.attribute}
        nodes.append(_make("QLinearConv", [source.name, source.scale, source.zero, weights,
                                           scales, f"{name}/w_zero", out.scale, out.zero,
                                           bias], [out.name], name=name, **attributes))
        self.held[node.output[0]] = out
        return nodes

    def _activation(self, node, reader) -> list:
        """``LeakyRelu`` and the ``Max(., -0.4)`` after it as one ``QLinearLeakyRelu``, its
        output at the input range of ``reader``, the convolution that reads it."""
        (floor,) = self.consumers[node.output[0]]
        if floor.op_type != "Max":
            raise ConfigError("embedding_model.onnx is not the graph earmark ships (an "
                              "activation without its Max); reinstall earmark")
        self.folded.add(floor.output[0])
        span = self._range(reader)["input"]
        out = self._constants(floor.output[0], *span)
        source = self.held[node.input[0]]
        self.held[floor.output[0]] = out
        alpha = next(_attribute(a) for a in node.attribute if a.name == "alpha")
        return [_make("QLinearLeakyRelu", [source.name, source.scale, source.zero, out.scale,
                                           out.zero], [out.name], domain=CONTRIB_DOMAIN,
                      alpha=alpha)]

    def _carried(self, node, source: str, inputs: list[str]) -> list:
        """A node that moves uint8 as it moves float (pooling, joining a state)."""
        held = self.held[source]
        out = _Quantized(f"{node.output[0]}/q", held.scale, held.zero)
        self.held[node.output[0]] = out
        return [_copy(node, inputs, [out.name])]

    def _dequantized(self, node) -> list:
        """Float again for a node that needs it (the network's last reshape)."""
        nodes = []
        for name in node.input:
            held = self.held.pop(name, None)
            if held is not None:
                nodes.append(_make("DequantizeLinear", [held.name, held.scale, held.zero],
                                   [name]))
        return nodes

    def _next_convolution(self, tensor: str):
        """The convolution that reads ``tensor``, through activations, pooling and states
        (None where none does: the last block of a cut network stays float)."""
        for node in self.consumers.get(tensor, []):
            if node.op_type == "Conv":
                return node
            if node.op_type in ("LeakyRelu", "Max", "MaxPool", "Concat"):
                found = self._next_convolution(node.output[0])
                if found is not None:
                    return found
        return None

    def _range(self, node) -> dict[str, list[float]]:
        if node.name not in self.ranges:
            raise ConfigError(f"convolution {node.name!r} has no int8 range in {RANGES_FILE} "
                              "(not the graph earmark ships); reinstall earmark")
        return self.ranges[node.name]

    def _weights(self, node, input_scale: float) -> tuple[str, str, str]:
        """int8 weights per output channel, their scales and the int32 bias, added."""
        from onnx import numpy_helper

        kernel = numpy_helper.to_array(self.weights[node.input[1]])
        bias = (numpy_helper.to_array(self.weights[node.input[2]]) if len(node.input) > 2
                else np.zeros(len(kernel), np.float32))
        peak = np.abs(kernel).reshape(len(kernel), -1).max(axis=1)
        scales = (np.maximum(peak, 1e-12) / WEIGHT_LEVELS).astype(np.float32)
        name = node.name
        self._add(f"{name}/w", np.round(kernel / scales[:, None, None, None]).astype(np.int8))
        self._add(f"{name}/w_scale", scales)
        self._add(f"{name}/w_zero", np.zeros(len(kernel), np.int8))
        self._add(f"{name}/b", np.round(bias / (input_scale * scales)).astype(np.int32))
        return f"{name}/w", f"{name}/w_scale", f"{name}/b"

    def _constants(self, name: str, low: float, high: float) -> _Quantized:
        scale, zero = activation_scale(low, high)
        self._add(f"{name}/scale", scale)
        self._add(f"{name}/zero", zero)
        return _Quantized(f"{name}/q", f"{name}/scale", f"{name}/zero")

    def _add(self, name: str, value) -> None:
        from onnx import numpy_helper

        self.weights[name] = numpy_helper.from_array(np.asarray(value), name)
        self.graph.initializer.append(self.weights[name])

    def _value(self, name: str) -> float:
        from onnx import numpy_helper

        return float(numpy_helper.to_array(self.weights[name]))

    @staticmethod
    def _to_uint8(values, name: str) -> None:
        from onnx import TensorProto

        for value in values:
            if value.name == name:
                value.type.tensor_type.elem_type = TensorProto.UINT8

    def drop_unused_weights(self) -> None:
        used = {name for node in self.graph.node for name in node.input}
        for tensor in [t for t in self.graph.initializer if t.name not in used]:
            self.graph.initializer.remove(tensor)


def _make(op: str, inputs: list[str], outputs: list[str], **attributes):
    from onnx import helper

    return helper.make_node(op, inputs, outputs, **attributes)


def _copy(node, inputs: list[str], outputs: list[str]):
    """``node`` with other inputs and outputs (its attributes kept)."""
    return _make(node.op_type, inputs, outputs,
                 **{a.name: _attribute(a) for a in node.attribute})


def _attribute(attribute):
    from onnx import helper

    return helper.get_attribute_value(attribute)
