"""One interface over the anomaly methods: fit one on normal windows, rebuild a trained one.

A scorer is a torch module, ``(batch, window_samples)`` float32 waveforms at
``sample_rate`` -> ``(batch,)`` scores (higher = further from normal), with
``settings()`` (a JSON-able dict that rebuilds its shapes) and a state dict
holding everything learned (weights, the bank of normal windows, the bins):
a run folder stores both, and export traces the module as it is.
"""

from __future__ import annotations

import numpy as np
import torch

from earmark.anomaly.autoencoder import AutoencoderScorer, fit_autoencoder
from earmark.anomaly.lines import LineScorer, fit_lines
from earmark.config import ExperimentConfig, FeatureConfig
from earmark.errors import DataError
from earmark.progress import ProgressLike

#: What each method is for, as ``earmark anomaly train --help`` and the README say it.
METHODS = {
    "lines": "the machine's tonal lines at 1 Hz resolution, k-nearest-neighbour distance "
             "to normal windows (rotating machines; recommended)",
    "autoencoder": "DCASE 2020 baseline: dense autoencoder on 5 stacked log-mel frames "
                   "(the reference; machines without stable tones)",
}


def fit_scorer(windows: np.ndarray, config: ExperimentConfig, progress: ProgressLike = None,
               owners: np.ndarray | None = None) -> torch.nn.Module:
    """The ``anomaly.method`` scorer learned from normal windows ``(n, samples)``; ``owners``
    names each window's recording (windows of one recording are not independent)."""
    if len(windows) == 0:
        raise DataError("no normal training windows to learn from")
    if config.anomaly.method == "lines":
        return fit_lines(windows, config.data.sample_rate, config.anomaly, owners)
    return fit_autoencoder(windows, config, progress)


def build_scorer(settings: dict) -> torch.nn.Module:
    """An untrained scorer of the shapes ``settings`` (a scorer's ``settings()``) describe:
    load its state dict into it."""
    method = settings.get("method")
    if method == "lines":
        return LineScorer(settings["sample_rate"], settings["window_samples"],
                          settings["n_fft"], np.asarray(settings["bins"]),
                          settings["bank_size"], settings["neighbours"],
                          settings.get("texture", False))
    if method == "autoencoder":
        return AutoencoderScorer(FeatureConfig.from_record(settings["features"]), settings["sample_rate"], settings["window_samples"],
                                 settings["context"], settings["hidden"], settings["bottleneck"])
    raise DataError(f"unknown anomaly method {method!r} in the run's scorer settings; "
                    f"known: {sorted(METHODS)}")


def score_windows(scorer: torch.nn.Module, windows: np.ndarray, batch: int = 64) -> np.ndarray:
    """Scores of windows ``(n, samples)``, in batches, without gradients."""
    scorer.eval()
    with torch.no_grad():
        return np.concatenate([scorer(torch.as_tensor(windows[i:i + batch])).numpy()
                               for i in range(0, len(windows), batch)] or [np.zeros(0)])
