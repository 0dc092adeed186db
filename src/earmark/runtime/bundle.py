"""Loading a bundle: the ONNX graph and its checked metadata. No code is executed.

:func:`load_bundle` checks the metadata (see :mod:`earmark.runtime.metadata`)
against the graph before anything is scored: as many labels as the graph
has outputs, the header embedded in ``model.onnx`` agreeing with
``earmark.json``, the input named ``waveform``, and the file's sha256 where
the bundle records it. A ``model.onnx`` copied from another bundle fails
here, with the field that disagrees, instead of giving wrong labels later.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime

from earmark.errors import DataError
from earmark.input_limits import check_threads
from earmark.runtime.graph_input import (GraphFeed, graph_columns, graph_dimensions,
                                         graph_feed, graph_input_name,
                                         features_playback_rates)
from earmark.runtime.metadata import (
    BUNDLE_JSON,
    BUNDLE_MODEL,
    GRAPH_HEADER_KEY,
    MODEL_INPUT,
    STREAM_FRAMES,
    STREAM_STEP,
    STREAM_WINDOW,
    BundleMetadata,
    file_sha256,
    parse_metadata,
    read_metadata_file,
)

__all__ = ["BUNDLE_JSON", "BUNDLE_MODEL", "STREAM_FRAMES", "STREAM_STEP", "STREAM_WINDOW",
           "Bundle", "BundleMetadata", "load_bundle"]

logger = logging.getLogger(__name__)
_WHOLE_FOLDER = ("re-export the bundle with `earmark export`, or copy the whole bundle "
                 "folder rather than single files")


@dataclass
class Bundle:
    """An exported model: raw waveform at ``sample_rate`` in, probabilities out.

    ``path`` is the bundle folder, or the ``model.onnx`` file when it was
    loaded alone (its metadata then comes from the graph's header).
    """

    path: Path
    metadata: BundleMetadata
    session: onnxruntime.InferenceSession
    #: Waveforms -> the graph's inputs (a pretrained network first, where the graph's
    #: ``input`` names one).
    feed: GraphFeed = field(default=lambda waveforms: {MODEL_INPUT: waveforms}, repr=False)

    @property
    def labels(self) -> list[str]:
        """The class names, in the order of the probabilities."""
        return list(self.metadata.labels)

    @property
    def sample_rate(self) -> int:
        """The rate (Hz) the model takes its waveform at."""
        return self.metadata.sample_rate

    @property
    def window_samples(self) -> int:
        """Samples in one analysis window (the graph's input length)."""
        return self.metadata.window_samples

    @property
    def window_hop_samples(self) -> int:
        """Samples between the windows of a long recording, as in training."""
        return self.metadata.window_hop_samples

    @property
    def model_path(self) -> Path:
        """The ``model.onnx`` file."""
        return self.path / BUNDLE_MODEL if self.path.is_dir() else self.path

    def predict_proba(self, waveforms: np.ndarray) -> np.ndarray:
        """``(batch, samples)`` float32 at :attr:`sample_rate` -> ``(batch, classes)``."""
        waveforms = np.ascontiguousarray(waveforms, dtype=np.float32)
        if waveforms.ndim == 1:
            waveforms = waveforms[None, :]
        if waveforms.ndim != 2 or waveforms.shape[1] != self.window_samples:
            raise DataError(f"{self.path}: expects (batch, {self.window_samples}) samples at "
                            f"{self.sample_rate} Hz, got shape {waveforms.shape}; cut longer "
                            "audio with earmark.runtime.Classifier")
        return self.session.run(None, self.feed(waveforms))[0]


def load_bundle(path: str | os.PathLike, threads: int = 0) -> Bundle:
    """Open a bundle folder (or its ``model.onnx`` alone, metadata read from the graph).

    Parameters
    ----------
    path : str or PathLike
        A folder written by ``earmark export``, or a ``model.onnx``.
    threads : int
        onnxruntime intra-op threads; 0 lets onnxruntime choose.

    Raises
    ------
    DataError
        No bundle there, a graph onnxruntime cannot load, metadata with a
        missing or wrong field, or metadata that does not fit the graph.
    """
    path = Path(path)
    model_path = path / BUNDLE_MODEL if path.is_dir() else path
    if not model_path.is_file():
        raise DataError(f"{path}: no bundle here (expected a folder with {BUNDLE_MODEL} and "
                        f"{BUNDLE_JSON}, written by `earmark export`)")
    session = open_session(model_path, threads)
    header = _graph_header(session, model_path)
    json_path = path / BUNDLE_JSON if path.is_dir() else None
    if json_path is not None and json_path.is_file():
        metadata = read_metadata_file(json_path)
        _check_same_model(metadata, header, json_path, model_path)
    elif header is not None:
        if path.is_dir():
            logger.warning("%s: no %s, so the model alone, from its %s header: without the "
                           "calibrated threshold, smoothing and stream graphs; copy the whole "
                           "bundle folder", path, BUNDLE_JSON, BUNDLE_MODEL)
        metadata, json_path = header, model_path
    else:
        raise DataError(f"{path}: no {BUNDLE_JSON} and no earmark header in {BUNDLE_MODEL}; "
                        "re-export the bundle with `earmark export`")
    feed = graph_feed(metadata.input, metadata.sample_rate, threads,
                      features_playback_rates(metadata.features))
    _check_graph(metadata, session, feed, json_path, model_path)
    return Bundle(model_path.parent if path.is_dir() else model_path, metadata, session, feed)


def open_session(model_path: Path, threads: int) -> onnxruntime.InferenceSession:
    """An onnxruntime CPU session on ``model_path`` (``threads`` intra-op, 0 = auto);
    a file onnxruntime cannot load is a :class:`DataError`."""
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = check_threads(threads)
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        return onnxruntime.InferenceSession(str(model_path), options,
                                            providers=["CPUExecutionProvider"])
    except Exception as error:
        raise DataError(f"{model_path}: not a loadable ONNX model ({error})") from error


def _graph_header(session: onnxruntime.InferenceSession,
                  model_path: Path) -> BundleMetadata | None:
    """The header ``earmark export`` embeds in the graph, checked; None if there is none."""
    text = session.get_modelmeta().custom_metadata_map.get(GRAPH_HEADER_KEY)
    if text is None:
        return None
    return parse_metadata(text, f"{model_path} (its embedded {GRAPH_HEADER_KEY!r} header)")


def _check_same_model(metadata: BundleMetadata, header: BundleMetadata | None,
                      json_path: Path, model_path: Path) -> None:
    """The graph is the one ``earmark.json`` describes: same header fields, same bytes."""
    disagreements = [] if header is None else metadata.disagreements(header)
    if header is None:
        logger.debug("%s has no embedded header to compare with %s", model_path, json_path)
    if disagreements:
        key, ours, theirs = disagreements[0]
        raise DataError(f"{model_path} does not belong to {json_path}: field {key!r} is "
                        f"{_brief(theirs)} in the graph's embedded header but "
                        f"{_brief(ours)} in {json_path.name} (the model was probably "
                        f"copied from another bundle); {_WHOLE_FOLDER}")
    if metadata.model_sha256 is not None:
        actual = file_sha256(model_path)
        if actual != metadata.model_sha256:
            raise DataError(f"{model_path} does not belong to {json_path}: its sha256 is "
                            f"{actual[:16]}..., field 'model_sha256' says "
                            f"{metadata.model_sha256[:16]}... (the file was changed or "
                            f"replaced after export); {_WHOLE_FOLDER}")


def _check_graph(metadata: BundleMetadata, session: onnxruntime.InferenceSession,
                 feed: GraphFeed, source: Path, model_path: Path) -> None:
    """One input named ``waveform`` (or ``frames`` after a pretrained network), as long
    as the window if fixed; a score per label."""
    inputs = session.get_inputs()
    expected = graph_input_name(metadata.input)
    if [item.name for item in inputs] != [expected]:
        raise DataError(f"{model_path}: the graph's inputs are {[i.name for i in inputs]}, "
                        f"not [{expected!r}]: not a model written by `earmark export`; "
                        "re-export the bundle")
    length = inputs[0].shape[-1] if inputs[0].shape else None
    columns = graph_columns(metadata.input, metadata.window_samples, metadata.sample_rate)
    if columns is None and isinstance(length, int) and length != metadata.window_samples:
        raise DataError(f"{source}: field 'window_samples' is {metadata.window_samples} but "
                        f"{model_path.name} takes windows of {length} samples; "
                        f"{_WHOLE_FOLDER}")
    if columns is not None and length != columns:
        raise DataError(f"{source}: a window of {metadata.window_samples} samples gives "
                        f"{columns} columns of {metadata.input} but {model_path.name} takes "
                        f"{length}; {_WHOLE_FOLDER}")
    dimensions = graph_dimensions(metadata.input, metadata.features)
    if dimensions is not None and inputs[0].shape[1] != dimensions:
        raise DataError(f"{source}: its features.playback_rates give columns of {dimensions} "
                        f"numbers but {model_path.name} takes {inputs[0].shape[1]}; "
                        f"{_WHOLE_FOLDER}")
    classes = _output_classes(metadata, session, feed, model_path)
    if classes != len(metadata.labels):
        raise DataError(f"{source}: field 'labels' lists {len(metadata.labels)} labels but "
                        f"{model_path.name} scores {classes} classes; {_WHOLE_FOLDER}")


def _output_classes(metadata: BundleMetadata, session: onnxruntime.InferenceSession,
                    feed: GraphFeed, model_path: Path) -> int:
    """The last dimension of the first output: declared, or seen on one zero window."""
    shape = session.get_outputs()[0].shape
    if shape and isinstance(shape[-1], int):
        return shape[-1]
    window = np.zeros((1, metadata.window_samples), dtype=np.float32)
    try:
        return int(session.run(None, feed(window))[0].shape[-1])
    except Exception as error:
        raise DataError(f"{model_path}: scoring one zero window of {metadata.window_samples} "
                        f"samples failed ({error}); the metadata's 'window_samples' may not fit "
                        f"this graph: {_WHOLE_FOLDER}") from error


def _brief(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
