"""Write the front-end's big tables into the ONNX graph as formulas, not numbers.

The split DFT's tables (:mod:`earmark.frontend.fourier`: the framed window, two
stages of cos/sin, the twiddles), the seed front-end's dense DFT basis and
the mel filterbank are pure functions of a few settings: the front-end's
:class:`~earmark.frontend.geometry.SpectralLayout` (window, DFT bins, where
the window sits in its frame) and its config. Stored as initializers they
dwarf a small keyword model; written as a handful of ONNX ops (Range, Mod,
Cos, Sin, Min, Max...) with small inputs, onnxruntime computes them once
when the session loads (constant folding), so inference costs the same and
the file shrinks to the size of the network's weights. The formulas use
exact integer phase (``k * n mod N``) so the float32 result matches numpy's
to about 1e-7.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import onnx
from onnx import helper, numpy_helper

from earmark.frontend.filters import mel_edges
from earmark.frontend.geometry import filterbank_fmax
from earmark.frontend.module import FrontEnd

#: Endings of the front-end's table names in an exported graph.
DFT_BASIS = "dft_basis"
MEL_WEIGHTS = "mel_weights"

#: ONNX nodes computing a table, and the small constants they read.
Nodes = tuple[list[onnx.NodeProto], list[onnx.TensorProto]]
#: Makes the nodes for one table: ``(front-end, name of the table) -> Nodes``.
TableBuilder = Callable[[FrontEnd, str], Nodes]


def compact_frontend(model: onnx.ModelProto, frontend: FrontEnd) -> onnx.ModelProto:
    """Replace the front-end's table initializers of a joined graph by formulas."""
    builders: dict[str, TableBuilder] = {DFT_BASIS: _dft_basis_nodes}
    if hasattr(frontend, "spectrum"):
        builders.update(_split_dft_builders(frontend))
    if hasattr(frontend, "mel_weights"):
        builders[MEL_WEIGHTS] = _mel_weight_nodes
    kept, new_nodes, new_tables = [], [], []
    for table in model.graph.initializer:
        builder = next((build for ending, build in builders.items()
                        if table.name.endswith(ending)), None)
        if builder is None:
            kept.append(table)
            continue
        nodes, inputs = builder(frontend, table.name)
        new_nodes.extend(nodes)
        new_tables.extend(inputs)
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept + new_tables)
    nodes = list(model.graph.node)
    del model.graph.node[:]
    model.graph.node.extend(new_nodes + nodes)     # tables first: the graph stays sorted
    strip_annotations(model)
    onnx.checker.check_model(model)
    return model


def strip_annotations(model: onnx.ModelProto) -> None:
    """Drop the exporter's per-node stack traces and shape hints (half a small file)."""
    for node in model.graph.node:
        del node.metadata_props[:]
        node.doc_string = ""
    del model.graph.value_info[:]


def _constant(name: str, values: np.ndarray | np.generic) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(values), name)


def _range(name: str, start: int, count: int) -> Nodes:
    """Nodes for ``start + arange(count)`` (int64): three scalars instead of a table."""
    tables = [_constant(name + "_start", np.int64(start)),
              _constant(name + "_limit", np.int64(start + count)),
              _constant(name + "_delta", np.int64(1))]
    nodes = [helper.make_node("Range", [name + "_start", name + "_limit", name + "_delta"],
                              [name])]
    return nodes, tables


def _dft_basis_nodes(frontend: FrontEnd, output: str) -> Nodes:
    """``window * [cos; sin](2 pi (k n mod N) / N)``, shape (2 bins, 1, window)."""
    p = output + "/"
    layout = frontend.layout
    angle_nodes, angle_tables = _angle_nodes(p, (layout.first_bin, len(layout.bins)),
                                             (layout.first_sample, layout.window_length),
                                             layout.n_fft)
    window_nodes, window_tables = _hann_nodes(p + "window", layout.window_length,
                                              symmetric=layout.symmetric_window)
    tables = angle_tables + window_tables + [_constant(p + "axis", np.array([1], np.int64))]
    nodes = angle_nodes + window_nodes + [
        helper.make_node("Cos", [p + "phase"], [p + "cos"]),
        helper.make_node("Sin", [p + "phase"], [p + "sin"]),
        helper.make_node("Concat", [p + "cos", p + "sin"], [p + "rows"], axis=0),
        helper.make_node("Mul", [p + "rows", p + "window"], [p + "windowed"]),
        helper.make_node("Unsqueeze", [p + "windowed", p + "axis"], [output]),
    ]
    return nodes, tables


def _angle_nodes(p: str, first: tuple[int, int], second: tuple[int, int],
                 period: int) -> Nodes:
    """Nodes for ``p + "phase"``: ``2 pi (i j mod period) / period`` over the ranges
    ``first`` and ``second`` (each ``(start, count)``), exact in the integer product."""
    first_nodes, first_tables = _range(p + "i", *first)
    second_nodes, second_tables = _range(p + "j", *second)
    tables = first_tables + second_tables + [
        _constant(p + "period", np.int64(period)),
        _constant(p + "radians_per_step", np.float32(2.0 * np.pi / period)),
        _constant(p + "axis0", np.array([0], dtype=np.int64)),
        _constant(p + "axis1", np.array([1], dtype=np.int64)),
    ]
    nodes = first_nodes + second_nodes + [
        helper.make_node("Unsqueeze", [p + "i", p + "axis1"], [p + "column"]),
        helper.make_node("Unsqueeze", [p + "j", p + "axis0"], [p + "row"]),
        helper.make_node("Mul", [p + "column", p + "row"], [p + "product"]),
        helper.make_node("Mod", [p + "product", p + "period"], [p + "steps"]),
        helper.make_node("Cast", [p + "steps"], [p + "steps_float"], to=onnx.TensorProto.FLOAT),
        helper.make_node("Mul", [p + "steps_float", p + "radians_per_step"], [p + "phase"]),
    ]
    return nodes, tables


def _split_dft_builders(frontend: FrontEnd) -> dict[str, TableBuilder]:
    """Builders for :class:`~earmark.frontend.fourier.FramePower`'s tables, by name ending."""
    spectrum = frontend.spectrum
    rows, columns, depth = spectrum.rows, spectrum.columns, spectrum.depth

    def stage_one(negate_sine: bool) -> TableBuilder:
        return lambda _, output: _phase_nodes(output, rows, rows, rows, negate_sine)

    def twiddle(negate_sine: bool) -> TableBuilder:
        return lambda _, output: _phase_nodes(output, rows, columns, spectrum.n_fft, negate_sine)

    return {"stage_one_real": stage_one(False), "stage_one_imaginary": stage_one(True),
            "twiddle_real": twiddle(False), "twiddle_imaginary": twiddle(True),
            "stage_two": lambda _, output: _rotation_nodes(output, columns, depth),
            "frame_window": lambda frontend, output: _frame_window_nodes(frontend, output)}


def _phase_nodes(output: str, first: int, second: int, period: int, sine: bool,
                 negate: bool = True) -> Nodes:
    """``cos`` (or ``-sin``, or ``sin`` with ``negate=False``) of
    ``2 pi (i j mod period) / period`` for ``i < first``, ``j < second``."""
    p = output + "/"
    nodes, tables = _angle_nodes(p, (0, first), (0, second), period)
    negated = sine and negate
    nodes.append(helper.make_node("Sin" if sine else "Cos", [p + "phase"],
                                  [p + "wave" if negated else output]))
    if negated:
        nodes.append(helper.make_node("Neg", [p + "wave"], [output]))
    return nodes, tables


def _rotation_nodes(output: str, columns: int, depth: int) -> Nodes:
    """``[[cos, -sin], [sin, cos]]`` of ``2 pi (b d mod columns) / columns``: the split
    DFT's second stage, ``[re | im] -> [re | im]``."""
    p = output + "/"
    cos_nodes, cos_tables = _phase_nodes(p + "cos", columns, depth, columns, sine=False)
    sin_nodes, sin_tables = _phase_nodes(p + "sin", columns, depth, columns, sine=True,
                                         negate=False)
    nodes = cos_nodes + sin_nodes + [
        helper.make_node("Neg", [p + "sin"], [p + "minus_sin"]),
        helper.make_node("Concat", [p + "cos", p + "minus_sin"], [p + "top"], axis=1),
        helper.make_node("Concat", [p + "sin", p + "cos"], [p + "bottom"], axis=1),
        helper.make_node("Concat", [p + "top", p + "bottom"], [output], axis=0),
    ]
    return nodes, cos_tables + sin_tables


def _frame_window_nodes(frontend: FrontEnd, output: str) -> Nodes:
    """The periodic Hann window, centred in its frame by zeros, as (rows, columns)."""
    p = output + "/"
    spectrum = frontend.spectrum
    length = frontend.layout.window_length
    left = frontend.layout.first_sample
    window_nodes, window_tables = _hann_nodes(p + "window", length, symmetric=False)
    tables = window_tables + [
        _constant(p + "pads", np.array([left, spectrum.n_fft - length - left], dtype=np.int64)),
        _constant(p + "shape", np.array([spectrum.rows, spectrum.columns], dtype=np.int64)),
    ]
    nodes = window_nodes + [
        helper.make_node("Pad", [p + "window", p + "pads"], [p + "framed"]),
        helper.make_node("Reshape", [p + "framed", p + "shape"], [output]),
    ]
    return nodes, tables


def _hann_nodes(name: str, length: int, symmetric: bool) -> Nodes:
    """``0.5 - 0.5 cos(2 pi n / L)`` (periodic) or ``/ (L - 1)`` (symmetric, np.hanning)."""
    period = length - 1 if symmetric else length
    range_nodes, range_tables = _range(name + "/n", 0, length)
    tables = range_tables + [
        _constant(name + "/radians", np.float32(2.0 * np.pi / period)),
        _constant(name + "/half", np.float32(0.5)),
    ]
    nodes = range_nodes + [
        helper.make_node("Cast", [name + "/n"], [name + "/n_float"], to=onnx.TensorProto.FLOAT),
        helper.make_node("Mul", [name + "/n_float", name + "/radians"], [name + "/angle"]),
        helper.make_node("Cos", [name + "/angle"], [name + "/cos"]),
        helper.make_node("Mul", [name + "/cos", name + "/half"], [name + "/half_cos"]),
        helper.make_node("Sub", [name + "/half", name + "/half_cos"], [name]),
    ]
    return nodes, tables


def _mel_weight_nodes(frontend: FrontEnd, output: str) -> Nodes:
    """Slaney triangles ``max(0, min(rising, falling)) * 2 / width``, one row per place of
    the split-order spectrum (:meth:`earmark.frontend.fourier.FramePower.filterbank`): the bin
    there is ``c + rows * (j mod depth)``; bins outside every filter weigh zero."""
    p = output + "/"
    config = frontend.config
    edges = mel_edges(config.n_mels, config.fmin, filterbank_fmax(config, frontend.sample_rate))
    widths = np.diff(edges)
    spectrum = frontend.spectrum
    row = lambda values: np.asarray(values, dtype=np.float32)[None, :]  # noqa: E731
    c_nodes, c_tables = _range(p + "c", 0, spectrum.rows)
    j_nodes, j_tables = _range(p + "j", 0, 2 * spectrum.depth)
    tables = c_tables + j_tables + [
        _constant(p + "depth", np.int64(spectrum.depth)),
        _constant(p + "rows", np.int64(spectrum.rows)),
        _constant(p + "axis0", np.array([0], dtype=np.int64)),
        _constant(p + "axis1", np.array([1], dtype=np.int64)),
        _constant(p + "column", np.array([-1, 1], dtype=np.int64)),
        _constant(p + "hz_per_bin", np.float32(frontend.sample_rate / frontend.layout.n_fft)),
        _constant(p + "lower_edges", row(edges[:-2])),
        _constant(p + "upper_edges", row(edges[2:])),
        _constant(p + "rise_scale", row(1.0 / widths[:-1])),
        _constant(p + "fall_scale", row(1.0 / widths[1:])),
        _constant(p + "area_scale", row(2.0 / (edges[2:] - edges[:-2]))),
        _constant(p + "zero", np.float32(0.0)),
    ]
    nodes = c_nodes + j_nodes + [
        helper.make_node("Mod", [p + "j", p + "depth"], [p + "d"]),
        helper.make_node("Mul", [p + "d", p + "rows"], [p + "d_bins"]),
        helper.make_node("Unsqueeze", [p + "c", p + "axis1"], [p + "c_column"]),
        helper.make_node("Unsqueeze", [p + "d_bins", p + "axis0"], [p + "d_row"]),
        helper.make_node("Add", [p + "c_column", p + "d_row"], [p + "bins_grid"]),
        helper.make_node("Reshape", [p + "bins_grid", p + "column"], [p + "bins"]),
        helper.make_node("Cast", [p + "bins"], [p + "bins_float"], to=onnx.TensorProto.FLOAT),
        helper.make_node("Mul", [p + "bins_float", p + "hz_per_bin"], [p + "frequencies"]),
        helper.make_node("Sub", [p + "frequencies", p + "lower_edges"], [p + "above"]),
        helper.make_node("Mul", [p + "above", p + "rise_scale"], [p + "rising"]),
        helper.make_node("Sub", [p + "upper_edges", p + "frequencies"], [p + "below"]),
        helper.make_node("Mul", [p + "below", p + "fall_scale"], [p + "falling"]),
        helper.make_node("Min", [p + "rising", p + "falling"], [p + "triangle"]),
        helper.make_node("Max", [p + "triangle", p + "zero"], [p + "clipped"]),
        helper.make_node("Mul", [p + "clipped", p + "area_scale"], [output]),
    ]
    return nodes, tables


def shorten_names(model: onnx.ModelProto) -> None:
    """Rename every internal tensor to a short id and drop node names.

    On a small keyword model the exporter's descriptive names take more
    bytes than an int8 network's weights; inputs and outputs keep theirs.
    """
    keep = {value.name for value in model.graph.input} | \
        {value.name for value in model.graph.output}
    short: dict[str, str] = {}

    def rename(name: str) -> str:
        if not name or name in keep:
            return name
        if name not in short:
            short[name] = f"t{len(short):x}"
        return short[name]

    for table in model.graph.initializer:
        table.name = rename(table.name)
    for node in model.graph.node:
        node.name = ""
        node.input[:] = [rename(n) for n in node.input]
        node.output[:] = [rename(n) for n in node.output]
