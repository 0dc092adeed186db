"""Loading a bundle: the ONNX graph and its JSON metadata. No code is executed."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime

from earmark.errors import DataError

BUNDLE_MODEL = "model.onnx"
BUNDLE_JSON = "earmark.json"
#: The same network in two pieces, for streams that compute only new frames.
STREAM_FRAMES = "stream/frames.onnx"
STREAM_WINDOW = "stream/window.onnx"
#: A streamable network one frame at a time (its classifier is in the JSON).
STREAM_STEP = "stream/step.onnx"
_REQUIRED = ("labels", "sample_rate", "window_samples", "hop_samples")


@dataclass
class Bundle:
    """An exported model: raw waveform at ``sample_rate`` in, probabilities out."""

    path: Path
    metadata: dict
    session: onnxruntime.InferenceSession

    @property
    def labels(self) -> list[str]:
        return list(self.metadata["labels"])

    @property
    def sample_rate(self) -> int:
        return int(self.metadata["sample_rate"])

    @property
    def window_samples(self) -> int:
        return int(self.metadata["window_samples"])

    @property
    def hop_samples(self) -> int:
        return int(self.metadata["hop_samples"])

    def predict_proba(self, waveforms: np.ndarray) -> np.ndarray:
        """``(batch, samples)`` float32 at :attr:`sample_rate` -> ``(batch, classes)``."""
        waveforms = np.ascontiguousarray(waveforms, dtype=np.float32)
        if waveforms.ndim == 1:
            waveforms = waveforms[None, :]
        if waveforms.ndim != 2 or waveforms.shape[1] != self.window_samples:
            raise DataError(f"{self.path}: expects (batch, {self.window_samples}) samples at "
                            f"{self.sample_rate} Hz, got shape {waveforms.shape}; cut longer "
                            "audio with earmark.runtime.Classifier")
        return self.session.run(None, {"waveform": waveforms})[0]


def load_bundle(path: str | os.PathLike, threads: int = 0) -> Bundle:
    """Open a bundle folder (or its ``model.onnx`` alone, metadata read from the graph).

    Parameters
    ----------
    threads : int
        onnxruntime intra-op threads; 0 lets onnxruntime choose.
    """
    path = Path(path)
    model_path = path / BUNDLE_MODEL if path.is_dir() else path
    if not model_path.is_file():
        raise DataError(f"{path}: no bundle here (expected a folder with {BUNDLE_MODEL} and "
                        f"{BUNDLE_JSON}, written by `earmark export`)")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        session = onnxruntime.InferenceSession(str(model_path), options,
                                               providers=["CPUExecutionProvider"])
    except Exception as error:
        raise DataError(f"{model_path}: not a loadable ONNX model ({error})") from error
    metadata = _read_metadata(path, model_path, session)
    return Bundle(model_path.parent if path.is_dir() else model_path, metadata, session)


def _read_metadata(path: Path, model_path: Path, session) -> dict:
    json_path = path / BUNDLE_JSON if path.is_dir() else None
    if json_path is not None and json_path.is_file():
        source, text = json_path, json_path.read_text(encoding="utf-8")
    else:
        source = model_path
        text = session.get_modelmeta().custom_metadata_map.get("earmark")
        if text is None:
            raise DataError(f"{path}: no {BUNDLE_JSON} and no earmark metadata in the graph")
    try:
        metadata = json.loads(text)
    except json.JSONDecodeError as error:
        raise DataError(f"{source}: bundle metadata is not valid JSON ({error})") from error
    missing = [key for key in _REQUIRED if key not in metadata]
    if missing:
        raise DataError(f"{source}: bundle metadata lacks {missing}; re-export the run")
    return metadata
