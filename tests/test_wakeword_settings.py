"""`earmark wakeword --config/--set`: the settings file, the command line over it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from earmark.cli import main
from earmark.errors import ConfigError
from earmark.wakeword.dataset import WakeWordData
from earmark.wakeword.pipeline import ENSEMBLE_HEADS, wakeword_config
from earmark.wakeword.settings import (RunSettings, WakeWordSettings, load_settings,
                                       settings_text, to_options, with_options, with_overrides)

from conftest import write_noise

SHIPPED = Path(__file__).resolve().parents[1] / "configs" / "wakeword.toml"


def write_settings(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_the_shipped_settings_load_with_paths_beside_the_repository():
    settings = load_settings(SHIPPED).wakeword
    assert settings.phrase == "view glass"
    repository_parent = Path(__file__).resolve().parents[2]
    assert settings.negatives[0] == os.path.join(repository_parent, "shared", "data",
                                                 "speech_commands_v2_test")
    assert settings.noise_dir.endswith(os.path.join("shared", "data", "background_noise"))
    options = to_options(load_settings(SHIPPED))
    assert (options.phrase, options.model) == ("view glass", "embedding")
    counts = ("takes", "hard_negative_takes", "sentences", "joined")
    shipped, default = options.data, WakeWordData()      # the file shows the defaults
    assert [getattr(shipped, n) for n in counts] == [getattr(default, n) for n in counts]


def test_paths_are_read_relative_to_the_file_and_other_values_kept(tmp_path):
    path = write_settings(tmp_path / "sub" / "ww.toml", """
[wakeword]
phrase = "hey there"
negatives = ["speech", "/abs/noise"]
noise_dir = "../bed"
takes = 120
false_alarms_per_hour = 2
""")
    settings = load_settings(path).wakeword
    assert settings.negatives == [str(tmp_path / "sub" / "speech"), "/abs/noise"]
    assert settings.noise_dir == str(tmp_path / "bed")
    assert (settings.takes, settings.false_alarms_per_hour) == (120, 2.0)
    assert settings.epochs == 20                                    # the default stays


def test_options_given_override_the_file_and_set_overrides_both(tmp_path):
    path = write_settings(tmp_path / "ww.toml", """
[wakeword]
phrase = "hey there"
takes = 120
epochs = 5
[augment]
reverb_probability = 0.3
""")
    settings = with_options(load_settings(path), {"takes": 300, "epochs": None, "phrase": None})
    assert (settings.wakeword.takes, settings.wakeword.epochs) == (300, 5)
    settings = with_overrides(settings, {"wakeword": {"takes": 400},
                                         "augment": {"clipping_probability": 0.2},
                                         "train": {"learning_rate": 0.001}})
    assert settings.wakeword.takes == 400
    assert settings.training == {"augment": {"reverb_probability": 0.3,
                                             "clipping_probability": 0.2},
                                 "train": {"learning_rate": 0.001}}


def test_the_training_tables_reach_the_training_config(tmp_path):
    path = write_settings(tmp_path / "ww.toml", """
[wakeword]
phrase = "hey there"
model = "dscnn"
[augment]
reverb_probability = 0.7
[train]
learning_rate = 0.001
[model]
channels = 32
""")
    options = to_options(load_settings(path))
    config = wakeword_config("hey_there", tmp_path / "manifest.csv",
                             WakeWordData(noise_dir=str(tmp_path)), 1.5, options)
    assert config.augment.reverb_probability == 0.7
    assert config.train.learning_rate == 0.001
    assert (config.model.name, config.model.options["channels"]) == ("dscnn", 32)
    assert config.model.options["blocks"] == 4                       # the recipe's, kept


@pytest.mark.parametrize("text, named", [
    ("[wakeword]\ntake = 3\n", "did you mean 'takes'"),
    ("[wakeword]\ntakes = \"many\"\n", "takes = 'many'"),
    ("[wakeword]\nphrase = \"hey\"\n[augmnt]\nspeed = [0.9, 1.1]\n", "[augmnt]"),
    ("[wakeword]\nphrase = \"hey\"\n[augment]\nreverb_probabilty = 0.5\n",
     "did you mean 'reverb_probability'"),
    ("[wakeword]\nphrase = \"hey\"\n[train]\nlearning_rate = \"ten\"\n",
     "learning_rate = 'ten' should be a number"),
    ("[wakeword]\nphrase = \"hey\"\n[train]\nepochs = 3\n",
     "train.epochs is set by [wakeword] epochs"),
    ("wakeword = 3\n", "[wakeword] must be a table"),
    ("[wakeword\n", "not valid TOML"),
])
def test_a_wrong_key_or_value_names_the_file_and_the_key(tmp_path, text, named):
    path = write_settings(tmp_path / "ww.toml", text)
    with pytest.raises(ConfigError, match=r"ww\.toml") as error:
        load_settings(path)
    assert named in str(error.value)


@pytest.mark.parametrize("values, named", [
    ({"phrase": ""}, "the phrase is empty"),
    ({"phrase": "hey", "takes": 5}, "takes \\(--takes\\) must be a whole number from 10"),
    ({"phrase": "hey", "false_alarms_per_hour": 0.0},
     "false_alarms_per_hour \\(--false-alarms-per-hour\\) must be above 0"),
    ({"phrase": "hey", "target": "tflite"}, "target = 'tflite' is not one of"),
    ({"phrase": "hey", "voices": ["piper"]}, "voices: 'piper'"),
    ({"phrase": "hey", "target": "micro", "model": "dscnn"}, "leave --model"),
    ({"phrase": "hey", "seed": -1}, "seed \\(--seed\\) must be a whole number from 0"),
    ({"phrase": "hey", "ensemble": -1},
     "ensemble \\(--ensemble\\) must be a whole number from 0"),
])
def test_out_of_range_settings_are_refused(values, named):
    settings = with_options(RunSettings(), values)
    with pytest.raises(ConfigError, match=named):
        to_options(settings)


def test_set_refuses_a_table_it_does_not_take():
    with pytest.raises(ConfigError, match="bogus.KEY: no such table"):
        with_overrides(RunSettings(), {"bogus": {"x": 1}})
    with pytest.raises(ConfigError, match=r"--set \[data\]|no such table"):
        with_overrides(RunSettings(), {"data": {"clip_seconds": 3.0}})


def test_what_a_run_writes_reads_back_as_the_same_settings(tmp_path):
    path = write_settings(tmp_path / "ww.toml", """
[wakeword]
phrase = "hey there"
negatives = ["speech"]
voices = []
conversation_minutes = 0
[augment]
gain_db = [-10.0, 3.0]
""")
    settings = load_settings(path)
    written = write_settings(tmp_path / "elsewhere" / "wakeword.toml", settings_text(settings))
    again = load_settings(written)
    assert again == settings
    assert again.wakeword.negatives == [str(tmp_path / "speech")]


def test_the_command_takes_its_settings_from_a_file(tmp_path, capsys):
    quiet = tmp_path / "quiet"
    quiet.mkdir()
    path = write_settings(tmp_path / "ww.toml", '[wakeword]\nphrase = "view glass"\n'
                                                'negatives = ["quiet"]\n')
    out = tmp_path / "run"
    # The file's negatives (relative to it) are checked before anything is written.
    assert main(["wakeword", "--config", str(path), "--out", str(out)]) == 2
    assert f"{quiet}: no audio files" in capsys.readouterr().err
    assert not out.exists()
    # A misspelt --set key stops it too, and names the closest one.
    assert main(["wakeword", "--config", str(path), "--out", str(out),
                 "--set", "augment.reverb_probabilty=0.5"]) == 2
    assert "did you mean 'reverb_probability'" in capsys.readouterr().err
    # Negatives given on the command line replace the file's; the phrase the file's.
    write_noise(tmp_path / "noise" / "room.wav", 2.0, 16000, seed=0)
    assert main(["wakeword", "--config", str(path), "--out", str(out), "--negatives",
                 str(tmp_path / "noise"), "--takes", "5"]) == 2
    assert "takes (--takes) must be a whole number from 10" in capsys.readouterr().err
    assert not out.exists()


def test_an_experiment_config_and_a_settings_file_are_told_apart(tmp_path):
    from earmark.config import load_config

    experiment = Path(__file__).resolve().parents[1] / "configs" / "keywords.toml"
    with pytest.raises(ConfigError, match="an experiment config .* for `earmark train`"):
        load_settings(experiment)
    with pytest.raises(ConfigError, match="settings file for `earmark wakeword --config"):
        load_config(SHIPPED)


def test_a_file_too_large_or_not_text_to_be_settings_is_refused_unread(tmp_path):
    from earmark.config import MAX_CONFIG_BYTES

    huge = tmp_path / "huge.toml"
    with open(huge, "wb") as handle:
        handle.truncate(MAX_CONFIG_BYTES + 1)       # sparse: nothing to read if it is refused
    with pytest.raises(ConfigError, match="is no config file"):
        load_settings(huge)
    binary = tmp_path / "model.toml"
    binary.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(binary)
    with pytest.raises(ConfigError, match="no such config file"):
        load_settings(tmp_path / "absent.toml")


@pytest.mark.parametrize("model, named", [({"name": "nonsense"}, "not a known model"),
                                          ({"chanels": 32}, "has no option(s) ['chanels']"),
                                          ({"channels": 0}, "channels = 0 cannot be built")])
def test_the_network_is_checked_before_any_work(tmp_path, capsys, model, named):
    pytest.importorskip("torch")
    out = tmp_path / "run"
    table = "\n".join(f"{key} = {value!r}".replace("'", '"') for key, value in model.items())
    path = write_settings(tmp_path / "ww.toml", f'[wakeword]\nphrase = "view glass"\n'
                                                f'model = "dscnn"\n[model]\n{table}\n')
    assert main(["wakeword", "--config", str(path), "--out", str(out)]) == 2
    assert named in capsys.readouterr().err
    assert not out.exists()


def test_a_learning_rate_that_is_no_number_is_refused():
    settings = with_options(RunSettings(), {"phrase": "hey"})
    for rate in (float("nan"), 0.0, float("inf")):
        with pytest.raises(ConfigError, match="train.learning_rate .* must be a finite number"):
            with_overrides(settings, {"train": {"learning_rate": rate}})


def test_paths_from_the_command_line_and_set_are_read_from_the_current_folder(tmp_path,
                                                                              monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    path = write_settings(tmp_path / "cfg" / "ww.toml", '[wakeword]\nphrase = "hey"\n'
                                                       '[train]\nteacher = "t.toml"\n')
    settings = load_settings(path)
    assert settings.training["train"]["teacher"] == str(tmp_path / "cfg" / "t.toml")
    settings = with_options(settings, {"negatives": ["speech", "~/talk"], "noise_dir": None})
    assert settings.wakeword.negatives == [str(tmp_path / "speech"),
                                           str(tmp_path / "home" / "talk")]
    settings = with_overrides(settings, {"wakeword": {"noise_dir": "~/noise"},
                                         "train": {"teacher": "other.toml"}})
    assert settings.wakeword.noise_dir == str(tmp_path / "home" / "noise")
    assert settings.training["train"]["teacher"] == str(tmp_path / "other.toml")
    with pytest.raises(ConfigError, match="augment.noise_dir is set by \\[wakeword\\] "
                                          "noise_dir \\(--noise-dir"):
        with_overrides(settings, {"augment": {"noise_dir": "bed"}})


def test_any_phrase_or_path_text_is_written_so_that_it_reads_back(tmp_path):
    settings = with_options(RunSettings(), {"phrase": 'say "hi"\tthere\n', "language": "en\x00",
                                            "negatives": [str(tmp_path / "odd\nname\\x")]})
    written = write_settings(tmp_path / "wakeword.toml", settings_text(settings))
    assert load_settings(written) == settings


def test_a_network_named_in_the_model_table_takes_none_of_the_recipes_options(tmp_path):
    options = to_options(with_overrides(with_options(RunSettings(), {"phrase": "hey",
                                                                     "model": "dscnn"}),
                                        {"model": {"name": "tcn", "channels": 16}}))
    config = wakeword_config("hey", tmp_path / "manifest.csv",
                             WakeWordData(noise_dir=str(tmp_path)), 1.5, options)
    assert (config.model.name, config.model.options) == ("tcn", {"channels": 16})
    micro = to_options(with_overrides(with_options(RunSettings(), {"phrase": "hey",
                                                                   "target": "micro"}),
                                      {"model": {"name": "dscnn"}}))
    with pytest.raises(ConfigError, match="a micro wake word is always the causal TCN"):
        wakeword_config("hey", tmp_path / "manifest.csv", WakeWordData(), 1.5, micro,
                        write=False)


def test_settings_the_recipe_refuses_stop_the_command_before_any_work(tmp_path, capsys):
    write_noise(tmp_path / "negatives" / "room.wav", 2.0, 16000, seed=0)
    out = tmp_path / "run"
    base = ["wakeword", "view glass", "--out", str(out), "--model", "dscnn",
            "--negatives", str(tmp_path / "negatives")]
    for extra, named in ((["--noise-dir", str(tmp_path / "absent")], "no such folder"),
                         (["--set", "model.chanels=8"], "has no option(s) ['chanels']"),
                         (["--set", "train.select_epoch=\"last\"", "--set", "train.patience=3"],
                          "train.patience")):
        assert main(base + extra) == 2
        assert named in capsys.readouterr().err
        assert not out.exists()
    (tmp_path / "a-file").write_text("x")
    assert main(["wakeword", "view glass", "--out", str(tmp_path / "a-file"), "--model",
                 "dscnn", "--negatives", str(tmp_path / "negatives")]) == 2
    assert "a file, not a folder" in capsys.readouterr().err


def test_a_folder_or_an_unreadable_file_is_no_settings_file(tmp_path):
    with pytest.raises(ConfigError, match="a folder, not a config file"):
        load_settings(tmp_path)


def test_the_help_states_the_defaults_the_settings_have(capsys):
    with pytest.raises(SystemExit):
        main(["wakeword", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    default = WakeWordSettings()
    assert f"takes of the phrase (default {default.takes})" in text
    assert f"training epochs (default {default.epochs})" in text
    assert f"(default {default.max_negatives})" in text
    assert f"(default {ENSEMBLE_HEADS} with the embedding, 1 otherwise;" in text


def test_the_ensemble_is_the_embeddings_and_refused_for_another_network(tmp_path):
    def options(**values):
        return to_options(with_options(RunSettings(), {"phrase": "hey", **values}))

    assert options().heads == ENSEMBLE_HEADS > 1                   # the recipe's heads
    assert options(model="dscnn").heads == options(target="micro").heads == 1
    assert options(ensemble=1).heads == 1 and options(ensemble=5).heads == 5
    data = WakeWordData(noise_dir=str(tmp_path))
    config = wakeword_config("hey", tmp_path / "m.csv", data, 1.5, options(), write=False)
    assert config.model.name == "embedding_mlp"          # each member; joined after training
    for refused in (options(model="dscnn", ensemble=2), options(target="micro", ensemble=3)):
        with pytest.raises(ConfigError, match="ensemble = .* averages embedding_mlp heads"):
            wakeword_config("hey", tmp_path / "m.csv", data, 1.5, refused, write=False)


def test_the_embeddings_precision_is_a_setting_and_its_kind_the_recipes(tmp_path):
    recipe = wakeword_config("hey", tmp_path / "manifest.csv",
                             WakeWordData(noise_dir=str(tmp_path)), 1.5,
                             to_options(with_options(RunSettings(), {"phrase": "hey"})),
                             write=False)
    assert recipe.features.embedding_int8                 # int8 unless asked otherwise
    for int8 in (True, False):
        options = to_options(with_overrides(with_options(RunSettings(), {"phrase": "hey"}),
                                            {"features": {"embedding_int8": int8}}))
        config = wakeword_config("hey", tmp_path / "manifest.csv",
                                 WakeWordData(noise_dir=str(tmp_path)), 1.5, options,
                                 write=False)
        assert (config.features.kind, config.features.embedding_int8) == ("embedding", int8)
    with pytest.raises(ConfigError, match="features.kind is set by \\[wakeword\\] model"):
        with_overrides(RunSettings(), {"features": {"kind": "mfcc"}})
    with pytest.raises(ConfigError, match="embedding_int8 = .yes. should be true or false"):
        with_overrides(RunSettings(), {"features": {"embedding_int8": "yes"}})
