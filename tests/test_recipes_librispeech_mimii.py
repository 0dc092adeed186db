"""LibriSpeech and MIMII / DCASE task 2 recipes: tiny trees in the real layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from earmark.data.manifest import from_folder
from earmark.data.recipes import RECIPES, librispeech, mimii
from earmark.errors import DataError

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
SPEAKERS_TXT = """\
; Some pipe(|) separated metadata about all LibriVox readers
;ID  |SEX| SUBSET           |MINUTES| NAME
84   | F | dev-clean        |  8.02 | Christie Nowak
174  | M | dev-clean        |  8.04 | Peter Eastman
"""


def tone(path: Path, rate: int = 16000) -> None:
    """A 0.1 s tone at ``path`` (WAV or FLAC by suffix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, 0.1 * np.sin(np.arange(rate // 10) * 0.2).astype(np.float32), rate)


def libri_tree(tmp_path: Path, speakers: str = SPEAKERS_TXT) -> Path:
    """``LibriSpeech/`` with dev-clean speakers 84 (2 utterances) and 174 (1)."""
    root = tmp_path / "LibriSpeech"
    chapters = {("84", "121123"): ["0000", "0001"], ("174", "50561"): ["0000"]}
    for (speaker, chapter), utts in chapters.items():
        folder = root / "dev-clean" / speaker / chapter
        for utt in utts:
            tone(folder / f"{speaker}-{chapter}-{utt}.flac")
        (folder / f"{speaker}-{chapter}.trans.txt").write_text(
            "".join(f"{speaker}-{chapter}-{utt} HELLO WORLD {utt}\n" for utt in utts))
    if speakers:
        (root / "SPEAKERS.TXT").write_text(speakers)
    return root


def test_librispeech_rows_labels_groups_meta(tmp_path):
    libri_tree(tmp_path)
    manifest = librispeech.build(tmp_path, "dev-clean")  # finds LibriSpeech/ inside
    assert [Path(r.path).stem for r in manifest] == [
        "84-121123-0000", "84-121123-0001", "174-50561-0000"]
    rows = {Path(r.path).stem: r for r in manifest}
    first = rows["84-121123-0001"]
    assert (first.label, first.group, first.split) == ("F", "84", "")
    assert dict(first.meta) == {"speaker": "84", "chapter": "121123", "gender": "F",
                                "transcript": "HELLO WORLD 0001", "subset": "dev-clean"}
    assert (rows["174-50561-0000"].label, rows["174-50561-0000"].group) == ("M", "174")
    assert manifest.groups() == ["174", "84"]


def test_librispeech_recipes_are_registered():
    for subset in ("dev-clean", "dev-other", "test-clean", "test-other", "train-clean-100"):
        recipe = RECIPES[f"librispeech_{subset}"]
        assert recipe.folder == "LibriSpeech" and recipe.split == "kfold"
        assert recipe.files[0].url == f"https://www.openslr.org/resources/12/{subset}.tar.gz"
    assert RECIPES["librispeech_dev-clean"].files[0].md5 == "42e2234ba48799c1f50f24a7926300a1"


def test_librispeech_missing_speakers_file(tmp_path):
    root = libri_tree(tmp_path, speakers="")
    with pytest.raises(DataError, match="SPEAKERS.TXT"):
        librispeech.build(root, "dev-clean")


def test_librispeech_speaker_not_listed(tmp_path):
    root = libri_tree(tmp_path, speakers=SPEAKERS_TXT.replace("174  | M", "999  | M"))
    with pytest.raises(DataError, match="174"):
        librispeech.build(root, "dev-clean")


def test_librispeech_missing_subset_and_transcript(tmp_path):
    root = libri_tree(tmp_path)
    with pytest.raises(DataError, match="test-clean"):
        librispeech.build(root, "test-clean")
    (root / "dev-clean" / "174" / "50561" / "174-50561.trans.txt").unlink()
    with pytest.raises(DataError, match="174-50561.trans.txt"):
        librispeech.build(root, "dev-clean")


def mimii_tree(tmp_path: Path, normal: int = 6, abnormal: int = 2) -> Path:
    """``fan/id_00`` and ``fan/id_02`` with normal and abnormal WAVs."""
    for ident in ("id_00", "id_02"):
        for condition, count in (("normal", normal), ("abnormal", abnormal)):
            for n in range(count):
                (tmp_path / "fan" / ident / condition).mkdir(parents=True, exist_ok=True)
                (tmp_path / "fan" / ident / condition / f"{n:08d}.wav").write_bytes(b"")
    return tmp_path


def test_mimii_labels_split_and_meta(tmp_path):
    manifest = mimii.build_mimii(mimii_tree(tmp_path), "fan")
    assert len(manifest) == 16 and manifest.label_counts() == {"normal": 12, "anomaly": 4}
    test = manifest.select("test")
    assert len(test) == 8 and all(r.label == "normal" for r in manifest.select("train"))
    row = next(r for r in manifest if r.path.endswith("id_02/abnormal/00000001.wav"))
    assert (row.label, row.split, row.group) == ("anomaly", "test", "fan_id_02_abnormal_00000001")
    assert dict(row.meta) == {"machine": "fan", "id": "id_02", "condition": "abnormal",
                              "snr": "6_dB"}
    held = [r for r in test if r.label == "normal" and r.meta["id"] == "id_00"]
    assert [Path(r.path).name for r in held] == ["00000000.wav", "00000001.wav"]
    assert len(set(manifest.groups())) == 16


def test_mimii_empty_folder(tmp_path):
    (tmp_path / "fan").mkdir()
    with pytest.raises(DataError, match="id_XX"):
        mimii.build_mimii(tmp_path, "fan")


def test_dcase2020_and_2022_names(tmp_path):
    names = {"train": ["normal_id_00_00000000.wav", "normal_id_02_00000001.wav",
                       "section_00_source_train_normal_0001_strength_1.wav"],
             "test": ["anomaly_id_00_00000000.wav", "normal_id_00_00000003.wav",
                      "section_01_target_test_anomaly_0002_vel_4.wav"]}
    for split, files in names.items():
        (tmp_path / "ToyCar" / split).mkdir(parents=True)
        for name in files:
            (tmp_path / "ToyCar" / split / name).write_bytes(b"")
    rows = {Path(r.path).name: r for r in mimii.build_dcase(tmp_path, "ToyCar")}
    old = rows["anomaly_id_00_00000000.wav"]
    assert (old.label, old.split) == ("anomaly", "test")
    assert old.meta["id"] == "id_00" and old.meta["machine"] == "ToyCar"
    new = rows["section_01_target_test_anomaly_0002_vel_4.wav"]
    assert (new.label, new.split, new.meta["domain"], new.meta["section"]) == (
        "anomaly", "test", "target", "01")
    assert rows["normal_id_02_00000001.wav"].split == "train"
    (tmp_path / "ToyCar" / "test" / "odd.wav").write_bytes(b"")
    with pytest.raises(DataError, match="odd.wav"):
        mimii.build_dcase(tmp_path, "ToyCar")


def test_mimii_and_dcase_recipes_are_registered():
    for machine in ("fan", "pump", "slider", "valve"):
        recipe = RECIPES[f"mimii_6dB_{machine}"]
        assert recipe.files[0].name == f"6_dB_{machine}.zip"
        assert "3384388" in recipe.files[0].url and recipe.split == "column"
    assert RECIPES["dcase2020_task2_toycar"].files[0].name == "dev_data_ToyCar.zip"


@pytest.mark.realdata
def test_real_mimii_fan():
    manifest = mimii.build_mimii(SHARED / "mimii_fan", "fan")
    assert manifest.label_counts() == {"normal": 20, "anomaly": 20}
    assert len(manifest.select("train")) == 10
    assert manifest.select("test").label_counts() == {"normal": 10, "anomaly": 20}


@pytest.mark.realdata
def test_real_librispeech_gender_speakers_agree():
    sexes = librispeech.read_speakers(SHARED / "librispeech_gender" / "SPEAKERS.TXT")
    manifest = from_folder(SHARED / "librispeech_gender", group_pattern="librispeech")
    assert len(manifest) == 147
    assert all(sexes[row.group] == row.label for row in manifest)
