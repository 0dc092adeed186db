"""The micro front-end as the training network's first stage (torch on the outside).

:class:`MicroFrontEnd` stands where :class:`~earmark.frontend.module.FrontEnd`
stands in a :class:`~earmark.network.WaveformClassifier`, with the same
geometry questions answered, but computes its features with the device's
own C code (:mod:`earmark.frontend.micro`), each clip from a fresh
front-end, without gradients (none flow into a front-end anyway). Its models
are deployed with ``earmark export --target micro``: the features are
computed beside the model on a device, never inside an ONNX graph.
"""

from __future__ import annotations

import torch

from earmark.config import FeatureConfig
from earmark.errors import ConfigError
from earmark.frontend import micro

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


class MicroFrontEnd(torch.nn.Module):
    """``(batch, samples)`` at 16 kHz -> ``(batch, 1, 40, frames)`` micro features."""

    kind = KIND
    channels = 1
    bands = micro.CHANNELS
    window_length = micro.WINDOW_SAMPLES
    hop_length = micro.HOP_SAMPLES
    min_samples = micro.WINDOW_SAMPLES

    def __init__(self, config: FeatureConfig, sample_rate: int):
        super().__init__()
        check_micro(config, sample_rate)
        micro.require_micro_features()
        self.config = config
        self.sample_rate = int(sample_rate)

    def frames_for(self, samples: int) -> int:
        frames = micro.frame_count(int(samples))
        if frames < 1:
            raise ConfigError(f"{samples} samples are shorter than the micro front-end's "
                              f"30 ms window ({micro.WINDOW_SAMPLES} samples)")
        return frames

    def output_shape(self, samples: int) -> tuple[int, int, int]:
        return (1, micro.CHANNELS, self.frames_for(samples))

    def extra_repr(self) -> str:
        return "kind='micro', sample_rate=16000, window_length=480, hop_length=160, bands=40"

    def forward(self, waveform: torch.Tensor,
                frequency_scale: torch.Tensor | None = None) -> torch.Tensor:
        if waveform.dim() != 2:
            raise ValueError(f"MicroFrontEnd expects (batch, samples), got shape "
                             f"{tuple(waveform.shape)}")
        if frequency_scale is not None:
            raise ConfigError("augment.frequency_warp needs a front-end inside the network; "
                              "the micro front-end is the device's C code: leave it out")
        self.frames_for(waveform.shape[-1])
        features = micro.micro_features_batch(waveform.detach().float().cpu().numpy())
        return (torch.from_numpy(features).transpose(1, 2).unsqueeze(1)
                .to(device=waveform.device, dtype=waveform.dtype))
