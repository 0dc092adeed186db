"""A registry of architectures by name.

Every model takes features shaped ``(batch, channels, bands, frames)`` and
returns class logits ``(batch, classes)``. Build one with
:func:`build_model`; options come from the config's ``[model]`` table and
are checked against the constructor's signature.
"""

from __future__ import annotations

import inspect
import warnings
from typing import Callable

import torch

from earmark.errors import ConfigError

_REGISTRY: dict[str, type[torch.nn.Module]] = {}


def register(name: str) -> Callable[[type], type]:
    """Class decorator: make a model buildable by ``name``."""
    def add(cls: type) -> type:
        _REGISTRY[name] = cls
        return cls
    return add


def available_models() -> list[str]:
    return sorted(_REGISTRY)


def build_model(name: str, input_shape: tuple[int, int, int], n_classes: int,
                **options) -> torch.nn.Module:
    """Instantiate model ``name`` for ``input_shape = (channels, bands, frames)``."""
    check_model_options(name, options)
    try:
        with warnings.catch_warnings():       # a zero size: the error below says it better
            warnings.filterwarnings("ignore", "Initializing zero-element tensors")
            return _REGISTRY[name](input_shape=tuple(input_shape), n_classes=n_classes,
                                   **options)
    except ConfigError:
        raise
    except (ValueError, TypeError, RuntimeError) as error:   # torch's layers refuse the value
        given = ", ".join(f"{key} = {value!r}" for key, value in sorted(options.items()))
        raise ConfigError(f"[model] {name} with {given or 'its defaults'} cannot be built "
                          f"({error}); correct the [model] values") from error


def check_model_options(name: str, options: dict) -> None:
    """A ``[model]`` table before any work: a known name, options its constructor takes."""
    if name not in _REGISTRY:
        raise ConfigError(f"[model] name = {name!r} is not a known model; "
                          f"choose one of {available_models()}")
    accepted = set(_options(_REGISTRY[name]))
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ConfigError(f"[model] {name} has no option(s) {unknown}; "
                          f"its options are {sorted(accepted)}")


def describe_model(name: str) -> tuple[str, dict[str, object]]:
    """Model ``name``'s summary (its module's first paragraph) and its ``[model]`` options
    with their defaults."""
    cls = _REGISTRY[name]
    doc = inspect.getmodule(cls).__doc__ or ""
    summary = " ".join(doc.strip().split("\n\n")[0].split()).replace("``", "`")
    return summary, _options(cls)


def _options(cls: type) -> dict[str, object]:
    """A model's ``[model]`` options (its constructor's, but the shapes) and defaults."""
    return {key: parameter.default
            for key, parameter in inspect.signature(cls.__init__).parameters.items()
            if key not in ("self", "input_shape", "n_classes")}


def check_poolable(name: str, input_shape: tuple[int, int, int], halvings: int) -> None:
    """Raise ConfigError when ``halvings`` 2x poolings would shrink the input to nothing."""
    _, bands, frames = input_shape
    needed = 2 ** halvings
    if bands < needed or frames < needed:
        raise ConfigError(f"[model] {name} pools {halvings} times and needs at least {needed} "
                          f"bands and frames, but the features are {bands} x {frames}; use "
                          "more mel bands / a longer clip, or fewer widths")


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# Importing the modules registers their models.
from earmark.models import (  # noqa: E402,F401
    clip_cnn, column_cnn, dscnn, embedding_ensemble, embedding_head, embedding_linear,
    spectrogram_cnn, tcn)
