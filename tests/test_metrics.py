"""Tests for earmark.metrics.classification and earmark.atomic.

Expected numbers are worked out by hand in the comments (and agree with
scikit-learn's classification_report(..., zero_division=0)).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from earmark import atomic
from earmark.errors import ConfigError, DataError, OutputError
from earmark.metrics.classification import (
    ClassificationReport,
    classification_report,
    confusion_matrix,
)
from earmark.windowing import aggregate_windows, group_by_recording

# --------------------------------------------------------------------------
# confusion_matrix


def test_confusion_matrix_rows_are_true_columns_predicted():
    # pairs (true, pred): (0,0) (0,0) (0,1) (1,1) (1,2) (2,2)
    matrix = confusion_matrix([0, 0, 0, 1, 1, 2], [0, 0, 1, 1, 2, 2], 3)
    assert matrix.dtype == np.int64
    assert matrix.tolist() == [[2, 1, 0],
                               [0, 1, 1],
                               [0, 0, 1]]


def test_confusion_matrix_keeps_classes_that_never_occur():
    matrix = confusion_matrix(np.array([1, 1]), np.array([1, 0]), 4)
    assert matrix.shape == (4, 4)
    assert matrix.sum() == 2 and matrix[1, 1] == 1 and matrix[1, 0] == 1


def test_confusion_matrix_of_nothing_is_zeros():
    assert confusion_matrix([], [], 2).tolist() == [[0, 0], [0, 0]]


@pytest.mark.parametrize("y_true, y_pred, message", [
    ([0, 1, 1], [0, 1], "3 entries but y_pred has 2"),
    ([0, 3], [0, 1], "y_true[1] = 3"),
    ([0, 1], [-1, 1], "y_pred[0] = -1"),
    ([0.0, 1.0], [0, 1], "integer class ids"),
    ([True, False], [0, 1], "integer class ids"),
    ([[0, 1]], [[0, 1]], "1-D"),
])
def test_confusion_matrix_rejects_bad_ids(y_true, y_pred, message):
    with pytest.raises(DataError, match=message.replace("[", r"\[").replace("]", r"\]")):
        confusion_matrix(y_true, y_pred, 3)


@pytest.mark.parametrize("n_classes", [0, -2, 2.0, True])
def test_confusion_matrix_rejects_bad_class_count(n_classes):
    with pytest.raises(DataError, match="n_classes"):
        confusion_matrix([0], [0], n_classes)


# --------------------------------------------------------------------------
# classification_report


def test_report_hand_worked():
    # Same data as the confusion matrix test above:
    #            pred cat dog bird | support
    #   cat           2   1   0    | 3
    #   dog           0   1   1    | 2
    #   bird          0   0   1    | 1
    #   predicted     2   2   2
    # cat:  P = 2/2 = 1,   R = 2/3, F1 = 2*1*(2/3) / (1 + 2/3) = 0.8
    # dog:  P = 1/2,       R = 1/2, F1 = 0.5
    # bird: P = 1/2,       R = 1/1, F1 = 2*0.5*1 / 1.5 = 2/3
    # accuracy = (2+1+1)/6 = 2/3
    # macro F1 = (0.8 + 0.5 + 2/3) / 3 = 0.65556
    # weighted F1 = (3*0.8 + 2*0.5 + 1*2/3) / 6 = 0.67778
    # balanced accuracy = (2/3 + 1/2 + 1) / 3 = 0.72222
    report = classification_report([0, 0, 0, 1, 1, 2], [0, 0, 1, 1, 2, 2],
                                   ["cat", "dog", "bird"])
    rows = {row["label"]: row for row in report.per_class}
    assert rows["cat"] == pytest.approx(
        {"label": "cat", "precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3})
    assert rows["dog"] == pytest.approx(
        {"label": "dog", "precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert rows["bird"] == pytest.approx(
        {"label": "bird", "precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1})
    assert report.accuracy == pytest.approx(2 / 3)
    assert report.macro_f1 == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert report.weighted_f1 == pytest.approx((3 * 0.8 + 2 * 0.5 + 2 / 3) / 6)
    assert report.balanced_accuracy == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    assert report.confusion == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert report.count == 6
    assert report.labels == ["cat", "dog", "bird"]


def test_report_perfect_predictions():
    report = classification_report([0, 1, 2, 2], [0, 1, 2, 2], ["a", "b", "c"])
    assert report.accuracy == report.macro_f1 == report.weighted_f1 == 1.0
    assert report.balanced_accuracy == 1.0
    assert all(row["precision"] == row["recall"] == row["f1"] == 1.0
               for row in report.per_class)


def test_report_all_wrong_predictions():
    # Every example predicted as the other class: no true positives at all,
    # so every precision, recall and F1 is 0.
    report = classification_report([0, 1, 0, 1], [1, 0, 1, 0], ["a", "b"])
    assert report.accuracy == 0.0
    assert report.macro_f1 == report.weighted_f1 == report.balanced_accuracy == 0.0
    assert [row["support"] for row in report.per_class] == [2, 2]
    assert report.confusion == [[0, 2], [2, 0]]


def test_report_class_with_zero_support():
    # true  a a b b, predicted a c b b; "c" has no examples but one prediction.
    # a: P = 1/1, R = 1/2, F1 = 2/3;  b: P = 2/2, R = 2/2, F1 = 1
    # c: P = 0/1 = 0, R undefined -> 0, F1 -> 0 (support 0, still listed)
    # macro F1 = (2/3 + 1) / 2 = 5/6 over the classes with examples (c has none;
    # scikit-learn with labels=[0, 1, 2] would count its 0: 5/9). The wrong "c"
    # prediction already costs a's recall.
    # weighted F1 = (2*2/3 + 2*1 + 0*0) / 4 = 5/6
    # balanced accuracy = mean recall over classes with examples = (1/2 + 1) / 2
    report = classification_report([0, 0, 1, 1], [0, 2, 1, 1], ["a", "b", "c"])
    c = report.per_class[2]
    assert c == {"label": "c", "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert report.accuracy == pytest.approx(3 / 4)
    assert report.macro_f1 == pytest.approx(5 / 6)
    assert report.weighted_f1 == pytest.approx(5 / 6)
    assert report.balanced_accuracy == pytest.approx(0.75)
    # The text table's macro row averages the same classes: P (1 + 1) / 2, R 0.75.
    macro = next(line for line in report.to_text().splitlines()
                 if line.strip().startswith("macro avg")).split()
    assert macro[2:5] == ["1.000", "0.750", "0.833"]


def test_report_zero_division_gives_zero_not_nan():
    # b is never predicted: P = 0/0 -> 0, R = 0/1 = 0, F1 -> 0.
    # c never occurs and is never predicted: everything 0/0 -> 0.
    # a: P = 2/3, R = 2/2 = 1, F1 = 2*(2/3)*1 / (5/3) = 0.8
    report = classification_report([0, 0, 1], [0, 0, 0], ["a", "b", "c"])
    values = [row[key] for row in report.per_class for key in ("precision", "recall", "f1")]
    assert all(np.isfinite(values))
    assert report.per_class[0]["f1"] == pytest.approx(0.8)
    assert report.per_class[1] == {"label": "b", "precision": 0.0, "recall": 0.0,
                                   "f1": 0.0, "support": 1}
    assert report.per_class[2]["f1"] == 0.0 and report.per_class[2]["support"] == 0
    # balanced accuracy = (1 + 0) / 2 over a and b; macro F1 = (0.8 + 0) / 2 likewise
    assert report.balanced_accuracy == pytest.approx(0.5)
    assert report.macro_f1 == pytest.approx(0.4)


def test_report_accepts_numpy_ids_of_any_integer_type():
    report = classification_report(np.array([0, 1], dtype=np.uint8),
                                   np.array([0, 1], dtype=np.int32), ["a", "b"])
    assert report.accuracy == 1.0


@pytest.mark.parametrize("y_true, y_pred, labels, message", [
    ([0, 1], [0], ["a", "b"], "2 entries but y_pred has 1"),
    ([0, 2], [0, 1], ["a", "b"], "ids must be in 0..1"),
    ([0, 1], [0, -1], ["a", "b"], "is not a class id"),
    ([], [], ["a", "b"], "no predictions"),
    ([0], [0], [], "labels is empty"),
    ([0], [0], ["a", "a"], "repeated: a"),
])
def test_report_rejects_bad_input(y_true, y_pred, labels, message):
    with pytest.raises(DataError, match=message):
        classification_report(y_true, y_pred, labels)


def test_report_dict_round_trip_through_json():
    report = classification_report([0, 0, 1, 2], [0, 1, 1, 1], ["x", "y", "z"])
    data = report.to_dict()
    text = json.dumps(data)  # must be plain Python types
    assert type(data["accuracy"]) is float and type(data["count"]) is int
    assert type(data["confusion"][0][0]) is int
    assert type(data["per_class"][0]["support"]) is int
    again = ClassificationReport.from_dict(json.loads(text))
    assert again == report
    assert again.to_dict() == data


def test_report_from_dict_names_missing_keys():
    data = classification_report([0], [0], ["a"]).to_dict()
    del data["macro_f1"]
    with pytest.raises(DataError, match="macro_f1"):
        ClassificationReport.from_dict(data)


def test_report_text_table():
    labels = ["cat", "dog", "a much longer label"]
    report = classification_report([0, 0, 0, 1, 1, 2], [0, 0, 1, 1, 2, 2], labels)
    text = report.to_text()
    lines = text.splitlines()
    for label in labels:
        assert any(line.split()[:len(label.split())] == label.split() for line in lines)
    assert "precision" in lines[0] and "support" in lines[0]
    accuracy_line = next(line for line in lines if line.strip().startswith("accuracy"))
    assert "0.667" in accuracy_line and accuracy_line.endswith("6")
    interval = next(line for line in lines if line.strip().startswith("95% interval"))
    assert interval.split()[-2:] == ["0.300", "0.903"]          # Wilson, 4 of 6
    assert any(line.strip().startswith("macro avg") for line in lines)
    assert any(line.strip().startswith("weighted avg") for line in lines)
    # Class rows are aligned: same length, numbers in the same columns.
    class_rows = lines[2:5]
    assert len({len(row) for row in class_rows}) == 1
    assert len({row.index(".") for row in class_rows}) == 1
    assert report.to_text(digits=2).count("0.67") >= 1


# --------------------------------------------------------------------------
# aggregate_windows and group_by_recording


def test_aggregate_mean():
    # class 0: (0.6 + 0.2 + 0.7) / 3 = 0.5; class 1: (0.4 + 0.8 + 0.3) / 3 = 0.5
    probabilities = np.array([[0.6, 0.4], [0.2, 0.8], [0.7, 0.3]], dtype=np.float32)
    assert aggregate_windows(probabilities, "mean") == pytest.approx([0.5, 0.5])


def test_aggregate_vote_fractions():
    # window winners: 0, 1, 1, 2 -> fractions 1/4, 2/4, 1/4
    probabilities = np.array([[0.5, 0.3, 0.2], [0.1, 0.8, 0.1],
                              [0.3, 0.4, 0.3], [0.2, 0.2, 0.6]])
    result = aggregate_windows(probabilities, "vote")
    assert result.tolist() == [0.25, 0.5, 0.25]


@pytest.mark.parametrize("probabilities, winner", [
    # winners 0 and 1, one vote each; mean = (0.65, 0.35): class 0 wins
    ([[0.9, 0.1], [0.4, 0.6]], 0),
    # winners 0 and 1 again; mean = (0.325, 0.675): class 1 wins although
    # a plain argmax over equal fractions would pick class 0
    ([[0.55, 0.45], [0.1, 0.9]], 1),
])
def test_aggregate_vote_tie_goes_to_higher_mean(probabilities, winner):
    result = aggregate_windows(np.array(probabilities), "vote")
    assert result == pytest.approx([0.5, 0.5], abs=1e-5)
    assert int(np.argmax(result)) == winner
    assert int(np.argmax(result.astype(np.float32))) == winner
    assert result.sum() == pytest.approx(1.0)


def test_aggregate_vote_three_way_tie():
    # winners 2, 0, 1: one vote each; means (1.2/3, 0.9/3, 0.9/3): class 0 wins
    probabilities = np.array([[0.3, 0.2, 0.5], [0.6, 0.3, 0.1], [0.3, 0.4, 0.3]])
    result = aggregate_windows(probabilities, "vote")
    assert int(np.argmax(result)) == 0
    assert result == pytest.approx([1 / 3] * 3, abs=1e-5)
    assert result.sum() == pytest.approx(1.0)


def test_aggregate_single_window():
    assert aggregate_windows(np.array([[0.2, 0.8]]), "vote").tolist() == [0.0, 1.0]
    assert aggregate_windows(np.array([[0.2, 0.8]]), "mean") == pytest.approx([0.2, 0.8])


@pytest.mark.parametrize("probabilities", [
    np.zeros((0, 3)), np.zeros(3), np.zeros((2, 0)), np.array([[0.5, np.nan]]),
])
def test_aggregate_rejects_bad_arrays(probabilities):
    with pytest.raises(DataError):
        aggregate_windows(probabilities, "mean")


def test_aggregate_rejects_unknown_method():
    with pytest.raises(ConfigError, match="mean, vote"):
        aggregate_windows(np.ones((1, 2)), "median")


def test_group_by_recording_keeps_first_appearance_order():
    window_probs = np.array([
        [0.9, 0.1],   # b
        [0.2, 0.8],   # a
        [0.7, 0.3],   # b
        [0.5, 0.5],   # c
        [0.4, 0.6],   # a
    ])
    recordings, probabilities = group_by_recording(window_probs, ["b", "a", "b", "c", "a"])
    assert recordings == ["b", "a", "c"]
    # b: mean of (0.9, 0.1), (0.7, 0.3); a: (0.2, 0.8), (0.4, 0.6); c alone
    assert probabilities == pytest.approx(np.array([[0.8, 0.2], [0.3, 0.7], [0.5, 0.5]]))

    recordings, votes = group_by_recording(window_probs, [3, 1, 3, 2, 1], method="vote")
    assert recordings == [3, 1, 2]
    assert votes[0].tolist() == [1.0, 0.0] and votes[1].tolist() == [0.0, 1.0]


def test_group_by_recording_rejects_length_mismatch():
    with pytest.raises(DataError, match="one id per window"):
        group_by_recording(np.ones((3, 2)) / 2, ["a", "b"])


def test_metrics_module_needs_no_torch():
    # The deployed runtime may use earmark.metrics.classification: it must not pull in torch.
    code = ("import sys, earmark.metrics.classification, earmark.atomic; "
            "print('torch' in sys.modules, 'matplotlib' in sys.modules)")
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout.split()
    assert output == ["False", "False"]


# --------------------------------------------------------------------------
# atomic writes


def test_write_json_round_trip_and_no_temp_files(tmp_path):
    target = tmp_path / "deep" / "folder" / "report.json"
    report = classification_report([0, 1], [0, 0], ["a", "b"])
    atomic.write_json(target, report.to_dict())
    assert ClassificationReport.from_dict(json.loads(target.read_text())) == report
    text = target.read_text()
    assert text.startswith('{\n  "labels"') and text.endswith("\n")  # indent=2
    assert os.listdir(target.parent) == ["report.json"]


def test_write_json_converts_numpy_values(tmp_path):
    target = tmp_path / "values.json"
    atomic.write_json(target, {"f": np.float32(0.5), "i": np.int64(3),
                               "array": np.arange(3)})
    assert json.loads(target.read_text()) == {"f": 0.5, "i": 3, "array": [0, 1, 2]}


def test_write_text_and_bytes_replace_content(tmp_path):
    target = tmp_path / "notes.txt"
    atomic.write_text(target, "first\n")
    atomic.write_text(target, "zweite Fassung, ünïcode\n")
    assert target.read_text(encoding="utf-8") == "zweite Fassung, ünïcode\n"
    atomic.write_bytes(tmp_path / "blob.bin", b"\x00\x01\xff")
    assert (tmp_path / "blob.bin").read_bytes() == b"\x00\x01\xff"
    assert sorted(os.listdir(tmp_path)) == ["blob.bin", "notes.txt"]


def test_failed_json_write_keeps_old_file(tmp_path):
    target = tmp_path / "report.json"
    atomic.write_json(target, {"version": 1})
    with pytest.raises(TypeError, match="object"):
        atomic.write_json(target, {"version": 2, "bad": object()})
    assert json.loads(target.read_text()) == {"version": 1}
    assert os.listdir(tmp_path) == ["report.json"]


def test_failure_after_temp_file_is_cleaned_up(tmp_path, monkeypatch):
    target = tmp_path / "report.json"
    atomic.write_json(target, {"version": 1})

    # Fails while writing the temp file: bytes expected, str given.
    with pytest.raises(TypeError):
        atomic.write_bytes(target, "not bytes")  # type: ignore[arg-type]
    assert os.listdir(tmp_path) == ["report.json"]

    # Fails at the final rename (e.g. a full disk or a permission problem).
    def refuse(source, destination):
        raise OSError("simulated failure")

    monkeypatch.setattr(atomic.os, "replace", refuse)
    with pytest.raises(OutputError, match="simulated") as raised:
        atomic.write_json(target, {"version": 2})
    assert str(raised.value).startswith(f"cannot write {target}:")    # not the temp file
    assert json.loads(target.read_text()) == {"version": 1}
    assert os.listdir(tmp_path) == ["report.json"]


def test_an_output_under_a_file_names_the_file(tmp_path):
    recording = tmp_path / "take.wav"
    recording.write_bytes(b"RIFF")
    with pytest.raises(OutputError, match=f"{recording} is a file, not a folder"):
        atomic.write_json(recording / "summary.json", {})
    with pytest.raises(OutputError, match="is a file, not a folder"):
        atomic.check_output_folder(recording)
    assert recording.read_bytes() == b"RIFF" and os.listdir(tmp_path) == ["take.wav"]
    assert atomic.check_output_folder(tmp_path / "new" / "reports") == tmp_path / "new" / "reports"
    assert not (tmp_path / "new").exists()                  # checked, not made


def test_write_keeps_existing_permissions(tmp_path):
    target = tmp_path / "private.json"
    atomic.write_json(target, {})
    os.chmod(target, 0o600)
    atomic.write_json(target, {"again": True})
    assert target.stat().st_mode & 0o777 == 0o600
