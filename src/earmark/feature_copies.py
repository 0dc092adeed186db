"""Features of augmented training windows, kept for later epochs (``train.feature_copies``).

A front-end that learns nothing gives the same features whenever it sees the
same waveform. Where those features cost most of an epoch (the pretrained
speech embedding: nearly all of an epoch's time), training can compute
``K`` augmented passes over the training windows in its first ``K`` epochs,
keep them, and let every later epoch train on one of them again in a new
batch order, as openWakeWord trains its heads. SpecAugment, mixup and dropout
still draw anew every epoch; what a copy fixes is the waveform augmentation
(noise, rooms, EQ, level, speed) and the windows' crops. The validation
windows never change: their features are computed once.

Memory: ``K`` x the epoch's windows x one window's features (float32),
checked before training starts. A resumed run computes the copies it needs
again, with the resumed epochs' draws.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np
import torch

from earmark.errors import ConfigError

#: The most memory the kept features may take.
MEMORY_LIMIT_BYTES = 4 * 2**30


@dataclass(frozen=True)
class FeatureBatch:
    """One training batch as the front-end gave it, before SpecAugment and mixup."""

    features: torch.Tensor      #: (batch, channels, bands, frames)
    targets: torch.Tensor       #: (batch,) class indices


class FeatureCopies:
    """The batches of ``copies`` augmented passes over the training windows: epoch ``e``
    (from 1) trains on copy ``(e - 1) % copies``, computed by the first epoch to need it."""

    def __init__(self, copies: int):
        if copies < 1:
            raise ValueError(f"copies must be >= 1, got {copies}")
        self.copies = copies
        self._kept: dict[int, list[FeatureBatch]] = {}

    def copy_of(self, epoch: int) -> int:
        return (epoch - 1) % self.copies

    def kept(self, epoch: int) -> list[FeatureBatch] | None:
        """The batches of ``epoch``'s copy when an earlier epoch computed them."""
        return self._kept.get(self.copy_of(epoch))

    def keep(self, epoch: int, batches: list[FeatureBatch]) -> None:
        self._kept[self.copy_of(epoch)] = batches

    @staticmethod
    def reordered(batches: list[FeatureBatch], rng: np.random.Generator) -> list[FeatureBatch]:
        """The batches in a new order (the same on every process: ``rng`` is the epoch's)."""
        return [batches[i] for i in rng.permutation(len(batches))]


def check_feature_copies(copies: int, frontend: torch.nn.Module, windows: int,
                         window_shape: tuple[int, ...], has_teacher: bool) -> None:
    """Refuse what copies cannot honour, before any epoch: a front-end that learns, a
    teacher (it scores each epoch's recorded windows), or more memory than the ceiling.

    Raises
    ------
    ConfigError
        Naming ``train.feature_copies`` and what to change.
    """
    if copies == 0:
        return
    if any(parameter.requires_grad for parameter in frontend.parameters()):
        raise ConfigError("train.feature_copies keeps the front-end's features, but this "
                          "front-end learns: set train.feature_copies = 0")
    if has_teacher:
        raise ConfigError("train.feature_copies cannot be used with train.teacher (the teacher "
                          "scores each epoch's recorded windows): leave one of them out")
    needed = copies * windows * math.prod(window_shape) * 4
    if needed > MEMORY_LIMIT_BYTES:
        fit = max(1, MEMORY_LIMIT_BYTES // max(1, needed // copies))
        raise ConfigError(f"train.feature_copies = {copies} would keep "
                          f"{needed / 2**30:.1f} GiB of features ({windows} windows of "
                          f"{'x'.join(map(str, window_shape))} a copy), over the "
                          f"{MEMORY_LIMIT_BYTES / 2**30:.0f} GiB ceiling: use at most {fit}")


class OnceComputedFrontEnd(torch.nn.Module):
    """A front-end that learns nothing, each batch's features computed once: a batch seen
    again (the validation windows, every epoch) is answered from memory, matched by a
    digest of its samples."""

    def __init__(self, frontend: torch.nn.Module):
        super().__init__()
        self.frontend = frontend
        self._seen: dict[bytes, torch.Tensor] = {}

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        samples = waveform.detach().cpu().contiguous().numpy()
        key = hashlib.blake2b(samples.tobytes(), digest_size=16,
                              person=str(samples.shape).encode()[:16]).digest()
        if key not in self._seen:
            with torch.no_grad():
                self._seen[key] = self.frontend(waveform).cpu()
        return self._seen[key].to(waveform.device)
