"""A store's recordings cut into analysis windows, and each recording judged by them.

A recording's score is the mean of its windows' scores (DCASE averages a
clip's frame errors the same way); a recording shorter than one window is
one zero-padded window, so silence and short clips get a score too.
"""

from __future__ import annotations

import numpy as np
import torch

from earmark.anomaly.methods import score_windows
from earmark.data.cache import AudioStore
from earmark.windowing import window_starts


def recording_windows(store: AudioStore, indices: list[int], window: int,
                      hop: int) -> tuple[np.ndarray, np.ndarray]:
    """``(windows (n, window) float32, owner (n,))``: every window of the recordings and
    the store index of the recording it came from."""
    jobs = [(index, int(start)) for index in indices
            for start in window_starts(int(store.lengths[index]), window, hop)]
    if not jobs:
        return np.zeros((0, window), np.float32), np.zeros(0, np.int64)
    waveforms = np.stack([store.window(index, start, window) for index, start in jobs])
    return waveforms.astype(np.float32, copy=False), np.array([i for i, _ in jobs])


def recording_scores(scorer: torch.nn.Module, store: AudioStore, indices: list[int],
                     window: int, hop: int) -> tuple[np.ndarray, np.ndarray]:
    """``(scores per recording in ``indices`` order, scores of every window)``."""
    waveforms, owner = recording_windows(store, indices, window, hop)
    window_scores = score_windows(scorer, waveforms)
    position = {index: i for i, index in enumerate(indices)}
    owned_by = np.array([position[index] for index in owner], dtype=np.int64)
    totals = np.bincount(owned_by, weights=window_scores, minlength=len(indices))
    counts = np.bincount(owned_by, minlength=len(indices))    # every recording has a window
    return totals / counts, window_scores
