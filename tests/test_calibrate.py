"""`earmark calibrate`: a bundle's threshold from long recordings of what it must not hear.

The tone bundle (conftest) hears 2 kHz as "high": a recording of noise with a few bursts of
2 kHz holds exactly that many false alarms for a "high"-free deployment."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile

from earmark.cli import main
from earmark.errors import AudioError, DataError
from earmark.metrics.streaming import poisson_interval
from earmark import calibrate
from earmark.calibrate import (StreamSettings, ThresholdSweep, report, stream_settings,
                               sweep_recordings)
from earmark.runtime import load_bundle
from earmark.runtime.metadata import read_metadata_file, write_detection
from earmark.runtime.smoother import SmootherConfig

from conftest import TONE_FREQUENCIES, TONE_RATE

BURST_S = 0.5


def write_bursts(path: Path, seconds: float, burst_starts: list[float], seed: int = 0,
                 frequency: float = TONE_FREQUENCIES["high"]) -> Path:
    """Quiet noise with a 0.5 s tone starting at each of ``burst_starts`` (s)."""
    rng = np.random.default_rng(seed)
    samples = 0.05 * rng.standard_normal(int(seconds * TONE_RATE))
    t = np.arange(int(BURST_S * TONE_RATE)) / TONE_RATE
    for start in burst_starts:
        at = int(start * TONE_RATE)
        samples[at:at + len(t)] += 0.4 * np.sin(2 * np.pi * frequency * t)
    soundfile.write(path, samples.astype(np.float32), TONE_RATE)
    return path


SETTINGS = StreamSettings(48.0, SmootherConfig(average_window_ms=200, minimum_count=2,
                                               suppression_ms=1500))


# ------------------------------------------------------------------ the choice

def test_the_chosen_threshold_is_the_lowest_from_which_every_higher_one_is_within_budget():
    sweep = ThresholdSweep(np.array([0.5, 0.6, 0.7, 0.8]), np.array([5, 0, 2, 0]), 3600.0, 1)
    assert sweep.choose(1.0) == 0.8            # 0.6 is within, but 0.7 above it is not
    assert sweep.choose(2.0) == 0.6
    assert sweep.choose(5.0) == 0.5
    assert ThresholdSweep(np.array([0.5, 0.9]), np.array([3, 1]), 3600.0, 1).choose(0.5) is None


def test_a_row_carries_the_exact_intervals_of_its_counts():
    sweep = ThresholdSweep(np.array([0.5, 0.9]), np.array([4, 0]), 1800.0, 2,
                           found=np.array([10, 7]), positives=10)
    row = sweep.row(0.9)
    assert row["false_alarms"] == 0 and row["false_alarms_per_hour"] == 0
    assert row["false_alarms_per_hour_95"][1] == pytest.approx(2 * poisson_interval(0)[1])
    assert row["miss_rate"] == pytest.approx(0.3)
    low, high = row["miss_rate_95"]
    assert low < 0.3 < high
    assert sweep.row(0.5)["false_alarms_per_hour"] == pytest.approx(8.0)
    result = report(sweep, 1.0, stored=0.5)
    assert result["chosen"]["threshold"] == 0.9 and result["stored"]["false_alarms"] == 4
    assert result["hours_to_show_budget"] == pytest.approx(poisson_interval(0)[1])
    json.dumps(result)                        # plain JSON: no numpy values, no infinities
    assert report(sweep, 0.0, None)["hours_to_show_budget"] is None


# ------------------------------------------------------------------ the bundle at work

def test_every_burst_in_the_negatives_is_a_false_alarm_at_low_thresholds(bundle, tmp_path):
    starts = [5.0, 15.0, 25.0, 35.0, 45.0]
    negatives = write_bursts(tmp_path / "talk.wav", 60.0, starts)
    quiet = write_bursts(tmp_path / "quiet.wav", 30.0, [], seed=1)
    sweep = sweep_recordings(load_bundle(bundle, threads=1), [negatives, quiet], SETTINGS,
                             thresholds=(0.3, 0.5, 0.9999))
    assert sweep.negative_seconds == pytest.approx(90.0)
    assert sweep.negative_files == 2
    assert sweep.false_alarms[0] == len(starts)
    assert sweep.false_alarms[0] >= sweep.false_alarms[1] >= sweep.false_alarms[2]
    assert sweep.false_alarms_per_hour[0] == pytest.approx(len(starts) / (90 / 3600))


def test_long_recordings_are_counted_an_hour_of_scores_at_a_time(bundle, tmp_path,
                                                                 monkeypatch):
    negatives = write_bursts(tmp_path / "talk.wav", 80.0, [5.0 + 10 * i for i in range(8)])
    loaded = load_bundle(bundle, threads=1)
    whole = sweep_recordings(loaded, [negatives], SETTINGS, thresholds=(0.3, 0.6))
    monkeypatch.setattr(calibrate, "SEGMENT_SECONDS", 20.0)    # segments end between bursts
    pieces = sweep_recordings(loaded, [negatives], SETTINGS, thresholds=(0.3, 0.6))
    assert whole.false_alarms.tolist() == pieces.false_alarms.tolist()
    assert whole.false_alarms[0] == 8


def test_recordings_of_the_phrase_give_the_miss_rate(bundle, tmp_path):
    said = tmp_path / "said"
    said.mkdir()
    for i in range(4):
        write_bursts(said / f"high{i}.wav", 1.5, [0.5], seed=i)
    write_bursts(said / "other.wav", 1.5, [0.5], seed=9,         # another word: a miss
                 frequency=TONE_FREQUENCIES["low"])
    negatives = write_bursts(tmp_path / "quiet.wav", 20.0, [])
    loaded = load_bundle(bundle, threads=1)
    with pytest.raises(DataError, match="--label"):            # three labels to choose from
        sweep_recordings(loaded, [negatives], SETTINGS, [said])
    sweep = sweep_recordings(loaded, [negatives], SETTINGS, [said], label="high",
                             thresholds=(0.3, 0.6))
    assert sweep.positives == 5 and sweep.found.tolist() == [4, 4]
    assert sweep.row(0.3)["miss_rate"] == pytest.approx(0.2)
    low = sweep_recordings(loaded, [negatives], SETTINGS, [said], label="low",
                           thresholds=(0.6,))
    assert low.found.tolist() == [1]


def test_the_bundles_own_settings_are_used_where_it_has_them(bundle, tmp_path):
    copy = tmp_path / "bundle"
    shutil.copytree(bundle, copy)
    assert stream_settings(load_bundle(copy)) == StreamSettings(20.0, SmootherConfig())
    write_detection(copy, {"stride_ms": 48.0, "average_window_ms": 300.0,
                           "detection_threshold": 0.93, "suppression_ms": 2000.0,
                           "minimum_count": 3})
    settings = stream_settings(load_bundle(copy))
    assert settings.stride_ms == 48.0 and settings.smoother.minimum_count == 3
    assert settings.smoother.detection_threshold == 0.93


# ------------------------------------------------------------------ the command

def test_calibrate_stores_the_threshold_it_chose(bundle, tmp_path, capsys):
    copy = tmp_path / "bundle"
    shutil.copytree(bundle, copy)
    write_detection(copy, {"stride_ms": 48.0, "detection_threshold": 0.3})
    negatives = write_bursts(tmp_path / "talk.wav", 40.0, [5.0, 25.0])
    out = tmp_path / "cal"
    code = main(["calibrate", str(copy), "--negatives", str(negatives), "--out", str(out),
                 "--false-alarms-per-hour", "200", "--store", "-q"])
    assert code == 0
    printed = capsys.readouterr()
    result = json.loads((out / "calibration.json").read_text())
    chosen = result["chosen"]
    assert chosen["false_alarms_per_hour"] <= 200 and result["stored"]["threshold"] == 0.3
    assert result["stored"]["false_alarms"] == 2                # both bursts at 0.3
    assert "chosen" in printed.out and "stored" in printed.out
    detection = read_metadata_file(copy / "earmark.json").detection
    assert detection["detection_threshold"] == chosen["threshold"]
    assert detection["calibrated_for_false_alarms_per_hour"] == 200
    assert detection["stride_ms"] == 48.0
    load_bundle(copy)                                           # still a valid bundle


def test_calibrate_stores_nothing_when_no_threshold_meets_the_budget(bundle, tmp_path, capsys,
                                                                   monkeypatch):
    import earmark.metrics.streaming

    monkeypatch.setattr(earmark.metrics.streaming, "WAKE_THRESHOLDS", (0.3, 0.4))
    copy = tmp_path / "bundle"
    shutil.copytree(bundle, copy)
    before = (copy / "earmark.json").read_text()
    negatives = write_bursts(tmp_path / "talk.wav", 40.0, [5.0, 15.0, 25.0])
    code = main(["calibrate", str(copy), "--negatives", str(negatives), "--store",
                 "--false-alarms-per-hour", "0", "-q"])
    assert code == 2
    assert "nothing was stored" in capsys.readouterr().err
    assert (copy / "earmark.json").read_text() == before


def test_calibrate_says_how_little_a_short_recording_shows(bundle, tmp_path, capsys):
    negatives = write_bursts(tmp_path / "quiet.wav", 30.0, [])
    assert main(["calibrate", str(bundle), "--negatives", str(negatives), "-q"]) == 0
    assert "cannot show a rate of 1 an hour" in capsys.readouterr().out


def test_calibrate_plots_the_sweep(bundle, tmp_path):
    pytest.importorskip("matplotlib")
    negatives = write_bursts(tmp_path / "talk.wav", 20.0, [5.0])
    said = write_bursts(tmp_path / "said.wav", 1.5, [0.5])
    picture = tmp_path / "sweep.png"
    assert main(["calibrate", str(bundle), "--negatives", str(negatives), "--positives",
                 str(said), "--label", "high", "--plot", str(picture), "-q"]) == 0
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("case, message", [
    ("empty folder", "no audio files"), ("corrupt", "corrupt.wav"),
    ("long positive", "one saying"), ("negative budget", "--false-alarms-per-hour"),
    ("unknown label", "'shout'")])
def test_calibrate_refuses_bad_input_naming_it(bundle, tmp_path, capsys, case, message):
    good = write_bursts(tmp_path / "quiet.wav", 5.0, [])
    (tmp_path / "empty").mkdir()
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    long_said = write_bursts(tmp_path / "long.wav", 40.0, [1.0])
    arguments = {"empty folder": ["--negatives", str(tmp_path / "empty")],
                 "corrupt": ["--negatives", str(good), str(corrupt)],
                 "long positive": ["--negatives", str(good), "--positives", str(long_said),
                                   "--label", "high"],
                 "negative budget": ["--negatives", str(good), "--false-alarms-per-hour", "-1"],
                 "unknown label": ["--negatives", str(good), "--positives", str(good),
                                   "--label", "shout"]}[case]
    assert main(["calibrate", str(bundle), *arguments, "-q"]) == 2
    assert message in capsys.readouterr().err


def test_a_corrupt_negative_is_named_before_any_audio_is_scored(bundle, tmp_path):
    corrupt = tmp_path / "corrupt.flac"
    corrupt.write_bytes(b"fLaC" + bytes(20))
    with pytest.raises(AudioError, match="corrupt.flac"):
        sweep_recordings(load_bundle(bundle, threads=1),
                         [write_bursts(tmp_path / "ok.wav", 5.0, []), corrupt], SETTINGS)


def test_calibrate_can_add_synthesized_conversation(bundle, tmp_path, capsys):
    pytest.importorskip("wordfreq")
    negatives = write_bursts(tmp_path / "quiet.wav", 10.0, [])
    out = tmp_path / "cal"
    assert main(["calibrate", str(bundle), "--negatives", str(negatives),
                 "--conversation-minutes", "0.25", "--phrase", "hello there", "--out", str(out),
                 "-q"]) == 0
    assert "negative recording(s) and 0.00 h of synthesized conversation" in capsys.readouterr().out
    result = json.loads((out / "calibration.json").read_text())
    assert result["negative_hours"] == pytest.approx((10 + 15) / 3600, rel=0.01)
    assert result["conversation_hours"] == pytest.approx(0.25 / 60)
    # the conversation alone, without recordings
    assert main(["calibrate", str(bundle), "--conversation-minutes", "0.1", "--phrase",
                 "hello there", "-q"]) == 0
    assert main(["calibrate", str(bundle), "-q"]) == 2
    assert "--conversation-minutes" in capsys.readouterr().err


def test_pooled_sweeps_add_their_negatives():
    a = ThresholdSweep(np.array([0.5, 0.9]), np.array([2, 0]), 1800.0, 3,
                       found=np.array([4, 3]), positives=4)
    b = ThresholdSweep(np.array([0.5, 0.9]), np.array([1, 1]), 5400.0, 0)
    both = a.pooled(b)
    assert both.false_alarms.tolist() == [3, 1] and both.hours == 2.0
    assert both.negative_files == 3 and both.positives == 4 and both.found.tolist() == [4, 3]
    with pytest.raises(ValueError, match="same thresholds"):
        a.pooled(ThresholdSweep(np.array([0.5]), np.array([1]), 60.0, 1))


def test_calibrate_listens_with_the_smoothing_it_is_told_and_stores_it(bundle, tmp_path,
                                                                       capsys):
    copy = tmp_path / "bundle"
    shutil.copytree(bundle, copy)
    negatives = write_bursts(tmp_path / "talk.wav", 20.0, [5.0])
    assert main(["calibrate", str(copy), "--negatives", str(negatives), "--stride-ms", "48",
                 "--window-ms", "200", "--min-count", "2", "--false-alarms-per-hour", "500",
                 "--store", "-q"]) == 0
    detection = read_metadata_file(copy / "earmark.json").detection
    assert (detection["stride_ms"], detection["average_window_ms"],
            detection["minimum_count"]) == (48.0, 200, 2)
    assert main(["calibrate", str(copy), "--negatives", str(negatives), "--threshold", "0.5",
                 "-q"]) == 2
    assert "leave it out" in capsys.readouterr().err
    assert main(["calibrate", str(copy), "--negatives", str(negatives), "--window-ms", "-5",
                 "-q"]) == 2
    assert "--window-ms" in capsys.readouterr().err


def test_another_seed_is_another_conversation(bundle, tmp_path):
    pytest.importorskip("wordfreq")
    figures = []
    for seed in ("0", "0", "1"):
        out = tmp_path / f"cal{len(figures)}"
        assert main(["calibrate", str(bundle), "--conversation-minutes", "0.1", "--phrase",
                     "hello there", "--seed", seed, "--out", str(out), "-q"]) == 0
        sweep = json.loads((out / "calibration.json").read_text())["sweep"]
        figures.append([row["false_alarms"] for row in sweep])
    assert figures[0] == figures[1]                  # the same seed: the same conversation
    from earmark.wakeword.conversation import running_speech
    from earmark.wakeword.phrases import check_phrase

    phrase = check_phrase("hello there")
    one, other = (next(running_speech(phrase, 0.05, TONE_RATE, [], seed)) for seed in (0, 1))
    assert not np.array_equal(one, other)            # another seed: other sentences
