"""The anomaly bundle: a graph that scores how far each window is from a machine's normal sound.

An anomaly bundle is a folder written by ``earmark anomaly export``::

    model.onnx     waveform (batch, window_samples) float32 at sample_rate -> score (batch,)
                   float32: higher is more anomalous, any real number; the batch is
                   dynamic, the window length fixed
    earmark.json   {"format": "earmark-anomaly", "format_version": 1, "method": "...",
                    "sample_rate", "window_samples", "hop_samples", "threshold",
                    "false_alarm_rate", "aggregate": "mean", "model_sha256",
                    and the free-form records "settings", "validation", "parity", "machine"}

A window (or a recording, judged by the mean of its windows' scores) whose
score exceeds ``threshold`` is anomalous; ``false_alarm_rate`` is the
validation false-alarm rate the threshold was set for.

:func:`load_anomaly_bundle` checks every field (:class:`AnomalyMetadata`),
the hash of ``model.onnx``, and the graph's input and output names and
shapes before anything is scored; each refusal is a
:class:`~earmark.errors.DataError` naming the file and the field. A
classification bundle is refused by name (use ``earmark classify``), as
:func:`earmark.runtime.bundle.load_bundle` refuses an anomaly bundle.
Nothing is unpickled and no torch is imported.

    >>> bundle = load_anomaly_bundle("bundles/fan")
    >>> bundle.score_windows(windows)            # (n, window_samples) -> (n,)
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import onnxruntime

from earmark.errors import DataError
from earmark.input_limits import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE
from earmark.runtime.bundle import open_session
from earmark.runtime.metadata import (
    ANOMALY_FORMAT_NAME,
    BUNDLE_JSON,
    BUNDLE_MODEL,
    FORMAT_NAME,
    MAX_WINDOW_SECONDS,
    MODEL_INPUT,
    MetadataFields,
    file_sha256,
)

__all__ = ["ANOMALY_FORMAT_NAME", "ANOMALY_FORMAT_VERSION", "SCORE_OUTPUT", "AnomalyBundle",
           "AnomalyMetadata", "load_anomaly_bundle", "read_anomaly_metadata"]

#: The newest anomaly bundle format this earmark reads (and the one export writes).
ANOMALY_FORMAT_VERSION = 1
#: The graph's output: one score per window.
SCORE_OUTPUT = "score"
#: How window scores judge a recording.
ANOMALY_AGGREGATES = ("mean",)
#: Free-form records of ``earmark.json``, kept as they are.
ANOMALY_RECORDS = ("settings", "validation", "parity", "machine")
#: The command that writes anomaly bundles, named in every refusal.
ANOMALY_EXPORT = "earmark anomaly export"
#: Windows scored in one call of the graph.
SCORE_BATCH = 64

_KNOWN = ("format", "format_version", "method", "sample_rate", "window_samples", "hop_samples",
          "threshold", "false_alarm_rate", "aggregate", "model_sha256", "earmark_version",
          *ANOMALY_RECORDS)
_WHOLE_FOLDER = (f"re-export the bundle with `{ANOMALY_EXPORT}`, or copy the whole bundle "
                 "folder rather than single files")


@dataclass(frozen=True)
class AnomalyMetadata:
    """Everything an anomaly bundle's ``earmark.json`` says, typed and checked.

    ``window_hop_samples`` is written as ``hop_samples``. Keys this earmark
    does not know are kept, untouched, in ``extra``.
    """

    format_version: int
    method: str
    sample_rate: int
    window_samples: int
    window_hop_samples: int
    threshold: float
    false_alarm_rate: float
    model_sha256: str
    aggregate: str = "mean"
    earmark_version: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    validation: dict[str, Any] = field(default_factory=dict)
    parity: dict[str, Any] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, mapping: Mapping[str, Any],
                  source: str | os.PathLike) -> AnomalyMetadata:
        """Check ``mapping`` (a parsed ``earmark.json``) field by field.

        Raises
        ------
        DataError
            Naming ``source`` and the field: a missing field, a wrong type or
            value, a classification bundle's metadata, or a format newer than
            this earmark reads.
        """
        fields = MetadataFields(mapping, str(source), export=ANOMALY_EXPORT)
        version = _format_version(fields)
        rate = fields.integer("sample_rate", MIN_SAMPLE_RATE, MAX_SAMPLE_RATE, unit="Hz")
        longest = MAX_WINDOW_SECONDS * rate
        method = fields.text("method", None)
        if not method or not method.strip():
            raise fields.error("method", "the name of the scoring method (a non-empty string)",
                               fields.get("method"))
        return cls(
            format_version=version, method=method, sample_rate=rate,
            window_samples=fields.integer("window_samples", 1, longest),
            window_hop_samples=fields.integer("hop_samples", 1, longest),
            threshold=fields.number("threshold"),
            false_alarm_rate=fields.number("false_alarm_rate", 0.0, 1.0),
            model_sha256=_sha256(fields),
            aggregate=fields.text("aggregate", "mean", choices=ANOMALY_AGGREGATES),
            earmark_version=fields.text("earmark_version", None),
            **{key: fields.record(key) for key in ANOMALY_RECORDS},
            extra=fields.unknown(_KNOWN))

    def to_json(self) -> dict[str, Any]:
        """The dict to write as ``earmark.json`` (``from_json`` of it gives ``self`` back)."""
        record = {"format": ANOMALY_FORMAT_NAME, "format_version": self.format_version,
                  "method": self.method, "sample_rate": self.sample_rate,
                  "window_samples": self.window_samples,
                  "hop_samples": self.window_hop_samples, "threshold": self.threshold,
                  "false_alarm_rate": self.false_alarm_rate, "aggregate": self.aggregate,
                  "model_sha256": self.model_sha256}
        if self.earmark_version is not None:
            record["earmark_version"] = self.earmark_version
        record.update({key: copy.deepcopy(getattr(self, key)) for key in ANOMALY_RECORDS})
        return {**record, **copy.deepcopy(self.extra)}


def read_anomaly_metadata(path: str | os.PathLike) -> AnomalyMetadata:
    """Read and check an anomaly bundle's ``earmark.json``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: cannot read the bundle metadata ({error})") from error
    try:
        mapping = json.loads(text)
    except json.JSONDecodeError as error:
        raise DataError(f"{path}: bundle metadata is not valid JSON ({error}); "
                        f"re-export the bundle with `{ANOMALY_EXPORT}`") from error
    return AnomalyMetadata.from_json(mapping, path)


def _format_version(fields: MetadataFields) -> int:
    """Checked first: a classification bundle, or a newer format, is named as such."""
    name = fields.mapping.get("format")
    if name == FORMAT_NAME or (name is None and "labels" in fields.mapping):
        raise DataError(f"{fields.source}: field 'format' is {FORMAT_NAME!r}: this is a "
                        "classification bundle, not an anomaly bundle: use `earmark classify` "
                        "(or earmark.runtime.Classifier)")
    if name != ANOMALY_FORMAT_NAME:
        raise fields.error("format", f"{ANOMALY_FORMAT_NAME!r} (an anomaly bundle)", name)
    version = fields.get("format_version")
    if isinstance(version, int) and not isinstance(version, bool) \
            and version > ANOMALY_FORMAT_VERSION:
        raise DataError(f"{fields.source}: field 'format_version' is {version}, newer than "
                        f"this earmark reads (up to {ANOMALY_FORMAT_VERSION}): upgrade earmark "
                        "(pip install --upgrade earmark) to load this bundle")
    return fields.integer("format_version", 1, ANOMALY_FORMAT_VERSION)


def _sha256(fields: MetadataFields) -> str:
    value = fields.get("model_sha256")
    if not isinstance(value, str) or len(value) != 64 \
            or any(ch not in "0123456789abcdef" for ch in value):
        raise fields.error("model_sha256", f"64 lowercase hex digits (the sha256 of "
                           f"{BUNDLE_MODEL})", value)
    return value


@dataclass
class AnomalyBundle:
    """An exported anomaly model: windows of raw waveform in, one score per window out."""

    path: Path
    metadata: AnomalyMetadata
    session: onnxruntime.InferenceSession

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
        """Samples between the windows of a long recording."""
        return self.metadata.window_hop_samples

    @property
    def threshold(self) -> float:
        """A window or recording scoring above this is anomalous."""
        return self.metadata.threshold

    @property
    def model_path(self) -> Path:
        """The ``model.onnx`` file."""
        return self.path / BUNDLE_MODEL

    def score_windows(self, waveforms: np.ndarray, batch_size: int = SCORE_BATCH) -> np.ndarray:
        """``(n, window_samples)`` float32 at :attr:`sample_rate` -> ``(n,)`` scores.

        A single ``(window_samples,)`` window gives one score in a ``(1,)``
        array. The graph runs ``batch_size`` windows at a time. Scores are
        returned as the graph gives them (not checked for finiteness: see
        :func:`earmark.runtime.anomaly_score.score_blocks`).
        """
        waveforms = np.asarray(waveforms, dtype=np.float32)
        if waveforms.ndim == 1:
            waveforms = waveforms[None, :]
        if waveforms.ndim != 2 or waveforms.shape[1] != self.window_samples:
            raise DataError(f"{self.path}: expects (windows, {self.window_samples}) samples at "
                            f"{self.sample_rate} Hz, got shape {waveforms.shape}; cut longer "
                            "audio with earmark.runtime.anomaly_score.score_file")
        batch_size = max(1, int(batch_size))
        scores = [self.session.run(None, {MODEL_INPUT: np.ascontiguousarray(
                      waveforms[start:start + batch_size])})[0].reshape(-1)
                  for start in range(0, len(waveforms), batch_size)]
        return np.concatenate(scores) if scores else np.zeros(0, dtype=np.float32)


def load_anomaly_bundle(path: str | os.PathLike, threads: int = 0) -> AnomalyBundle:
    """Open an anomaly bundle folder written by ``earmark anomaly export``.

    Parameters
    ----------
    path : str or PathLike
        The bundle folder (or its ``model.onnx``; the folder is then its parent).
    threads : int
        onnxruntime intra-op threads; 0 lets onnxruntime choose.

    Raises
    ------
    DataError
        No bundle there; a classification bundle; metadata with a missing or
        wrong field; a ``model.onnx`` whose sha256 is not ``model_sha256``;
        a graph onnxruntime cannot load, or whose input, output or window
        length does not fit the metadata.
    """
    path = Path(path)
    folder = path.parent if path.is_file() and path.name == BUNDLE_MODEL else path
    json_path, model_path = folder / BUNDLE_JSON, folder / BUNDLE_MODEL
    if not folder.is_dir() or not json_path.is_file():
        raise DataError(f"{path}: no anomaly bundle here (expected a folder with "
                        f"{BUNDLE_MODEL} and {BUNDLE_JSON}, written by `{ANOMALY_EXPORT}`)")
    metadata = read_anomaly_metadata(json_path)     # first: names a classification bundle
    if not model_path.is_file():
        raise DataError(f"{folder}: {BUNDLE_MODEL} is missing; {_WHOLE_FOLDER}")
    actual = file_sha256(model_path)
    if actual != metadata.model_sha256:
        raise DataError(f"{model_path} does not belong to {json_path}: its sha256 is "
                        f"{actual[:16]}..., field 'model_sha256' says "
                        f"{metadata.model_sha256[:16]}... (the file was changed or replaced "
                        f"after export); {_WHOLE_FOLDER}")
    session = open_session(model_path, threads)
    _check_graph(metadata, session, json_path, model_path)
    return AnomalyBundle(folder, metadata, session)


def _check_graph(metadata: AnomalyMetadata, session: onnxruntime.InferenceSession,
                 json_path: Path, model_path: Path) -> None:
    """``waveform`` (batch, window_samples) float32 in, ``score`` (batch,) out."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if [item.name for item in inputs] != [MODEL_INPUT] or inputs[0].type != "tensor(float)":
        raise DataError(f"{model_path}: the graph's inputs are "
                        f"{[(i.name, i.type) for i in inputs]}, not one float tensor named "
                        f"{MODEL_INPUT!r}: not a model written by `{ANOMALY_EXPORT}`")
    if [item.name for item in outputs] != [SCORE_OUTPUT]:
        raise DataError(f"{model_path}: the graph's outputs are {[o.name for o in outputs]}, "
                        f"not [{SCORE_OUTPUT!r}]: not an anomaly model written by "
                        f"`{ANOMALY_EXPORT}` (a classifier's graph outputs 'probabilities')")
    shape = inputs[0].shape
    if len(shape) != 2:
        raise DataError(f"{model_path}: input {MODEL_INPUT!r} has shape {shape}, not "
                        f"(batch, samples); {_WHOLE_FOLDER}")
    if isinstance(shape[1], int) and shape[1] != metadata.window_samples:
        raise DataError(f"{json_path}: field 'window_samples' is {metadata.window_samples} but "
                        f"{model_path.name} takes windows of {shape[1]} samples; "
                        f"{_WHOLE_FOLDER}")
    if isinstance(shape[0], int):
        raise DataError(f"{model_path}: the graph's batch dimension is fixed at {shape[0]} "
                        f"window(s); an anomaly bundle takes any number: {_WHOLE_FOLDER}")
    _check_output(metadata, session, json_path, model_path)


def _check_output(metadata: AnomalyMetadata, session: onnxruntime.InferenceSession,
                  json_path: Path, model_path: Path) -> None:
    """Two zero windows (digital silence) give two finite scores: the declared window fits,
    one score per window, and silence does not break the graph."""
    windows = np.zeros((2, metadata.window_samples), dtype=np.float32)
    try:
        scores = session.run(None, {MODEL_INPUT: windows})[0]
    except Exception as error:
        raise DataError(f"{model_path}: scoring two zero windows of {metadata.window_samples} "
                        f"samples failed ({error}); field 'window_samples' of {json_path.name} "
                        f"may not fit this graph: {_WHOLE_FOLDER}") from error
    if np.shape(scores) != (2,):
        raise DataError(f"{model_path}: output {SCORE_OUTPUT!r} has shape {np.shape(scores)} "
                        f"for 2 windows, not (2,): one score per window is the contract; "
                        f"{_WHOLE_FOLDER}")
    if not np.all(np.isfinite(scores)):
        raise DataError(f"{model_path}: digital silence scores {np.asarray(scores).tolist()}, "
                        f"not a number: the graph divides by or takes the log of zero; "
                        f"re-export the run with this earmark (`{ANOMALY_EXPORT}`)")
