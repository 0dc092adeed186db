"""The dataset recipes: each builder on a tiny tree in the dataset's real layout."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest
from conftest import SHARED_DATA, write_noise, write_tone

from earmark.config import from_dict
from earmark.data.dataset import load_manifest
from earmark.data.manifest import SPLITS
from earmark.data.recipes import esc50, fsdd, speech_commands
from earmark.data.recipes.recipe import Recipe
from earmark.data.splits import split_by_fold
from earmark.errors import DataError

RATE = 8000


def touch(path: Path) -> Path:
    """An empty placeholder where only the name matters."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    return path


# ----------------------------------------------------------- Speech Commands
SC_FILES = {
    "yes/0a7c2a8d_nohash_0.wav": "train",
    "yes/0a7c2a8d_nohash_1.wav": "train",
    "yes/bb05582b_nohash_0.wav": "test",
    "no/0a7c2a8d_nohash_0.wav": "train",
    "no/c1d39ce8_nohash_2.wav": "validation",
    "right/bb05582b_nohash_3.wav": "test",
    "marvin/c1d39ce8_nohash_0.wav": "validation",
    "learn/1b4c9b89_nohash_0.wav": "train",
    "sheila/1b4c9b89_nohash_1.wav": "test",
}


def speech_commands_tree(root: Path) -> Path:
    """Word folders, ``_background_noise_``, the two official lists and the top-level files."""
    for name in SC_FILES:
        touch(root / name)
    write_noise(root / "_background_noise_" / "white_noise.wav", 0.2, RATE)
    touch(root / "_background_noise_" / "README.md")
    (root / "validation_list.txt").write_text(
        "".join(f"{n}\n" for n, s in SC_FILES.items() if s == "validation"))
    (root / "testing_list.txt").write_text(
        "".join(f"{n}\n" for n, s in SC_FILES.items() if s == "test"))
    (root / "LICENSE").write_text("CC BY 4.0")
    (root / "README.md").write_text("Speech Commands")
    return root


def relative(manifest, root: Path) -> dict[str, tuple[str, str, str]]:
    return {Path(row.path).relative_to(root.resolve()).as_posix(): (row.label, row.group, row.split)
            for row in manifest}


def test_speech_commands_words_follow_the_official_lists(tmp_path):
    root = speech_commands_tree(tmp_path / "speech_commands_v0.02")
    manifest = speech_commands.word_manifest(root)
    rows = relative(manifest, root)
    assert set(rows) == set(SC_FILES)            # no background noise, no stray files
    for name, split in SC_FILES.items():
        word, file = name.split("/")
        assert rows[name] == (word, file.split("_nohash_")[0], split)
    assert all(Path(row.path).is_absolute() for row in manifest)


def test_speech_commands_twelve_class_task(tmp_path):
    root = speech_commands_tree(tmp_path / "sc")
    recipe = recipes_by_name()["speech_commands_v2_12"]
    manifest = recipe.build_manifest(root)
    rows = relative(manifest, root)
    assert set(rows) == set(SC_FILES)
    for name, (label, _, split) in rows.items():
        word = name.split("/")[0]
        assert label == (word if word in speech_commands.KEYWORDS_12 else "_unknown_")
        assert split == SC_FILES[name]
    assert manifest.labels() == ["_unknown_", "no", "right", "yes"]


def test_speech_commands_twelve_class_gets_silence_from_keywords(tmp_path):
    """The docstring's recipe: the 12-class manifest + data.keywords cuts _silence_."""
    root = speech_commands_tree(tmp_path / "sc")
    for word in speech_commands.KEYWORDS_12:
        touch(root / word / "0a7c2a8d_nohash_0.wav")
    recipes_by_name()["speech_commands_v2_12"].build_manifest(root).to_csv(tmp_path / "m.csv")
    config = from_dict({"data": {
        "csv": str(tmp_path / "m.csv"), "sample_rate": RATE, "clip_seconds": 0.1,
        "split": "column", "keywords": list(speech_commands.KEYWORDS_12),
        "silence_percent": 50.0, "silence_noise_dir": str(root / "_background_noise_")}})
    manifest = load_manifest(config)
    assert manifest.label_counts()["_silence_"] > 0
    assert set(manifest.labels()) == {*speech_commands.KEYWORDS_12, "_unknown_", "_silence_"}
    # The official split is kept, and _silence_ is dealt to the splits like the words.
    for row in manifest:
        name = "/".join(Path(row.path).parts[-2:])
        if name in SC_FILES and row.label != "_unknown_":
            assert row.split == SC_FILES[name]
    words = [row.split for row in manifest if row.label in speech_commands.KEYWORDS_12]
    silence = [row.split for row in manifest if row.label == "_silence_"]
    for split in ("train", "validation", "test"):
        assert abs(silence.count(split) / len(silence)
                   - words.count(split) / len(words)) <= 1 / len(silence) + 1e-9


def test_speech_commands_recipes_declared(tmp_path):
    recipes = recipes_by_name()
    assert {"speech_commands_v1", "speech_commands_v2", "speech_commands_v1_12",
            "speech_commands_v2_12"} <= set(recipes)
    v2 = recipes["speech_commands_v2"]
    assert v2.files[0].url == "http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz"
    assert v2.folder == "speech_commands_v0.02" and v2.split == "column"
    assert recipes["speech_commands_v1"].files[0].url.endswith("speech_commands_v0.01.tar.gz")
    assert len(speech_commands.WORDS_V1) == 30 and len(speech_commands.WORDS_V2) == 35
    for recipe in recipes.values():
        for remote in recipe.files:
            assert remote.sha256 is None or len(remote.sha256) == 64


def test_speech_commands_background_noise(tmp_path):
    root = speech_commands_tree(tmp_path / "sc")
    assert [p.name for p in speech_commands.background_noise_files(root)] == ["white_noise.wav"]
    assert speech_commands.background_noise_files(tmp_path / "nowhere") == []


def test_speech_commands_missing_list_is_named(tmp_path):
    root = speech_commands_tree(tmp_path / "sc")
    (root / "testing_list.txt").unlink()
    with pytest.raises(DataError, match="testing_list.txt.*re-download"):
        speech_commands.word_manifest(root)


def test_speech_commands_absent_listed_files_are_named(tmp_path):
    root = speech_commands_tree(tmp_path / "sc")
    (root / "right" / "bb05582b_nohash_3.wav").unlink()
    (root / "no" / "c1d39ce8_nohash_2.wav").unlink()
    with pytest.raises(DataError) as caught:
        speech_commands.word_manifest(root)
    message = str(caught.value)
    assert "2 recording(s)" in message and "right/bb05582b_nohash_3.wav" in message
    assert "no/c1d39ce8_nohash_2.wav" in message and "--root" in message


def test_speech_commands_missing_folder(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        speech_commands.word_manifest(tmp_path / "absent")


# ----------------------------------------------------------------------- FSDD
def fsdd_tree(root: Path, speakers=("jackson", "theo"), takes=7) -> Path:
    recordings = root / "recordings"
    for digit in range(3):
        for speaker in speakers:
            for take in range(takes):
                touch(recordings / f"{digit}_{speaker}_{take}.wav")
    write_tone(recordings / "9_nicolas_40.wav", 0.1, RATE, 440.0)
    (root / "README.md").write_text("FSDD")
    (root / "utils").mkdir()
    return root


def test_fsdd_documented_split_and_speakers(tmp_path):
    root = fsdd_tree(tmp_path / fsdd.ARCHIVE_FOLDER)
    manifest = fsdd.build_manifest(root)
    assert len(manifest) == 3 * 2 * 7 + 1
    for row in manifest:
        digit, speaker, take = Path(row.path).stem.split("_")
        assert (row.label, row.group) == (digit, speaker)
        assert row.split == ("test" if int(take) < 5 else "train")
    assert manifest.groups() == ["jackson", "nicolas", "theo"]
    assert Counter(row.split for row in manifest) == {"test": 30, "train": 13}


def test_fsdd_finds_recordings_in_any_layout(tmp_path):
    folder = tmp_path / "datasets" / recipes_by_name()["fsdd"].folder
    root = fsdd_tree(folder / fsdd.ARCHIVE_FOLDER)        # as the archive unpacks
    expected = [row.path for row in fsdd.build_manifest(root)]
    assert len(expected) == 43
    assert [row.path for row in fsdd.build_manifest(folder)] == expected
    assert [row.path for row in fsdd.build_manifest(root / "recordings")] == expected


def test_fsdd_kfold_is_speaker_disjoint(tmp_path):
    manifest = fsdd.build_manifest(fsdd_tree(tmp_path / "fsdd", speakers=("a", "b", "c")))
    assert recipes_by_name()["fsdd"].split == "kfold"
    split = split_by_fold(manifest, folds=3, fold=0)
    for group in split.groups():
        assert len({row.split for row in split if row.group == group}) == 1


def test_fsdd_errors_name_the_files(tmp_path):
    with pytest.raises(DataError, match="no recordings/ folder.*re-download"):
        fsdd.build_manifest(tmp_path)
    root = fsdd_tree(tmp_path / "fsdd")
    touch(root / "recordings" / "hello.wav")
    with pytest.raises(DataError, match="1 file.*hello.wav"):
        fsdd.build_manifest(root)


@pytest.mark.realdata
def test_fsdd_on_the_shared_recordings():
    manifest = fsdd.build_manifest(SHARED_DATA / recipes_by_name()["fsdd"].folder)
    assert len(manifest) == 2000
    assert manifest.groups() == ["george", "lucas", "nicolas", "theo"]
    assert manifest.labels() == [str(d) for d in range(10)]
    assert Counter(row.split for row in manifest) == {"train": 1800, "test": 200}
    assert set(Counter(row.group for row in manifest).values()) == {500}


# ---------------------------------------------------------------------- ESC-50
ESC_CLIPS = [
    # filename, fold, target, category, esc10, src_file, take
    ("1-100032-A-0.wav", 1, 0, "dog", "True", "100032", "A"),
    ("1-100038-A-14.wav", 1, 14, "chirping_birds", "False", "100038", "A"),
    ("2-102414-A-17.wav", 2, 17, "pouring_water", "False", "102414", "A"),
    ("2-102414-B-17.wav", 2, 17, "pouring_water", "False", "102414", "B"),
    ("3-68630-A-40.wav", 3, 40, "helicopter", "True", "68630", "A"),
    ("3-68630-B-40.wav", 3, 40, "helicopter", "True", "68630", "B"),
    ("5-9032-A-0.wav", 5, 0, "dog", "True", "9032", "A"),
]


def esc50_tree(root: Path) -> Path:
    (root / "meta").mkdir(parents=True)
    with open(root / "meta" / "esc50.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(esc50.COLUMNS)
        writer.writerows(ESC_CLIPS)
    for clip in ESC_CLIPS:
        touch(root / "audio" / clip[0])
    (root / "LICENSE").write_text("CC BY-NC 3.0")
    return root


def test_esc50_folds_groups_labels_from_the_csv(tmp_path):
    root = esc50_tree(tmp_path / esc50.ARCHIVE_FOLDER)
    manifest = recipes_by_name()["esc50"].build_manifest(root)
    expected = {clip[0]: (clip[3], clip[5], clip[1]) for clip in ESC_CLIPS}
    assert {Path(r.path).name: (r.label, r.group, r.fold) for r in manifest} == expected
    assert all(row.split == "" for row in manifest)
    assert manifest.rows[0].path == str((root / "audio" / ESC_CLIPS[0][0]).resolve())


def test_esc10_keeps_only_its_clips(tmp_path):
    folder = tmp_path / "datasets" / recipes_by_name()["esc10"].folder
    root = esc50_tree(folder / esc50.ARCHIVE_FOLDER)       # as the archive unpacks
    manifest = recipes_by_name()["esc10"].build_manifest(folder)
    assert [Path(r.path).name for r in manifest] == [c[0] for c in ESC_CLIPS if c[4] == "True"]
    assert manifest.labels() == ["dog", "helicopter"]
    assert (root / "audio").is_dir()


def test_esc50_folds_keep_sources_together(tmp_path):
    manifest = esc50.build(esc50_tree(tmp_path / "esc"))
    split = split_by_fold(manifest, folds=5, fold=2)
    assert {Path(r.path).name for r in split.select("test")} == {"2-102414-A-17.wav",
                                                                "2-102414-B-17.wav"}
    assert {r.split for r in split} <= set(SPLITS)


def test_esc50_recipes_declared():
    recipes = recipes_by_name()
    for name in ("esc50", "esc10"):
        recipe = recipes[name]
        assert recipe.split == "kfold" and recipe.folder == "esc50"
        assert recipe.files[0].url == "https://github.com/karolpiczak/ESC-50/archive/master.zip"
    assert "CC BY-NC 3.0" in recipes["esc50"].licence
    assert "CC BY 3.0" in recipes["esc10"].licence


def test_esc50_missing_metadata(tmp_path):
    root = esc50_tree(tmp_path / "esc")
    (root / "meta" / "esc50.csv").unlink()
    with pytest.raises(DataError, match=r"esc50\.csv: no such file.*re-download"):
        esc50.build(root)


def test_esc50_bad_header(tmp_path):
    root = esc50_tree(tmp_path / "esc")
    (root / "meta" / "esc50.csv").write_text("filename,fold,category\n1-1-A-0.wav,1,dog\n")
    with pytest.raises(DataError, match="missing column"):
        esc50.build(root)


def test_esc50_absent_clips_are_named(tmp_path):
    root = esc50_tree(tmp_path / "esc")
    for clip in ESC_CLIPS[:3]:
        (root / "audio" / clip[0]).unlink()
    with pytest.raises(DataError) as caught:
        esc50.build(root)
    message = str(caught.value)
    assert "3 clip(s)" in message and ESC_CLIPS[0][0] in message and "--root" in message


def test_esc_pieces_layout(tmp_path):
    for name in ("1-100032-A-0_0.flac", "1-100032-A-0_1.flac", "5-9032-A-0_0.flac"):
        touch(tmp_path / "dog" / name)
    manifest = esc50.pieces_manifest(tmp_path)
    assert [(r.label, r.group, r.fold) for r in manifest] == [
        ("dog", "100032", 1), ("dog", "100032", 1), ("dog", "9032", 5)]
    touch(tmp_path / "dog" / "oops.flac")
    with pytest.raises(DataError, match="oops.flac"):
        esc50.pieces_manifest(tmp_path)


def test_esc_pieces_joined_into_clips_again(tmp_path):
    import numpy as np
    import soundfile

    written = {}
    (tmp_path / "pieces" / "dog").mkdir(parents=True)
    for piece in (2, 0, 1):                          # written out of order
        data = np.random.default_rng(piece).integers(-3000, 3000, 1600).astype(np.int16)
        soundfile.write(tmp_path / "pieces" / "dog" / f"1-100032-A-0_{piece}.flac", data, 16000,
                        subtype="PCM_16")
        written[piece] = data
    write_tone(tmp_path / "pieces" / "rain" / "5-9032-A-10_0.flac", 0.1, 16000, 300.0)
    manifest = esc50.joined_manifest(tmp_path / "pieces")
    assert [(r.label, r.group, r.fold, Path(r.path).name) for r in manifest] == [
        ("dog", "100032", 1, "1-100032-A-0.flac"), ("rain", "9032", 5, "5-9032-A-10.flac")]
    joined, rate = soundfile.read(manifest.rows[0].path, dtype="int16")
    assert rate == 16000
    np.testing.assert_array_equal(joined, np.concatenate([written[0], written[1], written[2]]))
    stamp = Path(manifest.rows[0].path).stat().st_mtime_ns
    again = esc50.joined_manifest(tmp_path / "pieces")          # joined once
    assert again.rows == manifest.rows
    assert Path(again.rows[0].path).stat().st_mtime_ns == stamp
    write_tone(tmp_path / "pieces" / "rain" / "5-9032-A-10_0.flac", 0.2, 16000, 300.0)
    assert esc50.joined_manifest(tmp_path / "pieces").rows[0].path != manifest.rows[0].path


@pytest.mark.realdata
def test_esc10_pieces_on_the_shared_recordings():
    manifest = esc50.pieces_manifest(SHARED_DATA / "esc10_pieces")
    assert len(manifest) == 1600 and len(manifest.labels()) == 10
    assert Counter(row.fold for row in manifest) == {1: 400, 2: 400, 3: 400, 5: 400}
    folds_of = {}
    for row in manifest:
        folds_of.setdefault(row.group, set()).add(row.fold)
    assert all(len(folds) == 1 for folds in folds_of.values())


# ----------------------------------------------------------------------- all
def recipes_by_name() -> dict[str, Recipe]:
    return {recipe.name: recipe for module in (speech_commands, fsdd, esc50)
            for recipe in module.RECIPES}


def test_the_esc50_config_splits_a_recipe_manifest_by_its_folds(tmp_path):
    """configs/esc50.toml on a manifest written by the recipe: fold 1 is the test split,
    fold 2 validation, the rest train, and no source clip straddles two splits."""
    from earmark.config import from_dict, load_config, to_dict

    root = esc50_tree(tmp_path / "esc50")
    manifest_path = tmp_path / "manifest-esc50.csv"
    recipes_by_name()["esc50"].build_manifest(root).to_csv(manifest_path)
    shipped = Path(__file__).parents[1] / "src" / "earmark" / "configs" / "esc50.toml"
    settings = to_dict(load_config(shipped))
    settings["data"]["csv"] = str(manifest_path)
    manifest = load_manifest(from_dict(settings))
    folds = {row.path: row.fold for row in
             recipes_by_name()["esc50"].build_manifest(root)}
    for row in manifest:
        expected = {1: "test", 2: "validation"}.get(folds[row.path], "train")
        assert row.split == expected
    splits_of_source = {}
    for row in manifest:
        splits_of_source.setdefault(row.group, set()).add(row.split)
    assert all(len(splits) == 1 for splits in splits_of_source.values())
