"""From the trained torch network to ONNX graphs, and joining them into one.

The front-end and the network are exported as separate pieces (waveform ->
frames, frames -> features, features -> probabilities) with torch's dynamo
exporter, then joined with :func:`assemble`: the bundle's one graph, or the
pieces a stream runs separately. Keeping them apart lets int8 quantize the
network alone.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import torch

from earmark.export.tables import compact_frontend, shorten_names
from earmark.frontend.module import FrontEnd
from earmark.runtime.graph_input import GraphFeed


class _Frames(torch.nn.Module):
    """Waveform -> per-frame levels (the part a stream computes incrementally)."""

    def __init__(self, frontend: FrontEnd):
        super().__init__()
        self.frontend = frontend
        self.min_samples = frontend.min_samples

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return self.frontend.frames(waveform)


class _Finish(torch.nn.Module):
    """One window's frames -> features (relative levels, DCT, deltas)."""

    def __init__(self, frontend: FrontEnd):
        super().__init__()
        self.frontend = frontend

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.frontend.finish(frames)


class _ProbabilityHead(torch.nn.Module):
    """The network on features, ending in softmax."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(features), dim=-1)


@dataclass
class Parts:
    """The three exported pieces, joined for the bundle and for streaming."""

    frames: Path        # waveform -> frames
    finish: Path        # frames -> features
    network: Path       # features -> probabilities


def export_parts(classifier, example: torch.Tensor, scratch: Path) -> Parts:
    """Export the classifier's three pieces into ``scratch``, traced on ``example`` windows."""
    frontend = classifier.frontend
    parts = Parts(scratch / "frames.onnx", scratch / "finish.onnx", scratch / "network.onnx")
    with torch.no_grad():
        frames = frontend.frames(example)
        features = frontend.finish(frames)
    export_module(_Frames(frontend), example, parts.frames, "waveform", "frames",
                  dynamic_length=True)
    export_module(_Finish(frontend), frames, parts.finish, "frames", "features",
                  dynamic_length=False)
    export_module(_ProbabilityHead(classifier.model), features, parts.network, "features",
                  "probabilities", dynamic_length=False)
    return parts


def export_module(module: torch.nn.Module, example: torch.Tensor, path: Path,
                  input_name: str, output_name: str, dynamic_length: bool) -> None:
    """torch.onnx dynamo export with a dynamic batch (and optionally length)."""
    module = module.eval()
    dims = {0: torch.export.Dim("batch")}
    if dynamic_length:
        dims[1] = torch.export.Dim("samples", min=2 * max(getattr(module, "min_samples", 2), 2))
    first_argument = next(iter(inspect.signature(module.forward).parameters))
    with quiet_export():
        torch.onnx.export(module, (example,), str(path), dynamo=True, external_data=False,
                          input_names=[input_name], output_names=[output_name],
                          dynamic_shapes={first_argument: dims}, verbose=False)


def export_with_states(module: torch.nn.Module, examples: tuple, path: Path,
                       inputs: list[str], outputs: list[str], dynamic_shapes=None) -> None:
    """torch.onnx dynamo export of a module with several inputs and outputs."""
    with quiet_export():
        torch.onnx.export(module.eval(), examples, str(path), dynamo=True,
                          external_data=False, input_names=inputs, output_names=outputs,
                          dynamic_shapes=dynamic_shapes, verbose=False)


@contextlib.contextmanager
def quiet_export():
    """No gradients, and none of the exporter's chatter (a line per op it cannot find)."""
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with warnings.catch_warnings(), torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


_PREFIXES = {"waveform": "frontend/", "frames": "finish/", "features": "network/"}


def assemble(pieces: list[Path | onnx.ModelProto],
             frontend: FrontEnd | None) -> onnx.ModelProto:
    """Join consecutive pieces (files or graphs; each one's output is the next one's input)
    into one graph, at the highest opset among them.

    The graph keeps its outer input and output names; with ``frontend`` the
    front-end tables become formulas and internal names are shortened.
    """
    models = [piece if isinstance(piece, onnx.ModelProto) else onnx.load(str(piece))
              for piece in pieces]
    opset = max(opset_of(model) for model in models)
    prefixed = [onnx.compose.add_prefix(at_opset(model, opset),
                                        _PREFIXES[model.graph.input[0].name])
                for model in models]
    joined = prefixed[0]
    for following in prefixed[1:]:
        joined = onnx.compose.merge_models(
            joined, following, io_map=[(joined.graph.output[0].name,
                                         following.graph.input[0].name)])
    _restore_outer_names(joined, models[0].graph.input[0].name,
                         models[-1].graph.output[0].name)
    if frontend is not None:
        compact_frontend(joined, frontend)
        shorten_names(joined)
    return joined


def _restore_outer_names(joined: onnx.ModelProto, input_name: str, output_name: str) -> None:
    outer = {joined.graph.input[0].name: input_name, joined.graph.output[0].name: output_name}
    joined.graph.input[0].name = input_name
    joined.graph.output[0].name = output_name
    for node in joined.graph.node:
        node.input[:] = [outer.get(name, name) for name in node.input]
        node.output[:] = [outer.get(name, name) for name in node.output]


def opset_of(model: onnx.ModelProto) -> int:
    """The graph's version of the default ONNX operator set."""
    return max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def at_opset(model: onnx.ModelProto, opset: int) -> onnx.ModelProto:
    """The graph converted to ``opset`` (itself when it is at it already)."""
    if opset_of(model) == opset:
        return model
    return onnx.version_converter.convert_version(model, opset)


def session(graph: onnx.ModelProto) -> onnxruntime.InferenceSession:
    """An onnxruntime session on an in-memory graph."""
    return onnxruntime.InferenceSession(graph.SerializeToString(),
                                        providers=["CPUExecutionProvider"])


def run_graph(graph: onnx.ModelProto, waveforms: np.ndarray, batch: int = 64,
              feed: GraphFeed | None = None) -> np.ndarray:
    """The graph's probabilities for ``(windows, samples)`` waveforms, in batches;
    ``feed`` turns a batch into the graph's inputs (default: the waveform itself)."""
    runner = session(graph)
    feed = feed or (lambda waveforms: {"waveform": waveforms})
    return np.concatenate([runner.run(None, feed(waveforms[i:i + batch]))[0]
                           for i in range(0, len(waveforms), batch)])
