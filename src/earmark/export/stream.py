"""The graphs a stream runs: new frames, a window of frames through the network, and for a
valid-padded DS-CNN the network one frame at a time (each layer's new column only)."""

from __future__ import annotations

from pathlib import Path

import onnx
import torch

from earmark.export.graph import export_with_states
from earmark.export.tables import compact_frontend, shorten_names
from earmark.frontend.module import FrontEnd
from earmark.models.dscnn_stream import DSCNNStream, state_shapes, stream_layout


def stream_description(frontend: FrontEnd, window: int) -> dict:
    """How a stream cuts frames: only frame-local front-ends can be computed incrementally."""
    return {"frames_per_window": frontend.frames_for(window),
            "frame_hop_samples": frontend.hop_length, "frame_samples": frontend.n_fft,
            "incremental": not frontend.config.center and frontend.kind != "spectrogram128"}


def export_step(classifier, path: Path, window_frames: int) -> dict:
    """The stream step of a streamable DS-CNN (frames and states in, a result per frame out);
    returns its layout for the bundle's metadata."""
    model, frontend = classifier.model.eval(), classifier.frontend
    layout = stream_layout(model, window_frames)
    shapes = state_shapes(model, frontend)
    # Two new frames in the example: their number stays a dynamic dimension.
    frames = torch.zeros(1, 2, frontend.n_fft)
    count = torch.export.Dim("frames", min=1, max=1 << 16)
    step = DSCNNStream(model, frontend)
    states = tuple(torch.zeros(shape) for shape in shapes.values())
    export_with_states(step, (frames, *states), path,
                       ["frames", *shapes], ["probabilities", *(f"next_{name}" for name in shapes)],
                       dynamic_shapes=({1: count}, None, None, None))
    graph = compact_frontend(onnx.load(str(path)), frontend)
    shorten_names(graph)
    onnx.save(graph, str(path))
    return {**layout, "states": shapes}
