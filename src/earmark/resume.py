"""What ``earmark train --resume`` checks before it touches a run folder.

A resumed run must be the same experiment: the settings that shape the
network (``[features]``, ``[model]``) and those that choose the data, the
labels and the split (``[data]``, whose split the run's ``manifest.csv``
keeps anyway) must equal the run's ``config.toml``, and the checkpoint must
fit the network they build. ``train.epochs`` may grow; the other ``[train]``
and ``[augment]`` settings, ``data.cache_dir`` and ``data.skip_bad_files``
may change, with a logged note. Everything is read and checked before
anything in the folder is written, so a refused resume leaves the run as it
was.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from earmark.config import ExperimentConfig, load_config, to_dict
from earmark.data.dataset import class_labels
from earmark.data.manifest import from_csv
from earmark.errors import ConfigError, DataError
from earmark.network import build_classifier, is_state_dict, read_weights
from earmark.run_folder import RunFolder

logger = logging.getLogger(__name__)

#: Settings a resumed run may change: they steer the optimisation (or where decoded
#: audio is cached), not the network's shapes, the data or the split.
FREE_SETTINGS = ("augment.", "train.", "data.cache_dir", "data.skip_bad_files")
#: Settings that name files: compared as absolute paths.
PATH_SETTINGS = ("data.root", "data.csv", "data.dataset_root", "data.cache_dir",
                 "data.silence_noise_dir",
                 "data.extra_train", "augment.noise_dir", "train.teacher")
#: What every checkpoint written by training holds.
CHECKPOINT_KEYS = ("model", "optimizer", "scheduler", "epoch", "best_epoch", "best_score",
                   "history")

_UNSET = object()


@dataclass(frozen=True)
class Resumption:
    """A resume that passed its checks."""

    #: The checkpoint, read and checked; None when the run has not finished an epoch.
    checkpoint: dict | None = None
    #: The settings that changed, all of them free: ``key -> (run's value, new value)``.
    changed: dict[str, tuple[Any, Any]] = field(default_factory=dict)


def check_resume(run: RunFolder, config: ExperimentConfig) -> Resumption:
    """Check that ``config`` may continue the run in ``run``; write nothing.

    Returns
    -------
    Resumption
        The checked checkpoint (if any) and the free settings that changed.

    Raises
    ------
    ConfigError
        When a setting that shapes the network, the data or the split differs
        from the run's (each named with both values), when the labels differ,
        or when ``train.epochs`` is below the epochs already trained.
    DataError
        When ``config.toml``, ``labels.json`` or ``checkpoint.pt`` is damaged,
        or the checkpoint does not fit the network the config builds.
    """
    if not run.config.is_file():
        if run.checkpoint.is_file():
            raise DataError(f"{run.path} holds a checkpoint but no config.toml, so it cannot "
                            "be checked; train a new run into another --out folder")
        logger.warning("--resume: %s holds no run to resume; starting a new one there "
                       "(check the --out path if you meant another run)", run.path)
        return Resumption()
    changed = setting_changes(load_config(run.config), config)
    fixed = {key: values for key, values in changed.items() if not key.startswith(FREE_SETTINGS)}
    if fixed:
        raise ConfigError(
            f"{run.path}: cannot resume with changed settings that shape the network, the "
            f"data or the split: {describe_changes(fixed)}. Resume with the run's settings "
            f"(they are in {run.config}), or train a new run into another --out folder")
    labels = _check_labels(run, config)
    checkpoint = _read_checkpoint(run, config, labels) if run.checkpoint.is_file() else None
    if checkpoint is not None and config.train.epochs < int(checkpoint["epoch"]):
        raise ConfigError(f"{run.path}: train.epochs = {config.train.epochs} but the run has "
                          f"already trained {int(checkpoint['epoch'])} epochs; ask for at least "
                          "that many (more to train on)")
    if changed:
        logger.info("%s: resuming with changed settings: %s (config.toml records the new "
                    "ones)", run.path, describe_changes(changed))
    return Resumption(checkpoint, changed)


def setting_changes(before: ExperimentConfig,
                    after: ExperimentConfig) -> dict[str, tuple[Any, Any]]:
    """The settings whose values differ, ``"section.key" -> (before, after)``, in config
    order; a model option set in one config only is shown as ``not set`` in the other."""
    old, new = _settings(before), _settings(after)
    keys = list(old) + [key for key in new if key not in old]
    return {key: (old.get(key, _UNSET), new.get(key, _UNSET)) for key in keys
            if old.get(key, _UNSET) != new.get(key, _UNSET)}


#: Settings a finished run may be reused under when they differ: where the decoded audio
#: is kept, and whether unreadable files are skipped, change nothing it learned.
REUSE_IGNORES = ("data.cache_dir", "data.skip_bad_files")


def check_reusable(run: RunFolder, config: ExperimentConfig, what: str, advice: str) -> None:
    """A finished run is reused only for the settings it was trained with: otherwise a
    :class:`ConfigError` naming ``what`` it is, the settings that differ, and ``advice``."""
    changed = {key: values for key, values in
               setting_changes(load_config(run.config), config).items()
               if not key.startswith(REUSE_IGNORES)}
    if changed:
        raise ConfigError(f"{run.path} holds {what} trained with other settings "
                          f"({describe_changes(changed)}); {advice}")


def describe_changes(changes: dict[str, tuple[Any, Any]]) -> str:
    """``model.channels: 64 in the run, 32 now; ...``."""
    return "; ".join(f"{key}: {_shown(old)} in the run, {_shown(new)} now"
                     for key, (old, new) in changes.items())


def _shown(value: Any) -> str:
    if value is _UNSET:
        return "not set"
    try:
        return json.dumps(value)
    except TypeError:
        return str(value)


def _settings(config: ExperimentConfig) -> dict[str, Any]:
    """Every setting as ``"section.key" -> value``, paths made absolute."""
    flat = {}
    for section, values in to_dict(config).items():
        for key, value in values.items():
            name = f"{section}.{key}"
            if name in PATH_SETTINGS:
                value = ([config.resolve(v) for v in value] if isinstance(value, list)
                         else config.resolve(value))
            flat[name] = value
    return flat


def _check_labels(run: RunFolder, config: ExperimentConfig) -> list[str] | None:
    """The run's labels, after checking them against those the config gives its manifest."""
    if not run.labels.is_file():
        if run.checkpoint.is_file():
            raise DataError(f"{run.path} holds a checkpoint but no labels.json; the run is "
                            "damaged: train a new run into another --out folder")
        return None
    labels = run.read_labels()
    if run.manifest.is_file():
        expected = class_labels(config, from_csv(run.manifest))
        if expected != labels:
            raise ConfigError(f"{run.path}: the run's labels {labels} differ from those the "
                              f"config gives its manifest, {expected}; resume with the run's "
                              "data.classes, or train a new run into another --out folder")
    return labels


def _read_checkpoint(run: RunFolder, config: ExperimentConfig, labels: list[str]) -> dict:
    """The checkpoint, after checking its keys and that its weights fit the config's network."""
    checkpoint = read_weights(run.checkpoint)
    missing = ([key for key in CHECKPOINT_KEYS if key not in checkpoint]
               if isinstance(checkpoint, dict) else list(CHECKPOINT_KEYS))
    if missing or not is_state_dict(checkpoint["model"]):
        raise DataError(f"{run.checkpoint}: not an earmark checkpoint (missing or bad: "
                        f"{', '.join(missing) or 'model'}); train a new run into another "
                        "--out folder")
    try:
        json.loads(checkpoint["history"])
        int(checkpoint["epoch"])
        float(checkpoint["best_score"])
    except (TypeError, ValueError) as error:
        raise DataError(f"{run.checkpoint}: damaged ({error}); train a new run into "
                        "another --out folder") from None
    mismatches = _shape_mismatches(checkpoint["model"],
                                   build_classifier(config, len(labels)).state_dict())
    if mismatches:
        raise DataError(f"{run.checkpoint} does not fit the network of {run.config}: "
                        f"{'; '.join(mismatches[:5])}; train a new run into another --out "
                        "folder")
    return checkpoint


def _shape_mismatches(saved: dict, expected: dict) -> list[str]:
    """Weights missing, extra, or of another shape, in words."""
    problems = [f"{name} missing from the checkpoint" for name in expected if name not in saved]
    problems += [f"{name} not in the network" for name in saved if name not in expected]
    problems += [f"{name}: {tuple(saved[name].shape)} in the checkpoint, "
                 f"{tuple(tensor.shape)} in the network"
                 for name, tensor in expected.items()
                 if name in saved and saved[name].shape != tensor.shape]
    return problems
