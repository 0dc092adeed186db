"""`earmark configs`: the example experiments ship inside the package and can be listed,
shown and copied; ``configs/`` at the repository root is a link to the same files."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest

from earmark import cli
from earmark.cli.configs import shipped_configs
from earmark.config import from_dict, load_config

NAMES = ["digits", "gender", "keywords"]
REPO = Path(__file__).resolve().parents[1]


def run(argv: list[str]) -> int:
    """``earmark ARGV`` in-process; the exit code whether it returns or exits."""
    try:
        return cli.main(argv)
    except SystemExit as exit:
        return 0 if exit.code is None else exit.code


def test_list_shows_every_shipped_config_with_what_it_is_for(capsys):
    assert run(["configs"]) == 0
    lines = capsys.readouterr().out.splitlines()
    listed = {line.split()[0]: line for line in lines if line and line.split()[0] in NAMES}
    assert sorted(listed) == NAMES
    assert "Spoken digits" in listed["digits"]
    assert "gender" in listed["gender"].split(None, 1)[1].lower()
    assert "keyword spotting" in listed["keywords"]
    for name, line in listed.items():      # one sentence each, not the whole header
        assert len(line) < 400, name


@pytest.mark.parametrize("name", NAMES)
def test_show_prints_toml_that_loads(name, capsys, tmp_path):
    assert run(["configs", "show", name]) == 0
    text = capsys.readouterr().out
    raw = tomllib.loads(text)
    assert "data" in raw
    config = from_dict(raw, base_dir=str(tmp_path), source=name)
    assert config.data.sample_rate > 0
    # identical to the file in the package
    assert text == (REPO / "src" / "earmark" / "configs" / f"{name}.toml").read_text()


def shipped_path(name: str) -> Path:
    return REPO / "configs" / f"{name}.toml"


def shipped_toml(name: str) -> dict:
    return tomllib.loads(shipped_path(name).read_text())


@pytest.mark.parametrize("name", sorted(shipped_configs()))
def test_every_shipped_config_loads_with_its_teacher(name):
    """A shipped config loads (keys, ranges); a teacher file (no [data]) is one that a
    shipped config distills from, and loads as that config's teacher."""
    from earmark.distill import teacher_config

    raw = shipped_toml(name)
    if "wakeword" in raw:                      # an `earmark wakeword --config` file
        from earmark.wakeword.settings import load_settings, to_options

        assert to_options(load_settings(shipped_path(name))).phrase
        return
    if "data" in raw:
        teacher_config(load_config(shipped_path(name)))  # a broken teacher raises
        return
    taught = [other for other in shipped_configs() if other != name
              and shipped_toml(other).get("train", {}).get("teacher") == f"{name}.toml"]
    assert taught, f"{name} has no [data] and no shipped config distills from it"
    student = load_config(shipped_path(taught[0]))
    assert teacher_config(student).model.name == raw["model"]["name"]


def test_show_accepts_the_file_name(capsys):
    assert run(["configs", "show", "keywords.toml"]) == 0
    assert "[data]" in capsys.readouterr().out


def test_copy_writes_a_config_that_loads_and_says_where_paths_point(tmp_path, capsys):
    target_dir = tmp_path / "experiments"
    assert run(["configs", "copy", "keywords", "--to", str(target_dir)]) == 0
    out = capsys.readouterr().out
    copied = target_dir / "keywords.toml"
    assert copied.is_file()
    config = load_config(copied)
    assert config.base_dir == str(target_dir)
    assert "relative to the copy" in out
    assert "data.root" in out and config.resolve(config.data.root) in out


def test_copy_brings_the_teacher_a_config_distills_from(tmp_path, capsys):
    from earmark.distill import teacher_config

    assert run(["configs", "copy", "keywords_teacher", "--to", str(tmp_path)]) == 0
    # the same teacher already there is no conflict; the student's copy finds it beside it
    assert run(["configs", "copy", "keywords_robust", "--to", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keywords_robust.toml",
                                                          "keywords_teacher.toml"]
    student = load_config(tmp_path / "keywords_robust.toml")
    teacher = teacher_config(student)
    assert teacher.model.name == "embedding_mlp" and student.model.name == "dscnn"
    assert teacher.data.root == student.resolve(student.data.root)      # the student's data
    assert teacher.resolve(teacher.augment.noise_dir) == student.resolve(student.augment.noise_dir)
    # an edited teacher is not silently replaced
    (tmp_path / "keywords_teacher.toml").write_text("# mine\n")
    (tmp_path / "keywords_robust.toml").unlink()
    assert run(["configs", "copy", "keywords_robust", "--to", str(tmp_path)]) == 2
    assert "keywords_teacher.toml already exists" in capsys.readouterr().err
    assert (tmp_path / "keywords_teacher.toml").read_text() == "# mine\n"


def test_copy_refuses_to_overwrite_unless_forced(tmp_path, capsys):
    existing = tmp_path / "digits.toml"
    existing.write_text("# mine\n")
    assert run(["configs", "copy", "digits", "--to", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert str(existing) in err and "--force" in err
    assert existing.read_text() == "# mine\n"
    assert run(["configs", "copy", "digits", "--to", str(tmp_path), "--force"]) == 0
    assert load_config(existing).features.kind == "embedding"      # the shipped digits config


@pytest.mark.parametrize("action", [["show"], ["copy"]])
def test_unknown_name_lists_the_available_ones(action, tmp_path, capsys):
    argv = ["configs", *action, "nope"] + (["--to", str(tmp_path)] if action == ["copy"] else [])
    assert run(argv) == 2
    err = capsys.readouterr().err
    assert "'nope'" in err
    for name in NAMES:
        assert name in err
    assert list(tmp_path.iterdir()) == []


def test_repository_configs_link_keeps_data_paths_relative_to_the_link(monkeypatch):
    """`earmark train configs/keywords.toml` from the repository root: ``configs`` is a link
    to src/earmark/configs, and ``../../shared/data`` is read from the link's folder."""
    link = REPO / "configs"
    assert link.is_symlink() and link.resolve() == (REPO / "src" / "earmark" / "configs")
    monkeypatch.chdir(REPO)
    config = load_config(os.path.join("configs", "keywords.toml"))
    assert config.base_dir == str(REPO / "configs")
    expected = REPO.parent / "shared" / "data" / "speech_commands_v2_test"
    assert config.resolve(config.data.root) == str(expected)


def test_copy_of_the_wake_word_settings_says_where_its_folders_point(tmp_path, capsys):
    from earmark.wakeword.settings import load_settings

    assert run(["configs", "copy", "wakeword", "--to", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "wakeword.negatives = '../../shared/data/speech_commands_v2_test'" in out
    assert "wakeword.noise_dir" in out
    copied = load_settings(tmp_path / "wakeword.toml").wakeword
    assert copied.negatives[0] == str(tmp_path.parent.parent / "shared" / "data" /
                                      "speech_commands_v2_test")
