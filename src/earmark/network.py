"""The trainable network: front-end + model, from raw waveform to class scores.

One module holds both, so training, evaluation and export share the same
graph and the deployed ONNX file needs no feature code of its own.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from earmark.config import ExperimentConfig, load_config
from earmark.errors import DataError
from earmark.frontend.module import FrontEnd
from earmark.models import build_model


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


def hop_samples(config: ExperimentConfig) -> int:
    """The hop between analysis windows in samples."""
    return int(round(config.data.hop_seconds * config.data.sample_rate))


def build_classifier(config: ExperimentConfig, n_classes: int) -> WaveformClassifier:
    """A fresh network for ``config`` with ``n_classes`` outputs."""
    frontend = FrontEnd(config.features, config.data.sample_rate)
    input_shape = frontend.output_shape(window_samples(config))
    model = build_model(config.model.name, input_shape, n_classes, **config.model.options)
    return WaveformClassifier(frontend, model)


def load_trained(run_dir: str | Path) -> tuple[ExperimentConfig, list[str], WaveformClassifier]:
    """The config, labels and best weights of a finished training run."""
    run_dir = Path(run_dir)
    weights = run_dir / "model.pt"
    if not weights.is_file():
        raise DataError(f"{run_dir}: no model.pt; is this a finished training run? "
                        "(train with `earmark train CONFIG --out RUN`)")
    config = load_config(run_dir / "config.toml")
    try:
        labels = json.loads((run_dir / "labels.json").read_text())
        classifier = build_classifier(config, len(labels))
        classifier.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    except (OSError, ValueError, RuntimeError) as error:
        raise DataError(f"{run_dir}: cannot load the trained model ({error}); the run is "
                        "incomplete or damaged: train it again") from error
    classifier.eval()
    return config, labels, classifier
