"""Wake words from text: the phrase's checks and hard negatives, negative folders, the
calibrated settings a bundle carries, interval arithmetic, and the whole command."""

from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path

import numpy as np
import pytest
import soundfile

from earmark.cli import main
from earmark.errors import ConfigError, DataError
from earmark.metrics.streaming import poisson_interval
from earmark.runtime.metadata import read_metadata_file, write_detection
from earmark.stream_eval import StreamRun
from earmark.wakeword.calibration import format_card, report_card
from earmark.wakeword.dataset import real_negatives
from earmark.wakeword.phrases import (carrier_sentences, check_phrase, edit_distance,
                                      phrase_parts, sound_alikes)
from earmark.wakeword.settings import load_settings

from conftest import write_noise, write_tone


# ------------------------------------------------------------------ the phrase

def test_a_phrase_is_normalised_and_named():
    phrase = check_phrase("  View   Glass ")
    assert phrase.text == "view glass" and phrase.label == "view_glass"
    assert phrase.words == ["view", "glass"]


@pytest.mark.parametrize("text, message", [
    ("", "empty"), ("   ", "empty"), ("wake up 2", "in words"),
    ("one two three four five six", "too long"), ("你好", "cannot speak"),
    ("привет", "cannot speak")])
def test_bad_phrases_are_refused_with_what_to_do(text, message):
    with pytest.raises(ConfigError, match=message):
        check_phrase(text)


def test_a_phrase_in_its_languages_script_is_accepted():
    assert check_phrase("привет", language="ru").text == "привет"


def test_parts_are_runs_of_words_or_words_inside_one_word():
    assert phrase_parts(check_phrase("hey smart mirror"), []) == [
        "hey", "hey smart", "smart", "smart mirror", "mirror"]
    assert phrase_parts(check_phrase("snowboy"), ["snow", "boy", "bo", "owl", "snowboy"]) == [
        "snow", "boy"]


def test_sound_alikes_replace_one_word_with_the_nearest_pronunciation():
    sounds = {"view": "vju", "glass": "glas", "few": "fju", "class": "klas", "dog": "dOg",
              "cat": "kat"}
    found = sound_alikes(check_phrase("view glass"), ["few", "class", "dog", "cat"],
                         lambda texts: [sounds[t] for t in texts], count=2)
    # one phoneme of four ("glas" -> "klas") is nearer than one of three ("vju" -> "fju")
    assert found == ["view class", "few glass"]


def test_homophones_are_not_negatives():
    found = sound_alikes(check_phrase("view"), ["vue", "few"],
                         lambda texts: [{"view": "vju", "vue": "vju", "few": "fju"}[t]
                                        for t in texts], count=5)
    assert found == ["few"]


def test_edit_distance():
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance("", "abc") == 3 and edit_distance("same", "same") == 0


def test_carrier_sentences_hold_each_text():
    sentences = carrier_sentences(["view", "glass"], np.random.default_rng(0), per_text=3)
    assert len(sentences) == 6
    assert sum("view" in s for s in sentences) == 3 and len(set(sentences)) == 6


# ------------------------------------------------------------ negative folders

def test_negative_folders_must_exist_and_hold_audio(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        real_negatives([str(tmp_path / "missing")])
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no audio here")
    with pytest.raises(DataError, match="no audio files"):
        real_negatives([str(tmp_path / "empty")])


def test_negative_recordings_are_unknown_and_grouped_by_speaker(tmp_path):
    for name in ("0a1b2c3d_nohash_0", "0a1b2c3d_nohash_1", "99999999_nohash_0"):
        write_noise(tmp_path / "speech" / f"{name}.wav", 0.3, 16000)
    rows = real_negatives([str(tmp_path / "speech")])
    assert {row.label for row in rows} == {"_unknown_"}
    assert sorted({row.group for row in rows}) == ["speech:0a1b2c3d", "speech:99999999"]


# ------------------------------------------------ calibrated settings in a bundle

def test_calibrated_settings_round_trip_and_bad_ones_are_refused(bundle, tmp_path):
    copy = tmp_path / "bundle"
    shutil.copytree(bundle, copy)
    settings = {"stride_ms": 40.0, "average_window_ms": 300.0, "detection_threshold": 0.93,
                "suppression_ms": 2000.0, "minimum_count": 3,
                "calibrated_for_false_alarms_per_hour": 1.0}
    write_detection(copy, settings)
    assert read_metadata_file(copy / "earmark.json").detection == settings
    before = (copy / "earmark.json").read_text()
    with pytest.raises(DataError, match="detection"):
        write_detection(copy, {**settings, "detection_threshold": 1.5})
    with pytest.raises(DataError, match="detection"):
        write_detection(copy, {**settings, "volume": 3.0})
    assert (copy / "earmark.json").read_text() == before, "a refused write changed the bundle"


def test_listen_uses_the_bundles_threshold_unless_told_otherwise(bundle, tmp_path, capsys):
    copy = tmp_path / "bundle"
    shutil.copytree(bundle, copy)
    write_detection(copy, {"detection_threshold": 0.91, "stride_ms": 48.0})  # 3 frame hops
    sound = tmp_path / "tone.wav"
    write_tone(sound, 1.0, 8000, 2000.0)
    assert main(["listen", str(copy), "--file", str(sound)]) == 0
    assert "stride 48 ms, threshold 0.91" in capsys.readouterr().err
    assert main(["listen", str(copy), "--file", str(sound), "--threshold", "0.6"]) == 0
    assert "threshold 0.6" in capsys.readouterr().err
    metadata = json.loads((copy / "earmark.json").read_text())
    metadata["detection"]["minimum_count"] = 0
    (copy / "earmark.json").write_text(json.dumps(metadata))
    assert main(["listen", str(copy), "--file", str(sound)]) == 2
    assert "detection" in capsys.readouterr().err


# ------------------------------------------------------------------ intervals

def test_poisson_interval_is_the_exact_one():
    # Garwood's interval from chi-square quantiles: chi2.ppf(.025, 2k)/2, chi2.ppf(.975, 2k+2)/2
    expected = {0: (0.0, 3.68888), 1: (0.02532, 5.57164), 5: (1.62349, 11.66833),
                20: (12.21652, 30.88838)}
    for count, (low, high) in expected.items():
        assert poisson_interval(count) == pytest.approx((low, high), abs=1e-4)
    with pytest.raises(Exception, match="count"):
        poisson_interval(-1)


def _stream(positive_at_s: list[float], false_at_s: list[float], false_level: float,
            seconds: float = 600.0) -> StreamRun:
    """Scores every 20 ms: 0.99 just after each positive, ``false_level`` at false alarms."""
    times = np.arange(0, seconds * 1000, 20.0)
    scores = np.zeros((len(times), 3))
    scores[:, 1] = 1.0
    for at, level in [(t, 0.99) for t in positive_at_s] + [(t, false_level) for t in false_at_s]:
        near = (times >= at * 1000) & (times < at * 1000 + 400)
        scores[near] = [level, 1 - level, 0]
    truth_words = [type("W", (), {"label": "hey", "end_ms": t * 1000 - 100})
                   for t in positive_at_s]
    run = StreamRun(np.zeros(1), [], times, scores, seconds)
    run.truth_pairs = lambda: [(w.label, w.end_ms) for w in truth_words]
    return run


def test_the_card_calibrates_on_validation_and_scores_test():
    positives = [20.0 * k for k in range(1, 26)]
    validation = _stream(positives, [305.0, 505.0], false_level=0.8)
    test = _stream(positives[:20], [111.0, 211.0, 311.0], false_level=0.995)
    card = report_card(validation, test, ["hey", "_unknown_", "_silence_"], cpu_seconds=6.0,
                       model_bytes=1000, budget=1.0)
    row = next(r for r in card["rows"] if r["budget_per_hour"] == 1.0)
    # validation's false alarms peak at 0.8, its phrases at 0.99: the threshold lies between
    # (the lowest above the false alarms) ...
    assert 0.8 < row["threshold"] < 0.99 and card["threshold"] == row["threshold"]
    # ... so the test stream's louder false alarms all get through: 3 in 10 minutes
    assert row["false_alarms"] == 3 and row["false_alarms_per_hour"] == pytest.approx(18.0)
    assert row["miss_rate"] == 0.0 and row["positives"] == 20
    assert card["cpu_seconds_per_hour"] == pytest.approx(36.0)
    low, high = row["false_alarms_per_hour_95"]
    assert low < 18.0 < high
    assert row["met_on_validation"]
    assert (f"false alarms at the stored threshold: 3 in 10.0 min of test audio, so between "
            f"{low:.1f} and {high:.1f} an hour (95%)") in format_card(card, "hey")


def test_the_held_out_streams_keep_phrases_apart_and_count_a_late_detection():
    from earmark.stream_eval import StreamRun
    from earmark.wakeword.calibration import (QUIET_AFTER_PHRASE_S, TOLERANCE_MS,
                                              held_out_audio, sweep)

    rng = np.random.default_rng(0)
    tone = (0.3 * np.sin(np.arange(8000) / 3)).astype(np.float32)
    clips = [(tone, "hey")] * 20 + [(tone, "_unknown_")] * 20
    samples, truth = held_out_audio(clips, [0.01 * rng.standard_normal(16000)], 16000, seed=1)
    after = [b.start_ms - a.end_ms for a, b in zip(truth, truth[1:]) if a.label == "hey"]
    assert min(after) >= 1000 * QUIET_AFTER_PHRASE_S - 1
    assert sum(w.label == "hey" for w in truth) >= 20         # every clip placed
    # a detection 0.9 s after the phrase's end is the phrase's, not a false alarm
    times = np.arange(0, 10000, 20.0)
    scores = np.tile([0.0, 1.0, 0.0], (len(times), 1))
    scores[(times >= 5600) & (times < 6000)] = [0.99, 0.01, 0.0]
    run = StreamRun(np.zeros(1), [], times, scores, 10.0)
    run.truth_pairs = lambda: [("hey", 5000.0)]
    (_, score), = sweep(run, ["hey", "_unknown_", "_silence_"], thresholds=(0.9,))
    assert 750 < score.latencies_ms[0] <= TOLERANCE_MS
    assert score.correct == 1 and score.false_positives == 0


def test_the_conversation_raises_a_threshold_its_false_alarms_would_break():
    from earmark.calibrate import ThresholdSweep
    from earmark.wakeword.calibration import THRESHOLDS

    positives = [20.0 * k for k in range(1, 26)]
    validation = _stream(positives, [305.0, 505.0], false_level=0.8)
    labels = ["hey", "_unknown_", "_silence_"]
    alone = report_card(validation, validation, labels, 1.0, 1, budget=1.0)["threshold"]
    assert 0.8 < alone < 0.99                          # the phrases, at 0.99, all heard
    # an hour of conversation with three false alarms at every threshold up to 0.995
    talk = ThresholdSweep(np.array(THRESHOLDS), np.array([3 if t <= 0.995 else 0
                                                          for t in THRESHOLDS]), 3600.0, 0)
    card = report_card(validation, validation, labels, 1.0, 1, budget=1.0, conversation=talk)
    row = next(r for r in card["rows"] if r["budget_per_hour"] == 1.0)
    assert card["threshold"] > 0.995 and row["conversation_false_alarms"] == 0
    assert row["miss_rate"] == 1.0                     # the price: the phrases go unheard
    assert card["conversation_hours"] == 1.0
    assert "synthesized conversation" in format_card(card, "hey")
    # 3 an hour allowed: the conversation's 3 in the 70 pooled minutes fit the budget
    loose = report_card(validation, validation, labels, 1.0, 1, budget=3.0, conversation=talk)
    assert loose["threshold"] == alone


def test_synthesized_conversation_leaves_out_the_phrases_words(monkeypatch):
    from earmark.data import voices
    from earmark.wakeword import conversation
    from earmark.wakeword.conversation import conversation_false_alarms, running_speech

    pytest.importorskip("wordfreq")
    real, said = voices.speech(), []

    class Recording:
        sample_rate = real.sample_rate
        voices, variants = real.voices, real.variants

        def synthesize(self, text, **settings):
            said.append(text)
            return real.synthesize(text, **settings)

    monkeypatch.setattr(voices, "speech", Recording)
    monkeypatch.setattr(conversation, "PIECE_SECONDS", 10.0)
    noise = [0.01 * np.random.default_rng(0).standard_normal(16000)]
    phrase = check_phrase("the time")                   # two of the most common words
    pieces = list(running_speech(phrase, 0.5, 16000, noise, seed=0))
    assert [len(p) for p in pieces] == [160000, 160000, 160000]
    assert all(np.isfinite(p).all() and np.abs(p).max() <= 1 for p in pieces)
    assert all(np.sqrt(np.mean(p ** 2)) > 0.01 for p in pieces)       # speech, not the bed
    sentences = [sentence for turn in said for sentence in turn.split(". ")]
    words = [w for sentence in sentences for w in sentence.split()]
    assert len(said) >= 5 and not {"the", "time"} & set(words)
    assert all(6 <= len(sentence.split()) < 25 for sentence in sentences)
    assert len(sentences) > len(said)                   # turns of several sentences
    again = list(running_speech(phrase, 0.5, 16000, noise, seed=0))
    assert all(np.array_equal(a, b) for a, b in zip(pieces, again))
    swept = conversation_false_alarms(lambda samples, truth: samples,
                                      lambda run: {0.5: 1, 0.9: 0}, (0.9, 0.5), phrase, 0.5,
                                      16000, noise, seed=0)
    assert swept.negative_seconds == pytest.approx(30.0)
    assert swept.thresholds.tolist() == [0.5, 0.9] and swept.false_alarms.tolist() == [3, 0]


def test_a_budget_no_threshold_meets_is_reported_not_fatal():
    positives = [20.0 * k for k in range(1, 26)]
    noisy = _stream(positives, [100.0 + 10 * k for k in range(30)], false_level=0.9999)
    card = report_card(noisy, noisy, ["hey", "_unknown_", "_silence_"], cpu_seconds=1.0,
                       model_bytes=1, budget=1.0)
    assert not any(row["met_on_validation"] for row in card["rows"])
    assert card["threshold"] == max(row["threshold"] for row in card["rows"])
    assert "over budget" in format_card(card, "hey")


# --------------------------------------------------------------- the command

def test_the_command_refuses_bad_input_before_any_work(tmp_path, capsys):
    assert main(["wakeword", "", "--out", str(tmp_path / "a")]) == 2
    assert "empty" in capsys.readouterr().err
    (tmp_path / "quiet").mkdir()
    assert main(["wakeword", "view glass", "--out", str(tmp_path / "b"), "--negatives",
                 str(tmp_path / "quiet")]) == 2
    assert "no audio files" in capsys.readouterr().err
    assert main(["wakeword", "你好", "--out", str(tmp_path / "c")]) == 2
    assert "cannot speak" in capsys.readouterr().err
    assert main(["wakeword", "view glass", "--out", str(tmp_path / "d"), "--target", "micro",
                 "--model", "dscnn"]) == 2
    assert "leave --model" in capsys.readouterr().err
    assert not any((tmp_path / name).exists() for name in "abcd")


@pytest.mark.slow
@pytest.mark.parametrize("model, stride_ms, members", [("embedding", 80.0, 3),
                                                       ("dscnn", 20.0, 1)])
def test_the_whole_command_ends_with_a_calibrated_bundle_and_a_card(tmp_path, capsys, model,
                                                                      stride_ms, members):
    if model == "embedding":
        pytest.importorskip("openwakeword")
    for index in range(8):
        write_noise(tmp_path / "negatives" / f"room{index}.wav", 3.0, 16000, seed=index)
    out = tmp_path / "run"
    assert main(["wakeword", "hello there", "--out", str(out), "--negatives",
                 str(tmp_path / "negatives"), "--takes", "30", "--hard-negatives", "30",
                 "--sentences", "6", "--epochs", "2", "--conversation-minutes", "1",
                 "--model", model, "-q"]) == 0
    printed = capsys.readouterr().out
    assert "miss rate" in printed and "KiB" in printed
    card = json.loads((out / "card.json").read_text())
    assert [r["budget_per_hour"] for r in card["rows"]] == [0.5, 1.0, 2.0]
    assert card["data"]["parts"] == ["hello", "there"] and card["data"]["sound_alikes"]
    metadata = read_metadata_file(out / "bundle" / "earmark.json")
    detection = metadata.detection
    assert detection["detection_threshold"] == card["threshold"]
    assert detection["stride_ms"] == stride_ms
    kinds = {"embedding": ("embedding", ["hello_there", "_unknown_"]),
             "dscnn": ("logmel", ["hello_there", "_unknown_", "_silence_"])}
    assert (metadata.features["kind"], list(metadata.labels)) == kinds[model]
    assert (out / "card.png").stat().st_size > 0 and (out / "card.txt").is_file()
    assert card["conversation_hours"] == pytest.approx(1 / 60, rel=0.01)
    assert all(isinstance(r["conversation_false_alarms"], int) for r in card["rows"])
    used = load_settings(out / "wakeword.toml").wakeword     # what it ran with, to run again
    assert (used.phrase, used.takes, used.epochs, used.model) == ("hello there", 30, 2, model)
    assert used.negatives == [str(tmp_path / "negatives")] and used.ensemble == 0
    trained = tomllib.loads((out / "run" / "config.toml").read_text())
    if members == 1:                           # one network, trained where it always was
        assert not (out / "members").exists() and (out / "run" / "checkpoint.pt").is_file()
        return
    # the recipe's three heads on the embedding, each trained with its own seed, joined
    assert trained["model"]["name"] == "embedding_ensemble"
    assert trained["model"]["members"] == 3
    seeds = [tomllib.loads((out / "members" / str(i) / "config.toml").read_text())["train"]
             ["seed"] for i in (1, 2, 3)]
    assert seeds == [0, 1000, 2000]
    assert metadata.model["name"] == "embedding_ensemble"
    assert json.loads((out / "run" / "summary.json").read_text())["ensemble_of"] == [
        str(out / "members" / str(i)) for i in (1, 2, 3)]


def test_joined_negatives_run_short_recordings_together_within_speaker_buckets(tmp_path):
    from earmark.data.manifest import Row
    from earmark.wakeword.dataset import JOIN_BUCKETS, joined_negatives

    rows = []
    for speaker in range(6):
        for take in range(3):
            path = tmp_path / "words" / f"{speaker:08x}_nohash_{take}.wav"
            write_tone(path, 0.4, 16000, 300.0 + 100 * speaker)
            rows.append(Row(str(path), "_unknown_", f"{speaker:08x}"))
    write_noise(tmp_path / "long.wav", 5.0, 16000)                   # running already: left out
    rows.append(Row(str(tmp_path / "long.wav"), "_unknown_", "long"))
    real, joined = joined_negatives(rows, 12, tmp_path / "joined", 16000,
                                    np.random.default_rng(0))
    assert len(joined) == 12 and {row.label for row in joined} == {"_unknown_"}
    # the parts' speakers and the joined recordings share their bucket's group
    buckets = {row.group for row in real if row.path != str(tmp_path / "long.wav")}
    assert {row.group for row in joined} <= buckets and len(buckets) <= JOIN_BUCKETS
    assert all(g.startswith("negatives:") for g in buckets)
    assert next(r for r in real if r.path.endswith("long.wav")).group == "long"
    by_speaker = {}
    for row in real:
        by_speaker.setdefault(Path(row.path).stem[:8], set()).add(row.group)
    assert all(len(groups) == 1 for groups in by_speaker.values())
    lengths = [len(soundfile.read(row.path)[0]) / 16000 for row in joined]
    assert min(lengths) > 3 * 0.3 and max(lengths) < 6 * 0.4 + 6 * 0.15 + 0.01


def test_negatives_made_from_the_phrase_are_told_from_everyday_ones(tmp_path):
    from earmark.wakeword.dataset import made_negatives

    data = tmp_path / "data"
    made = made_negatives(data)
    assert made(data / "synthesized" / "_unknown_" / "en+m3_1.flac")
    assert made(data / "sentences" / "kal16_3.flac")
    assert not made(data / "synthesized" / "view_glass" / "en+m3_1.flac")
    assert not made(data / "synthesized" / "_silence_" / "noise_1.flac")
    assert not made(data / "joined" / "bucket3_1.flac")
    assert not made(tmp_path / "negatives" / "sentences" / "a.wav")


@pytest.mark.parametrize("model, epochs, copies", [("embedding", 20, 6), ("embedding", 3, 3),
                                                   ("dscnn", 20, 0)])
def test_the_embeddings_training_keeps_a_few_augmented_copies(tmp_path, model, epochs, copies):
    from earmark.wakeword.dataset import WakeWordData
    from earmark.wakeword.pipeline import WakeWordOptions, wakeword_config

    manifest = tmp_path / "manifest.csv"
    manifest.write_text("path,label,group\na.wav,hello_there,v1\nb.wav,_unknown_,v2\n")
    options = WakeWordOptions("hello there", epochs=epochs, model=model)
    config = wakeword_config("hello_there", manifest, WakeWordData(noise_dir=str(tmp_path)),
                             1.5, options)
    assert config.train.feature_copies == copies
    assert config.train.epochs == epochs


def test_ensemble_members_train_with_their_own_seeds_in_their_own_folders(tmp_path):
    from earmark.config import from_dict
    from earmark.wakeword.ensemble import (SEED_STEP, check_members, member_config,
                                           member_folder)

    config = from_dict({"data": {"csv": str(tmp_path / "m.csv")}, "train": {"seed": 5},
                        "features": {"kind": "embedding"}, "model": {"name": "embedding_mlp"}})
    assert [member_config(config, i).train.seed for i in range(3)] == [
        5, 5 + SEED_STEP, 5 + 2 * SEED_STEP]
    assert member_config(config, 2).data == config.data            # the same split
    assert member_folder(tmp_path, 0) == tmp_path / "members" / "1"
    check_members(config, 3)
    with pytest.raises(ConfigError, match="ensemble = 2 averages embedding_mlp heads"):
        check_members(from_dict({"data": {"csv": str(tmp_path / "m.csv")}}), 2)
    check_members(from_dict({"data": {"csv": str(tmp_path / "m.csv")}}), 1)
