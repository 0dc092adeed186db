"""Outputs and options checked before any work: a command never replaces its own input,
never writes half a result or a result with nothing in it, and says plainly when an
output cannot be written or an option can never do anything."""

from __future__ import annotations

import json
import logging
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
import soundfile

from earmark.cli import main
from earmark.errors import ConfigError
from earmark.metrics.events import segment_based
from earmark.runtime import load_bundle
from earmark.runtime.smoother import SmootherConfig
from earmark.runtime.stream import StreamEngine
from conftest import write_noise, write_tone


def one_line_error(capsys) -> str:
    """The command's stderr: one ``earmark: error:`` line, no traceback."""
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("earmark: error:")]
    assert len(lines) == 1, err
    return lines[0]


# ------------------------------------------------------------------ never the input

def test_hearing_a_file_into_itself_is_refused(tmp_path, capsys):
    recording = tmp_path / "take.wav"
    write_tone(recording, 1.0, 16000, 440.0)
    before = recording.read_bytes()
    assert main(["spectrogram", str(recording), "--hear", str(recording), "-q"]) == 2
    assert "would replace that file" in one_line_error(capsys)
    assert recording.read_bytes() == before


def test_a_manifest_is_a_csv_and_its_renames_are_whole(class_folder, tmp_path, capsys):
    audio_file = next(class_folder.rglob("*.wav"))
    before = audio_file.read_bytes()
    assert main(["manifest", str(class_folder), "--out", str(audio_file)]) == 2
    assert "must end in .csv" in one_line_error(capsys)
    assert audio_file.read_bytes() == before
    label = audio_file.parent.name
    assert main(["manifest", str(class_folder), "--out", str(tmp_path / "m.csv"),
                 "--labels", f"{label}="]) == 2
    assert "neither part empty" in one_line_error(capsys)
    assert not (tmp_path / "m.csv").exists()


# ------------------------------------------------------------------ outputs that cannot be

def test_an_output_under_a_file_is_named_without_a_traceback(tmp_path, capsys):
    recording = tmp_path / "take.wav"
    write_tone(recording, 1.0, 16000, 440.0)
    assert main(["spectrogram", str(recording), "--out", str(recording / "x.png"), "-q"]) == 2
    assert f"{recording} is a file, not a folder" in one_line_error(capsys)


def test_monitor_checks_its_outputs_and_inputs_before_the_work(bundle, tmp_path, capsys):
    recording = tmp_path / "street.wav"
    write_noise(recording, 3.0, 8000)
    assert main(["monitor", str(bundle), str(recording), "--out", str(recording), "-q"]) == 2
    assert "is a file, not a folder" in one_line_error(capsys)
    assert main(["monitor", str(bundle), str(recording), "--out", str(tmp_path / "m"),
                 "--plot", str(tmp_path / "m.jpg"), "-q"]) == 2
    assert "must end in .png" in one_line_error(capsys)
    assert main(["monitor", str(bundle), str(recording), "--out", str(tmp_path / "m"),
                 "--calibration=1e308", "-q"]) == 2
    assert "calibration" in one_line_error(capsys)
    assert not (tmp_path / "m").exists()                # nothing written for any of them


def test_levels_of_a_click_too_short_to_have_them_are_null_in_json(bundle, tmp_path):
    click = tmp_path / "click.wav"
    soundfile.write(click, np.full(10, 0.1, np.float32), 8000)
    assert main(["monitor", str(bundle), str(click), "--out", str(tmp_path / "m"), "-q"]) == 0

    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    summary = json.loads((tmp_path / "m" / "summary.json").read_text(), parse_constant=refuse)
    overall = summary["overall"]
    assert overall["LA10"] is None and overall["LA90"] is None
    assert isinstance(overall["LAeq"], float)


def test_segment_scoring_refuses_more_segments_than_memory_holds():
    reference = [{"onset": 0.5, "offset": 2.0, "label": "dog"}]
    with pytest.raises(ConfigError, match="too many to count; give a segment length of at "
                                          "least"):
        segment_based(reference, reference, segment_length=1e-9)
    far = [{"onset": 0.5, "offset": 1e12, "label": "dog"}]
    with pytest.raises(ConfigError, match="check the events' offsets"):
        segment_based(reference, far)
    assert segment_based(reference, reference)["overall"]["f1"] == 1.0


# ------------------------------------------------------------------ classify and detect

def test_classify_writes_nothing_for_nothing_and_whole_rows(bundle, tmp_path, capsys):
    output = tmp_path / "results.csv"
    output.write_text("earlier results\n")
    empty = tmp_path / "empty.wav"
    empty.touch()
    assert main(["classify", str(bundle), str(empty), "--output", str(output), "-q"]) == 1
    assert output.read_text() == "earlier results\n"
    assert main(["classify", str(bundle), str(empty), "--top-k", "0"]) == 2
    assert "--top-k 0" in one_line_error(capsys)
    clip = tmp_path / "tone.wav"
    write_tone(clip, 1.0, 8000, 440.0)
    labels = load_bundle(bundle).labels
    assert main(["classify", str(bundle), str(clip), "--top-k", str(len(labels) + 3),
                 "--output", str(output), "-q"]) == 0
    header, row = output.read_text().splitlines()
    assert len(header.split(",")) == len(row.split(",")) == 2 + 2 * len(labels)


def test_a_glob_through_a_link_back_up_reads_each_file_once(bundle, tmp_path):
    write_tone(tmp_path / "tree" / "sub" / "a.wav", 1.0, 8000, 440.0)
    (tmp_path / "tree" / "sub" / "up").symlink_to("..")
    output = tmp_path / "results.json"
    assert main(["classify", str(bundle), str(tmp_path / "tree" / "**" / "*.wav"),
                 "--output", str(output), "-q"]) == 0
    assert len(json.loads(output.read_text())) == 1


@pytest.mark.parametrize("options, message", [
    (["--onset-shift", "nan"], "onset_shift nan"),
    (["--class-threshold", "typo=0.5:0.2"], "no such class"),
    (["--output", "events.xyz"], "must end in .csv"),
    (["--plot", "events.jpg"], "must end in .png"),
    (["--threads", "100000"], "threads must be a whole number from 0"),
])
def test_detect_refuses_options_that_would_mislead(bundle, tmp_path, capsys, options,
                                                   message):
    clip = tmp_path / "tone.wav"
    write_tone(clip, 2.0, 8000, 440.0)
    assert main(["detect", str(bundle), str(clip), *options]) == 2
    assert message in one_line_error(capsys)


# ------------------------------------------------------------------ streaming and serving

def test_a_minimum_count_the_window_cannot_hold_is_refused(bundle):
    loaded = load_bundle(bundle)
    fits = SmootherConfig(average_window_ms=300, minimum_count=4)     # 0, 80, 160, 240 ms
    StreamEngine(loaded, stride_ms=80, smoother=fits)
    with pytest.raises(ConfigError, match="holds at most 4 results"):
        StreamEngine(loaded, stride_ms=80, smoother=SmootherConfig(average_window_ms=300,
                                                                   minimum_count=5))


def test_a_bundle_folder_without_its_json_says_what_is_lost(bundle, tmp_path, caplog):
    copy = Path(shutil.copytree(bundle, tmp_path / "bundle"))
    (copy / "earmark.json").unlink()
    with caplog.at_level(logging.WARNING, logger="earmark"):
        loaded = load_bundle(copy)
    assert loaded.metadata.detection is None
    assert "no earmark.json" in caplog.text and "copy the whole bundle folder" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="earmark"):
        load_bundle(copy / "model.onnx")                    # the model alone, as asked
    assert "no earmark.json" not in caplog.text


def test_calibrate_stores_nothing_from_seconds_of_audio(bundle, tmp_path, capsys):
    copy = Path(shutil.copytree(bundle, tmp_path / "bundle"))
    before = (copy / "earmark.json").read_text()
    negatives = tmp_path / "quiet.wav"
    write_noise(negatives, 3.0, 8000)
    assert main(["calibrate", str(copy), "--negatives", str(negatives), "--store", "-q"]) == 2
    assert "nothing was stored" in one_line_error(capsys)
    assert (copy / "earmark.json").read_text() == before


def test_serve_names_an_address_it_cannot_use(bundle, capsys):
    assert main(["serve", str(bundle), "--host", "999.1.1.1"]) == 2
    assert "--host 999.1.1.1" in one_line_error(capsys)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", str(bundle), "--port", str(port)]) == 2
    assert "choose another --port" in one_line_error(capsys)


@pytest.mark.parametrize("argv, message", [
    (["synth", "keywords", "yes", "--takes", "0", "--out", "OUT"], "--takes"),
    (["synth", "keywords", "yes", "--rate", "100", "--out", "OUT"], "--rate"),
    (["synth", "keywords", "yes", "--noise-dir", "nowhere", "--out", "OUT"],
     "noise folder nowhere: no such folder"),
    (["wakeword", "-", "--out", "OUT"], "has no letters"),
    (["wakeword", "view glass", "--language", "xx", "--out", "OUT"],
     "--language xx: espeak-ng has no voice for it"),
    (["footprint", "BUNDLE", "--runs", "1000000000"], "--runs 1000000000: give 1 to"),
])
def test_counts_and_words_that_make_nothing_are_refused_first(bundle, tmp_path, capsys, argv,
                                                              message):
    out = tmp_path / "out"
    argv = [str(out) if item == "OUT" else str(bundle) if item == "BUNDLE" else item
            for item in argv]
    assert main(argv) == 2
    assert message in one_line_error(capsys)
    assert not out.exists()
