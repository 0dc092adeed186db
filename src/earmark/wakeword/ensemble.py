"""Several trainings of one split joined into one bundle, their probabilities averaged.

A wake word trained on synthesized speech alone depends a lot on its training's
seed: on the same voices and split, three trainings of "smart mirror" that
differed in their seed alone missed 68%, 43% and 53% of real speakers at <= 1
false alarm an hour (``benchmarks/wake_words.py``). Averaging the three's
probabilities missed fewer real speakers than keeping the one that missed the
fewest held-out synthesized phrases, and fewer than one of them at random, on
the mean of the nine trainings of the README's wake-word table (Results).
So ``earmark wakeword`` trains ``ensemble`` heads that differ
in their seed alone, the embedding's features computed once for all of them
(:class:`earmark.feature_copies.FeatureCopies`), and joins them
(:mod:`earmark.models.embedding_ensemble`) into ``OUT/run``, which the export,
the calibration and the card then take as one training.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from earmark.atomic import write_bytes, write_json, write_text
from earmark.config import ExperimentConfig, load_config, to_toml
from earmark.errors import ConfigError
from earmark.run_folder import RunFolder

#: Member ``i`` (from 0) trains with the run's seed plus ``i`` times this: with one
#: member, the run trains as it always did.
SEED_STEP = 1000
#: The network a member is, and the one they are joined into.
MEMBER_MODEL, ENSEMBLE_MODEL = "embedding_mlp", "embedding_ensemble"
#: What the joined run takes from the first member as it is.
SHARED_FILES = ("labels.json", "manifest.csv", "export_windows.npz")
#: Where a classifier's state dict keeps its network's weights.
NETWORK = "model."


def check_members(config: ExperimentConfig, members: int) -> None:
    """Refuse an ensemble of a network it cannot join, before any work."""
    if members > 1 and config.model.name != MEMBER_MODEL:
        raise ConfigError(f"ensemble = {members} averages {MEMBER_MODEL} heads on the speech "
                          f"embedding, not [model] name = {config.model.name!r}: set "
                          "ensemble = 1 (--ensemble 1)")


def member_config(config: ExperimentConfig, index: int) -> ExperimentConfig:
    """The training config of member ``index``: the run's, another training seed."""
    seed = config.train.seed + SEED_STEP * index
    return dataclasses.replace(config, train=dataclasses.replace(config.train, seed=seed))


def member_folder(out_dir: Path, index: int) -> Path:
    """Where member ``index`` trains: ``OUT/members/1``, ``OUT/members/2``, ..."""
    return out_dir / "members" / str(index + 1)


def join(members: list[Path], run_dir: Path) -> dict:
    """The run folder ``run_dir`` of the members' ensemble: the first member's config with
    the ensemble's network, its labels, split and export windows, every member's network
    weights (``model.members.I.``), and a summary naming the members and their own
    figures; the ensemble's. The export measures the ensemble's validation accuracy."""
    from earmark.network import read_weights, write_weights

    first = RunFolder(members[0])
    config = load_config(first.config)
    options = {**config.model.options, "members": len(members)}
    joined = dataclasses.replace(config, model=dataclasses.replace(
        config.model, name=ENSEMBLE_MODEL, options=options))
    weights = {}
    for index, member in enumerate(members):
        for name, value in read_weights(RunFolder(member).model).items():
            if name.startswith(NETWORK):
                weights[f"{NETWORK}members.{index}.{name.removeprefix(NETWORK)}"] = value
            else:                       # the front-end's: the same in every member
                weights.setdefault(name, value)
    run = RunFolder(run_dir)
    for name in SHARED_FILES:
        if (first.path / name).is_file():
            write_bytes(run.path / name, (first.path / name).read_bytes())
    write_weights(weights, run.model)
    write_text(run.config, to_toml(joined))
    summary = {"ensemble_of": [str(member) for member in members],
               "members": [RunFolder(member).read_summary() for member in members]}
    write_json(run.summary, summary)
    return summary
