"""The bundle contract: what ``earmark.json`` and the header inside ``model.onnx`` hold.

A bundle is a folder written by ``earmark export``::

    model.onnx           waveform (batch, samples) float32 -> probabilities (batch, classes);
                         its metadata_props key "earmark" holds the header (below)
    earmark.json         the header plus configs, metrics, parity, footprint, stream layout
                         and (format_version 2 on) the sha256 of model.onnx
    stream/frames.onnx   waveform -> front-end frames        } a stream computes only
    stream/window.onnx   one window's frames -> probabilities } new frames
    stream/step.onnx     the network one frame at a time (bundles with ``stream.network``)
    stream/frames_step.onnx  new frames from new samples and the front-end's states
                         (bundles with ``stream.frames_step``: the speech embedding)

:meth:`BundleMetadata.from_json` is the one way in: it checks every field's
type and value and raises :class:`~earmark.errors.DataError` naming the file
and the field. :meth:`BundleMetadata.to_json` gives the dict to write; reading
it back gives an equal object. Keys this earmark does not know are kept, untouched,
in ``extra``.

    >>> metadata = read_metadata_file("bundles/keywords/earmark.json")
    >>> metadata.labels, metadata.sample_rate, metadata.window_hop_samples
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import re
import reprlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from earmark.atomic import write_json
from earmark.errors import ConfigError, DataError
from earmark.input_limits import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, check_stride_ms
from earmark.runtime.smoother import check_smoother_settings

#: The files of a bundle, relative to its folder.
BUNDLE_MODEL = "model.onnx"
BUNDLE_JSON = "earmark.json"
#: The same network in two pieces, for streams that compute only new frames.
STREAM_FRAMES = "stream/frames.onnx"
STREAM_WINDOW = "stream/window.onnx"
#: A streamable network one frame at a time (its classifier is in the JSON).
STREAM_STEP = "stream/step.onnx"
#: A front-end whose frames overlap a frame at a time, its states carried (the speech
#: embedding's network slid along the stream).
STREAM_FRAMES_STEP = "stream/frames_step.onnx"
#: The metadata_props key of the header embedded in ``model.onnx``.
GRAPH_HEADER_KEY = "earmark"

FORMAT_NAME = "earmark-bundle"
#: The ``format`` of an anomaly bundle (:mod:`earmark.runtime.anomaly_bundle`), which
#: the classification loader refuses by name.
ANOMALY_FORMAT_NAME = "earmark-anomaly"
#: The newest bundle format this earmark reads (and the one export writes).
CURRENT_FORMAT_VERSION = 2
#: From this format version on, ``earmark.json`` carries ``model_sha256``.
HASHED_FORMAT_VERSION = 2
#: The graph's input and output names.
MODEL_INPUT = "waveform"
MODEL_OUTPUT = "probabilities"
#: What else a graph may take (the bundle's ``input``): the output of a pretrained network
#: that no bundle holds, run beside the graph from a package installed for it; its graph's
#: input is then named ``frames``, ``(batch, dimensions, columns)``.
BIRDNET_INPUT = "birdnet_v2.4"
PRETRAINED_INPUTS = {BIRDNET_INPUT: "BirdNET V2.4's embedding (pip install 'earmark[birdnet]')"}
AGGREGATES = ("mean", "vote")
#: The longest analysis window (or hop) a bundle may declare: checking a graph scores
#: one window, so this also bounds the memory a hostile bundle can ask of a loader.
MAX_WINDOW_SECONDS = 60
#: The fields embedded in the graph, so ``model.onnx`` also works alone.
HEADER_KEYS = ("format", "format_version", "labels", "sample_rate", "window_samples",
               "hop_samples", "aggregate", "input", "output", "quantization")
#: The header fields a graph and its ``earmark.json`` must agree on (JSON names).
MATCHING_KEYS = ("labels", "sample_rate", "window_samples", "hop_samples")

_SHA256 = re.compile(r"[0-9a-f]{64}")
_RECORDS = ("features", "model", "augment", "train", "data", "export_quality", "parity")
_short = reprlib.Repr()
_short.maxstring, _short.maxlist, _short.maxother = 60, 8, 60


@dataclass(frozen=True)
class StepNetwork:
    """The one-frame network step of a streamable DS-CNN (``stream/step.onnx``).

    The result of frame ``n`` is the window that starts at frame ``n - last``;
    ``states`` are the shapes of the step's state inputs, all zeros at a
    stream's start. ``step_frames``, ``stride``, ``columns`` and ``first``
    describe the layout (see :func:`earmark.models.dscnn_stream.stream_layout`).
    """

    last: int
    states: dict[str, tuple[int, ...]]
    step_frames: int | None = None
    stride: int | None = None
    columns: int | None = None
    first: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def _from_fields(cls, fields: MetadataFields, frames_per_window: int) -> StepNetwork:
        layout = {key: fields.integer(key, 1, 1 << 20, required=False)
                  for key in ("step_frames", "stride", "columns")}
        layout["first"] = fields.integer("first", 0, 1 << 20, required=False)
        return cls(last=fields.integer("last", 0, frames_per_window - 1),
                   states=_state_shapes(fields.nested("states")), **layout,
                   extra=fields.unknown(("last", "states", *layout)))

    def to_json(self) -> dict[str, Any]:
        """The ``stream.network`` record to write (shapes as lists)."""
        layout = {"step_frames": self.step_frames, "stride": self.stride,
                  "columns": self.columns, "first": self.first, "last": self.last}
        return {**_present(layout), **copy.deepcopy(self.extra),
                "states": {name: list(shape) for name, shape in self.states.items()}}


@dataclass(frozen=True)
class FramesStep:
    """New frames from new samples (``stream/frames_step.onnx``), the states carried.

    The first call takes whole frames as the stream cuts them, with every state empty
    (``positions`` 0); each later call the samples of its new frames (``frame_hop_samples``
    each) and the ``context_samples`` before them, with the states the call before gave
    (``states``: their shapes then, ``[1, channels, positions, bands]``).
    """

    context_samples: int
    states: dict[str, tuple[int, ...]]
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def _from_fields(cls, fields: MetadataFields, frame_samples: int) -> FramesStep:
        return cls(context_samples=fields.integer("context_samples", 0, frame_samples),
                   states=_state_shapes(fields.nested("states")),
                   extra=fields.unknown(("context_samples", "states")))

    def to_json(self) -> dict[str, Any]:
        """The ``stream.frames_step`` record to write (shapes as lists)."""
        return {"context_samples": self.context_samples, **copy.deepcopy(self.extra),
                "states": {name: list(shape) for name, shape in self.states.items()}}


@dataclass(frozen=True)
class StreamMetadata:
    """How a stream cuts frames, and whether it may compute only the new ones."""

    frames_per_window: int
    frame_hop_samples: int
    frame_samples: int
    incremental: bool
    network: StepNetwork | None = None
    frames_step: FramesStep | None = None
    #: The sha256 of each stream graph (``stream/window.onnx`` -> hex), so that a graph
    #: copied from another bundle is refused; bundles exported before have none.
    files_sha256: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def _from_fields(cls, fields: MetadataFields, window_samples: int) -> StreamMetadata:
        frames = fields.integer("frames_per_window", 1, window_samples)
        frame_samples = fields.integer("frame_samples", 1, window_samples)
        network = fields.nested("network", required=False)
        frames_step = fields.nested("frames_step", required=False)
        keys = ("frames_per_window", "frame_hop_samples", "frame_samples", "incremental",
                "network", "frames_step", "files_sha256")
        return cls(frames_per_window=frames,
                   frame_hop_samples=fields.integer("frame_hop_samples", 1, window_samples),
                   frame_samples=frame_samples,
                   incremental=fields.boolean("incremental"),
                   network=(None if network is None
                            else StepNetwork._from_fields(network, frames)),
                   frames_step=(None if frames_step is None
                                else FramesStep._from_fields(frames_step, frame_samples)),
                   files_sha256=_stream_hashes(fields), extra=fields.unknown(keys))

    def to_json(self) -> dict[str, Any]:
        """The ``stream`` record to write."""
        record = {"frames_per_window": self.frames_per_window,
                  "frame_hop_samples": self.frame_hop_samples,
                  "frame_samples": self.frame_samples, "incremental": self.incremental,
                  **copy.deepcopy(self.extra)}
        if self.network is not None:
            record["network"] = self.network.to_json()
        if self.frames_step is not None:
            record["frames_step"] = self.frames_step.to_json()
        if self.files_sha256:
            record["files_sha256"] = dict(self.files_sha256)
        return record


@dataclass(frozen=True)
class BundleMetadata:
    """Everything a bundle says about itself, typed and checked.

    ``window_hop_samples`` is written as ``hop_samples`` (the key of format 1).
    ``features``, ``model``, ``augment``, ``train`` and ``data`` are the
    training configuration as plain records; ``metrics``, ``export_quality``
    and ``parity`` the figures measured at export. A header read from
    ``model.onnx`` alone has only the :data:`HEADER_KEYS`: the records are
    then empty and ``stream`` is None.
    """

    format_version: int
    labels: tuple[str, ...]
    sample_rate: int
    window_samples: int
    window_hop_samples: int
    aggregate: str = "mean"
    quantization: str = "none"
    #: What the graph takes: ``waveform``, or one of :data:`PRETRAINED_INPUTS`.
    input: str = MODEL_INPUT
    earmark_version: str | None = None
    features: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    augment: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float | None] = field(default_factory=dict)
    export_quality: dict[str, Any] = field(default_factory=dict)
    parity: dict[str, Any] = field(default_factory=dict)
    parameters: int | None = None
    macs_per_window: int | None = None
    stream: StreamMetadata | None = None
    model_sha256: str | None = None
    #: Calibrated streaming settings (``stride_ms`` and the smoother's), used by
    #: ``listen`` and ``serve`` where no option overrides them; None when not calibrated.
    detection: dict[str, float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, mapping: Mapping[str, Any], source: str | os.PathLike) -> BundleMetadata:
        """Check ``mapping`` (parsed ``earmark.json`` or graph header) field by field.

        Parameters
        ----------
        mapping : Mapping
            The parsed JSON object.
        source : str or PathLike
            Where it came from, for the error messages (the file's path).

        Returns
        -------
        BundleMetadata
            With its own copies of every record (editing ``mapping`` later
            changes nothing here).

        Raises
        ------
        DataError
            Naming ``source`` and the field: a missing field, a wrong type or
            value, another format, or a format newer than this earmark reads.
        """
        fields = MetadataFields(mapping, str(source))
        version = _format_version(fields)
        graph_input = _graph_input(fields)
        rate = fields.integer("sample_rate", MIN_SAMPLE_RATE, MAX_SAMPLE_RATE, unit="Hz")
        longest = MAX_WINDOW_SECONDS * rate
        window = fields.integer("window_samples", 1, longest)
        stream = fields.nested("stream", required=False)
        return cls(
            format_version=version, labels=_labels(fields), sample_rate=rate,
            window_samples=window, window_hop_samples=fields.integer("hop_samples", 1, longest),
            aggregate=fields.text("aggregate", "mean", choices=AGGREGATES),
            quantization=fields.text("quantization", "none"), input=graph_input,
            earmark_version=fields.text("earmark_version", None),
            **{key: fields.record(key) for key in _RECORDS},
            metrics=_metrics(fields),
            parameters=fields.integer("parameters", 0, 1 << 62, required=False),
            macs_per_window=fields.integer("macs_per_window", 0, 1 << 62, required=False),
            stream=None if stream is None else StreamMetadata._from_fields(stream, window),
            model_sha256=_sha256(fields), detection=_detection(fields),
            extra=fields.unknown(_KNOWN_KEYS))

    def to_json(self) -> dict[str, Any]:
        """The dict to write as ``earmark.json`` (``from_json`` of it gives ``self`` back)."""
        record = {**self.header_json(), "earmark_version": self.earmark_version,
                  **{key: copy.deepcopy(getattr(self, key)) for key in _RECORDS},
                  "metrics": dict(self.metrics), "parameters": self.parameters,
                  "macs_per_window": self.macs_per_window,
                  "stream": None if self.stream is None else self.stream.to_json(),
                  "model_sha256": self.model_sha256,
                  "detection": None if self.detection is None else dict(self.detection)}
        return {**_present(record), **copy.deepcopy(self.extra)}

    def header_json(self) -> dict[str, Any]:
        """The fields embedded in ``model.onnx`` (:data:`HEADER_KEYS`), as a dict."""
        return {"format": FORMAT_NAME, "format_version": self.format_version,
                "labels": list(self.labels), "sample_rate": self.sample_rate,
                "window_samples": self.window_samples, "hop_samples": self.window_hop_samples,
                "aggregate": self.aggregate, "input": self.input, "output": MODEL_OUTPUT,
                "quantization": self.quantization}

    def disagreements(self, other: BundleMetadata) -> list[tuple[str, Any, Any]]:
        """``(json key, ours, theirs)`` for each of :data:`MATCHING_KEYS` that differs."""
        ours, theirs = self.header_json(), other.header_json()
        return [(key, ours[key], theirs[key]) for key in MATCHING_KEYS
                if ours[key] != theirs[key]]


_KNOWN_KEYS = (*HEADER_KEYS, "earmark_version", *_RECORDS, "metrics", "parameters",
               "macs_per_window", "stream", "model_sha256", "detection")
#: The settings a ``detection`` record may hold: the smoother's, the stride and what
#: the threshold was calibrated for.
DETECTION_KEYS = ("stride_ms", "average_window_ms", "detection_threshold", "suppression_ms",
                  "minimum_count", "calibrated_for_false_alarms_per_hour")


def write_detection(bundle_dir: str | os.PathLike, detection: Mapping[str, float]) -> None:
    """Store calibrated streaming settings in a bundle's ``earmark.json`` (atomically).

    The graph is untouched (its hash stays valid); the settings are checked
    as a loader would check them before anything is written.
    """
    path = Path(bundle_dir) / BUNDLE_JSON
    metadata = read_metadata_file(path)
    record = {**metadata.to_json(), "detection": dict(detection)}
    parse_metadata(json.dumps(record), path)
    write_json(path, record)


def read_metadata_file(path: str | os.PathLike) -> BundleMetadata:
    """Read and check an ``earmark.json``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: cannot read the bundle metadata ({error})") from error
    metadata = parse_metadata(text, path)
    if metadata.format_version >= HASHED_FORMAT_VERSION and metadata.model_sha256 is None:
        raise DataError(f"{path}: field 'model_sha256' is missing (format_version "
                        f"{metadata.format_version} bundles carry the sha256 of {BUNDLE_MODEL}); "
                        "re-export the bundle with `earmark export`")
    return metadata


def parse_metadata(text: str, source: str | os.PathLike) -> BundleMetadata:
    """Parse and check bundle metadata JSON (a file's text or a graph's header)."""
    try:
        mapping = json.loads(text)
    except json.JSONDecodeError as error:
        raise DataError(f"{source}: bundle metadata is not valid JSON ({error}); "
                        "re-export the bundle with `earmark export`") from error
    return BundleMetadata.from_json(mapping, source)


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 of a file's bytes, as lowercase hex (what ``model_sha256`` holds)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class MetadataFields:
    """One JSON object of the metadata, read field by field with checks.

    ``export`` is the command that writes such a bundle, named in every
    message (anomaly bundles use this reader too).
    """

    def __init__(self, mapping: Any, source: str, prefix: str = "",
                 export: str = "earmark export"):
        self.source, self.prefix, self.export = source, prefix, export
        if not isinstance(mapping, Mapping):
            where = f"field {prefix[:-1]!r}" if prefix else "the bundle metadata"
            raise DataError(f"{source}: {where} must be a JSON object, got "
                            f"{_describe(mapping)}; fix the value or re-export the bundle "
                            f"with `{export}`")
        self.mapping = mapping

    def error(self, key: str, expected: str, value: Any) -> DataError:
        return DataError(f"{self.source}: field {self.prefix + key!r} must be {expected}, "
                         f"got {_describe(value)}; fix the value or re-export the bundle "
                         f"with `{self.export}`")

    def get(self, key: str, required: bool = True) -> Any:
        if key not in self.mapping and required:
            raise DataError(f"{self.source}: field {self.prefix + key!r} is missing; "
                            f"re-export the bundle with `{self.export}`")
        return self.mapping.get(key)

    def integer(self, key: str, low: int, high: int, required: bool = True,
                unit: str = "") -> int | None:
        value = self.get(key, required)
        if value is None and not required:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            unit = f" of {unit}" if unit else ""
            raise self.error(key, f"a whole number{unit} in {low}..{high}", value)
        return value

    def number(self, key: str, low: float = -math.inf, high: float = math.inf) -> float:
        """A required finite number (whole or not) in ``low..high``."""
        value = self.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value) or not low <= value <= high:
            bounds = "" if (low, high) == (-math.inf, math.inf) else f" in {low:g}..{high:g}"
            raise self.error(key, f"a finite number{bounds}", value)
        return float(value)

    def boolean(self, key: str) -> bool:
        value = self.get(key)
        if not isinstance(value, bool):
            raise self.error(key, "true or false", value)
        return value

    def text(self, key: str, default: str | None, choices: tuple[str, ...] = ()) -> str | None:
        value = self.mapping.get(key, default)
        if value is None and default is None:
            return None
        if not isinstance(value, str) or (choices and value not in choices):
            expected = f"one of {list(choices)}" if choices else "a string"
            raise self.error(key, expected, value)
        return value

    def record(self, key: str) -> dict[str, Any]:
        value = self.mapping.get(key, {})
        if not isinstance(value, Mapping):
            raise self.error(key, "a JSON object", value)
        return copy.deepcopy(dict(value))

    def nested(self, key: str, required: bool = True) -> MetadataFields | None:
        value = self.get(key, required)
        if value is None and not required:
            return None
        return MetadataFields(value, self.source, f"{self.prefix}{key}.", self.export)

    def unknown(self, known: tuple[str, ...]) -> dict[str, Any]:
        return {key: copy.deepcopy(value) for key, value in self.mapping.items()
                if key not in known}


def _format_version(fields: MetadataFields) -> int:
    """Checked first: a newer format says to upgrade before any field can be wrong."""
    name = fields.mapping.get("format", FORMAT_NAME)
    if name == ANOMALY_FORMAT_NAME:
        raise DataError(f"{fields.source}: field 'format' is {name!r}: this is an anomaly "
                        "bundle, which scores how unusual a sound is rather than naming its "
                        "class: use `earmark anomaly score` (or "
                        "earmark.runtime.anomaly_bundle.load_anomaly_bundle)")
    if name != FORMAT_NAME:
        raise DataError(f"{fields.source}: field 'format' is {_describe(name)}, not "
                        f"{FORMAT_NAME!r}: this is not an earmark bundle")
    version = fields.get("format_version")
    if isinstance(version, int) and not isinstance(version, bool) \
            and version > CURRENT_FORMAT_VERSION:
        raise DataError(f"{fields.source}: field 'format_version' is {version}, newer than "
                        f"this earmark reads (up to {CURRENT_FORMAT_VERSION}): upgrade earmark "
                        "(pip install --upgrade earmark) to load this bundle")
    return fields.integer("format_version", 1, CURRENT_FORMAT_VERSION)


def _graph_input(fields: MetadataFields) -> str:
    """``input``: the waveform or a known pretrained network's output; ``output`` (when
    given): the probabilities."""
    if fields.mapping.get("output", MODEL_OUTPUT) != MODEL_OUTPUT:
        raise fields.error("output", repr(MODEL_OUTPUT), fields.mapping["output"])
    graph_input = fields.mapping.get("input", MODEL_INPUT)
    if not isinstance(graph_input, str) or (graph_input != MODEL_INPUT
                                            and graph_input not in PRETRAINED_INPUTS):
        raise fields.error("input", f"{MODEL_INPUT!r} or one of {sorted(PRETRAINED_INPUTS)} "
                           "(a newer earmark may know it: pip install --upgrade earmark)",
                           graph_input)
    return graph_input


def _labels(fields: MetadataFields) -> tuple[str, ...]:
    labels = fields.get("labels")
    if not isinstance(labels, list) or not labels:
        raise fields.error("labels", "a non-empty list of class names", labels)
    for index, label in enumerate(labels):
        if not isinstance(label, str) or not label.strip():
            raise fields.error(f"labels[{index}]", "a non-empty string", label)
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise fields.error("labels", f"distinct class names (repeated: {repeated})", labels)
    return tuple(labels)


def _metrics(fields: MetadataFields) -> dict[str, float | None]:
    metrics = fields.record("metrics")
    for key, value in metrics.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise fields.error(f"metrics.{key}", "a number", value)
    return metrics


def _sha256(fields: MetadataFields) -> str | None:
    value = fields.mapping.get("model_sha256")
    if value is not None and (not isinstance(value, str) or not _SHA256.fullmatch(value)):
        raise fields.error("model_sha256", "64 lowercase hex digits (the sha256 of "
                           f"{BUNDLE_MODEL})", value)
    return value


def _stream_hashes(fields: MetadataFields) -> dict[str, str]:
    """``stream.files_sha256``: a stream graph's name (``stream/...onnx``) -> its sha256."""
    value = fields.mapping.get("files_sha256", {})
    if not isinstance(value, Mapping) or not all(
            isinstance(name, str) and name.startswith("stream/") and isinstance(digest, str)
            and _SHA256.fullmatch(digest) for name, digest in value.items()):
        raise fields.error("files_sha256", "a table of stream/ file names to 64 lowercase hex "
                           "digits (their sha256)", value)
    return dict(value)


def _detection(fields: MetadataFields) -> dict[str, float] | None:
    """The calibrated streaming settings, each a number within the smoother's limits."""
    nested = fields.nested("detection", required=False)
    if nested is None:
        return None
    unknown = sorted(set(nested.mapping) - set(DETECTION_KEYS))
    if unknown:
        raise nested.error(unknown[0], f"one of {list(DETECTION_KEYS)}", unknown[0])
    record = {key: nested.number(key, 0.0) for key in nested.mapping}
    if "minimum_count" in record:
        record["minimum_count"] = nested.integer("minimum_count", 1, 1 << 20)
    try:
        check_smoother_settings(record)
        if "stride_ms" in record:
            check_stride_ms(record["stride_ms"], "stride_ms")
    except ConfigError as error:
        raise DataError(f"{fields.source}: field 'detection' is out of range ({error}); "
                        "recalibrate the bundle (earmark wakeword) or remove the field") from error
    return record


def _state_shapes(fields: MetadataFields) -> dict[str, tuple[int, ...]]:
    shapes = {}
    for name, shape in fields.mapping.items():
        if not isinstance(shape, list) or not shape or any(
                isinstance(size, bool) or not isinstance(size, int) or size < 1
                for size in shape):
            raise fields.error(name, "a shape: a non-empty list of positive whole numbers",
                               shape)
        shapes[str(name)] = tuple(shape)
    if not shapes:
        raise DataError(f"{fields.source}: field {fields.prefix[:-1]!r} lists no states; "
                        "re-export the bundle with `earmark export`")
    return shapes


def _present(record: dict[str, Any]) -> dict[str, Any]:
    """The record without its None values (optional fields not written)."""
    return {key: value for key, value in record.items() if value is not None}


def _describe(value: Any) -> str:
    return f"{_short.repr(value)} ({type(value).__name__})"
