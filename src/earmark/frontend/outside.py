"""Front-ends computed outside the network's graph, as a training network's first stage.

Some features are not earmark's own torch code: the TFLite-Micro front-end
a device computes (:mod:`earmark.frontend.micro_module`), the pretrained
speech embedding (:mod:`earmark.frontend.embedding_module`). An
:class:`OutsideFrontEnd` stands where :class:`~earmark.frontend.module.FrontEnd`
stands in a :class:`~earmark.network.WaveformClassifier`, answers the same
geometry questions, and computes its features in numpy without gradients
(none flow into a front-end anyway). A subclass says how many frames a clip
gives, how to compute them, and what it is.
"""

from __future__ import annotations

import numpy as np
import torch

from earmark.config import FeatureConfig
from earmark.errors import ConfigError


#: The settings of earmark's own front-ends, which a fixed pretrained network has no use for.
OWN_SETTINGS = ("window_ms", "hop_ms", "n_fft", "n_mels", "n_mfcc", "fmin", "fmax", "deltas",
                "delta_width", "center", "log_floor", "top_db", "mean_normalize")


def refuse_own_settings(config: FeatureConfig, fixed: str) -> None:
    """ConfigError naming the :data:`OWN_SETTINGS` that ``config`` sets, when a pretrained
    network (``fixed`` says what it computes) stands in for earmark's front-end."""
    defaults = FeatureConfig()
    given = [key for key in OWN_SETTINGS if getattr(config, key) != getattr(defaults, key)]
    if given:
        raise ConfigError(f"features.kind = \"{config.kind}\" takes no {', '.join(given)}: "
                          f"{fixed}; leave them out")


class OutsideFrontEnd(torch.nn.Module):
    """``(batch, samples)`` -> ``(batch, 1, bands, frames)`` computed in numpy."""

    kind = ""
    what = ""             #: what computes the features, for messages
    channels = 1
    bands = 0
    window_length = 0     #: samples of the first frame
    hop_length = 0        #: samples between frames
    min_samples = 0

    def __init__(self, config: FeatureConfig, sample_rate: int):
        super().__init__()
        self.check(config, sample_rate)
        self.config = config
        self.sample_rate = int(sample_rate)

    def check(self, config: FeatureConfig, sample_rate: int) -> None:
        """Refuse settings this front-end cannot honour (ConfigError saying what it does)."""

    def count(self, samples: int) -> int:
        """Frames for ``samples`` samples (0 when too short)."""
        raise NotImplementedError

    def compute(self, waveforms: np.ndarray) -> np.ndarray:
        """``(batch, samples)`` float32 -> ``(batch, frames, bands)``."""
        raise NotImplementedError

    def frames_for(self, samples: int) -> int:
        frames = self.count(int(samples))
        if frames < 1:
            raise ConfigError(f"{samples} samples are shorter than the {self.kind} front-end's "
                              f"first frame ({self.window_length} samples): use a longer "
                              "data.clip_seconds")
        return frames

    def output_shape(self, samples: int) -> tuple[int, int, int]:
        return (1, self.bands, self.frames_for(samples))

    def extra_repr(self) -> str:
        return (f"kind={self.kind!r}, sample_rate={self.sample_rate}, "
                f"window_length={self.window_length}, hop_length={self.hop_length}, "
                f"bands={self.bands}")

    def forward(self, waveform: torch.Tensor,
                frequency_scale: torch.Tensor | None = None) -> torch.Tensor:
        if waveform.dim() != 2:
            raise ValueError(f"{type(self).__name__} expects (batch, samples), got shape "
                             f"{tuple(waveform.shape)}")
        if frequency_scale is not None:
            raise ConfigError(f"augment.frequency_warp needs a front-end inside the network; "
                              f"the {self.kind} front-end is {self.what}: leave it out")
        self.frames_for(waveform.shape[-1])
        features = self.compute(waveform.detach().float().cpu().numpy())
        return (torch.from_numpy(features).transpose(1, 2).unsqueeze(1)
                .to(device=waveform.device, dtype=waveform.dtype))
