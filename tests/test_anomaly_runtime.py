"""The anomaly bundle at work, torch-free: loading and refusing bundles, scoring files of any
length and rate, alarms with hysteresis over long recordings and streams, and the CLI.

The bundle is made by hand with onnx.helper: its score is a window's level,
``10 log10(mean(x^2) + 1e-10)`` dB, so which windows score high is known
exactly. Every test makes its own audio.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import tracemalloc
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import onnx
import pytest
import soundfile
from onnx import TensorProto, helper

from earmark import cli
from earmark.errors import ConfigError, DataError
from earmark.events import read_events
from earmark.runtime import load_bundle
from earmark.runtime.anomaly_bundle import AnomalyMetadata, load_anomaly_bundle
from earmark.runtime.anomaly_monitor import (AlarmSettings, AlarmTracker, find_alarms,
                                             monitor_file, monitor_stream, resampled)
from earmark.runtime.anomaly_score import FileScores, score_array, score_file
from earmark.windowing import window_starts

FIXTURES = Path(__file__).parent / "fixtures"
RATE = 8000
WINDOW = 4000            # 0.5 s
HOP = 2000               # 0.25 s
THRESHOLD = -25.0        # dB: quiet noise (0.01) is about -40, loud (0.3) about -15


def level_graph(window: int | str = WINDOW, batch: int | str = "batch",
                output: str = "score") -> onnx.ModelProto:
    """waveform (batch, window) -> 10 log10(mean(x^2) + 1e-10), one number per window."""
    nodes = [helper.make_node("Mul", ["waveform", "waveform"], ["power"]),
             helper.make_node("ReduceMean", ["power"], ["mean"], axes=[1], keepdims=0),
             helper.make_node("Add", ["mean", "eps"], ["floored"]),
             helper.make_node("Log", ["floored"], ["ln"]),
             helper.make_node("Mul", ["ln", "to_db"], [output])]
    constants = [helper.make_tensor("eps", TensorProto.FLOAT, [], [1e-10]),
                 helper.make_tensor("to_db", TensorProto.FLOAT, [], [10 / np.log(10)])]
    graph = helper.make_graph(
        nodes, "level", [helper.make_tensor_value_info("waveform", TensorProto.FLOAT,
                                                       [batch, window])],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, [batch])], constants)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def metadata_json(model_bytes: bytes, **changes) -> dict:
    record = {"format": "earmark-anomaly", "format_version": 1, "method": "level",
              "sample_rate": RATE, "window_samples": WINDOW, "hop_samples": HOP,
              "threshold": THRESHOLD, "false_alarm_rate": 0.01, "aggregate": "mean",
              "model_sha256": hashlib.sha256(model_bytes).hexdigest(),
              "settings": {"note": "hand made"}, "validation": {}, "parity": {},
              "machine": {"type": "test"}}
    record.update(changes)
    return {key: value for key, value in record.items() if value is not None}


def write_bundle(folder: Path, model: onnx.ModelProto | None = None, **changes) -> Path:
    """An anomaly bundle folder; ``changes`` edit (or, given None, drop) JSON fields."""
    folder.mkdir(parents=True, exist_ok=True)
    model_bytes = (model or level_graph()).SerializeToString()
    (folder / "model.onnx").write_bytes(model_bytes)
    (folder / "earmark.json").write_text(json.dumps(metadata_json(model_bytes, **changes)))
    return folder


@pytest.fixture
def bundle_dir(tmp_path: Path) -> Path:
    return write_bundle(tmp_path / "bundle")


def level_db(windows: np.ndarray) -> np.ndarray:
    return 10 * np.log10(np.mean(np.asarray(windows, np.float64) ** 2, axis=-1) + 1e-10)


def noise(seconds: float, amplitude: float, seed: int, rate: int = RATE) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (amplitude * rng.uniform(-1, 1, int(round(seconds * rate)))).astype(np.float32)


def machine(parts: list[tuple[float, float]], rate: int = RATE) -> np.ndarray:
    """Noise in consecutive parts of (seconds, amplitude)."""
    return np.concatenate([noise(seconds, amplitude, seed, rate)
                           for seed, (seconds, amplitude) in enumerate(parts)])


def write(path: Path, samples: np.ndarray, rate: int = RATE) -> Path:
    soundfile.write(str(path), samples, rate, subtype="FLOAT")
    return path


def run(argv: list[str]) -> int:
    try:
        return cli.main(argv)
    except SystemExit as exit:
        return 0 if exit.code is None else exit.code


# --------------------------------------------------------------------------
# loading


def test_loads_and_scores_windows_in_batches(bundle_dir):
    bundle = load_anomaly_bundle(bundle_dir)
    assert (bundle.sample_rate, bundle.window_samples, bundle.window_hop_samples) == (
        RATE, WINDOW, HOP)
    assert bundle.threshold == THRESHOLD and bundle.metadata.method == "level"
    assert bundle.metadata.machine == {"type": "test"}
    windows = np.stack([noise(0.5, amplitude, seed) for seed, amplitude in
                        enumerate([0.0, 0.01, 0.1, 0.3, 1.0])])
    scores = bundle.score_windows(windows, batch_size=2)
    assert scores.shape == (5,)
    np.testing.assert_allclose(scores, level_db(windows), atol=1e-3)
    np.testing.assert_allclose(bundle.score_windows(windows[1]), scores[1:2])
    assert load_anomaly_bundle(bundle_dir / "model.onnx").path == bundle_dir


def test_metadata_round_trips(bundle_dir):
    mapping = json.loads((bundle_dir / "earmark.json").read_text())
    mapping["future_key"] = {"kept": True}
    metadata = AnomalyMetadata.from_json(mapping, "x.json")
    assert metadata.extra == {"future_key": {"kept": True}}
    assert AnomalyMetadata.from_json(metadata.to_json(), "y.json") == metadata
    assert metadata.to_json() == mapping


def test_a_changed_model_is_refused_by_its_hash(bundle_dir):
    (bundle_dir / "model.onnx").write_bytes(
        level_graph(output="score").SerializeToString() + b"\0")
    with pytest.raises(DataError, match="model_sha256.*earmark anomaly export"):
        load_anomaly_bundle(bundle_dir)


@pytest.mark.parametrize("missing", ["format", "format_version", "method", "sample_rate",
                                     "window_samples", "hop_samples", "threshold",
                                     "false_alarm_rate", "model_sha256"])
def test_a_missing_field_is_named(tmp_path, missing):
    folder = write_bundle(tmp_path / "b", **{missing: None})
    with pytest.raises(DataError, match=f"'{missing}'"):
        load_anomaly_bundle(folder)


@pytest.mark.parametrize("field, value", [
    ("threshold", "high"), ("threshold", float("nan")), ("threshold", True),
    ("false_alarm_rate", 1.5), ("sample_rate", 8000.5), ("window_samples", 0),
    ("aggregate", "vote"), ("method", ""), ("settings", [1, 2]), ("format_version", 0)])
def test_a_wrong_value_is_named(tmp_path, field, value):
    folder = write_bundle(tmp_path / "b", **{field: value})
    with pytest.raises(DataError, match=f"field '{field}'"):
        load_anomaly_bundle(folder)


def test_a_newer_format_asks_for_an_upgrade(tmp_path):
    with pytest.raises(DataError, match="upgrade earmark"):
        load_anomaly_bundle(write_bundle(tmp_path / "b", format_version=2))


def test_a_window_length_the_graph_does_not_take_is_refused(tmp_path):
    with pytest.raises(DataError, match="'window_samples' is 2000 .* 4000 samples"):
        load_anomaly_bundle(write_bundle(tmp_path / "fixed", window_samples=2000))
    # A graph of any length is tried on the declared window instead: it fits.
    load_anomaly_bundle(write_bundle(tmp_path / "any", level_graph(window="samples"),
                                     window_samples=2000))


@pytest.mark.parametrize("model, message", [
    (level_graph(batch=1), "batch dimension is fixed"),
    (level_graph(output="probabilities"), "outputs are \\['probabilities'\\]")])
def test_a_graph_off_the_contract_is_refused(tmp_path, model, message):
    with pytest.raises(DataError, match=message):
        load_anomaly_bundle(write_bundle(tmp_path / "b", model))


def test_the_two_kinds_of_bundle_refuse_each_other(bundle_dir, tmp_path):
    with pytest.raises(DataError, match="classification bundle.*earmark classify"):
        load_anomaly_bundle(FIXTURES / "bundle_v1")
    with pytest.raises(DataError, match="anomaly bundle.*earmark anomaly score"):
        load_bundle(bundle_dir)
    with pytest.raises(DataError, match="no anomaly bundle here"):
        load_anomaly_bundle(tmp_path / "nothing")


# --------------------------------------------------------------------------
# scoring files


def test_a_loud_middle_scores_higher_there(bundle_dir, tmp_path):
    bundle = load_anomaly_bundle(bundle_dir)
    path = write(tmp_path / "m.wav", machine([(2.0, 0.01), (2.0, 0.3), (2.0, 0.01)]))
    scores = score_file(bundle, path)
    np.testing.assert_allclose(scores.window_starts,
                               window_starts(6 * RATE, WINDOW, HOP) / RATE)
    inside = (scores.window_starts >= 2.0) & (scores.window_starts + 0.5 <= 4.0)
    outside = (scores.window_starts + 0.5 <= 2.0) | (scores.window_starts >= 4.0)
    assert scores.window_scores[inside].min() > scores.window_scores[outside].max() + 20
    np.testing.assert_array_equal(scores.window_anomalous, scores.window_scores > THRESHOLD)
    assert scores.score == pytest.approx(float(np.mean(scores.window_scores)))
    assert not scores.is_anomalous                 # the mean: two quiet thirds, one loud
    assert scores.score < THRESHOLD < scores.window_scores.max()
    assert scores.duration == pytest.approx(6.0)
    assert scores.threshold == THRESHOLD and scores.window_seconds == 0.5


def test_a_file_shorter_than_a_window_is_padded_to_one(bundle_dir, tmp_path):
    samples = noise(0.1, 0.3, 0)
    scores = score_file(load_anomaly_bundle(bundle_dir), write(tmp_path / "s.wav", samples))
    before = (WINDOW - len(samples)) // 2                  # the recording in the middle
    assert scores.window_starts.tolist() == [-before / RATE]
    padded = np.zeros(WINDOW, np.float32)
    padded[before:before + len(samples)] = samples
    assert scores.window_scores[0] == pytest.approx(level_db(padded), abs=1e-3)


def test_silence_gets_a_finite_score(bundle_dir, tmp_path):
    scores = score_file(load_anomaly_bundle(bundle_dir),
                        write(tmp_path / "quiet.wav", np.zeros(3 * RATE, np.float32)))
    assert np.isfinite(scores.window_scores).all() and not scores.is_anomalous
    assert scores.score == pytest.approx(-100.0, abs=0.1)


def test_another_rate_is_resampled(bundle_dir, tmp_path):
    bundle = load_anomaly_bundle(bundle_dir)
    t = np.arange(3 * 48000) / 48000
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    scores = score_file(bundle, write(tmp_path / "hi.wav", tone, 48000))
    assert scores.duration == pytest.approx(3.0, abs=1e-3)
    assert len(scores.window_scores) == len(window_starts(3 * RATE, WINDOW, HOP))
    # A sine of amplitude 0.5 has a power of 0.125: -9.03 dB.
    np.testing.assert_allclose(scores.window_scores[1:-2], -9.03, atol=0.1)
    from_array = score_array(bundle, tone, 48000)
    np.testing.assert_allclose(from_array.window_scores, scores.window_scores, atol=0.05)


def test_a_long_file_is_scored_in_bounded_memory(bundle_dir, tmp_path):
    """Ten minutes written block by block; memory stays far below the file's decoded size."""
    path = tmp_path / "long.wav"
    minutes, block = 10, 30 * RATE
    with soundfile.SoundFile(str(path), "w", RATE, 1, subtype="PCM_16") as sound:
        for index in range(minutes * 60 * RATE // block):
            sound.write(noise(30.0, 0.05, index))
    total = minutes * 60 * RATE
    bundle = load_anomaly_bundle(bundle_dir)
    steps = []

    def progress(total, description, unit):
        steps.append(total)
        return nullcontext(steps.append)

    tracemalloc.start()
    try:
        scores = score_file(bundle, path, progress=progress, block_seconds=10.0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    expected = len(window_starts(total, WINDOW, HOP))
    assert len(scores.window_scores) == expected == 2399
    assert steps[0] == expected and sum(steps[1:]) == expected
    # About one block, one batch of windows and a score per window (3.6 MiB when written),
    # against 18 MiB for the whole recording decoded.
    assert peak < 8 * 2**20, f"peak {peak / 2**20:.1f} MiB"


# --------------------------------------------------------------------------
# alarms


def track(values: list[float], hop: float = 0.25, window: float = 0.5) -> FileScores:
    values = np.asarray(values, dtype=np.float32)
    return FileScores("t", np.arange(len(values)) * hop, values, 0.0,
                      (len(values) - 1) * hop + window, window)


def test_hysteresis_holds_an_alarm_through_a_score_that_hovers():
    hovering = [-5.0] * 10 + [1.0, -0.5] * 10 + [-5.0] * 10   # around on = 0, above off
    flicker = find_alarms(track(hovering), AlarmSettings(smooth=1, min_gap=0.0))
    assert len(flicker) == 10                                  # no hysteresis: flicker
    held = find_alarms(track(hovering), AlarmSettings(off=-1.0, smooth=1, min_gap=0.0))
    assert [(a.onset, a.offset) for a in held] == [(2.625, 7.625)]   # centres
    assert held[0].label == "anomaly" and held[0].confidence == 1.0
    joined = find_alarms(track(hovering), AlarmSettings(smooth=1, min_gap=0.5))
    assert [(a.onset, a.offset) for a in joined] == [(2.625, 7.375)]


def test_smoothing_drops_blips_and_short_alarms_are_dropped():
    values = [-5.0] * 40
    values[5] = 3.0                                    # one window: a blip
    values[20:24] = [2.0] * 4                          # one second
    assert len(find_alarms(track(values), AlarmSettings(smooth=1))) == 2
    assert len(find_alarms(track(values), AlarmSettings(smooth=3))) == 1
    assert find_alarms(track(values), AlarmSettings(smooth=3, min_seconds=1.5)) == []


def test_alarm_settings_are_checked():
    for bad in (dict(smooth=2), dict(smooth=0), dict(on=1.0, off=2.0), dict(min_gap=-1.0),
                dict(on=float("nan"))):
        with pytest.raises(ConfigError):
            AlarmSettings(**bad)
    with pytest.raises(ConfigError, match="off"):
        AlarmSettings(off=5.0).levels(threshold=1.0)


def test_monitor_finds_the_loud_span_within_a_window(bundle_dir, tmp_path):
    path = write(tmp_path / "fault.wav", machine([(10.0, 0.01), (10.0, 0.3), (10.0, 0.01)]))
    result = monitor_file(load_anomaly_bundle(bundle_dir), path)
    assert (result.on, result.off) == (THRESHOLD, THRESHOLD)
    [alarm] = result.alarms
    assert abs(alarm.onset - 10.0) <= 0.5 and abs(alarm.offset - 20.0) <= 0.5
    assert alarm.confidence == pytest.approx(float(result.scores.window_scores.max()))


def test_the_live_tracker_gives_the_alarms_of_the_whole_track():
    rng = np.random.default_rng(3)
    values = rng.normal(-5.0, 1.0, 400)
    for start, length in ((30, 20), (60, 3), (75, 40), (200, 1), (300, 100)):
        values[start:start + length] += 7.0 + rng.normal(0, 2.0, length)
    values = values.astype(np.float32)
    settings = AlarmSettings(off=-1.0, smooth=3, min_seconds=0.5, min_gap=1.0)
    scores = track(list(values))
    expected = find_alarms(scores, settings)
    tracker = AlarmTracker(0.0, settings, 0.25, 0.5)
    changes = [(index, change) for index, value in enumerate(values)
               for change in tracker.push(value)]
    changes += [(len(values), change) for change in tracker.finish(scores.duration)]
    cleared = [change.alarm for _, change in changes if change.kind == "cleared"]
    raised = [(index, change.alarm) for index, change in changes if change.kind == "raised"]
    assert cleared == expected and len(raised) == len(expected) >= 3
    for (index, alarm), final in zip(raised, expected):
        assert alarm.onset == final.onset
        assert index < len(values) and index * 0.25 <= final.offset + 2   # raised live
    assert tracker.base > 300           # settled windows are not examined again


def test_a_stream_gives_the_alarms_of_the_same_file(bundle_dir, tmp_path):
    bundle = load_anomaly_bundle(bundle_dir)
    samples = machine([(5.0, 0.01), (4.0, 0.3), (6.0, 0.01), (3.0, 0.3), (2.0, 0.01)])
    from_file = monitor_file(bundle, write(tmp_path / "f.wav", samples))
    changes = []
    blocks = (samples[i:i + 999] for i in range(0, len(samples), 999))
    streamed = monitor_stream(bundle, blocks, on_change=changes.append)
    assert len(streamed.alarms) == len(from_file.alarms) == 2
    for ours, theirs in zip(streamed.alarms, from_file.alarms):    # batches of 1 and of 64
        assert (ours.onset, ours.offset) == (theirs.onset, theirs.offset)
        assert ours.confidence == pytest.approx(theirs.confidence, abs=1e-4)
    assert [c.kind for c in changes] == ["raised", "cleared", "raised", "cleared"]
    np.testing.assert_allclose(streamed.scores.window_scores, from_file.scores.window_scores,
                               atol=1e-4)


def test_a_stream_at_another_rate_is_resampled_as_it_comes(bundle_dir):
    bundle = load_anomaly_bundle(bundle_dir)
    samples = machine([(3.0, 0.01), (3.0, 0.3), (3.0, 0.01)], rate=16000)
    blocks = (samples[i:i + 1600] for i in range(0, len(samples), 1600))
    result = monitor_stream(bundle, resampled(blocks, 16000, RATE))
    assert result.scores.duration == pytest.approx(9.0, abs=0.01)
    [alarm] = result.alarms
    assert abs(alarm.onset - 3.0) <= 0.5 and abs(alarm.offset - 6.0) <= 0.5


# --------------------------------------------------------------------------
# the command line


def test_cli_score_prints_a_table_and_writes_csv_and_json(bundle_dir, tmp_path, capsys,
                                                          monkeypatch):
    monkeypatch.chdir(tmp_path)
    quiet = write(Path("quiet.wav"), noise(2.0, 0.01, 0))
    loud = write(Path("loud.wav"), noise(2.0, 0.3, 1))
    assert run(["anomaly", "score", str(bundle_dir), str(quiet), str(loud),
                "--csv", str(tmp_path / "s.csv"), "--json", str(tmp_path / "s.json")]) == 0
    out = capsys.readouterr().out
    assert "threshold" in out and "verdict" in out
    lines = {line.split()[0]: line.split()[-1] for line in out.splitlines()[1:]}
    assert lines == {str(quiet): "normal", str(loud): "anomalous"}
    rows = list(csv.DictReader((tmp_path / "s.csv").open()))
    assert [(row["file"], row["anomalous"]) for row in rows] == [(str(quiet), "0"),
                                                                 (str(loud), "1")]
    records = json.loads((tmp_path / "s.json").read_text())
    assert records[1]["anomalous"] is True and records[1]["windows"] == 7
    assert "window_scores" not in records[0]
    short = write(Path("short.wav"), noise(0.1, 0.01, 2))
    assert run(["anomaly", "score", str(bundle_dir), str(short)]) == 0
    assert "short.wav" in capsys.readouterr().err.split("verdicts are weak")[0]


def test_cli_score_windows_adds_a_row_per_window(bundle_dir, tmp_path, capsys):
    clip = write(tmp_path / "clip.wav", machine([(1.0, 0.01), (1.0, 0.3)]))
    assert run(["anomaly", "score", str(bundle_dir), str(clip), "--windows",
                "--csv", str(tmp_path / "w.csv"), "--json", str(tmp_path / "w.json")]) == 0
    assert capsys.readouterr().out.count(" at ") == 7
    rows = list(csv.DictReader((tmp_path / "w.csv").open()))
    assert [float(row["start"]) for row in rows] == [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5]
    assert rows[0]["anomalous"] == "0" and rows[-1]["anomalous"] == "1"
    windows = json.loads((tmp_path / "w.json").read_text())[0]["window_scores"]
    assert len(windows) == 7 and windows[-1]["anomalous"] is True


def test_cli_monitor_writes_alarms_and_a_timeline(bundle_dir, tmp_path, capsys):
    path = write(tmp_path / "fault.wav", machine([(6.0, 0.01), (5.0, 0.3), (6.0, 0.01)]))
    outputs = {"--csv": "a.csv", "--json": "a.json", "--audacity": "a.txt", "--plot": "a.png"}
    argv = ["anomaly", "monitor", str(bundle_dir), str(path), "--off", "-30", "--smooth", "1",
            "--min-seconds", "1"]
    for option, name in outputs.items():
        argv += [option, str(tmp_path / name)]
    assert run(argv) == 0
    captured = capsys.readouterr()
    assert captured.out.count("alarm ") == 1 and "1 alarm(s)" in captured.err
    for name in ("a.csv", "a.json", "a.txt"):
        [alarm] = read_events(tmp_path / name)
        assert alarm.label == "anomaly"
        assert abs(alarm.onset - 6.0) <= 0.5 and abs(alarm.offset - 11.0) <= 0.5
    assert read_events(tmp_path / "a.csv")[0].confidence > THRESHOLD
    assert (tmp_path / "a.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_monitor_listens_to_a_microphone(bundle_dir, tmp_path, capsys, monkeypatch):
    """A stand-in microphone at 16 kHz: alarms are printed as they are raised and cleared,
    and --seconds ends the stream."""
    from earmark.runtime import sources

    samples = machine([(4.0, 0.01), (4.0, 0.3), (6.0, 0.01), (10.0, 0.3)], rate=16000)

    class Microphone:
        def __init__(self, sample_rate=None, device=None):
            self.sample_rate = 16000

        def blocks(self):
            for start in range(0, len(samples), 800):
                yield samples[start:start + 800]

    monkeypatch.setattr(sources, "MicrophoneSource", Microphone)
    assert run(["anomaly", "monitor", str(bundle_dir), "--mic", "--seconds", "16",
                "--json", str(tmp_path / "live.json")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[1] == "raised" for line in out] == [True, False, True, False]
    first, second = read_events(tmp_path / "live.json")
    assert abs(first.onset - 4.0) <= 0.5 and abs(first.offset - 8.0) <= 0.5
    assert abs(second.onset - 14.0) <= 0.5 and second.offset == pytest.approx(16.0, abs=0.01)


@pytest.mark.parametrize("argv, message", [
    (["monitor", "{bundle}"], "give a recording"),
    (["monitor", "{bundle}", "{file}", "--csv", "alarms.json"], "--csv"),
    (["monitor", "{bundle}", "{file}", "--plot", "alarms.jpg"], "--plot"),
    (["monitor", "{bundle}", "{file}", "--on", "-30", "--off", "-20"], "off"),
    (["monitor", "{bundle}", "{file}", "--seconds", "5"], "for --mic"),
    (["monitor", "{bundle}", "--mic", "--seconds", "-1"], "--seconds"),
    (["score", "{classifier}", "{file}"], "earmark classify"),
    (["monitor", "{classifier}", "{file}"], "earmark classify")])
def test_cli_refuses_bad_requests_cleanly(bundle_dir, tmp_path, capsys, argv, message):
    file = write(tmp_path / "x.wav", noise(1.0, 0.1, 0))
    classifier = shutil.copytree(FIXTURES / "bundle_v1", tmp_path / "classifier")
    argv = [item.format(bundle=bundle_dir, file=file, classifier=classifier) for item in argv]
    assert run(["anomaly", *argv]) == 2
    assert message in capsys.readouterr().err


def test_cli_anomaly_alone_shows_its_subcommands(capsys):
    assert run(["anomaly"]) == 2
    out = capsys.readouterr().out
    assert "score" in out and "monitor" in out


def test_the_live_tracker_keeps_only_unsettled_windows():
    rng = np.random.default_rng(4)
    values = rng.normal(-5.0, 1.0, 6000)
    for start in range(100, 6000, 700):
        values[start:start + 30] += 8.0
    values = values.astype(np.float32)
    settings = AlarmSettings(smooth=5, min_gap=1.0)
    scores = track(list(values))
    tracker = AlarmTracker(0.0, settings, 0.25, 0.5)
    longest = 0
    cleared = []
    for value in values:
        cleared += [c.alarm for c in tracker.push(value) if c.kind == "cleared"]
        longest = max(longest, len(tracker.raw), len(tracker.smoothed))
    cleared += [c.alarm for c in tracker.finish(scores.duration) if c.kind == "cleared"]
    assert cleared == find_alarms(scores, settings) and len(cleared) == 9
    assert longest < 2 * AlarmTracker.TRIM_EVERY + 40     # not the 6000 windows


def test_a_score_at_the_threshold_is_not_an_alarm_as_it_is_not_flagged():
    values = [-1.0] * 10 + [0.0] * 10 + [-1.0] * 10          # 0.0 is the threshold
    scores = track(values)
    assert not np.any(scores.window_anomalous)
    assert find_alarms(scores, AlarmSettings(smooth=1)) == []
    values[15] = 1e-6
    assert len(find_alarms(track(values), AlarmSettings(smooth=1))) == 1


def test_hearing_through_an_anomaly_bundle_uses_its_log_mel_or_says_why_not(tmp_path):
    from earmark.runtime.hear import bundle_front_end

    features = {"kind": "logmel", "window_ms": 64.0, "hop_ms": 32.0, "n_mels": 64,
                "fmin": 0.0, "added_by_a_newer_earmark": 1}
    listening = write_bundle(tmp_path / "ae", settings={"method": "autoencoder",
                                                        "features": features})
    config, rate = bundle_front_end(listening)
    assert (config.n_mels, config.hop_ms, rate) == (64, 32.0, RATE)
    with pytest.raises(ConfigError, match="leave out --bundle"):
        bundle_front_end(write_bundle(tmp_path / "lines", settings={"method": "lines"}))
