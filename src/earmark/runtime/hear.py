"""What a bundle's model hears, as sound: its front-end's features back to audio.

The bundle's ``earmark.json`` holds the front-end config (kind, window, hop,
``n_fft``, mel bands, ``fmin``/``fmax``, level floor) and the model's rate;
:func:`hear_file` reads a stretch of a recording at that rate and inverts the
features with :func:`earmark.frontend.inversion.hear` (Griffin-Lim). Without
a bundle: the default log-mel (:class:`~earmark.config.FeatureConfig`) at
16 kHz.
"""

from __future__ import annotations

import json
import logging
import os

import numpy as np

from earmark import audio
from earmark.config import DataConfig, FeatureConfig
from earmark.errors import ConfigError
from earmark.frontend.speech_embedding import KIND as EMBEDDING_KIND
from earmark.frontend.speech_embedding import MEL_SETTINGS
from earmark.frontend.inversion import Hearing, hear
from earmark.input_limits import check_positive
from earmark.runtime.metadata import (ANOMALY_FORMAT_NAME, BUNDLE_JSON, MODEL_INPUT,
                                      PRETRAINED_INPUTS, BundleMetadata,
                                      read_metadata_file)

log = logging.getLogger("earmark.hear")

#: The most audio one inversion takes: Griffin-Lim holds a few complex spectrograms of it
#: (about 250 MB for 120 s at a 10 ms hop); hear a long recording a stretch at a time.
MAX_SECONDS = 120.0
#: Without ``duration``, a longer recording is heard for this long from ``start``.
DEFAULT_SECONDS = 60.0


def bundle_front_end(bundle: str | os.PathLike) -> tuple[FeatureConfig, int]:
    """``(front-end config, sample rate)`` from a bundle folder's ``earmark.json`` (or
    that file itself), checked as loading a bundle checks it."""
    path = os.fspath(bundle)
    json_path = os.path.join(path, BUNDLE_JSON) if os.path.isdir(path) else path
    if _is_anomaly_bundle(json_path):
        return _anomaly_front_end(json_path)
    metadata = read_metadata_file(json_path)
    return front_end_of(metadata), metadata.sample_rate


def front_end_of(metadata: BundleMetadata) -> FeatureConfig:
    """A bundle's front-end config (keys a newer earmark added are left out); for the
    pretrained speech embedding, its mel stage (the embedding itself cannot be heard).

    Raises ConfigError for a model on a pretrained network run beside its graph (BirdNET):
    its spectrogram is inside that network, nothing earmark can play back.
    """
    if metadata.input != MODEL_INPUT:
        raise ConfigError(f"this bundle's model takes {PRETRAINED_INPUTS[metadata.input]}, "
                          "whose spectrogram is inside that network: there is no front-end "
                          "to play back")
    if metadata.features.get("kind") == EMBEDDING_KIND:
        return FeatureConfig(**MEL_SETTINGS)
    return FeatureConfig.from_record(metadata.features)


def _is_anomaly_bundle(json_path: str) -> bool:
    try:
        with open(json_path, encoding="utf-8") as handle:
            return json.load(handle).get("format") == ANOMALY_FORMAT_NAME
    except (OSError, ValueError, AttributeError):
        return False                      # read_metadata_file names what is wrong


def _anomaly_front_end(json_path: str) -> tuple[FeatureConfig, int]:
    """An autoencoder anomaly bundle hears its log-mel; the lines method hears no
    front-end that sound could be rebuilt from."""
    from earmark.runtime.anomaly_bundle import read_anomaly_metadata

    metadata = read_anomaly_metadata(json_path)
    features = metadata.settings.get("features")
    if not isinstance(features, dict):
        raise ConfigError(f"{json_path}: this '{metadata.method}' anomaly bundle listens to "
                          "single spectrum lines, not a front-end that can be turned back "
                          "into sound; leave out --bundle to hear the default log-mel")
    return FeatureConfig.from_record(features), metadata.sample_rate


def hear_file(path: str | os.PathLike, config: FeatureConfig | None = None,
              sample_rate: int | None = None, start: float = 0.0,
              duration: float | None = None, iterations: int = 32) -> Hearing:
    """The sound of ``duration`` s of a recording from ``start`` as ``config`` hears it.

    Parameters
    ----------
    path : str or os.PathLike
        Any recording earmark reads.
    config, sample_rate
        The front-end and its rate (a bundle's: :func:`bundle_front_end`);
        None: the default log-mel at 16 kHz.
    start, duration : float
        The stretch, in seconds; ``duration`` None: to the end, at most
        :data:`DEFAULT_SECONDS` (:data:`MAX_SECONDS` at most when given).
    iterations : int
        Griffin-Lim iterations.
    """
    rate = sample_rate or DataConfig().sample_rate
    header = audio.info(path)
    if duration is None and header.duration - start > DEFAULT_SECONDS:
        duration = DEFAULT_SECONDS
        log.info("%s lasts %.0f s: hearing %g s from %g s (give --duration for more)",
                 path, header.duration, duration, start)
    if duration is not None:
        check_positive(duration, "duration", maximum=MAX_SECONDS)
    if not 1 <= iterations <= 1000:
        raise ConfigError(f"iterations = {iterations}: give 1 to 1000")
    samples = np.concatenate(list(audio.read_blocks(path, rate, 30.0, header=header,
                                                    start=start, duration=duration)))
    return hear(samples, rate, config, iterations=iterations)
