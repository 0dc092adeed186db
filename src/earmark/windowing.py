"""Cutting recordings into analysis windows (numpy only; shared by training and runtime).

A recording of ``length`` samples is judged from windows of ``window``
samples every ``hop`` samples. The first starts at 0; the last one covers the
end (zero-padded past it); a recording shorter than one window gives one
window, zero-padded at the end. Training, evaluation and the deployed
runtime all call :func:`window_starts`, so they cut the same way.
"""

from __future__ import annotations

import math

import numpy as np


def window_starts(length: int, window: int, hop: int) -> np.ndarray:
    """Start samples of the windows covering ``length`` samples."""
    if window <= 0 or hop <= 0:
        raise ValueError(f"window and hop must be positive, got {window} and {hop}")
    if length <= window:
        return np.zeros(1, dtype=np.int64)
    count = 1 + math.ceil((length - window) / hop)
    return np.arange(count, dtype=np.int64) * hop
