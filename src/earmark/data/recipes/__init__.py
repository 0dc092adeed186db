"""The dataset recipes earmark knows, by name: ``earmark datasets list``.

Each recipe module (``speech_commands``, ``fsdd``, ``esc50``, ...) declares a
module-level ``RECIPES`` tuple of :class:`~earmark.data.recipes.recipe.Recipe`;
this package gathers them into :data:`RECIPES`, a dict by recipe name.
"""

from __future__ import annotations

import difflib
import os

from earmark.data.recipes import esc50, fsdd, librispeech, mimii, speech_commands, urbansound8k
from earmark.data.recipes.recipe import Recipe, RemoteFile
from earmark.errors import ConfigError

#: The environment variable naming the download root.
ROOT_VARIABLE = "EARMARK_DATA"


def default_root() -> str:
    """Where datasets are downloaded and looked for unless told: ``$EARMARK_DATA``, else
    ``datasets`` in the current folder (the same for the CLI and a config's
    ``[data] dataset``)."""
    return os.environ.get(ROOT_VARIABLE) or "datasets"


#: The recipe modules, in the order ``earmark datasets list`` shows them.
MODULES = (speech_commands, fsdd, esc50, urbansound8k, librispeech, mimii)


def collect(modules) -> dict[str, Recipe]:
    """The recipes of ``modules`` by name.

    Parameters
    ----------
    modules : iterable of module
        Each has a ``RECIPES`` tuple of :class:`Recipe`.

    Returns
    -------
    dict of str to Recipe
        In the modules' order.

    Raises
    ------
    ConfigError
        When two recipes share a name.
    """
    recipes: dict[str, Recipe] = {}
    for module in modules:
        for recipe in getattr(module, "RECIPES", ()):
            if recipe.name in recipes:
                raise ConfigError(f"dataset recipe {recipe.name!r} is declared twice "
                                  f"(again in {module.__name__}); rename one of them")
            recipes[recipe.name] = recipe
    return recipes


#: Every registered recipe, by name.
RECIPES: dict[str, Recipe] = collect(MODULES)


def get_recipe(name: str) -> Recipe:
    """The recipe called ``name``.

    Raises
    ------
    ConfigError
        For an unknown name, suggesting the nearest known ones.
    """
    try:
        return RECIPES[name]
    except KeyError:
        pass
    nearest = difflib.get_close_matches(name, list(RECIPES), n=3, cutoff=0.5)
    hint = (f"did you mean {' or '.join(repr(n) for n in nearest)}? " if nearest else "")
    raise ConfigError(f"unknown dataset {name!r}: {hint}"
                      f"`earmark datasets list` shows the {len(RECIPES)} known ones "
                      f"({', '.join(sorted(RECIPES)) or 'none'})")


__all__ = ["MODULES", "RECIPES", "ROOT_VARIABLE", "Recipe", "RemoteFile", "collect", "default_root", "get_recipe"]
