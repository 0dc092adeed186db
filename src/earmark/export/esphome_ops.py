"""A converted stream step in the form ESPHome's ``micro_wake_word`` loads.

ESPHome builds its TFLite-Micro interpreter with twenty operators only
(:data:`ESPHOME_OPERATORS`) and wants the probability as ``uint8``; the
converter writes ``SLICE`` where a state drops its oldest columns and ends
an int8 graph in int8. So:

- every ``SLICE`` becomes the ``STRIDED_SLICE`` it is (begin, end, strides 1);
- a ``QUANTIZE`` to ``uint8`` (scale 1/256, zero point 0) follows the output,
  as in microWakeWord's own models;
- then every operator must be one ESPHome registers, else the export stops
  and names the ones that are not.
"""

from __future__ import annotations

import numpy as np

from earmark.flatbuffer import (Opcodes, add_constant, add_tensor, constant_values,
                                       operator_name, operator_names, read_model, write_model)
from earmark.export.parity import ExportError

#: The operators ESPHome's micro_wake_word registers for a streaming model.
ESPHOME_OPERATORS = frozenset({
    "CALL_ONCE", "VAR_HANDLE", "RESHAPE", "READ_VARIABLE", "STRIDED_SLICE", "CONCATENATION",
    "ASSIGN_VARIABLE", "CONV_2D", "MUL", "ADD", "MEAN", "FULLY_CONNECTED", "LOGISTIC",
    "QUANTIZE", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "MAX_POOL_2D", "PAD", "PACK",
    "SPLIT_V"})
#: Resource variables ESPHome makes room for.
ESPHOME_VARIABLES = 20


def for_esphome(model: bytes) -> bytes:
    """``model`` rewritten for ESPHome (see the module docs); ExportError when an operator
    is left that ESPHome lacks."""
    tree, schema = read_model(model)
    codes = Opcodes(tree, schema)
    for graph in tree.subgraphs:
        for op in graph.operators:
            if operator_name(tree, schema, op) == "SLICE":
                _as_strided_slice(op, graph, tree, schema, codes)
    _uint8_output(tree, schema, codes)
    codes.drop_unused()
    missing = sorted(operator_names(tree, schema) - ESPHOME_OPERATORS)
    if missing:
        raise ExportError(f"the stream step uses {missing}, which ESPHome's micro_wake_word "
                          f"does not register (it has {sorted(ESPHOME_OPERATORS)})")
    return write_model(tree)


def _as_strided_slice(op, graph, tree, schema, codes: Opcodes) -> None:
    source, begin_index, size_index = op.inputs
    begin = constant_values(tree, graph, begin_index, np.int32)
    size = constant_values(tree, graph, size_index, np.int32)
    shape = np.asarray(graph.tensors[source].shape, np.int32)
    end = np.where(size < 0, shape, begin + size).astype(np.int32)
    end_index = add_constant(graph, tree, schema, b"slice_end", end)
    strides = add_constant(graph, tree, schema, b"slice_strides", np.ones_like(end))
    replacement = codes.op("STRIDED_SLICE", [source, begin_index, end_index, strides],
                           list(op.outputs), "StridedSliceOptions", version=2)
    op.opcodeIndex, op.inputs = replacement.opcodeIndex, replacement.inputs
    op.builtinOptionsType, op.builtinOptions = (replacement.builtinOptionsType,
                                                replacement.builtinOptions)


def _uint8_output(tree, schema, codes: Opcodes) -> None:
    """QUANTIZE the one int8 output to uint8 with the same scale (zero point + 128)."""
    signature = tree.signatureDefs[0]
    graph = tree.subgraphs[signature.subgraphIndex]
    (output,) = graph.outputs
    tensor = graph.tensors[output]
    if tensor.type != schema.TensorType.INT8:
        raise ExportError("the stream step's output is not int8: quantize it first")
    quantization = schema.QuantizationParametersT()
    quantization.scale = list(tensor.quantization.scale)
    quantization.zeroPoint = [int(tensor.quantization.zeroPoint[0]) + 128]
    unsigned = add_tensor(graph, tree, schema, b"probability", schema.TensorType.UINT8,
                          list(tensor.shape), quantization=quantization)
    graph.operators.append(codes.op("QUANTIZE", [output], [unsigned]))
    graph.outputs = [unsigned]
    for entry in signature.outputs:
        if entry.tensorIndex == output:
            entry.tensorIndex = unsigned
