"""The torch-free runtime: clips, long files in blocks, results, the classify command."""

from __future__ import annotations

import csv
import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile

from conftest import TONE_FREQUENCIES, TONE_RATE
from earmark.cli import main
from earmark.errors import AudioError, ConfigError
from earmark.runtime import Classifier
from earmark.runtime.classify import WindowStream
from earmark.runtime.results import expand_inputs, table, write_results
from earmark.windowing import cut_window, window_starts

#: A small 8 kHz, 4-class bundle that loads in milliseconds (no training needed).
FIXTURE_BUNDLE = Path(__file__).parent / "fixtures" / "bundle_v1"


def tone(frequency: float, seconds: float, rate: int = TONE_RATE) -> np.ndarray:
    """A noisy tone like the training data's."""
    t = np.arange(int(seconds * rate)) / rate
    noise = 0.05 * np.random.default_rng(int(frequency)).standard_normal(len(t))
    return (0.4 * np.sin(2 * np.pi * frequency * t) + noise).astype(np.float32)


def test_clips_of_each_class_are_recognised(bundle):
    classifier = Classifier.from_bundle(bundle)
    for label, frequency in TONE_FREQUENCIES.items():
        result = classifier.classify_array(tone(frequency, 0.5), TONE_RATE)
        assert result.label == label
        assert result.top(2)[0] == (label, pytest.approx(result.probabilities.max()))


def test_long_recording_is_cut_into_the_training_windows(bundle):
    classifier = Classifier.from_bundle(bundle)
    signal = np.concatenate([tone(300, 1.3), tone(2000, 0.9)])
    result = classifier.classify_array(signal, TONE_RATE)
    expected = window_starts(len(signal), classifier.window, classifier.window_hop) / TONE_RATE
    np.testing.assert_allclose(result.window_starts, expected)
    assert result.duration == pytest.approx(2.2)
    labels = [classifier.labels[i] for i in result.window_probabilities.argmax(1)]
    assert labels[0] == "low" and labels[-1] == "high"
    np.testing.assert_allclose(result.probabilities, result.window_probabilities.mean(0),
                               rtol=1e-6)


@pytest.mark.parametrize("block_seconds", [0.01, 0.07, 3.0])
def test_a_recording_shorter_than_a_window_is_judged_in_its_middle(bundle, tmp_path,
                                                                    block_seconds):
    classifier = Classifier.from_bundle(bundle)
    clip = tone(300, 0.2)                     # 0.2 s; the window is 0.5 s
    path = tmp_path / "short.wav"
    soundfile.write(path, clip, TONE_RATE, subtype="FLOAT")
    result = classifier.classify_file(path, block_seconds=block_seconds)
    before = (classifier.window - len(clip)) // 2
    assert result.window_starts.tolist() == [-before / TONE_RATE]
    centred = np.zeros((1, classifier.window), np.float32)
    centred[0, before:before + len(clip)] = clip
    np.testing.assert_allclose(result.probabilities, classifier.bundle.predict_proba(centred)[0],
                               rtol=1e-5)
    assert result.label == "low"


def test_windows_are_cut_alike_wherever_they_start():
    samples = np.arange(1, 11, dtype=np.float32)
    assert window_starts(10, 16, 4).tolist() == [-3]            # 3 zeros, 10 samples, 3 zeros
    np.testing.assert_array_equal(cut_window(samples, -3, 16),
                                  np.concatenate([np.zeros(3), samples, np.zeros(3)]))
    np.testing.assert_array_equal(cut_window(samples, 8, 4), [9, 10, 0, 0])
    np.testing.assert_array_equal(cut_window(samples, -20, 4), np.zeros(4))
    assert window_starts(9, 16, 4).tolist() == [-3]             # 3 zeros before, 4 after
    assert window_starts(0, 16, 4).tolist() == [-8]
    np.testing.assert_array_equal(cut_window(samples, 12, 4), np.zeros(4))   # past the end
    assert window_starts(16, 16, 4).tolist() == [0]
    assert window_starts(17, 16, 4).tolist() == [0, 4]


@pytest.mark.parametrize("seed", range(3))
def test_a_stream_of_blocks_is_cut_as_the_whole_recording_is(seed):
    rng = np.random.default_rng(seed)
    for _ in range(200):
        window, hop = int(rng.integers(1, 40)), int(rng.integers(1, 60))
        samples = rng.standard_normal(int(rng.integers(1, 120))).astype(np.float32)
        cuts = np.sort(rng.choice(np.arange(1, len(samples) + 1), size=min(4, len(samples)),
                                  replace=False))
        blocks = np.split(samples, cuts)
        streamed = list(WindowStream(window, hop).windows(iter(blocks)))
        starts = window_starts(len(samples), window, hop)
        assert [start for start, _ in streamed] == starts.tolist()
        for (start, cut), expected in zip(streamed, starts):
            np.testing.assert_array_equal(cut, cut_window(samples, int(expected), window))


@pytest.mark.parametrize("block_seconds", [0.07, 0.5, 3.0])
def test_block_size_does_not_change_the_result(bundle, tmp_path, block_seconds):
    path = tmp_path / "mixed.wav"
    soundfile.write(path, np.concatenate([tone(900, 1.1), tone(300, 0.8)]), TONE_RATE,
                    subtype="FLOAT")
    classifier = Classifier.from_bundle(bundle)
    whole = classifier.classify_array(soundfile.read(path, dtype="float32")[0], TONE_RATE)
    blocked = classifier.classify_file(path, block_seconds=block_seconds)
    np.testing.assert_allclose(blocked.window_starts, whole.window_starts)
    np.testing.assert_allclose(blocked.window_probabilities, whole.window_probabilities,
                               atol=1e-5)


def test_vote_aggregation_counts_windows(bundle):
    classifier = Classifier.from_bundle(bundle, aggregate="vote")
    signal = np.concatenate([tone(300, 2.0), tone(2000, 0.5)])
    result = classifier.classify_array(signal, TONE_RATE)
    assert result.label == "low"
    assert result.probabilities.sum() == pytest.approx(1.0)


@pytest.mark.slow
def test_ten_minute_file_in_bounded_memory(bundle, tmp_path):
    path = tmp_path / "long.wav"
    rng = np.random.default_rng(0)
    with soundfile.SoundFile(path, "w", TONE_RATE, 1, subtype="PCM_16") as sink:
        for _ in range(60):                       # 60 x 10 s
            sink.write(0.1 * rng.standard_normal(10 * TONE_RATE).astype(np.float32))
    classifier = Classifier.from_bundle(bundle)
    tracemalloc.start()
    result = classifier.classify_file(path, block_seconds=10.0)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert result.duration == pytest.approx(600.0)
    assert len(result.window_starts) == len(window_starts(600 * TONE_RATE, 4000, 2000))
    whole_file_bytes = 600 * TONE_RATE * 4
    assert peak < whole_file_bytes / 4, f"peak {peak / 1e6:.1f} MB"


def test_results_as_table_csv_and_json(bundle, tmp_path):
    classifier = Classifier.from_bundle(bundle)
    results = [classifier.classify_array(tone(f, 0.8), TONE_RATE, source=f"{label}.wav")
               for label, f in TONE_FREQUENCIES.items()]
    text = table(results, top_k=2)
    assert all(f"{label}.wav" in text for label in TONE_FREQUENCIES)
    write_results(results, str(tmp_path / "out.csv"), top_k=2, per_window=False)
    with open(tmp_path / "out.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["label_1"] for r in rows] == list(TONE_FREQUENCIES)
    write_results(results, str(tmp_path / "out.json"), top_k=3, per_window=True)
    records = json.loads((tmp_path / "out.json").read_text())
    assert len(records[0]["top"]) == 3 and len(records[0]["windows"]) == 3


def test_expand_inputs_finds_files_folders_and_globs(tmp_path):
    (tmp_path / "a").mkdir()
    for name in ("a/one.wav", "a/two.flac", "three.wav"):
        soundfile.write(tmp_path / name, tone(300, 0.1), TONE_RATE)
    (tmp_path / "a" / "notes.txt").write_text("x")
    assert len(expand_inputs([str(tmp_path / "a")])) == 2
    assert len(expand_inputs([str(tmp_path / "*.wav")])) == 1
    assert expand_inputs([str(tmp_path / "missing.wav")]) == [str(tmp_path / "missing.wav")]


def test_classify_command_reports_bad_files_and_exits_non_zero(bundle, tmp_path, capsys):
    soundfile.write(tmp_path / "good.wav", tone(900, 0.5), TONE_RATE)
    (tmp_path / "broken.wav").write_bytes(b"RIFF not really a wave file")
    (tmp_path / "empty.wav").write_bytes(b"")
    out = tmp_path / "results.csv"
    code = main(["classify", str(bundle), str(tmp_path), "--output", str(out), "--quiet"])
    captured = capsys.readouterr()
    assert code == 1
    assert "broken.wav" in captured.err and "empty.wav" in captured.err
    assert "mid" in captured.out
    with open(out) as handle:
        assert [r["file"] for r in csv.DictReader(handle)] == [str(tmp_path / "good.wav")]


# --- what a careless caller hands classify_array --------------------------------------

@pytest.fixture(scope="module")
def fixture_classifier() -> Classifier:
    return Classifier.from_bundle(FIXTURE_BUNDLE, threads=1)


def test_int16_pcm_scores_like_its_float_values(fixture_classifier):
    pcm = (tone(900, 0.7) * 32767).astype(np.int16)
    as_int = fixture_classifier.classify_array(pcm, TONE_RATE)
    as_float = fixture_classifier.classify_array(pcm / np.float32(32768), TONE_RATE)
    np.testing.assert_allclose(as_int.window_probabilities, as_float.window_probabilities,
                               atol=1e-6)
    wide = fixture_classifier.classify_array(pcm.astype(np.int32) * 65536, TONE_RATE)
    np.testing.assert_allclose(wide.window_probabilities, as_float.window_probabilities,
                               atol=1e-6)


def test_samples_by_channels_score_like_the_same_file(fixture_classifier, tmp_path):
    stereo = np.stack([tone(300, 0.9), 0.5 * tone(2000, 0.9)], axis=1)
    path = tmp_path / "stereo.wav"
    soundfile.write(path, stereo, TONE_RATE, subtype="FLOAT")
    from_array = fixture_classifier.classify_array(stereo, TONE_RATE)
    from_file = fixture_classifier.classify_file(path)
    np.testing.assert_allclose(from_array.window_probabilities, from_file.window_probabilities,
                               atol=1e-5)
    assert from_array.duration == pytest.approx(0.9)


@pytest.mark.parametrize("samples, words", [
    (np.zeros(0, np.float32), "holds no samples"),
    (np.zeros((8000, 2, 1), np.float32), r"shape \(8000, 2, 1\) is not audio"),
    (np.zeros((2, 8000), np.float32), r"8000 channels.*samples\.T"),
    (np.array([0.1, np.nan, 0.2], np.float32), "1 samples are NaN or infinite"),
    (np.arange(100), "type int64 are not audio"),
    (np.full(4000, 1e20, np.float32), "the model's scores are not finite.*reach 1e\\+20"),
])
def test_classify_array_refuses_what_is_not_audio(fixture_classifier, samples, words):
    with pytest.raises(AudioError, match=f"clip: .*{words}"):
        fixture_classifier.classify_array(samples, TONE_RATE, source="clip")


def test_classify_array_refuses_audio_shorter_than_one_sample_at_the_models_rate(
        fixture_classifier):
    with pytest.raises(AudioError, match="clip: holds no audio at 8000 Hz"):
        fixture_classifier.classify_array(np.ones(10, np.float32), 384_000, source="clip")


@pytest.mark.parametrize("rate", [0, 1, 999, 384_001, 10**9, float("nan"), "fast", None])
def test_classify_array_checks_the_rate(fixture_classifier, rate):
    with pytest.raises(ConfigError, match="clip: sample_rate"):
        fixture_classifier.classify_array(tone(300, 0.5), rate, source="clip")


@pytest.mark.parametrize("options, words", [
    ({"window_hop_seconds": 0}, "window hop"), ({"window_hop_seconds": float("nan")}, "hop"),
    ({"batch_size": 0}, "batch_size")])
def test_classifier_options_are_checked(options, words):
    with pytest.raises(ConfigError, match=words):
        Classifier.from_bundle(FIXTURE_BUNDLE, **options)
