"""earmark.data.manifest: rows of path, label, group, split from folders and CSVs."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from conftest import (
    CLASS_FREQUENCIES,
    SHARED_DATA,
    SPEAKERS_PER_CLASS,
    TAKES_PER_SPEAKER,
    speaker_id,
    write_tone,
)
from earmark.data.manifest import (
    GROUP_PRESETS,
    Manifest,
    Row,
    check_classes,
    from_csv,
    from_folder,
    group_matcher,
)
from earmark.errors import DataError

# --- from a folder per class ----------------------------------------------------


def test_from_folder_labels_and_groups(class_folder):
    manifest = from_folder(class_folder)
    per_class = SPEAKERS_PER_CLASS * TAKES_PER_SPEAKER
    assert len(manifest) == len(CLASS_FREQUENCIES) * per_class
    assert manifest.labels() == sorted(CLASS_FREQUENCIES)
    assert dict(manifest.label_counts()) == {label: per_class for label in CLASS_FREQUENCIES}
    expected_groups = {speaker_id(c, s) for c in range(len(CLASS_FREQUENCIES))
                       for s in range(SPEAKERS_PER_CLASS)}
    assert set(manifest.groups()) == expected_groups
    for row in manifest:
        path = Path(row.path)
        assert path.is_file()
        assert path.parent.name == row.label
        assert path.name.startswith(row.group + "_nohash_")
        assert row.split == "" and row.start is None and row.end is None


def test_from_folder_skips_background_noise_and_stray_files(class_folder):
    manifest = from_folder(class_folder)
    assert (class_folder / "_background_noise_" / "white_noise.wav").is_file()
    assert "_background_noise_" not in manifest.labels()
    assert all("stray" not in row.path for row in manifest)


def test_from_folder_keeps_underscore_labels_and_nested_files(tmp_path):
    write_tone(tmp_path / "_silence_" / "a" / "0000abcd_nohash_0.wav", 0.05, 8000, 100)
    write_tone(tmp_path / "word" / "1111abcd_nohash_0.flac", 0.05, 8000, 100)
    manifest = from_folder(tmp_path)
    assert manifest.labels() == ["_silence_", "word"]
    assert manifest.groups() == ["0000abcd", "1111abcd"]


def test_from_folder_missing_folder(tmp_path):
    with pytest.raises(DataError, match="nowhere.*no such folder"):
        from_folder(tmp_path / "nowhere")


def test_from_folder_without_audio(tmp_path):
    (tmp_path / "yes").mkdir()
    (tmp_path / "yes" / "notes.txt").write_text("no audio here")
    write_tone(tmp_path / "top_level.wav", 0.05, 8000, 100)   # not in a class folder
    with pytest.raises(DataError, match=f"{tmp_path.name}.*no audio"):
        from_folder(tmp_path)


# --- groups -------------------------------------------------------------------

@pytest.mark.parametrize("preset, name, group", [
    ("speech_commands", "0a7c2a8d_nohash_0.wav", "0a7c2a8d"),
    ("speech_commands", "backward_0c540988_nohash_0.wav", "0c540988"),
    ("librispeech", "103-1240-0000.flac", "103"),
    ("fsdd", "7_george_23.wav", "george"),
])
def test_group_presets(preset, name, group):
    assert group_matcher(preset)(f"/data/x/{name}") == group
    assert group_matcher("auto")(name) == group


def test_group_preset_does_not_match_other_datasets():
    # A name a preset does not recognise becomes its own group (its stem).
    assert group_matcher("speech_commands")("7_george_23.wav") == "7_george_23"
    assert group_matcher("fsdd")("103-1240-0000.flac") == "103-1240-0000"
    assert group_matcher("auto")("/x/recording one.wav") == "recording one"


def test_custom_regex():
    match = group_matcher(r"^(?P<group>[a-z]+)-take\d+$")
    assert match("/x/alice-take3.wav") == "alice"
    assert match("bob-take10.flac") == "bob"


def test_bad_regex():
    with pytest.raises(DataError, match=r"not a valid regex.*\(\?P<group>"):
        group_matcher(r"^(?P<group>[a-z+$")


def test_regex_without_named_group():
    with pytest.raises(DataError, match="no named group"):
        group_matcher(r"^([a-z]+)_\d+$")


def test_presets_are_valid_regexes():
    for name in GROUP_PRESETS:
        group_matcher(name)   # must not raise


# --- CSV ------------------------------------------------------------------------

def write_csv(path: Path, text: str) -> Path:
    path.write_text(text.lstrip())
    return path


def test_from_csv_resolves_relative_paths(tmp_path):
    folder = tmp_path / "sets"
    folder.mkdir()
    absolute = tmp_path / "elsewhere" / "b.wav"
    csv_path = write_csv(folder / "m.csv", f"""
path,label,group,split,start,end,fold
audio/0a7c2a8d_nohash_0.wav,yes,,train,,,
{absolute},no,spk9,test,0.5,1.25,3
""")
    manifest = from_csv(csv_path)
    first, second = manifest.rows
    assert first == Row(str(folder / "audio" / "0a7c2a8d_nohash_0.wav"), "yes", "0a7c2a8d",
                        "train")
    assert second == Row(str(absolute), "no", "spk9", "test", 0.5, 1.25, 3)


def test_from_csv_only_required_columns(tmp_path):
    csv_path = write_csv(tmp_path / "m.csv", "label,path\nyes,103-1240-0000.flac\n")
    (row,) = from_csv(csv_path).rows
    assert (row.label, row.group, row.split, row.fold) == ("yes", "103", "", None)


def test_from_csv_group_pattern(tmp_path):
    csv_path = write_csv(tmp_path / "m.csv", "path,label\nalice-take3.wav,a\n")
    (row,) = from_csv(csv_path, group_pattern=r"^(?P<group>[a-z]+)-").rows
    assert row.group == "alice"


def test_from_csv_missing_file(tmp_path):
    with pytest.raises(DataError, match="absent.csv"):
        from_csv(tmp_path / "absent.csv")


def test_from_csv_missing_column(tmp_path):
    csv_path = write_csv(tmp_path / "m.csv", "path,group\na.wav,g\n")
    with pytest.raises(DataError, match=r"m\.csv.*missing column.*'label'"):
        from_csv(csv_path)


def test_from_csv_keeps_other_columns_as_metadata_and_refuses_near_misses(tmp_path):
    csv_path = write_csv(tmp_path / "m.csv", "path,label,speaker\na.wav,yes,g\n")
    assert from_csv(csv_path).rows[0].meta == {"speaker": "g"}
    typo = write_csv(tmp_path / "t.csv", "path,lable\na.wav,yes\n")
    with pytest.raises(DataError, match=r"t\.csv.*'lable'"):
        from_csv(typo)


def test_from_csv_bad_split_names_the_line(tmp_path):
    csv_path = write_csv(tmp_path / "m.csv",
                         "path,label,split\na.wav,yes,train\nb.wav,no,training\n")
    with pytest.raises(DataError, match=r"m\.csv:3.*'training'"):
        from_csv(csv_path)


def test_from_csv_line_numbers_count_blank_lines(tmp_path):
    csv_path = write_csv(tmp_path / "m.csv",
                         "path,label,start\n\na.wav,yes,0.5\n\nb.wav,no,half\n")
    with pytest.raises(DataError, match=r"m\.csv:5.*'start'.*'half'.*float"):
        from_csv(csv_path)


def test_from_csv_bad_fold_and_empty_label(tmp_path):
    bad_fold = write_csv(tmp_path / "f.csv", "path,label,fold\na.wav,yes,1.5\n")
    with pytest.raises(DataError, match=r"f\.csv:2.*'fold'.*int"):
        from_csv(bad_fold)
    no_label = write_csv(tmp_path / "l.csv", "path,label\na.wav,\n")
    with pytest.raises(DataError, match=r"l\.csv:2.*empty path or label"):
        from_csv(no_label)


def test_from_csv_without_rows(tmp_path):
    csv_path = write_csv(tmp_path / "m.csv", "path,label\n")
    with pytest.raises(DataError, match="no rows"):
        from_csv(csv_path)


def test_csv_round_trip(class_folder, tmp_path):
    manifest = from_folder(class_folder)
    splits = ["train", "validation", "test"] * (len(manifest) // 3)
    manifest = manifest.with_splits(splits)
    manifest.rows[0] = Row(manifest.rows[0].path, manifest.rows[0].label,
                           manifest.rows[0].group, "train", 0.025, 0.075, 2)
    csv_path = tmp_path / "out" / "manifest.csv"
    manifest.to_csv(csv_path)
    assert [p.name for p in csv_path.parent.iterdir()] == ["manifest.csv"]
    again = from_csv(csv_path)
    assert again.rows == manifest.rows


# --- classes per split ---------------------------------------------------------

def test_check_classes_warns_for_missing_class():
    rows = [Row("a.wav", "yes", "g1", "train"), Row("b.wav", "no", "g2", "train"),
            Row("c.wav", "yes", "g3", "test")]
    with pytest.warns(UserWarning, match="class 'no' has no recordings in the test split"):
        messages = check_classes(Manifest(rows), ["no", "yes"])
    assert messages == ["class 'no' has no recordings in the test split"]


def test_check_classes_quiet_when_complete():
    rows = [Row(f"{i}.wav", label, f"g{i}", split) for i, (label, split) in enumerate(
        [("yes", "train"), ("no", "train"), ("yes", "test"), ("no", "test")])]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_classes(Manifest(rows), ["no", "yes"]) == []


# --- real data -------------------------------------------------------------------

@pytest.mark.realdata
def test_presets_match_real_file_names():
    folders = {"speech_commands": SHARED_DATA / "speech_commands_v2_test",
               "librispeech": SHARED_DATA / "librispeech_gender",
               "fsdd": SHARED_DATA / "fsdd"}
    for preset, folder in folders.items():
        match = group_matcher(preset)
        # _silence_ clips are cut from noise recordings and numbered: no speaker.
        files = [p for p in sorted(folder.rglob("*")) if p.suffix in (".wav", ".flac")
                 and p.parent.name != "_silence_"][:200]
        assert files, folder
        unmatched = [p.name for p in files if match(p) == p.stem]
        assert not unmatched, f"{preset}: {unmatched[:5]}"


def test_labels_from_file_names_with_a_preset(tmp_path):
    from conftest import write_tone
    from earmark.data.manifest import from_folder
    for name in ("3_george_0.wav", "3_lucas_1.wav", "7_george_2.wav"):
        write_tone(tmp_path / "recordings" / name, 0.1, 8000, 440.0)
    manifest = from_folder(tmp_path, group_pattern="fsdd", label_pattern="fsdd")
    assert [(row.label, row.group) for row in manifest] == [
        ("3", "george"), ("3", "lucas"), ("7", "george")]


def test_label_pattern_errors_name_the_file_or_pattern(tmp_path):
    from conftest import write_tone
    from earmark.data.manifest import from_folder
    write_tone(tmp_path / "x" / "hello.wav", 0.1, 8000, 440.0)
    with pytest.raises(DataError, match="hello.wav"):
        from_folder(tmp_path, label_pattern="fsdd")
    with pytest.raises(DataError, match="no named group"):
        from_folder(tmp_path, label_pattern=r"^\d+")


def test_speech_commands_words_are_kept_and_renamed_by_label(tmp_path):
    from earmark.data.manifest import keep_labels
    for name in ("zero_0a1b2c3d_nohash_0.flac", "one_0a1b2c3d_nohash_1.flac",
                 "bird_99999999_nohash_0.flac", "one_12345678_nohash_0.flac"):
        write_tone(tmp_path / "_unknown_" / name, 0.1, 16000, 440.0)
    manifest = from_folder(tmp_path / "_unknown_", group_pattern="speech_commands",
                           label_pattern="speech_commands")
    assert sorted(manifest.labels()) == ["bird", "one", "zero"]
    digits = keep_labels(manifest, ["zero=0", "one=1"])
    assert sorted((row.label, row.group) for row in digits) == [
        ("0", "0a1b2c3d"), ("1", "0a1b2c3d"), ("1", "12345678")]
    assert [row.label for row in keep_labels(manifest, ["bird"])] == ["bird"]
    with pytest.raises(DataError, match=r"\['two'\] are not in the manifest"):
        keep_labels(manifest, ["two=2"])
