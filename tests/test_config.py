"""earmark.config: one TOML file per experiment, every key checked."""

from __future__ import annotations

import dataclasses
import os
import tomllib
from pathlib import Path

import pytest

from earmark.config import (
    DataConfig,
    ExperimentConfig,
    from_dict,
    load_config,
    to_dict,
    to_toml,
)
from earmark.errors import ConfigError

EXAMPLE = """
[data]
root = "recordings"
csv = ""
group_pattern = "fsdd"
split = "kfold"
folds = 4
fold = 1
ratios = [8, 1, 1]
classes = ["yes", "no"]
sample_rate = 8000
clip_seconds = 1.5
skip_bad_files = true

[features]
kind = "mfcc"
n_mfcc = 13
deltas = 2

[model]
name = "dscnn"
channels = 32
residual = true

[augment]
noise_dir = "../noise"
gain_db = [-6, 6]

[train]
epochs = 3
schedule = "cosine"
learning_rate = 0.001
"""


def write_config(folder: Path, text: str, name: str = "experiment.toml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def test_load_reads_every_section(tmp_path):
    config = load_config(write_config(tmp_path, EXAMPLE))
    assert config.data.group_pattern == "fsdd"
    assert (config.data.split, config.data.folds, config.data.fold) == ("kfold", 4, 1)
    assert config.data.ratios == [8.0, 1.0, 1.0]
    assert all(isinstance(r, float) for r in config.data.ratios)
    assert config.data.classes == ["yes", "no"]
    assert config.data.sample_rate == 8000 and config.data.clip_seconds == 1.5
    assert config.data.skip_bad_files is True
    assert (config.features.kind, config.features.n_mfcc, config.features.deltas) == \
        ("mfcc", 13, 2)
    assert config.augment.gain_db == [-6.0, 6.0]
    assert (config.train.epochs, config.train.schedule) == (3, "cosine")
    assert config.train.learning_rate == 0.001
    # Keys not in the file keep their defaults.
    assert config.train.batch_size == 64 and config.features.n_mels == 40


def test_int_accepted_where_float_expected(tmp_path):
    config = load_config(write_config(tmp_path, "[data]\nclip_seconds = 2\n"))
    assert config.data.clip_seconds == 2.0 and isinstance(config.data.clip_seconds, float)


def test_empty_file_gives_defaults(tmp_path):
    config = load_config(write_config(tmp_path, ""))
    assert config.data == DataConfig()
    assert config.model.name == "dscnn" and config.model.options == {}


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="absent.toml.*no such config file"):
        load_config(tmp_path / "absent.toml")


def test_invalid_toml_names_the_file(tmp_path):
    path = write_config(tmp_path, "[data\nroot = 1\n", name="broken.toml")
    with pytest.raises(ConfigError, match="broken.toml.*not valid TOML"):
        load_config(path)


def test_unknown_key_suggests_the_close_match(tmp_path):
    path = write_config(tmp_path, "[train]\nepoch = 10\n")
    with pytest.raises(ConfigError, match=r"experiment.toml.*\[train\].*unknown key 'epoch'"
                                          r".*did you mean 'epochs'"):
        load_config(path)


def test_unknown_section_suggests_the_close_match(tmp_path):
    path = write_config(tmp_path, "[feature]\nkind = 'mfcc'\n")
    with pytest.raises(ConfigError, match="unknown key 'feature'.*did you mean 'features'"):
        load_config(path)


def test_unknown_key_without_a_close_match():
    with pytest.raises(ConfigError, match="unknown key 'zzz'") as caught:
        from_dict({"data": {"zzz": 1}})
    assert "did you mean" not in str(caught.value)
    assert "sample_rate" in str(caught.value)   # lists the valid keys


@pytest.mark.parametrize("section, key, value, expected", [
    ("train", "epochs", "10", "a whole number"),
    ("train", "epochs", 1.5, "a whole number"),
    ("data", "skip_bad_files", 1, "true or false"),
    ("data", "sample_rate", True, "a whole number"),
    ("data", "clip_seconds", "1s", "a number"),
    ("data", "root", 5, "text"),
    ("data", "ratios", 0.8, "a list"),
    ("data", "ratios", ["a", "b", "c"], "a list of float"),
    ("data", "classes", [1, 2], "a list of str"),
])
def test_wrong_type(section, key, value, expected):
    with pytest.raises(ConfigError, match=rf"\[{section}\]: {key} = .* should be {expected}"):
        from_dict({section: {key: value}})


def test_section_that_is_not_a_table(tmp_path):
    path = write_config(tmp_path, 'data = "recordings"\n')
    with pytest.raises(ConfigError, match=r"\[data\] must be a table"):
        load_config(path)


@pytest.mark.parametrize("section, key, value", [
    ("train", "schedule", "linear"),
    ("data", "split", "random"),
    ("features", "kind", "mel"),
    ("train", "device", "gpu"),
    ("train", "windows", "fixed"),
])
def test_bad_choice(section, key, value):
    with pytest.raises(ConfigError, match=rf"{section}\.{key} = '{value}' is not one of"):
        from_dict({section: {key: value}})


@pytest.mark.parametrize("raw, message", [
    ({"data": {"ratios": [0.5, 0.5]}}, "three non-negative"),
    ({"data": {"ratios": [1.0, -0.1, 0.1]}}, "three non-negative"),
    ({"data": {"sample_rate": 0}}, "must be > 0"),
    ({"features": {"deltas": 3}}, "deltas must be 0, 1 or 2"),
    ({"features": {"delta_width": 4}}, "delta_width must be odd"),
    ({"train": {"batch_size": 0}}, "must be > 0"),
    ({"data": {"folds": 3, "fold": -1}}, r"data.fold must be >= 0"),
    ({"data": {"folds": 1}}, r"data.folds >= 2"),
    ({"augment": {"speed": [1.1, 0.9]}}, r"augment.speed = \[1.1, 0.9\] must be a range"),
    ({"augment": {"frequency_warp": [0.0, 1.1]}}, r"augment.frequency_warp .* 0 < low"),
    ({"augment": {"lowpass_hz": [3000]}}, r"augment.lowpass_hz .* \[low, high\] pair"),
    ({"augment": {"highpass_hz": [400, 100]}}, r"cut-offs in Hz .* \[0, 0\] turns it off"),
    ({"augment": {"band_limit_probability": 1.5}}, r"band_limit_probability = 1.5 must lie"),
    ({"features": {"embedding_blocks": 2}},
     r"embedding_blocks are the speech embedding's .* \"logmel\" takes none"),
])
def test_bad_range(raw, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(raw)


def test_relative_paths_resolve_against_the_config_folder(tmp_path, monkeypatch):
    folder = tmp_path / "experiments" / "kws"
    config = load_config(write_config(folder, EXAMPLE))
    monkeypatch.chdir(tmp_path)   # the current folder must not matter
    assert config.resolve(config.data.root) == str(folder / "recordings")
    assert config.resolve(config.augment.noise_dir) == str(tmp_path / "experiments" / "noise")
    assert config.resolve(config.data.csv) == ""
    assert config.resolve("/abs/path") == "/abs/path"


def test_cache_dir(tmp_path, monkeypatch):
    config = load_config(write_config(tmp_path, "[data]\ncache_dir = 'cache'\n"))
    assert config.cache_dir() == str(tmp_path / "cache")
    default = load_config(write_config(tmp_path, "", name="plain.toml"))
    monkeypatch.setenv("EARMARK_CACHE", str(tmp_path / "env-cache"))
    assert default.cache_dir() == str(tmp_path / "env-cache")


def test_session_cache_is_not_the_home_cache():
    # conftest points EARMARK_CACHE at a temporary folder for the whole run.
    assert ExperimentConfig().cache_dir() != os.path.join(
        os.path.expanduser("~"), ".cache", "earmark")


def test_to_toml_round_trip(tmp_path):
    original = load_config(write_config(tmp_path / "a", EXAMPLE))
    text = to_toml(original)
    # Written elsewhere, the copy still points at the same files.
    copy = load_config(write_config(tmp_path / "b" / "deeper", text))
    for name in ("features", "model", "train"):
        assert getattr(copy, name) == getattr(original, name), name
    for section in ("data", "augment"):
        ours, theirs = getattr(original, section), getattr(copy, section)
        for spec in dataclasses.fields(ours):
            mine, other = getattr(ours, spec.name), getattr(theirs, spec.name)
            if spec.name in ("root", "csv", "cache_dir", "noise_dir"):
                assert copy.resolve(other) == original.resolve(mine), spec.name
            else:
                assert other == mine, spec.name
    # And a second trip changes nothing at all.
    assert to_toml(copy) == text
    assert to_dict(copy) == to_dict(load_config(write_config(tmp_path / "c", text)))


def test_to_toml_of_defaults_loads():
    text = to_toml(ExperimentConfig())
    assert "[model]" in text and 'name = "dscnn"' in text
    assert from_dict(tomllib.loads(text)).train == ExperimentConfig().train


def test_model_options_pass_through(tmp_path):
    config = load_config(write_config(tmp_path, '[model]\nname = "dscnn"\nchannels = 32\n'))
    assert config.model.name == "dscnn"
    assert config.model.options == {"channels": 32}
    assert to_dict(config)["model"] == {"name": "dscnn", "channels": 32}


def test_build_model_uses_the_options(tmp_path):
    torch = pytest.importorskip("torch")
    from earmark.models import build_model

    config = load_config(write_config(tmp_path, EXAMPLE))
    model = build_model(config.model.name, (1, 13, 49), 2, **config.model.options)
    assert model.classifier.in_features == 32
    assert model.blocks[0].residual is True
    with torch.no_grad():
        assert model(torch.zeros(2, 1, 13, 49)).shape == (2, 2)


def test_build_model_rejects_unknown_options():
    pytest.importorskip("torch")
    from earmark.models import build_model

    config = from_dict({"model": {"name": "dscnn", "chanels": 32}})
    with pytest.raises(ConfigError, match=r"dscnn has no option\(s\) \['chanels'\].*channels"):
        build_model(config.model.name, (1, 10, 49), 3, **config.model.options)
    with pytest.raises(ConfigError, match="'transformer' is not a known model"):
        build_model("transformer", (1, 10, 49), 3)
