"""A model judging one recording at any rate: a trained run (torch) or an exported bundle
(onnxruntime). Both resample to the model's rate, cut the windows training cut
(:func:`earmark.windowing.window_starts`) and judge the recording by its sounding windows,
as ``earmark evaluate`` and ``earmark classify`` do."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

import numpy as np

from earmark import audio
from earmark.windowing import aggregate_windows, cut_window, sounding_windows, window_starts

#: (samples, rate) -> class probabilities of the recording.
Judge = Callable[[np.ndarray, int], np.ndarray]


@dataclass
class Model:
    """What the suite needs of a model."""

    name: str
    labels: list[str]
    sample_rate: int
    judge: Judge


def bundle_model(path: str | os.PathLike, threads: int = 1) -> Model:
    """An exported bundle, torch-free."""
    from earmark.runtime import Classifier

    classifier = Classifier.from_bundle(path, threads=threads)
    return Model(f"bundle {path}", classifier.labels, classifier.sample_rate,
                 lambda samples, rate: classifier.classify_array(samples, rate).probabilities)


def run_model(run_dir: str | os.PathLike) -> Model:
    """A trained run's best weights, on the CPU."""
    import torch

    from earmark.network import load_trained, window_hop_samples, window_samples

    config, labels, classifier = load_trained(run_dir)
    classifier.eval()
    rate, method = config.data.sample_rate, config.data.aggregate
    window, hop = window_samples(config), window_hop_samples(config)

    def judge(samples: np.ndarray, sample_rate: int) -> np.ndarray:
        samples = audio.resample(np.asarray(samples, np.float32), sample_rate, rate)
        windows = np.stack([cut_window(samples, start, window)
                            for start in window_starts(len(samples), window, hop)])
        with torch.no_grad():
            probabilities = torch.softmax(classifier(torch.from_numpy(windows)), -1).numpy()
        return aggregate_windows(probabilities, method, sounding_windows(windows))

    return Model(f"run {run_dir}", labels, rate, judge)
