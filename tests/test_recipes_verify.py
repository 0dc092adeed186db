"""Checking an unpacked copy (every recording opens, as many as documented), and what
each recipe declares to check its download against."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

import pytest
from conftest import write_tone

from earmark.data.manifest import Manifest, Row
from earmark.data.recipes import RECIPES, fsdd, verify
from earmark.errors import DataError

RATE = 8000


def recordings(folder: Path, count: int) -> list[Path]:
    """``count`` short tones named as FSDD names them."""
    paths = [folder / "recordings" / f"{n % 10}_theo_{n // 10}.wav" for n in range(count)]
    for path in paths:
        write_tone(path, 0.05, RATE, 440.0)
    return paths


def manifest_of(paths: list[Path]) -> Manifest:
    return Manifest(Row(str(p), "x", "g", "train") for p in paths)


def test_a_truncated_and_an_empty_file_are_both_named(tmp_path):
    paths = recordings(tmp_path, 5)
    whole = paths[1].read_bytes()
    paths[1].write_bytes(whole[: len(whole) - 200])
    paths[3].write_bytes(b"")
    steps: list = []

    @contextlib.contextmanager
    def progress(total, description, unit):
        steps.append((total, unit))
        yield steps.append

    with pytest.raises(DataError) as caught:
        verify.check_recordings(manifest_of(paths + paths[:2]), tmp_path, "fsdd",
                                progress=progress)
    message = str(caught.value)
    assert "2 of 5 recording(s) cannot be read" in message     # each path opened once
    assert f"recordings/{paths[1].name} (truncated: the header promises" in message
    assert f"recordings/{paths[3].name} (the file is empty (0 bytes))" in message
    assert "earmark datasets download fsdd" in message and "replace these files" in message
    assert steps == [(5, "file"), 1, 1, 1, 1, 1]


def test_a_whole_copy_passes_and_many_failures_are_counted(tmp_path):
    paths = recordings(tmp_path, 14)
    verify.check_recordings(manifest_of(paths), tmp_path, "fsdd")
    for path in paths[:13]:
        path.write_bytes(b"not audio at all")
    with pytest.raises(DataError) as caught:
        verify.check_recordings(manifest_of(paths), tmp_path, "fsdd")
    message = str(caught.value)
    assert "13 of 14" in message and "and 3 more" in message
    assert paths[9].name in message and paths[10].name not in message


def test_relative_paths_are_read_from_the_folder(tmp_path):
    paths = recordings(tmp_path, 2)
    relative = Manifest(Row(p.relative_to(tmp_path).as_posix(), "x", "g", "train")
                        for p in paths)
    verify.check_recordings(relative, tmp_path, "fsdd")
    paths[0].unlink()
    with pytest.raises(DataError, match=r"recordings/0_theo_0\.wav \(no such file\)"):
        verify.check_recordings(relative, tmp_path, "fsdd")


def test_shortfall():
    manifest = manifest_of([Path(f"/{n}.wav") for n in range(3)])
    assert verify.shortfall(manifest, None, "x") is None
    assert verify.shortfall(manifest, 3, "x") is None
    assert verify.shortfall(manifest, 2, "x") is None
    assert verify.shortfall(manifest, 2000, "esc50") == (
        "esc50: the manifest has 3 recording(s) where the complete dataset has 2,000 "
        "(1,997 missing)")


# ------------------------------------------------------------- FSDD's folders
@pytest.mark.parametrize("archive_folder", fsdd.ARCHIVE_FOLDERS)
def test_fsdd_finds_the_release_and_the_branch_folders(tmp_path, archive_folder):
    folder = tmp_path / "fsdd"
    recordings(folder / archive_folder, 3)
    manifest = fsdd.build_manifest(folder)
    assert [Path(r.path).parent.parent.name for r in manifest] == [archive_folder] * 3
    assert [(r.label, r.group) for r in manifest] == [("0", "theo"), ("1", "theo"),
                                                      ("2", "theo")]


def test_fsdd_downloads_the_pinned_release():
    remote = RECIPES["fsdd"].files[0]
    assert remote.url == ("https://github.com/Jakobovski/free-spoken-digit-dataset/archive/"
                          "refs/tags/v1.0.10.zip")
    assert fsdd.ARCHIVE_FOLDER == "free-spoken-digit-dataset-1.0.10"
    assert RECIPES["fsdd"].expected_recordings == 3000 == 6 * 10 * 50


# --------------------------------------------------------- what is published
HEX = {"sha256": re.compile(r"^[0-9a-f]{64}$"), "md5": re.compile(r"^[0-9a-f]{32}$")}


def test_every_checksum_is_well_formed_hex():
    for recipe in RECIPES.values():
        for remote in recipe.files:
            for algorithm, pattern in HEX.items():
                value = getattr(remote, algorithm)
                assert value is None or pattern.match(value), (recipe.name, algorithm, value)
            assert remote.size is None or remote.size > 0


def test_which_archives_are_checked_by_checksum():
    unchecked = {name for name, recipe in RECIPES.items()
                 if recipe.files and not any(f.sha256 or f.md5 for f in recipe.files)}
    assert RECIPES["esc10_pieces"].files == ()  # a local layout: nothing to download
    # GitHub's archives are generated on the fly; MIMII publishes none we can verify.
    assert unchecked == {"esc50", "esc10", "fsdd", "mimii_6dB_fan", "mimii_6dB_pump",
                         "mimii_6dB_slider", "mimii_6dB_valve"}
    test_clean = RECIPES["librispeech_test-clean"].files[0]
    assert test_clean.sha256.startswith("39fde525") and test_clean.md5.startswith("32fa31d2")
    assert RECIPES["urbansound8k"].files[0].md5 == "9aa69802bbf37fb986f71ec1483a196e"
    assert RECIPES["dcase2020_task2_toycar"].files[0].md5 == "4dec75ca8d9f666aa9e4c1894a740501"
    for name, recipe in RECIPES.items():
        if name.startswith("dcase2020"):
            assert "CC BY-NC-SA 4.0" in recipe.licence and "non-commercial" in recipe.licence


def test_documented_recording_counts():
    expected = {"speech_commands_v2": 105829, "speech_commands_v2_12": 105829,
                "speech_commands_v1": 64727, "speech_commands_v1_12": 64727,
                "esc50": 2000, "esc10": 400, "urbansound8k": 8732, "fsdd": 3000,
                "librispeech_dev-clean": 2703, "librispeech_dev-other": 2864,
                "librispeech_test-clean": 2620, "librispeech_test-other": 2939,
                "librispeech_train-clean-100": 28539, "mimii_6dB_fan": 5550,
                "mimii_6dB_pump": 4205, "mimii_6dB_slider": 4094, "mimii_6dB_valve": 4406}
    assert {name: recipe.expected_recordings for name, recipe in RECIPES.items()
            if recipe.expected_recordings is not None} == expected
    assert all(RECIPES[name].expected_recordings is None for name in RECIPES
               if name.startswith("dcase2020"))
