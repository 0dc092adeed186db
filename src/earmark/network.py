"""The trainable network: front-end + model, from raw waveform to class scores.

One module holds both, so training, evaluation and export share the same
graph and the deployed ONNX file needs no feature code of its own.
"""

from __future__ import annotations

import io
import pickle
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from earmark.atomic import write_bytes
from earmark.config import ExperimentConfig, load_config
from earmark.errors import ConfigError, DataError
from earmark.frontend.bird_module import KIND as BIRD_KIND
from earmark.frontend.bird_module import BirdFrontEnd
from earmark.frontend.embedding_module import KIND as EMBEDDING_KIND
from earmark.frontend.embedding_module import EmbeddingFrontEnd
from earmark.frontend.micro_module import KIND as MICRO_KIND
from earmark.frontend.micro_module import MicroFrontEnd
from earmark.frontend.module import FrontEnd
from earmark.frontend.outside import OutsideFrontEnd
from earmark.models import build_model
from earmark.run_folder import RunFolder


class WaveformClassifier(nn.Module):
    """``(batch, samples)`` waveform -> ``(batch, classes)`` logits."""

    def __init__(self, frontend: FrontEnd, model: nn.Module):
        super().__init__()
        self.frontend = frontend
        self.model = model

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return self.model(self.frontend(waveform))


def window_samples(config: ExperimentConfig) -> int:
    """The model's analysis window in samples."""
    return int(round(config.data.clip_seconds * config.data.sample_rate))


def window_hop_samples(config: ExperimentConfig) -> int:
    """The hop between analysis windows in samples (``data.hop_seconds``; the front-end's
    frames have their own hop, ``features.hop_ms``)."""
    return int(round(config.data.hop_seconds * config.data.sample_rate))


#: Front-ends computed outside the network's graph, by kind.
OUTSIDE_FRONTENDS: dict[str, type[OutsideFrontEnd]] = {MICRO_KIND: MicroFrontEnd,
                                                       EMBEDDING_KIND: EmbeddingFrontEnd,
                                                       BIRD_KIND: BirdFrontEnd}


def build_frontend(config: ExperimentConfig) -> FrontEnd | OutsideFrontEnd:
    """The config's front-end: the torch one, the device's micro front-end, the
    pretrained speech embedding or BirdNET's embedding."""
    if config.features.kind not in OUTSIDE_FRONTENDS:
        return FrontEnd(config.features, config.data.sample_rate)
    frontend = OUTSIDE_FRONTENDS[config.features.kind]
    if tuple(config.augment.frequency_warp) != (1.0, 1.0):
        raise ConfigError(f"augment.frequency_warp needs a front-end inside the network; with "
                          f"features.kind = \"{frontend.kind}\" ({frontend.what}) leave it out")
    return frontend(config.features, config.data.sample_rate)


def build_classifier(config: ExperimentConfig, n_classes: int) -> WaveformClassifier:
    """A fresh network for ``config`` with ``n_classes`` outputs."""
    frontend = build_frontend(config)
    input_shape = frontend.output_shape(window_samples(config))
    model = build_model(config.model.name, input_shape, n_classes, **config.model.options)
    return WaveformClassifier(frontend, model)


def write_weights(weights: Any, path: str | Path) -> None:
    """``torch.save`` to memory, then an atomic write: a kill never leaves half a file."""
    buffer = io.BytesIO()
    torch.save(weights, buffer)
    write_bytes(path, buffer.getvalue())


def read_weights(path: str | Path, device: str | torch.device = "cpu") -> Any:
    """What training saved with ``torch.save`` (``model.pt``, ``checkpoint.pt``), read safely.

    The file is read with ``torch.load(weights_only=True)``: tensors, numbers,
    strings and containers of them only, never arbitrary pickled objects.

    Raises
    ------
    DataError
        Naming the file when it is missing, or is not such a file (damaged,
        truncated, or holding other Python objects); the message never
        suggests loading it unsafely.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file; the run is incomplete: train it again, "
                        "or --resume it")
    try:
        with warnings.catch_warnings():
            # torch warns about pickle protocols before refusing a foreign file.
            warnings.simplefilter("ignore")
            return torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError:
        reason = "it holds Python objects other than tensors and numbers"
    except Exception as error:  # torch raises many kinds for a damaged file
        reason = _short_reason(error)
    raise DataError(f"{path}: not an earmark checkpoint, or damaged ({reason}); it is never "
                    "unpickled. Train the run again, or restore the file from a copy")


def _short_reason(error: Exception) -> str:
    """The first line of a loading error, without torch's advice to load unsafely."""
    lines = str(error).strip().splitlines()
    text = lines[0][:200] if lines else ""
    if not text or "weights_only" in text:
        return type(error).__name__
    return f"{type(error).__name__}: {text}"


def load_trained(run_dir: str | Path) -> tuple[ExperimentConfig, list[str], WaveformClassifier]:
    """The config, labels and best weights of a finished training run.

    Raises
    ------
    DataError
        When the run is unfinished, or ``model.pt`` is damaged, not a state
        dict (it is never unpickled), or does not fit the run's config.
    """
    run = RunFolder(run_dir)
    run.require_trained()
    config = load_config(run.config)
    labels = run.read_labels()
    weights = read_weights(run.model)
    if not is_state_dict(weights):
        raise DataError(f"{run.model}: not an earmark model (expected a state dict of "
                        "tensors); train the run again")
    broken = [name for name, value in weights.items()
              if value.is_floating_point() and not bool(torch.isfinite(value).all())]
    if broken:
        raise DataError(f"{run.model} holds NaN or infinite weights ({', '.join(broken[:3])}): "
                        "the training diverged; train again with a lower "
                        "train.learning_rate")
    try:
        classifier = build_classifier(config, len(labels))
        classifier.load_state_dict(weights)
    except (OSError, ValueError, RuntimeError) as error:
        raise DataError(f"{run.path}: cannot load the trained model ({error}); the run is "
                        "incomplete or damaged: train it again") from error
    classifier.eval()
    return config, labels, classifier


def is_state_dict(value) -> bool:
    """Whether ``value`` is a state dict: a dict of tensors."""
    return isinstance(value, dict) and all(isinstance(v, torch.Tensor) for v in value.values())
