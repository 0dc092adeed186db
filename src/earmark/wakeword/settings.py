"""What an ``earmark wakeword`` run is asked for: a TOML file, the command line over it.

A settings file holds the command's options in ``[wakeword]`` (the same
names, with underscores) and, for finer control, tables of the training
config it builds (``[augment]``, ``[train]``, ``[model]``: the keys of
``earmark train``'s configs), merged over the wake-word recipe::

    [wakeword]
    phrase = "view glass"
    negatives = ["../../shared/data/speech_commands_v2_test"]   # relative to this file
    noise_dir = "../../shared/data/background_noise"
    epochs = 30

    [augment]
    reverb_probability = 0.7

Values come from the built-in defaults, then the file, then the options given
on the command line, then ``--set SECTION.KEY=VALUE``. Every key is checked
before any work (a misspelt one is named, with the closest valid name), and
the run writes what it used to ``OUT/wakeword.toml`` (absolute paths), which
runs it again with ``--config``.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

from earmark.config import build_section, from_dict, read_toml, resolve_path, toml_text
from earmark.data.voices import ENGINES
from earmark.errors import ConfigError
from earmark.input_limits import check_count, check_non_negative, check_positive
from earmark.wakeword.dataset import WakeWordData
from earmark.wakeword.pipeline import SETTINGS_FILE, WakeWordOptions

#: Tables of the training config a settings file may hold.
TRAINING_SECTIONS = ("features", "augment", "train", "model")
TARGETS = ("onnx", "micro")
MODELS = ("embedding", "dscnn")


@dataclass
class WakeWordSettings:
    """``[wakeword]``: the command's options (see ``earmark wakeword --help``); the
    defaults are those of :class:`WakeWordOptions` and :class:`WakeWordData`."""

    phrase: str = ""
    language: str = WakeWordOptions.language
    negatives: list[str] = field(default_factory=list)
    max_negatives: int = WakeWordData.max_negative_files
    noise_dir: str = ""
    voices: list[str] = field(default_factory=lambda: list(ENGINES))
    takes: int = WakeWordData.takes
    hard_negatives: int = WakeWordData.hard_negative_takes
    sentences: int = WakeWordData.sentences
    joined: int = WakeWordData.joined
    epochs: int = WakeWordOptions.epochs
    false_alarms_per_hour: float = WakeWordOptions.false_alarms_per_hour
    conversation_minutes: float = WakeWordOptions.conversation_minutes
    ensemble: int = WakeWordOptions.ensemble   #: 0: the recipe's (see WakeWordOptions)
    target: str = WakeWordOptions.target
    #: ``""``: the target's own (the embedding network for ``onnx``, a TCN for ``micro``).
    #: (The ``[model]`` table sets that network's options.)
    model: str = ""
    seed: int = WakeWordOptions.seed


@dataclass
class RunSettings:
    """The whole run: ``[wakeword]`` and the training tables merged over the recipe."""

    wakeword: WakeWordSettings = field(default_factory=WakeWordSettings)
    training: dict[str, dict[str, Any]] = field(default_factory=dict)


#: The paths among the settings (table, key): read relative to the settings file (from the
#: command line and ``--set``: to the current folder), written absolute.
PATH_KEYS = (("wakeword", "negatives"), ("wakeword", "noise_dir"), ("train", "teacher"))
#: Training keys that ``[wakeword]`` sets (refused in the training tables: one place each;
#: the noise also goes under the calibration's streams).
OWNED_KEYS = {("train", "epochs"): "epochs", ("train", "seed"): "seed",
              ("augment", "noise_dir"): "noise_dir", ("features", "kind"): "model"}


def load_settings(path: str | os.PathLike) -> RunSettings:
    """A settings file: unknown tables and keys, and values of the wrong type, are
    :class:`ConfigError`\\ s that name the file."""
    raw = read_toml(path)
    if "data" in raw and "wakeword" not in raw:
        raise ConfigError(f"{path}: an experiment config (it has [data]) for `earmark train`; "
                          "`earmark wakeword --config` takes a settings file with [wakeword] "
                          "(see configs/wakeword.toml)")
    allowed = ("wakeword",) + TRAINING_SECTIONS
    unknown = [name for name in raw if name not in allowed]
    if unknown:
        raise ConfigError(f"{path}: unknown table [{unknown[0]}] (valid: "
                          f"{', '.join(f'[{name}]' for name in allowed)})")
    tables = {name: raw.get(name, {}) for name in allowed}
    for name, values in tables.items():
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: [{name}] must be a table, got {name} = {values!r}")
    folder = os.path.dirname(os.path.abspath(path))       # as named: configs/ is a link
    tables = absolute_paths(tables, folder)
    wakeword = build_section(WakeWordSettings, tables["wakeword"], f"{path} [wakeword]")
    training = {name: dict(tables[name]) for name in TRAINING_SECTIONS if tables[name]}
    _check_training(training, str(path))
    return RunSettings(wakeword, training)


def absolute_paths(tables: dict[str, dict[str, Any]], folder: str) -> dict[str, dict]:
    """``tables`` with the relative paths of :data:`PATH_KEYS` taken from ``folder`` (and
    ``~`` expanded)."""
    def absolute(item: Any) -> Any:
        return resolve_path(item, folder) if isinstance(item, str) else item

    tables = {name: dict(values) if isinstance(values, dict) else values
              for name, values in tables.items()}
    for name, key in PATH_KEYS:
        if isinstance(tables.get(name), dict) and key in tables[name]:
            value = tables[name][key]
            tables[name][key] = ([absolute(v) for v in value] if isinstance(value, list)
                                 else absolute(value))
    return tables


def _check_training(training: dict[str, dict[str, Any]], source: str) -> None:
    """The training tables' keys and types, checked the way ``earmark train`` checks them;
    the keys ``[wakeword]`` sets are refused there."""
    for (name, key), owner in OWNED_KEYS.items():
        if key in training.get(name, {}):
            raise ConfigError(f"{source}: {name}.{key} is set by [wakeword] {_named(owner)} "
                              f"(or --set wakeword.{owner}=...): set it there")
    tables = {name: dict(values) for name, values in training.items()}
    if "features" in tables:    # checked as the recipe's (the embedding's) front-end settings
        tables["features"]["kind"] = "embedding"
    from_dict(tables, source=source)


def with_options(settings: RunSettings, given: dict[str, Any]) -> RunSettings:
    """``settings`` with the options given on the command line (``None``: not given)."""
    chosen = absolute_paths({"wakeword": {key: value for key, value in given.items()
                                          if value is not None}}, os.getcwd())["wakeword"]
    merged = {**dataclasses.asdict(settings.wakeword), **chosen}
    wakeword = build_section(WakeWordSettings, merged, "the command line's options")
    return RunSettings(wakeword, settings.training)


def with_overrides(settings: RunSettings, overrides: dict[str, dict[str, Any]]) -> RunSettings:
    """``settings`` with ``--set`` values (``{section: {key: value}}``) applied last."""
    unknown = [name for name in overrides if name not in ("wakeword",) + TRAINING_SECTIONS]
    if unknown:
        raise ConfigError(f"--set {unknown[0]}.KEY: no such table; earmark wakeword takes "
                          f"wakeword.KEY and {', '.join(f'{s}.KEY' for s in TRAINING_SECTIONS)}")
    overrides = absolute_paths(overrides, os.getcwd())
    wakeword = build_section(WakeWordSettings, {**dataclasses.asdict(settings.wakeword),
                                                **overrides.get("wakeword", {})},
                             "--set [wakeword]")
    training = {name: dict(values) for name, values in settings.training.items()}
    for name in TRAINING_SECTIONS:
        if overrides.get(name):
            training.setdefault(name, {}).update(overrides[name])
    _check_training(training, "--set")
    return RunSettings(wakeword, training)


def to_options(settings: RunSettings) -> WakeWordOptions:
    """What the pipeline runs: every value checked for range and choice (errors name the
    key as the settings file writes it)."""
    s = settings.wakeword
    if not s.phrase.strip():
        raise ConfigError('the phrase is empty: give it first (earmark wakeword "view glass" '
                          "...) or as phrase = \"...\" in the settings file's [wakeword]")
    _check_choices(s)
    data = WakeWordData(
        takes=check_count(s.takes, _named("takes"), 10, 100_000),
        hard_negative_takes=check_count(s.hard_negatives, _named("hard_negatives"), 10, 100_000),
        sentences=check_count(s.sentences, _named("sentences"), 0, 100_000),
        joined=check_count(s.joined, _named("joined"), 0, 100_000),
        negative_dirs=list(s.negatives), noise_dir=s.noise_dir, engines=tuple(s.voices),
        max_negative_files=check_count(s.max_negatives, _named("max_negatives"), 1, 10_000_000),
        seed=check_count(s.seed, _named("seed"), 0, 2**32 - 1))
    return WakeWordOptions(
        s.phrase, s.language, data, epochs=check_count(s.epochs, _named("epochs"), 1, 10_000),
        false_alarms_per_hour=check_positive(s.false_alarms_per_hour,
                                             _named("false_alarms_per_hour"), maximum=3600.0),
        config_overrides={name: dict(values) for name, values in settings.training.items()},
        seed=s.seed, target=s.target, model=s.model or "embedding",
        conversation_minutes=check_non_negative(s.conversation_minutes,
                                                _named("conversation_minutes"),
                                                maximum=24 * 60.0),
        ensemble=check_count(s.ensemble, _named("ensemble"), 0, 20))


def _named(key: str) -> str:
    """A setting as errors name it: its key and its option."""
    return f"{key} (--{key.replace('_', '-')})"


def _check_choices(s: WakeWordSettings) -> None:
    for key, value, allowed in (("target", s.target, TARGETS),
                                ("model", s.model, ("",) + MODELS)):
        if value not in allowed:
            raise ConfigError(f"{key} = {value!r} is not one of "
                              f"{', '.join(repr(a) for a in allowed if a)}")
    odd = [voice for voice in s.voices if voice not in ENGINES]
    if odd:
        raise ConfigError(f"voices: {odd[0]!r} is not one of {', '.join(ENGINES)} "
                          "(espeak-ng always speaks; [] for it alone)")
    if s.target == "micro" and s.model:
        raise ConfigError(f"model = {s.model!r} is for target \"onnx\"; a micro wake word is "
                          "always the causal TCN on the TFLite-Micro front-end: leave --model "
                          "(model =) out")


def settings_text(settings: RunSettings) -> str:
    """``settings`` as a settings file (what ``OUT/wakeword.toml`` holds)."""
    s = settings.wakeword
    wakeword = dataclasses.asdict(s)
    wakeword["negatives"] = [os.path.abspath(path) for path in s.negatives]
    wakeword["noise_dir"] = os.path.abspath(s.noise_dir) if s.noise_dir else ""
    header = ("# What this `earmark wakeword` run used; run it again with\n"
              f"#   earmark wakeword --config OUT/{SETTINGS_FILE} --out OUT\n")
    return header + toml_text({"wakeword": wakeword, **settings.training})
