"""Anomaly detection: the split, the metrics, both methods on synthetic machines, the run
folder, export parity, the CLI, and the real fan (``realdata``)."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime
import pytest
import torch

from earmark.anomaly.evaluate import evaluate_detector, load_detector
from earmark.anomaly.export import export_detector
from earmark.anomaly.methods import fit_scorer, score_windows
from earmark.anomaly.split import anomaly_splits, condition_of, machine_of
from earmark.anomaly.train import train_anomaly
from earmark.cli import main
from earmark.config import from_dict
from earmark.data.machines import Machine, machine_dataset, machine_sound
from earmark.data.manifest import Manifest, Row
from earmark.errors import ConfigError, DataError
from earmark.metrics.anomaly import (harmonic_mean, partial_auc, roc_auc,
                                     standardised_partial_auc, threshold_for)
from tests.conftest import SHARED_DATA

RATE = 16000
WINDOW = 2 * RATE
MACHINE = Machine(rotation_hz=47.0)
AUTOENCODER = {"features": {"kind": "logmel", "window_ms": 64, "hop_ms": 32, "n_fft": 1024,
                            "n_mels": 64, "fmin": 0},
               "train": {"epochs": 15, "batch_size": 256, "learning_rate": 0.001, "threads": 1}}


def config(method: str = "lines", texture: bool = False, **data):
    raw = {"data": {"clip_seconds": 2.0, "hop_seconds": 1.0, "sample_rate": RATE,
                    "group_pattern": "^(?P<group>.+)$", "ratios": [0.5, 0.2, 0.3], **data},
           "anomaly": {"method": method, "texture": texture},
           **(AUTOENCODER if method == "autoencoder" else {})}
    return from_dict(raw)


def windows_of(samples: np.ndarray) -> np.ndarray:
    return np.stack([samples[s:s + WINDOW] for s in range(0, len(samples) - WINDOW + 1, RATE)])


def clip_score(scorer, samples: np.ndarray) -> float:
    return float(score_windows(scorer, windows_of(samples)).mean())


@pytest.fixture(scope="module")
def line_scorer():
    rng = np.random.default_rng(0)
    normal = [windows_of(machine_sound(MACHINE, 6, rng)) for _ in range(6)]
    owners = np.concatenate([np.full(len(w), i) for i, w in enumerate(normal)])
    return fit_scorer(np.concatenate(normal), config(texture=True), owners=owners)


# -- metrics ----------------------------------------------------------------------------

def test_auc_and_dcase_pauc_against_hand_computed_values():
    assert roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert roc_auc([0, 0, 1, 1], [0.4, 0.3, 0.2, 0.1]) == 0.0
    assert roc_auc([0, 1], [0.5, 0.5]) == 0.5                  # a tie counts half
    # One normal of 10 above every anomaly: TPR 0 until FPR 0.1, then 1.
    scores = [9.0] + [0.0] * 9 + [5.0] * 5
    truth = [0] * 10 + [1] * 5
    assert roc_auc(truth, scores) == pytest.approx(0.9)
    assert partial_auc(truth, scores, 0.1) == pytest.approx(0.0)
    assert partial_auc(truth, scores, 0.2) == pytest.approx(0.5)
    assert harmonic_mean([1.0, 0.5]) == pytest.approx(2 / 3)
    assert threshold_for(np.arange(101), 0.05) == pytest.approx(95)


def test_metrics_agree_with_scikit_learn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 2, 200)
    scores = np.round(rng.normal(size=200) + truth, 1)        # with ties
    assert roc_auc(truth, scores) == pytest.approx(metrics.roc_auc_score(truth, scores))
    fpr, tpr, _ = metrics.roc_curve(truth, scores)
    grid = np.linspace(0, 0.1, 20001)
    expected = np.trapezoid(np.interp(grid, fpr, tpr), grid) / 0.1
    assert partial_auc(truth, scores) == pytest.approx(expected, abs=1e-4)
    assert standardised_partial_auc(truth, scores) == pytest.approx(
        metrics.roc_auc_score(truth, scores, max_fpr=0.1))


def test_metrics_refuse_one_class_and_nan():
    with pytest.raises(DataError, match="both normal and anomalous"):
        roc_auc([0, 0], [1.0, 2.0])
    with pytest.raises(DataError, match="NaN"):
        roc_auc([0, 1], [np.nan, 1.0])


# -- split ------------------------------------------------------------------------------

def rows(normal: int, anomalous: int, split: str = "") -> list[Row]:
    return ([Row(f"/m/id_03/normal/{i}.wav", "normal", f"n{i}", split) for i in range(normal)]
            + [Row(f"/m/id_03/abnormal/{i}.wav", "abnormal", f"a{i}",
                   "test" if split else "") for i in range(anomalous)])


def test_split_trains_on_normals_only_and_holds_out_validation():
    split = anomaly_splits(Manifest(rows(10, 4)), config().data, config().anomaly)
    assert {r.split for r in split if r.label == "anomaly"} == {"test"}
    train = [r for r in split if r.split == "train"]
    validation = [r for r in split if r.split == "validation"]
    assert train and validation and all(r.label == "normal" for r in train + validation)
    assert not {r.group for r in train} & {r.group for r in validation}
    assert machine_of(split.rows[0]) == "id_03"
    settings = config()
    settings.anomaly.validation_share = 0.99           # one normal group still trains
    held = anomaly_splits(Manifest(rows(3, 1)), settings.data, settings.anomaly)
    assert [r.split for r in held if r.label == "normal"].count("train") == 1


def test_split_refuses_anomalies_in_training_and_no_normals():
    bad = rows(4, 0, "train") + [Row("/m/x.wav", "anomaly", "x", "train")]
    with pytest.raises(DataError, match="anomalous recording.*training split"):
        anomaly_splits(Manifest(bad), config(split="column").data, config().anomaly)
    with pytest.raises(DataError, match="no normal recording"):
        anomaly_splits(Manifest(rows(0, 4)), config().data, config().anomaly)
    with pytest.raises(DataError, match="names no condition"):
        condition_of("broken-ish")


def test_config_refuses_unknown_method_and_bad_rates():
    with pytest.raises(ConfigError, match="anomaly.method"):
        from_dict({"anomaly": {"method": "magic"}})
    with pytest.raises(ConfigError, match="false_alarm_rate"):
        from_dict({"anomaly": {"false_alarm_rate": 1.5}})
    with pytest.raises(ConfigError, match="max_hz = 0.5 leaves fewer"):
        from_dict({"anomaly": {"max_hz": 0.5}})


def test_a_window_shorter_than_the_autoencoders_context_is_refused():
    settings = config("autoencoder")
    settings.anomaly.context_frames = 500                 # 5 s of frames in a short window
    windows = np.random.default_rng(1).standard_normal((4, WINDOW)).astype(np.float32)
    with pytest.raises(ConfigError, match="context_frames = 500"):
        fit_scorer(windows, settings)


# -- the lines method on synthetic machines ---------------------------------------------

@pytest.mark.parametrize("fault", ["shifted_harmonic", "modulated", "impacts", "rattle"])
def test_obvious_faults_are_found(line_scorer, fault):
    """Lines and texture together (``anomaly.texture = true``)."""
    rng = np.random.default_rng(2)
    normal = [clip_score(line_scorer, machine_sound(MACHINE, 6, rng)) for _ in range(6)]
    faulty = [clip_score(line_scorer, machine_sound(MACHINE, 6, rng, fault=fault))
              for _ in range(6)]
    assert roc_auc([0] * 6 + [1] * 6, normal + faulty) >= 0.95


def test_score_does_not_track_loudness_or_background(line_scorer):
    rng = np.random.default_rng(3)
    normal = [clip_score(line_scorer, machine_sound(MACHINE, 6, rng)) for _ in range(6)]
    noise = np.random.default_rng(4).standard_normal(6 * RATE).astype(np.float32)
    for changed in ({"gain_db": 12.0}, {"gain_db": -12.0},
                    {"background": noise, "background_snr_db": 10.0}):
        scores = [clip_score(line_scorer, machine_sound(MACHINE, 6, rng, **changed))
                  for _ in range(6)]
        assert 0.1 <= roc_auc([0] * 6 + [1] * 6, normal + scores) <= 0.9, changed
        assert max(scores) < 2 * max(normal), changed


def test_silence_and_noise_get_finite_scores(line_scorer):
    silence = np.zeros((2, WINDOW), np.float32)
    noise = np.random.default_rng(5).standard_normal((2, WINDOW)).astype(np.float32) * 0.1
    scores = score_windows(line_scorer, np.concatenate([silence, noise]))
    assert np.all(np.isfinite(scores))


def test_a_flat_topped_line_takes_one_of_the_max_lines():
    from earmark.anomaly.lines import find_lines

    spectrum = np.zeros(400)
    spectrum[[100, 101]] = 30.0                          # one line over two bins
    spectrum[200] = 20.0
    settings = config().anomaly
    settings.max_lines, settings.line_bins = 2, 0
    assert find_lines(spectrum, 1.0, settings).tolist() == [101, 201]   # bins from 1


def test_distances_near_zero_are_exact_whatever_level_the_rows_share():
    """A steady machine's windows lie almost on each other, far from zero: the distance
    must not drown in the rounding of their large squares (it broke export parity)."""
    from earmark.anomaly.lines import nearest_distance

    rng = np.random.default_rng(8)
    bank = 60.0 + 0.01 * rng.standard_normal((50, 400))
    features = bank[:5] + 0.001 * rng.standard_normal((5, 400))
    exact = np.sqrt(((features[:, None] - bank[None]) ** 2).mean(-1)).min(-1)
    computed = nearest_distance(torch.as_tensor(features, dtype=torch.float32),
                                torch.as_tensor(bank, dtype=torch.float32), neighbours=1)
    np.testing.assert_allclose(computed.numpy(), exact, rtol=1e-3, atol=1e-6)


def test_a_sound_without_lines_is_refused_with_advice():
    noise = np.random.default_rng(6).standard_normal((8, WINDOW)).astype(np.float32) * 0.1
    with pytest.raises(DataError, match="autoencoder"):
        fit_scorer(noise, config())


# -- run folder, evaluation, export -----------------------------------------------------

@pytest.fixture(scope="module")
def machine_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("machines")
    machine_dataset(folder, MACHINE, normal=10, anomalous=6, seconds=4.0, seed=0,
                    faults=("shifted_harmonic", "modulated", "impacts"))
    return folder / "id_00"


@pytest.mark.parametrize("method", ["lines", "autoencoder"])
def test_train_evaluate_export_with_parity(machine_folder, tmp_path, method):
    settings = config(method, root=str(machine_folder))
    settings.data.cache_dir = str(tmp_path / "cache")
    with pytest.warns(UserWarning, match="threshold rests on [0-9]+ validation windows"):
        summary = train_anomaly(settings, tmp_path / "run")      # a few test recordings
    assert summary["recordings"]["train"] >= 4 and summary["validation"]["normal_recordings"]
    report = evaluate_detector(tmp_path / "run")
    assert report["overall"]["anomalous"] == 6 and "id_00" in report["machines"]
    assert (tmp_path / "run" / "eval_test_roc.png").stat().st_size > 1000
    if method == "lines":
        assert report["overall"]["auc"] >= 0.9
    record = export_detector(tmp_path / "run", tmp_path / "bundle")
    assert record["parity"]["max_abs_diff"] <= 1e-3 * abs(record["threshold"])
    session = onnxruntime.InferenceSession(str(tmp_path / "bundle" / "model.onnx"))
    windows = np.random.default_rng(7).standard_normal((3, WINDOW)).astype(np.float32) * 0.1
    windows[0] = 0.0                                   # digital silence scores a number
    exported = session.run(None, {"waveform": windows})[0]
    assert np.all(np.isfinite(exported))
    with torch.no_grad():
        expected = load_detector(tmp_path / "run").scorer(torch.as_tensor(windows)).numpy()
    np.testing.assert_allclose(exported, expected, rtol=1e-3, atol=1e-4)
    saved = json.loads((tmp_path / "bundle" / "earmark.json").read_text())
    assert saved["format"] == "earmark-anomaly" and saved["method"] == method


def test_a_run_whose_weights_come_from_another_run_is_refused(machine_folder, tmp_path):
    settings = config(root=str(machine_folder))
    settings.data.cache_dir = str(tmp_path / "cache")
    train_anomaly(settings, tmp_path / "run")
    scorer = json.loads((tmp_path / "run" / "scorer.json").read_text())
    scorer["bank_size"] += 1
    (tmp_path / "run" / "scorer.json").write_text(json.dumps(scorer))
    with pytest.raises(DataError, match="different runs"):
        load_detector(tmp_path / "run")


def test_cli_train_evaluate_export(machine_folder, tmp_path, capsys):
    toml = tmp_path / "fan.toml"
    toml.write_text(f'[data]\nroot = "{machine_folder}"\ngroup_pattern = "^(?P<group>.+)$"\n'
                    f'ratios = [0.5, 0.2, 0.3]\nclip_seconds = 2.0\nhop_seconds = 1.0\n'
                    f'cache_dir = "{tmp_path / "cache"}"\n[anomaly]\nmethod = "lines"\n')
    assert main(["anomaly", "train", str(toml), "--out", str(tmp_path / "run"), "-q"]) == 0
    assert main(["anomaly", "evaluate", str(tmp_path / "run"), "-q"]) == 0
    assert "DCASE score" in capsys.readouterr().out
    assert main(["anomaly", "export", str(tmp_path / "run"), "--out",
                 str(tmp_path / "bundle"), "-q"]) == 0
    assert (tmp_path / "bundle" / "model.onnx").is_file()


# -- the real fan -----------------------------------------------------------------------

@pytest.mark.realdata
def test_real_fan_lines_beat_the_aim(tmp_path):
    settings = config(root=str(SHARED_DATA / "mimii_fan" / "id_00"), ratios=[0.4, 0.1, 0.5])
    settings.data.cache_dir = str(tmp_path / "cache")
    train_anomaly(settings, tmp_path / "run")
    overall = evaluate_detector(tmp_path / "run", plots=False)["overall"]
    assert overall["auc"] >= 0.9 and overall["pauc"] >= 0.75


def test_a_mimii_recipe_manifest_with_two_machine_ids_is_scored_per_id(tmp_path):
    from earmark.data.recipes.mimii import build_mimii

    for ident, rotation in (("id_00", 47.0), ("id_02", 61.0)):
        machine_dataset(tmp_path / "fan", Machine(rotation_hz=rotation), normal=8, anomalous=3,
                        seconds=4.0, seed=1, machine_id=ident,
                        faults=("shifted_harmonic", "modulated"))
    manifest = tmp_path / "manifest.csv"
    build_mimii(tmp_path / "fan", "fan").to_csv(manifest)
    settings = config(csv=str(manifest), split="column")
    settings.data.cache_dir = str(tmp_path / "cache")
    train_anomaly(settings, tmp_path / "run")
    report = evaluate_detector(tmp_path / "run", plots=False)
    assert set(report["machines"]) == {"fan id_00", "fan id_02"}
    assert 0 < report["official"]["auc_hmean"] <= 1


def test_recordings_at_another_rate_are_resampled(tmp_path):
    machine_dataset(tmp_path, Machine(rotation_hz=47.0, sample_rate=22050), normal=6,
                    anomalous=2, seconds=4.0, faults=("shifted_harmonic",))
    settings = config(root=str(tmp_path / "id_00"))
    settings.data.cache_dir = str(tmp_path / "cache")
    summary = train_anomaly(settings, tmp_path / "run")
    assert summary["sample_rate"] == RATE and summary["window_samples"] == WINDOW
