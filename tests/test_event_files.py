"""earmark.events: the one event type, and reading and writing its files."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from earmark.errors import ConfigError, DataError
from earmark.events import Event, as_events, event_from_mapping, read_events, write_events

FORMATS = ["events.csv", "events.tsv", "events.json", "events.txt"]

#: Times that need every digit, labels a CSV must quote, a zero-length event.
AWKWARD = [Event(0.0, 0.1, "dog, barking"), Event(1 / 3, 2 / 3, 'car "horn"'),
           Event(1e-5, 12345.678, "bird"), Event(7.0, 7.0, "click")]

#: Events with a source and a confidence, as mixtures and detectors make them.
CARRYING = [Event(0.5, 1.25, "f", source="/clips/a,1.wav", confidence=0.875),
            Event(2.0, 3.0, "m", source="/clips/b.wav", confidence=0.5)]


# --------------------------------------------------------------------------
# The event


def test_event_keeps_its_fields_and_validates_them():
    event = Event(1, 2, "dog", confidence=1)
    assert (event.onset, event.offset, event.duration) == (1.0, 2.0, 1.0)
    assert isinstance(event.onset, float) and isinstance(event.confidence, float)
    assert event.source == "" and Event(0, 0, "click").confidence is None
    with pytest.raises(DataError, match=r"onset must be finite"):
        Event(math.nan, 1.0, "dog")
    with pytest.raises(DataError, match=r"'dog'.*offset is before onset"):
        Event(2.0, 1.0, "dog")
    with pytest.raises(DataError, match="line break"):
        Event(0.0, 1.0, "dog\nbark")
    with pytest.raises(DataError, match="non-empty"):
        Event(0.0, 1.0, "  ")
    with pytest.raises(DataError, match="negative"):
        Event(-0.5, 1.0, "dog")
    with pytest.raises(DataError, match="number of seconds"):
        Event("soon", 1.0, "dog")
    with pytest.raises(DataError, match="confidence must be finite"):
        Event(0.0, 1.0, "dog", confidence=math.inf)
    with pytest.raises(DataError, match="source must be a string"):
        Event(0.0, 1.0, "dog", source=None)


def test_as_events_takes_mappings_tuples_and_event_like_objects():
    class Detection:
        onset, offset, label, confidence = 0.0, 1.0, "dog", 0.9

    events = as_events([Detection(), (1.0, 2.0, "cat"), (2, 3, "owl", "x.wav"),
                        {"event_onset": 3, "event_offset": 4, "event_label": " bird ",
                         "source": "y.wav", "confidence": 0.25}])
    assert events == [Event(0, 1, "dog", confidence=0.9), Event(1, 2, "cat"),
                      Event(2, 3, "owl", "x.wav"), Event(3, 4, "bird", "y.wav", 0.25)]
    assert as_events(events) == events
    with pytest.raises(DataError, match="reference item 1"):
        as_events([(0, 1, "dog"), (3, 2, "dog")], "reference")
    with pytest.raises(DataError, match="needs keys onset, offset and label"):
        event_from_mapping({"onset": 0, "label": "dog"})


# --------------------------------------------------------------------------
# Round trips


@pytest.mark.parametrize("name", FORMATS)
def test_round_trip_is_exact(tmp_path, name):
    path = write_events(tmp_path / name, AWKWARD)
    assert read_events(path) == AWKWARD                          # every digit, labels intact
    assert "e-" not in path.read_text() or name.endswith(".json")   # no exponents
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]   # no temp left


@pytest.mark.parametrize("name", ["events.csv", "events.tsv", "events.json"])
def test_source_and_confidence_round_trip(tmp_path, name):
    path = write_events(tmp_path / name, CARRYING)
    assert read_events(path) == CARRYING


def test_audacity_keeps_only_times_and_labels(tmp_path):
    path = write_events(tmp_path / "labels.txt", CARRYING)
    assert path.read_text() == "0.5\t1.25\tf\n2.0\t3.0\tm\n"
    assert read_events(path) == [Event(0.5, 1.25, "f"), Event(2, 3, "m")]


def test_written_layouts(tmp_path):
    # The columns each writer of today produces: plain, with a source, with a confidence.
    assert write_events(tmp_path / "a.csv", [Event(0, 1.5, "a,b")]).read_text() == \
        'onset,offset,label\n0.0,1.5,"a,b"\n'
    mixture = write_events(tmp_path / "m.csv", [Event(0, 1 / 3, "f", "x.wav")], decimals=6,
                           extra_fields=("source",))
    assert mixture.read_text() == "onset,offset,label,source\n0.000000,0.333333,f,x.wav\n"
    detections = [Event(1.05, 2.123456, "dog", confidence=0.91234)]
    assert write_events(tmp_path / "d.csv", detections, decimals=4).read_text() == \
        "onset,offset,label,confidence\n1.0500,2.1235,dog,0.9123\n"
    assert json.loads(write_events(tmp_path / "d.json", detections, decimals=4).read_text()) \
        == [{"onset": 1.05, "offset": 2.1235, "label": "dog", "confidence": 0.9123}]
    assert write_events(tmp_path / "d.txt", detections, decimals=3).read_text() == \
        "1.050\t2.123\tdog\n"
    # Asked for, a field is written even where an event lacks it.
    assert write_events(tmp_path / "e.csv", [Event(0, 1, "a")],
                        extra_fields=("source", "confidence")).read_text() == \
        "onset,offset,label,source,confidence\n0.0,1.0,a,,\n"
    with pytest.raises(ConfigError, match="gain"):
        write_events(tmp_path / "f.csv", [], extra_fields=("gain",))


# --------------------------------------------------------------------------
# Reading what others write


def test_column_aliases_and_layouts(tmp_path):
    # start/end, extra columns, a BOM and blank lines.
    (tmp_path / "a.csv").write_text("\ufeffstart,end,label,filename\n\n0.5,1.5,dog,x.wav\n",
                                    encoding="utf-8")
    assert read_events(tmp_path / "a.csv") == [Event(0.5, 1.5, "dog")]
    # DCASE metadata: tab separated, event_onset / event_offset / event_label.
    (tmp_path / "b.csv").write_text("filename\tevent_onset\tevent_offset\tevent_label\n"
                                    "x.wav\t0.0\t2.0\tSpeech\n")
    assert read_events(tmp_path / "b.csv") == [Event(0, 2, "Speech")]
    # A .tsv with upper-case headers and an empty confidence cell.
    (tmp_path / "c.tsv").write_text("Onset\tOffset\tLabel\tConfidence\n1\t2\t cat \t\n")
    assert read_events(tmp_path / "c.tsv") == [Event(1, 2, "cat")]
    # Audacity: a spectral-selection line, a label with spaces, space-separated fields.
    (tmp_path / "d.txt").write_text("0.000000\t1.000000\tdog bark\n\\\t100.0\t2000.0\n"
                                    "2.5 3 cat\n")
    assert read_events(tmp_path / "d.txt") == [Event(0, 1, "dog bark"), Event(2.5, 3, "cat")]
    # JSON: start/end keys, and a mixture's description (an object with "events").
    (tmp_path / "e.json").write_text(json.dumps([{"start": 0, "end": 1, "label": "dog"}]))
    assert read_events(tmp_path / "e.json") == [Event(0, 1, "dog")]
    (tmp_path / "f.json").write_text(json.dumps({"audio": "f.flac", "events": [
        {"onset": 0, "offset": 1, "label": "f", "source": "s.wav", "gain_db": -3.0}]}))
    assert read_events(tmp_path / "f.json") == [Event(0, 1, "f", "s.wav")]


@pytest.mark.parametrize("name", FORMATS)
def test_an_empty_file_is_no_events(tmp_path, name):
    (tmp_path / name).write_text("")
    assert read_events(tmp_path / name) == []


# --------------------------------------------------------------------------
# Errors name the file, the line and the field


@pytest.mark.parametrize("name, content, message", [
    ("bad.csv", "onset,offset,label\n0,1,dog\nsoon,2,cat\n", r"bad\.csv: line 3: onset 'soon'"),
    ("bad.csv", "onset,offset,label\nnan,1,dog\n", r"bad\.csv: line 2: .*onset must be finite"),
    ("bad.csv", "onset,offset,label\n0,1,dog\n\n2,1,cat\n",
     r"bad\.csv: line 4: .*'cat'.*offset is before onset"),
    ("bad.csv", 'onset,offset,label\n0,1,"dog\nbark"\n', r"bad\.csv: line 3: .*line break"),
    ("bad.csv", "onset,offset,label,confidence\n0,1,dog,high\n",
     r"bad\.csv: line 2: confidence 'high' is not a number"),
    ("bad.csv", "onset,offset,label\n0,1\n", r"bad\.csv: line 2: expected 3 columns"),
    ("bad.csv", "time,label\n0,dog\n", r"bad\.csv: line 1: the header .* needs columns"),
    ("bad.txt", "0\t1\tdog\n2\t3\n", r"bad\.txt: line 2: expected 'start<TAB>end<TAB>label'"),
    ("bad.txt", "0\t1\tdog\nnan\t2\tcat\n", r"bad\.txt: line 2: .*onset must be finite"),
    ("bad.json", '[\n{"onset": 0, "offset": 1, "label": "dog"},\n{"onset": 0 "offset": 1}\n]',
     r"bad\.json: line 3: not valid JSON"),
    ("bad.json", '{"onset": 0}', r"bad\.json: expected a JSON list"),
    ("bad.json", '[{"onset": 0, "offset": 1, "label": "a"}, {"onset": 0, "label": "b"}]',
     r"bad\.json: entry 1 .*needs keys onset, offset and label"),
    ("bad.json", '[{"onset": 0, "offset": 1, "label": "a\\nb"}]',
     r"bad\.json: entry 0 .*line break"),
])
def test_malformed_files_name_file_line_and_field(tmp_path, name, content, message):
    (tmp_path / name).write_text(content)
    with pytest.raises(DataError, match=message):
        read_events(tmp_path / name)


def test_missing_files_and_unknown_formats(tmp_path):
    with pytest.raises(DataError, match=r"missing\.csv: no such event file"):
        read_events(tmp_path / "missing.csv")
    with pytest.raises(ConfigError, match=r"\.csv, \.tsv, \.json or \.txt"):
        read_events(tmp_path / "events.wav")
    with pytest.raises(ConfigError):
        write_events(tmp_path / "events.xml", [])


def test_a_failed_write_leaves_no_file(tmp_path):
    with pytest.raises(DataError, match="Audacity"):
        write_events(tmp_path / "events.txt", [Event(0, 1, "a\tb")])
    with pytest.raises(DataError, match="events item 1"):
        write_events(tmp_path / "events.csv", [(0, 1, "a"), (2, 1, "b")])
    assert list(tmp_path.iterdir()) == []


def test_no_torch_import():
    code = ("import sys; sys.modules['torch'] = None\n"
            "import earmark.events as events\n"
            "assert events.as_events([(0, 1, 'a')]) == [events.Event(0, 1, 'a')]\n")
    subprocess.run([sys.executable, "-c", code], check=True)
