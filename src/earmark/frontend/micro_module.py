"""The micro front-end as the training network's first stage (torch on the outside).

:class:`MicroFrontEnd` (an :class:`~earmark.frontend.outside.OutsideFrontEnd`)
computes its features with the device's own C code
(:mod:`earmark.frontend.micro`), each clip from a fresh front-end. Its models
are deployed with ``earmark export --target micro``: the features are
computed beside the model on a device, never inside an ONNX graph.
"""

from __future__ import annotations

import numpy as np

from earmark.config import FeatureConfig
from earmark.errors import ConfigError
from earmark.frontend import micro
from earmark.frontend.outside import OutsideFrontEnd

KIND = "micro"


def check_micro(config: FeatureConfig, sample_rate: int) -> None:
    """Refuse settings the fixed micro front-end cannot honour, saying what it computes."""
    fixed = "the micro front-end computes 40 channels of 30 ms every 10 ms at 16 kHz"
    if sample_rate != micro.SAMPLE_RATE:
        raise ConfigError(f"features.kind = \"micro\" needs data.sample_rate = 16000 "
                          f"(got {sample_rate}): {fixed}")
    given = {"window_ms": config.window_ms, "hop_ms": config.hop_ms, "n_mels": config.n_mels}
    expected = {"window_ms": 30.0, "hop_ms": 10.0, "n_mels": micro.CHANNELS}
    for key, value in given.items():
        if float(value) != float(expected[key]):
            raise ConfigError(f"features.{key} = {value} with kind = \"micro\": {fixed}; "
                              f"leave {key} out or set it to {expected[key]:g}")
    if config.deltas or config.center or config.top_db > 0 or config.mean_normalize:
        raise ConfigError("features.kind = \"micro\" takes no deltas, center, top_db or "
                          f"mean_normalize: {fixed}, with its own noise reduction and gain "
                          "control")


class MicroFrontEnd(OutsideFrontEnd):
    """``(batch, samples)`` at 16 kHz -> ``(batch, 1, 40, frames)`` micro features."""

    kind = KIND
    what = "the device's C code"
    bands = micro.CHANNELS
    window_length = micro.WINDOW_SAMPLES
    hop_length = micro.HOP_SAMPLES
    min_samples = micro.WINDOW_SAMPLES

    def check(self, config: FeatureConfig, sample_rate: int) -> None:
        check_micro(config, sample_rate)
        micro.require_micro_features()

    def count(self, samples: int) -> int:
        return micro.frame_count(samples)

    def compute(self, waveforms: np.ndarray) -> np.ndarray:
        return micro.micro_features_batch(waveforms)
