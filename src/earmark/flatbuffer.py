"""Reading, editing and writing ``.tflite`` flatbuffers (LiteRT's schema, object API).

Shared by the rewrites that a converted graph needs before a device takes it
(:mod:`earmark.export.tflite_variables`, :mod:`earmark.export.esphome_ops`) and by
BirdNET's front-end (:mod:`earmark.frontend.bird_embedding`: its embedding made the
network's output).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

#: TensorFlow's opcode for builtins numbered above 127 in the deprecated byte.
_PLACEHOLDER_FOR_GREATER_OP_CODES = 127


def read_model(model: bytes):
    """The model as LiteRT's object tree, and the schema module."""
    from ai_edge_litert import schema_py_generated as schema

    return schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(model, 0)), schema


def write_model(tree) -> bytes:
    import flatbuffers

    builder = flatbuffers.Builder(1 << 16)
    builder.Finish(tree.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def signature_tensor(entries, name: str) -> int:
    """The tensor index of signature input or output ``name``."""
    for entry in entries:
        if entry.name.decode() == name:
            return entry.tensorIndex
    raise ValueError(f"the graph's signature has no tensor {name!r}; it has "
                     f"{[entry.name.decode() for entry in entries]}")


def operator_name(tree, schema, op) -> str:
    code = tree.operatorCodes[op.opcodeIndex]
    number = max(code.builtinCode, code.deprecatedBuiltinCode)
    return next(name for name, value in vars(schema.BuiltinOperator).items()
                if value == number and not name.startswith("_"))


def operator_names(tree, schema) -> set[str]:
    """Every operator the model's graphs use."""
    return {operator_name(tree, schema, op) for graph in tree.subgraphs
            for op in graph.operators}


def multiply_adds(tree, schema, graph, shapes: Mapping[int, Sequence[int]]) -> int:
    """Multiply-accumulates of one call of ``graph``, given each tensor's shape in that call
    (``shapes``: index -> shape, from an interpreter that ran it: a file's own shapes leave
    dynamic sizes at 1): its convolutions and fully connected layers (everything else is
    small beside them)."""
    total = 0
    for op in graph.operators:
        name = operator_name(tree, schema, op)
        if name not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            continue
        weights = [int(n) for n in shapes[op.inputs[1]]]
        outputs = int(np.prod(shapes[op.outputs[0]]))
        if name == "CONV_2D":               # weights (out, kh, kw, in)
            total += outputs * int(np.prod(weights[1:]))
        elif name == "DEPTHWISE_CONV_2D":   # weights (1, kh, kw, out)
            total += outputs * weights[1] * weights[2]
        else:                               # weights (out, in)
            total += outputs * weights[1]
    return total


class Opcodes:
    """Operators of the model, their opcode entries added once."""

    def __init__(self, tree, schema):
        self.tree, self.schema = tree, schema

    def index(self, name: str, version: int = 1) -> int:
        code = getattr(self.schema.BuiltinOperator, name)
        for index, entry in enumerate(self.tree.operatorCodes):
            if max(entry.builtinCode, entry.deprecatedBuiltinCode) == code:
                return index
        entry = self.schema.OperatorCodeT()
        entry.builtinCode, entry.version = code, version
        entry.deprecatedBuiltinCode = min(code, _PLACEHOLDER_FOR_GREATER_OP_CODES)
        self.tree.operatorCodes.append(entry)
        return len(self.tree.operatorCodes) - 1

    def op(self, name: str, inputs: list[int], outputs: list[int], options: str = "",
           version: int = 1, **fields):
        op = self.schema.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = self.index(name, version), inputs, outputs
        if options:
            value = getattr(self.schema, f"{options}T")()
            for key, field_value in fields.items():
                setattr(value, key, field_value)
            op.builtinOptionsType = getattr(self.schema.BuiltinOptions, options)
            op.builtinOptions = value
        return op

    def drop_unused(self) -> None:
        """Remove opcode entries no operator uses (a rewrite may leave some)."""
        used = sorted({op.opcodeIndex for graph in self.tree.subgraphs
                       for op in graph.operators})
        renumber = {old: new for new, old in enumerate(used)}
        self.tree.operatorCodes = [self.tree.operatorCodes[old] for old in used]
        for graph in self.tree.subgraphs:
            for op in graph.operators:
                op.opcodeIndex = renumber[op.opcodeIndex]


def add_tensor(graph, tree, schema, name: bytes, dtype: int, shape: list[int],
               buffer: int | None = None, quantization=None) -> int:
    """A new tensor in ``graph``; without ``buffer``, with an empty buffer of its own (as
    TensorFlow's converter writes them; TFLite-Micro expects no sharing)."""
    if buffer is None:
        tree.buffers.append(schema.BufferT())
        buffer = len(tree.buffers) - 1
    tensor = schema.TensorT()
    tensor.name, tensor.type, tensor.shape, tensor.buffer = name, dtype, shape, buffer
    tensor.quantization = quantization
    graph.tensors.append(tensor)
    return len(graph.tensors) - 1


def add_constant(graph, tree, schema, name: bytes, values, quantization=None) -> int:
    """A constant tensor holding ``values`` (a numpy array of int8, uint8, int16, int32
    or float32), in a buffer of its own."""
    import numpy as np

    values = np.ascontiguousarray(values)
    buffer = schema.BufferT()
    buffer.data = values.view(np.uint8).ravel()
    tree.buffers.append(buffer)
    dtype = getattr(schema.TensorType, values.dtype.name.upper())     # INT8, FLOAT32 ...
    return add_tensor(graph, tree, schema, name, dtype, list(values.shape),
                      len(tree.buffers) - 1, quantization)


def numpy_dtype(schema, tensor_type: int):
    """The numpy type of a tensor type (INT8 -> int8 ...)."""
    import numpy as np

    names = {value: key for key, value in vars(schema.TensorType).items()
             if not key.startswith("_")}
    return np.dtype(names[tensor_type].lower())


def constant_values(tree, graph, index: int, dtype):
    """The values of constant tensor ``index``."""
    import numpy as np

    tensor = graph.tensors[index]
    data = tree.buffers[tensor.buffer].data
    return np.frombuffer(np.asarray(data, np.uint8).tobytes(), dtype).reshape(tensor.shape)
