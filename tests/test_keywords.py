"""The Speech Commands-style task: chosen words, _unknown_ and _silence_ at set shares."""

from __future__ import annotations

import pytest

from conftest import write_noise, write_tone
from earmark.config import from_dict
from earmark.data.dataset import load_manifest, open_dataset
from earmark.errors import DataError

WORDS = {"yes": 400.0, "no": 600.0, "bed": 800.0, "cat": 1000.0, "dog": 1200.0}


@pytest.fixture
def word_folder(tmp_path):
    for word, frequency in WORDS.items():
        for speaker in range(10):
            write_tone(tmp_path / "words" / word / f"{speaker:08x}_nohash_0.wav", 0.5, 16000,
                       frequency)
    write_noise(tmp_path / "noise" / "hum.wav", 5.0, 16000)
    return tmp_path


def config(folder, **data):
    return from_dict({"data": {"root": str(folder / "words"), "keywords": ["yes", "no"],
                               "silence_noise_dir": str(folder / "noise"),
                               "cache_dir": str(folder / "cache"), **data}})


def test_other_words_become_unknown_and_noise_becomes_silence(word_folder):
    manifest = load_manifest(config(word_folder, unknown_percent=50, silence_percent=25))
    counts = manifest.label_counts()
    assert counts == {"yes": 10, "no": 10, "_unknown_": 10, "_silence_": 5}
    silence = [row for row in manifest if row.label == "_silence_"]
    assert all(row.end - row.start == pytest.approx(1.0) for row in silence)
    dataset = open_dataset(config(word_folder, unknown_percent=50, silence_percent=25),
                           manifest, progress=False)
    silence_index = next(i for i, r in enumerate(dataset.manifest) if r.label == "_silence_")
    assert len(dataset.store.recording(silence_index)) == 16000


def test_missing_keyword_or_noise_folder_is_an_error(word_folder):
    with pytest.raises(DataError, match="zebra"):
        load_manifest(config(word_folder, keywords=["zebra"]))
    with pytest.raises(DataError, match="silence_noise_dir"):
        load_manifest(config(word_folder, silence_noise_dir=""))


def test_extra_training_rows_join_the_train_split_only(word_folder, tmp_path):
    from earmark.data.manifest import Manifest, Row
    extra_rows = [Row(str(word_folder / "words" / "yes" / "00000000_nohash_0.wav"), "yes",
                      "robot")]
    Manifest(extra_rows).to_csv(tmp_path / "extra.csv")
    manifest = load_manifest(config(word_folder, extra_train=[str(tmp_path / "extra.csv")]))
    extra = [row for row in manifest if row.group == "extra:robot"]
    assert len(extra) == 1 and extra[0].split == "train"
    Manifest([Row(extra_rows[0].path, "maybe", "robot")]).to_csv(tmp_path / "bad.csv")
    with pytest.raises(DataError, match="maybe"):
        load_manifest(config(word_folder, extra_train=[str(tmp_path / "bad.csv")]))
    with pytest.raises(DataError, match=r"extra_train: .*missing.csv does not exist.*earmark synth"):
        load_manifest(config(word_folder, extra_train=[str(tmp_path / "missing.csv")]))
