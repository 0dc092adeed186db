"""The trainable network: front-end + model, from raw waveform to class scores.

One module holds both, so training, evaluation and export share the same
graph and the deployed ONNX file needs no feature code of its own.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from earmark.config import ExperimentConfig, load_config
from earmark.errors import DataError
from earmark.frontend.module import FrontEnd
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


def build_classifier(config: ExperimentConfig, n_classes: int) -> WaveformClassifier:
    """A fresh network for ``config`` with ``n_classes`` outputs."""
    frontend = FrontEnd(config.features, config.data.sample_rate)
    input_shape = frontend.output_shape(window_samples(config))
    model = build_model(config.model.name, input_shape, n_classes, **config.model.options)
    return WaveformClassifier(frontend, model)


def load_trained(run_dir: str | Path) -> tuple[ExperimentConfig, list[str], WaveformClassifier]:
    """The config, labels and best weights of a finished training run."""
    run = RunFolder(run_dir)
    run.require_trained()
    config = load_config(run.config)
    labels = run.read_labels()
    try:
        classifier = build_classifier(config, len(labels))
        classifier.load_state_dict(torch.load(run.model, map_location="cpu", weights_only=True))
    except (OSError, ValueError, RuntimeError) as error:
        raise DataError(f"{run.path}: cannot load the trained model ({error}); the run is "
                        "incomplete or damaged: train it again") from error
    classifier.eval()
    return config, labels, classifier
