"""Give a stateless ``.tflite`` step its state as variables inside the graph.

A stream step converted from torch takes its state as inputs and returns
the next state as outputs (``litert-torch`` drops in-place buffer updates, so
it cannot write variables itself). Runtimes built for streaming models,
microWakeWord's and ESPHome's ``micro_wake_word`` among them, instead give
the model only its new frames and expect it to keep its state, as models
converted from TensorFlow with resource variables do. This module rewrites
the flatbuffer into that form, op for op what TensorFlow's converter emits:

- the main graph starts with ``CALL_ONCE`` of a new init graph that runs
  ``VAR_HANDLE`` + ``ASSIGN_VARIABLE`` of a constant zero state (the
  quantized zero, i.e. the zero point, for int8) for every variable;
- then, per state, ``VAR_HANDLE`` and ``READ_VARIABLE`` into the tensor that
  was the state input;
- the graph's own ops, unchanged;
- last, ``ASSIGN_VARIABLE`` of the tensor that was the next-state output.

The state inputs and outputs leave the graph's and the signature's lists.
A variable holds raw values, so each state input takes the quantization of
the next-state tensor assigned to it (an int8 concatenation requantizes any
input whose scale differs; the step only moves state data, so the two
differ at most by calibration).
"""

from __future__ import annotations

import copy

import numpy as np

from earmark.flatbuffer import (Opcodes, add_constant, add_tensor, numpy_dtype,
                                       read_model, signature_tensor, write_model)


def states_to_variables(model: bytes, state_inputs: list[str],
                        state_outputs: list[str]) -> bytes:
    """``model`` with the named signature inputs and outputs (pairwise: input ``i`` is
    read from, output ``i`` written to, variable ``i``) turned into variables."""
    if len(state_inputs) != len(state_outputs):
        raise ValueError("every state input needs the output that replaces it")
    tree, schema = read_model(model)
    signature = tree.signatureDefs[0]
    graph = tree.subgraphs[signature.subgraphIndex]
    reads = [signature_tensor(signature.inputs, name) for name in state_inputs]
    writes = [signature_tensor(signature.outputs, name) for name in state_outputs]
    codes = Opcodes(tree, schema)
    init = schema.SubGraphT()
    init.name, init.tensors, init.operators = b"init_states", [], []
    init.inputs, init.outputs = [], []
    head, tail = [codes.op("CALL_ONCE", [], [], "CallOnceOptions",
                           initSubgraphIndex=len(tree.subgraphs))], []
    handles = []
    for number, (read, write) in enumerate(zip(reads, writes)):
        name = f"earmark/state_{number}".encode()
        graph.tensors[read].quantization = copy.deepcopy(graph.tensors[write].quantization)
        handle = add_tensor(graph, tree, schema, name, schema.TensorType.RESOURCE, [])
        handles.append(codes.op("VAR_HANDLE", [], [handle], "VarHandleOptions",
                                container=b"", sharedName=name))
        head.append(codes.op("READ_VARIABLE", [handle], [read]))
        tail.append(codes.op("ASSIGN_VARIABLE", [handle, write], []))
        _initialize(init, tree, schema, codes, name, graph.tensors[read])
    graph.operators = head[:1] + handles + head[1:] + list(graph.operators) + tail
    graph.inputs = [t for t in graph.inputs if t not in reads]
    graph.outputs = [t for t in graph.outputs if t not in writes]
    signature.inputs = [s for s in signature.inputs if s.tensorIndex not in reads]
    signature.outputs = [s for s in signature.outputs if s.tensorIndex not in writes]
    tree.subgraphs.append(init)
    return write_model(tree)


def _initialize(init, tree, schema, codes: Opcodes, name: bytes, like) -> None:
    """In the init graph: assign variable ``name`` a constant of zeros shaped like ``like``
    (the quantized zero: its zero point)."""
    zero_point = 0
    if like.quantization is not None and like.quantization.zeroPoint is not None \
            and len(like.quantization.zeroPoint):
        zero_point = int(like.quantization.zeroPoint[0])
    handle = add_tensor(init, tree, schema, name, schema.TensorType.RESOURCE, [])
    value = add_constant(init, tree, schema, name + b"/zeros",
                         np.full(list(like.shape), zero_point, numpy_dtype(schema, like.type)),
                         copy.deepcopy(like.quantization))
    init.operators += [codes.op("VAR_HANDLE", [], [handle], "VarHandleOptions",
                                container=b"", sharedName=name),
                       codes.op("ASSIGN_VARIABLE", [handle, value], [])]


#: Operators that move values without changing them: a state passes through these.
_DATA_MOVES = ("CONCATENATION", "SLICE", "STRIDED_SLICE", "RESHAPE", "TRANSPOSE")


def shared_ranges(model: bytes, state_inputs: list[str], state_outputs: list[str],
                  input_ranges: dict[str, tuple[float, float]]):
    """A hook for :func:`earmark.export.litert.quantize_int8` (calibrated ranges in, ranges
    out) that gives one range to every group of tensors joined by data moves
    (concatenations, slices, reshapes, transposes) or by a state pair: a state is then
    read, joined with new columns and written back in one quantization, as the
    variable's raw int8 values require (TFLite-Micro's int8 concatenation also wants its
    inputs in its output's). ``input_ranges`` widens the named inputs' groups to at
    least that range (the frames to the front-end's whole range, say)."""
    tree, schema = read_model(model)
    signature = tree.signatureDefs[0]
    graph = tree.subgraphs[signature.subgraphIndex]
    groups = _Groups(len(graph.tensors))
    names = {getattr(schema.BuiltinOperator, name): name for name in _DATA_MOVES}
    for op in graph.operators:
        code = tree.operatorCodes[op.opcodeIndex]
        kind = names.get(max(code.builtinCode, code.deprecatedBuiltinCode))
        if kind is None:
            continue
        moved = op.inputs if kind == "CONCATENATION" else op.inputs[:1]
        for tensor in moved:
            if tensor >= 0 and tree.buffers[graph.tensors[tensor].buffer].data is None:
                groups.join(tensor, op.outputs[0])
    for read, write in zip(state_inputs, state_outputs):
        groups.join(signature_tensor(signature.inputs, read),
                    signature_tensor(signature.outputs, write))
    widen = {groups.find(signature_tensor(signature.inputs, name)): limits
             for name, limits in input_ranges.items()}
    members: dict[int, list[str]] = {}
    for index, tensor in enumerate(graph.tensors):
        members.setdefault(groups.find(index), []).append(tensor.name.decode())

    def adjust(statistics: dict) -> dict:
        for root, tensor_names in members.items():
            calibrated = [name for name in tensor_names if name in statistics]
            if not calibrated or (len(calibrated) < 2 and root not in widen):
                continue
            low = min(float(np.min(statistics[name]["min"])) for name in calibrated)
            high = max(float(np.max(statistics[name]["max"])) for name in calibrated)
            if root in widen:
                low, high = min(low, widen[root][0]), max(high, widen[root][1])
            for name in calibrated:
                statistics[name] = {**statistics[name],
                                    "min": np.full_like(statistics[name]["min"], low),
                                    "max": np.full_like(statistics[name]["max"], high)}
        return statistics

    return adjust


class _Groups:
    """Union-find over tensor indices."""

    def __init__(self, size: int):
        self.parent = list(range(size))

    def find(self, index: int) -> int:
        while self.parent[index] != index:
            self.parent[index] = self.parent[self.parent[index]]
            index = self.parent[index]
        return index

    def join(self, first: int, second: int) -> None:
        self.parent[self.find(first)] = self.find(second)
