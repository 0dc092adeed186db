"""The robustness suite: each corruption does what it says, and a run is scored under all."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile

pytest.importorskip("scipy")
pytest.importorskip("pyroomacoustics")
pytest.importorskip("av")

from scipy import signal  # noqa: E402

from earmark.errors import DataError  # noqa: E402
from earmark.metrics.classification import wilson_interval  # noqa: E402
from earmark.robustness import corruptions as corrupt  # noqa: E402
from earmark.robustness.codecs import envelope_lag, through_codec, tone_bursts  # noqa: E402
from earmark.rooms import measured_rt60, reverberate, room_impulse  # noqa: E402
from earmark.robustness.suite import Sources, build_suite, missing_families  # noqa: E402

RATE = 16000


def tone(frequency: float = 440.0, seconds: float = 1.0, amplitude: float = 0.3,
         rate: int = RATE) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def level_db(samples: np.ndarray) -> float:
    return 10 * math.log10(corrupt.power(samples))


@pytest.mark.parametrize("snr", [20, 10, 5, 0, -5])
def test_noise_is_mixed_at_the_snr_asked(snr):
    rng = np.random.default_rng(snr + 10)
    speech = tone() * np.hanning(RATE).astype(np.float32)      # a level that changes
    for noise in (corrupt.pink_noise(RATE, rng), 3.0 * rng.standard_normal(RATE)):
        mixed = corrupt.mix_at_snr(speech, noise, snr)
        added = mixed.astype(np.float64) - speech
        assert level_db(speech) - level_db(added) == pytest.approx(snr, abs=0.1)


def test_pink_noise_falls_3_db_an_octave():
    noise = corrupt.pink_noise(8 * RATE, np.random.default_rng(0))
    frequencies, density = signal.welch(noise, RATE, nperseg=4096)
    low = density[(frequencies > 200) & (frequencies < 400)].mean()
    high = density[(frequencies > 3200) & (frequencies < 6400)].mean()
    assert 10 * math.log10(low / high) == pytest.approx(3 * 4 + 0.0, abs=1.5)   # 4 octaves
    assert corrupt.power(noise) == pytest.approx(1.0, rel=1e-3)


def test_silence_stays_silent_and_babble_mixes_other_talkers():
    silent = np.zeros(RATE, np.float32)
    assert not np.any(corrupt.mix_at_snr(silent, np.ones(RATE), 0))
    talkers = [(tone(100.0 * (i + 2)), f"speaker{i}") for i in range(7)]
    sources = Sources(talkers)
    mixture = sources.babble(RATE, exclude="speaker0", rng=np.random.default_rng(1))
    spectrum = np.abs(np.fft.rfft(mixture))
    assert spectrum[200] < 0.01 * spectrum.max()          # speaker0's 200 Hz is left out
    assert sum(spectrum[100 * (i + 2)] > 0.1 * spectrum.max() for i in range(1, 7)) == 5


@pytest.mark.parametrize("rt60", [0.3, 0.6, 1.0])
def test_a_simulated_room_reverberates_for_the_time_asked(rt60):
    response = room_impulse(RATE, rt60, 2.0, np.random.default_rng(2))
    assert measured_rt60(response, RATE) == pytest.approx(rt60, rel=0.15)
    dry = tone(seconds=0.5)
    wet = reverberate(dry, response)
    assert len(wet) == len(dry) and level_db(wet) == pytest.approx(level_db(dry), abs=0.01)


def test_telephone_band_mu_law_and_rates():
    low, mid, high = tone(100.0), tone(1000.0), tone(6000.0)
    for sound, kept in ((low, False), (mid, True), (high, False)):
        passed = corrupt.telephone_band(sound, RATE)[RATE // 2:]
        assert (level_db(passed) > level_db(sound) - 1) == kept
    coded, rate = corrupt.mu_law(mid, RATE)
    assert rate == 8000 and len(coded) == 8000
    reference = tone(1000.0, rate=8000)
    error = coded - reference
    assert 30 < level_db(reference) - level_db(error) < 45       # 8-bit mu-law: ~38 dB SNR
    narrow, rate = corrupt.at_rate(high, RATE, 8000)
    assert rate == 8000 and level_db(narrow) < -40                # 6 kHz is above 4 kHz
    wide, rate = corrupt.at_rate(mid, RATE, 44100)
    assert rate == 44100 and len(wide) == 44100


def test_gain_clipping_and_a_microphones_eq():
    sound = tone()
    assert level_db(corrupt.gain(sound, -20)) == pytest.approx(level_db(sound) - 20, abs=1e-3)
    clipped = corrupt.clip(sound, 6)
    assert np.max(np.abs(clipped)) == pytest.approx(0.3 * 10 ** (-6 / 20), rel=1e-4)
    for kind, frequency, at in (("lowshelf", 200.0, 0.0), ("highshelf", 5000.0, 7999.0),
                                ("peak", 1000.0, 1000.0)):
        sections = corrupt._biquad(kind, frequency, 9.0, 0.7, RATE)
        _, response = signal.sosfreqz(sections[None, :], worN=[at], fs=RATE)
        assert 20 * math.log10(abs(response[0])) == pytest.approx(9.0, abs=0.3)
    coloured = corrupt.microphone(tone(1000.0), RATE, np.random.default_rng(3))
    assert np.all(np.isfinite(coloured)) and abs(level_db(coloured) - level_db(sound)) < 21


@pytest.mark.parametrize("codec, bitrate", [("opus", 8000), ("mp3", 16000)])
def test_a_codec_keeps_the_length_and_timing(codec, bitrate):
    bursts = np.roll(tone_bursts(RATE), 1234)                # not where the delay was measured
    out = through_codec(bursts, RATE, codec, bitrate)
    assert len(out) == RATE
    assert abs(envelope_lag(out, bursts)) <= 2               # decoded in step with the input
    assert level_db(out) == pytest.approx(level_db(bursts), abs=3)


def test_the_suite_is_seeded_and_leaves_out_what_it_has_no_recordings_for():
    talkers = [(tone(100.0 * (i + 2)), f"s{i}") for i in range(8)]
    full = build_suite(RATE, Sources(talkers, [np.ones(RATE, np.float32)]), seed=0)
    names = [c.name for c in full]
    assert "babble 0 dB SNR" in names and "background 20 dB SNR" in names
    assert "device rate 8 kHz" in names and "device rate 16 kHz" not in names
    assert len(names) == len(set(names)) == 12 + 3 + 4 + 2 + 2 + 1 + 3   # the table
    bare = build_suite(RATE, Sources(), seed=0)
    assert missing_families(Sources()) == ["babble", "background"]
    assert not any(c.family in ("babble", "background") for c in bare)
    one_speaker = Sources([(tone(100.0 * (i + 2)), "s0") for i in range(8)])   # one held out
    assert missing_families(one_speaker) == ["babble", "background"]
    with pytest.raises(DataError, match="s0"):
        one_speaker.babble(RATE, exclude="s0", rng=np.random.default_rng(0))
    again = build_suite(RATE, Sources(), seed=0)
    for first, second in zip(bare, again):
        a = first.apply(tone(), RATE, np.random.default_rng(5), "g")
        b = second.apply(tone(), RATE, np.random.default_rng(5), "g")
        assert a[1] == b[1] and np.array_equal(a[0], b[0])


def test_a_single_split_gets_a_wilson_interval():
    low, high = wilson_interval(251, 279)
    assert (round(low, 3), round(high, 3)) == (0.859, 0.930)
    assert wilson_interval(10, 10)[1] == pytest.approx(1.0)


@pytest.mark.slow
def test_a_run_and_its_bundle_are_scored_under_every_corruption(tmp_path, capsys):
    from earmark.cli import main
    from earmark.config import from_dict
    from earmark.export import export_run
    from earmark.robustness.evaluate import evaluate_robustness
    from earmark.train import train

    for label, frequency in (("low", 300.0), ("high", 2000.0)):
        folder = tmp_path / "data" / label
        folder.mkdir(parents=True)
        for take in range(12):
            rng = np.random.default_rng(take)
            sound = tone(frequency * (1 + 0.02 * rng.standard_normal()), amplitude=0.3) \
                + 0.01 * rng.standard_normal(RATE).astype(np.float32)
            soundfile.write(folder / f"{label}_{take % 6}_{take}.wav", sound, RATE)
    config = from_dict({
        "data": {"root": str(tmp_path / "data"), "group_pattern": r"^[a-z]+_(?P<group>\d)_",
                 "ratios": [0.5, 0.17, 0.33], "sample_rate": RATE, "clip_seconds": 1.0,
                 "cache_dir": str(tmp_path / "cache")},
        "features": {"kind": "logmel", "n_mels": 16},
        "model": {"name": "dscnn", "channels": 8, "blocks": 1},
        "train": {"epochs": 4, "batch_size": 8, "threads": 1}})
    train(config, tmp_path / "run", progress=False)
    report = evaluate_robustness(tmp_path / "run")
    assert report["clean"]["accuracy"] >= 0.75
    rows = {f"{r['family']} {r['severity']}": r for r in report["corruptions"]}
    for rate in ("44.1", "48"):            # resampled back to the model's rate: the same
        assert rows[f"device rate {rate} kHz"]["accuracy"] == report["clean"]["accuracy"]
    assert report["left_out"] == ["background"] and "babble 0 dB SNR" in rows   # 8 talkers
    assert 0 <= report["mean_corrupted_accuracy"] <= 1
    saved = json.loads((tmp_path / "run" / "robustness_test.json").read_text())
    assert saved["clean"]["interval_95"][0] <= saved["clean"]["accuracy"]
    assert (tmp_path / "run" / "robustness_test.png").read_bytes()[:4] == b"\x89PNG"
    export_run(tmp_path / "run", tmp_path / "bundle")
    assert main(["evaluate", str(tmp_path / "run"), "--robustness", "--bundle",
                 str(tmp_path / "bundle"), "-q"]) == 0
    out = capsys.readouterr().out
    assert "mean corrupted" in out and "reverberation RT60 1 s" in out
    bundled = json.loads((tmp_path / "run" / "robustness_test_bundle.json").read_text())
    assert bundled["clean"]["accuracy"] == pytest.approx(report["clean"]["accuracy"], abs=0.01)


@pytest.mark.slow
def test_crossval_tests_every_group_once_and_reuses_finished_folds(tmp_path, capsys):
    from earmark.cli import main
    from earmark.config import from_dict
    from earmark.crossval import cross_validate, fold_configs

    for label, frequency in (("low", 300.0), ("high", 2000.0)):
        folder = tmp_path / "data" / label
        folder.mkdir(parents=True)
        for take in range(12):
            sound = tone(frequency * (1 + 0.01 * (take % 5)), amplitude=0.3)
            soundfile.write(folder / f"{label}_{take % 6}_{take}.wav", sound, RATE)
    raw = {"data": {"root": str(tmp_path / "data"), "group_pattern": r"^[a-z]+_(?P<group>\d)_",
                    "ratios": [0.7, 0.2, 0.1], "sample_rate": RATE, "clip_seconds": 1.0,
                    "cache_dir": str(tmp_path / "cache")},
           "features": {"kind": "logmel", "n_mels": 16},
           "model": {"name": "dscnn", "channels": 8, "blocks": 1},
           "train": {"epochs": 2, "batch_size": 8, "threads": 1}}
    config = from_dict(raw)
    folds = fold_configs(config, folds=3)
    assert [fold for fold, _ in folds] == [0, 1, 2]
    assert {c.data.kfold_validation for _, c in folds} == {"groups"}
    report = cross_validate(config, tmp_path / "cv", folds=3)
    assert report["clips"] == 24 and len(report["folds"]) == 3         # every clip tested once
    low, high = report["pooled_interval_95"]
    assert low <= report["pooled_accuracy"] <= high
    model = tmp_path / "cv" / "fold0" / "model.pt"
    trained = model.stat().st_mtime_ns
    (tmp_path / "config.toml").write_text(
        "\n".join(f"[{section}]\n" + "\n".join(f"{k} = {json.dumps(v)}" for k, v in values.items())
                  for section, values in raw.items()))
    assert main(["crossval", str(tmp_path / "config.toml"), "--out", str(tmp_path / "cv"),
                 "--folds", "3", "-q"]) == 0
    assert model.stat().st_mtime_ns == trained                          # reused, not retrained
    assert "pooled" in capsys.readouterr().out
    assert json.loads((tmp_path / "cv" / "crossval.json").read_text())["clips"] == 24


def test_crossval_streams_each_fold_and_reuses_what_is_done(trained_run, tmp_path):
    """Folds already trained (copies of one run) are exported and stream-tested, once."""
    import shutil

    from conftest import tone_config, write_tone_dataset
    from earmark.config import to_toml
    from earmark.crossval import cross_validate, crossval_table, fold_configs

    config = tone_config(write_tone_dataset(tmp_path / "tones"), tmp_path / "cache")
    for fold, fold_config in fold_configs(config, 2):      # as if trained with these settings
        copy = shutil.copytree(trained_run, tmp_path / "cv" / f"fold{fold}")
        (copy / "config.toml").write_text(to_toml(fold_config))
    report = cross_validate(config, tmp_path / "cv", folds=2, stream=True, stream_minutes=1.0)
    for row in report["folds"]:
        evidence = json.loads((Path(row["run"]) / "stream" / "report.json").read_text())
        assert row["stream_correct"] == evidence["score"]["correct_rate"]
        assert (Path(row["run"]) / "bundle" / "model.onnx").is_file()
    assert report["mean_stream_correct"] == pytest.approx(
        sum(row["stream_correct"] for row in report["folds"]) / 2)
    assert "mean correct/wrong/false positive" in crossval_table(report)
    assert all(row["stream_calibration_met"] is True for row in report["folds"])
    assert "* no threshold kept" not in crossval_table(report)
    report["folds"][1]["stream_calibration_met"] = False   # as a fold over budget reports
    assert "* no threshold kept that fold's" in crossval_table(report)
    stamp = (tmp_path / "cv" / "fold0" / "stream" / "report.json").stat().st_mtime_ns
    cross_validate(config, tmp_path / "cv", folds=2, stream=True, stream_minutes=1.0)
    assert (tmp_path / "cv" / "fold0" / "stream" / "report.json").stat().st_mtime_ns == stamp
