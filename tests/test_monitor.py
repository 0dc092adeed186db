"""`earmark monitor`: levels, sources and events over a timeline of recordings."""

from __future__ import annotations

import csv
import json
import math
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile

from earmark.cli import main
from earmark.errors import AudioError, ConfigError
from earmark.levels import a_weighting_db, measure_file
from earmark.runtime import load_bundle
from earmark.runtime.monitor import MonitorSettings, monitor, write_reports

#: A small 8 kHz bundle (classes _silence_, high 2 kHz, low 300 Hz, mid 900 Hz), no training.
FIXTURE_BUNDLE = Path(__file__).parent / "fixtures" / "bundle_v1"
RATE = 8000
SOURCES = {"low": 300.0, "mid": 900.0, "high": 2000.0}


def noisy_tone(frequency: float, seconds: float, seed: int = 0) -> np.ndarray:
    """A tone like the fixture model's training data (amplitude 0.4, noise 0.05)."""
    t = np.arange(int(seconds * RATE)) / RATE
    noise = 0.05 * np.random.default_rng(seed).standard_normal(len(t))
    return (0.4 * np.sin(2 * np.pi * frequency * t) + noise).astype(np.float32)


def write_day(folder: Path, minutes: float = 1.0) -> list[str]:
    """A "day" of three consecutive files, one source each, named so they sort in order."""
    folder.mkdir(parents=True, exist_ok=True)
    order = []
    for index, (label, frequency) in enumerate(SOURCES.items()):
        soundfile.write(folder / f"2024-06-01T{index:02d}.flac",
                        noisy_tone(frequency, minutes * 60, seed=index), RATE)
        order.append(label)
    return order


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def fixture_bundle():
    return load_bundle(FIXTURE_BUNDLE, threads=1)


def test_monitor_command_writes_every_report_for_each_interval(tmp_path, capsys):
    order = write_day(tmp_path / "day", minutes=1.5)          # 270 s
    out = tmp_path / "report"
    code = main(["monitor", str(FIXTURE_BUNDLE), str(tmp_path / "day"), "--out", str(out),
                 "--interval", "60", "--plot", "-q"])
    assert code == 0
    assert "LAeq" in capsys.readouterr().out
    intervals = read_csv(out / "intervals.csv")
    assert [row["start_s"] for row in intervals] == ["0", "60", "120", "180", "240"]
    assert intervals[-1]["end_s"] == "270"                   # the last interval is short
    assert len(read_csv(out / "seconds.csv")) == 270
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["intervals"]) == 5 and summary["unit"] == "dBFS"
    assert [r["start_s"] for r in summary["recordings"]] == [0.0, 90.0, 180.0]
    # Each 90 s file is one source: the intervals inside one name it.
    assert [intervals[i]["dominant"] for i in (0, 2, 4)] == [order[0], order[1], order[2]]
    windows = read_csv(out / "windows.csv")
    assert list(windows[0]) == ["start_s", "end_s", "_silence_", "high", "low", "mid"]
    assert (out / "events.csv").exists()
    assert (out / "monitor.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_levels_over_files_are_the_levels_of_one_long_file(fixture_bundle, tmp_path):
    write_day(tmp_path / "day", minutes=0.5)
    joined = np.concatenate([soundfile.read(p, dtype="float32")[0]
                             for p in sorted((tmp_path / "day").iterdir())])
    soundfile.write(tmp_path / "joined.wav", joined, RATE, subtype="FLOAT")
    result = monitor(fixture_bundle, [tmp_path / "day"], MonitorSettings(interval_seconds=30))
    whole = measure_file(tmp_path / "joined.wav")
    np.testing.assert_allclose(result.seconds.laeq, whole.laeq, atol=0.01)
    # The 900 Hz file: a 0.4 sine (20 lg 0.4 = -7.96 dBFS), A-weighted, over quieter noise.
    tone_level = 20 * math.log10(0.4) + float(a_weighting_db(900.0))
    assert result.intervals[1].levels.laeq == pytest.approx(tone_level, abs=0.2)
    assert len(result.windows.window_starts) == len(result.windows.window_probabilities)


def test_a_later_file_at_a_higher_rate_keeps_its_high_frequencies(fixture_bundle, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    soundfile.write(folder / "a.wav", noisy_tone(300.0, 10.0), RATE)
    high_rate = 32000
    t = np.arange(10 * high_rate) / high_rate
    soundfile.write(folder / "b.wav", (0.4 * np.sin(2 * np.pi * 6000.0 * t)).astype(np.float32),
                    high_rate)
    result = monitor(fixture_bundle, [folder], MonitorSettings(interval_seconds=10))
    expected = 20 * math.log10(0.4) + float(a_weighting_db(6000.0))    # not filtered away
    assert result.seconds.sample_rate == high_rate
    assert result.intervals[1].levels.laeq == pytest.approx(expected, abs=0.2)


def test_calibration_shifts_every_level(fixture_bundle, tmp_path):
    write_day(tmp_path / "day", minutes=0.25)
    plain = monitor(fixture_bundle, [tmp_path / "day"], MonitorSettings(interval_seconds=10))
    spl = monitor(fixture_bundle, [tmp_path / "day"],
                  MonitorSettings(interval_seconds=10, calibration_db=110.0))
    assert spl.settings.unit == "dB SPL"
    for a, b in zip(plain.intervals, spl.intervals):
        for name in ("laeq", "lafmax", "la10", "la90"):
            assert getattr(b.levels, name) - getattr(a.levels, name) == pytest.approx(110.0)
    paths = write_reports(spl, tmp_path / "spl")
    assert "LAeq_dBSPL" in (tmp_path / "spl" / "intervals.csv").read_text().splitlines()[0]
    assert json.loads(paths[-1].read_text())["calibration_db"] == 110.0


def test_a_long_recording_is_monitored_in_bounded_memory(fixture_bundle, tmp_path):
    path = tmp_path / "long.flac"
    rng = np.random.default_rng(0)
    with soundfile.SoundFile(path, "w", RATE, 1, format="FLAC") as sink:
        for _ in range(60):                                   # 10 minutes
            sink.write((0.05 * rng.standard_normal(10 * RATE)).astype(np.float32))
    tracemalloc.start()
    result = monitor(fixture_bundle, [path], MonitorSettings(block_seconds=5.0))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(result.intervals) == 10 and result.duration == pytest.approx(600.0)
    decoded = 600 * RATE * 4
    assert peak < decoded / 3, f"peak {peak / 1e6:.1f} MB for {decoded / 1e6:.1f} MB of audio"


def test_a_missing_or_corrupt_recording_is_named_before_anything_runs(fixture_bundle,
                                                                      tmp_path, capsys):
    write_day(tmp_path / "day", minutes=0.1)
    (tmp_path / "day" / "2024-06-01T01.flac").write_bytes(b"fLaC but nothing after")
    with pytest.raises(AudioError, match="2024-06-01T01.flac"):
        monitor(fixture_bundle, [tmp_path / "day"])
    code = main(["monitor", str(FIXTURE_BUNDLE), str(tmp_path / "nowhere.wav"), "--out",
                 str(tmp_path / "out"), "-q"])
    assert code == 2 and "nowhere.wav" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_folder_that_is_not_a_bundle_is_refused_by_name(tmp_path, capsys):
    write_day(tmp_path / "day", minutes=0.1)
    (tmp_path / "run").mkdir()
    code = main(["monitor", str(tmp_path / "run"), str(tmp_path / "day"), "--out",
                 str(tmp_path / "out"), "-q"])
    assert code == 2 and "run" in capsys.readouterr().err


def test_an_anomaly_bundle_is_refused_with_what_to_use(tmp_path, capsys):
    import shutil

    write_day(tmp_path / "day", minutes=0.1)
    other = tmp_path / "fan"
    shutil.copytree(FIXTURE_BUNDLE, other)
    metadata = json.loads((other / "earmark.json").read_text())
    (other / "earmark.json").write_text(json.dumps({**metadata, "format": "earmark-anomaly"}))
    code = main(["monitor", str(other), str(tmp_path / "day"), "--out", str(tmp_path / "out"),
                 "-q"])
    error = capsys.readouterr().err
    assert code == 2 and "fan" in error and "earmark anomaly" in error


@pytest.mark.parametrize("interval", [0.5, 1.5, math.inf])
def test_intervals_are_whole_seconds(interval):
    with pytest.raises(ConfigError, match="interval"):
        MonitorSettings(interval_seconds=interval)


def test_a_tiny_or_silent_recording_still_gets_a_readable_picture(tmp_path, capsys):
    from earmark.plots import LEVEL_SPAN_DB, _level_range

    tiny = tmp_path / "tiny"
    tiny.mkdir()
    soundfile.write(tiny / "blip.wav", noisy_tone(900.0, 0.05), RATE)      # under 0.1 s
    assert main(["monitor", str(FIXTURE_BUNDLE), str(tiny), "--out", str(tmp_path / "r1"),
                 "--plot", "-q"]) == 0
    assert (tmp_path / "r1" / "monitor.png").stat().st_size > 1000
    loud = np.full(5, -20.0)
    levels = {"LAeq": np.array([-20.0, -197.0]), "LA90": np.array([-25.0, -197.0])}
    bottom, top = _level_range(np.r_[loud, np.full(5, -197.0)], levels)
    assert top == -17.0 and bottom == top - LEVEL_SPAN_DB       # silence does not squash it
    assert _level_range(loud, {"LAeq": np.array([-20.0]), "LA90": np.array([np.nan])}) \
        == (-30.0, -17.0)
