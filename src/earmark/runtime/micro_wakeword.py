"""A microWakeWord export at work in earmark's runtime (no torch).

``earmark export --target micro`` writes a streaming int8 ``.tflite`` for
devices and, beside it, the float window model (``window.onnx``) it was
made from. Here both run on a recording:

- :class:`MicroWindowModel`: the micro front-end's features of the whole
  recording, then the float window model on the last ``window_frames``
  frames at every call a device would make (every 3 frames, 30 ms), the
  scores through earmark's :class:`~earmark.runtime.smoother.SmootherConfig`
  (averaged over ``sliding_window_size`` calls, the manifest's cutoff);
- :class:`StreamingTFLite`: the int8 streaming file itself in the LiteRT
  interpreter, three frames a call, its state inside the graph.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from earmark.errors import ConfigError
from earmark.frontend import micro
from earmark.runtime.litert_model import LiteRTModel
from earmark.runtime.smoother import Detection, SmootherConfig, detect

MICRO_JSON = "earmark_micro.json"
STRIDE = 3                #: frames a call: microWakeWord's stride (30 ms)
#: A detection is not repeated within this long (ESPHome clears its window after a
#: detection and ignores the calls that follow; earmark's smoother says it in time).
SUPPRESSION_MS = 1000
#: Calls scored in one batch of the window model.
_BATCH = 512


def read_description(folder: str | Path) -> dict:
    """``earmark_micro.json`` of an export folder, every field checked, or a ConfigError
    naming what is wrong."""
    path = Path(folder) / MICRO_JSON
    if not path.is_file():
        raise ConfigError(f"{folder}: no {MICRO_JSON}; give a folder written by "
                          "`earmark export --target micro`")
    try:
        description = json.loads(path.read_text())
        labels, target = description["labels"], int(description["target"])
        checks = [isinstance(labels, list) and all(isinstance(x, str) for x in labels),
                  0 <= target < len(labels), int(description["window_frames"]) >= STRIDE,
                  1 <= int(description["sliding_window_size"]) <= 100,
                  0.0 <= float(description["probability_cutoff"]) <= 1.0,
                  isinstance(description["model"], str)
                  and Path(description["model"]).name == description["model"]]
    except (ValueError, KeyError, TypeError) as error:
        raise ConfigError(f"{path} is damaged ({type(error).__name__}: {error}); export the "
                          "run again") from error
    if not all(checks):
        raise ConfigError(f"{path} holds impossible values (labels, target, window, sliding "
                          "window, cutoff or model name); export the run again")
    return description


def manifest_path(folder: str | Path, description: dict) -> Path:
    """The export's manifest (``<word>.json``, beside ``<word>.tflite``)."""
    return Path(folder) / Path(description["model"]).with_suffix(".json").name


@dataclass
class MicroWindowModel:
    """The float window model of a micro export, over the micro front-end's features."""

    description: dict
    session: object

    @classmethod
    def load(cls, folder: str | Path, threads: int = 1) -> MicroWindowModel:
        return cls.open(read_description(folder), Path(folder) / "window.onnx", threads)

    @classmethod
    def open(cls, description: dict, window: Path, threads: int = 1) -> MicroWindowModel:
        """The window model ``window`` (ONNX) described by ``description``."""
        import onnxruntime

        if not window.is_file():
            raise ConfigError(f"{window.parent}: no {window.name}; export the run again")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = threads
        session = onnxruntime.InferenceSession(str(window), options,
                                               providers=["CPUExecutionProvider"])
        return cls(description, session)

    @property
    def window_frames(self) -> int:
        return int(self.description["window_frames"])

    def scores(self, features: np.ndarray) -> np.ndarray:
        """(windows, window_frames, 40) features -> (windows, classes) probabilities."""
        return self.session.run(None, {"features": np.ascontiguousarray(features,
                                                                        np.float32)})[0]

    def probability(self, features: np.ndarray) -> np.ndarray:
        """The wake word's probability for each window."""
        return self.scores(features)[:, int(self.description["target"])]

    def stream_scores(self, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Scores at every call over a recording at 16 kHz: (times in ms at each call's
        last frame's end, (calls, classes) probabilities)."""
        features = micro.MicroFeatures().push(samples)
        window = self.window_frames
        ends = np.arange(STRIDE, len(features) + 1, STRIDE)
        ends = ends[ends >= window]
        scores = np.zeros((len(ends), len(self.description["labels"])), np.float32)
        for start in range(0, len(ends), _BATCH):
            chunk = ends[start:start + _BATCH]
            index = chunk[:, None] - window + np.arange(window)[None]
            scores[start:start + len(chunk)] = self.scores(features[index])
        times = 1000.0 * (micro.WINDOW_SAMPLES + (ends - 1) * micro.HOP_SAMPLES) / micro.SAMPLE_RATE
        return times, scores

    def smoother(self, cutoff: float | None = None) -> SmootherConfig:
        """The manifest's rule in earmark's smoother: the mean of the last
        ``sliding_window_size`` calls above the cutoff."""
        calls = int(self.description["sliding_window_size"])
        threshold = self.description["probability_cutoff"] if cutoff is None else cutoff
        return SmootherConfig(average_window_ms=calls * STRIDE * 10 - 5,
                              detection_threshold=float(threshold),
                              suppression_ms=SUPPRESSION_MS, minimum_count=calls)

    def detections(self, samples: np.ndarray, cutoff: float | None = None) -> list[Detection]:
        times, scores = self.stream_scores(samples)
        return detect(times, scores, self.description["labels"], self.smoother(cutoff))


@dataclass
class StreamingTFLite:
    """The streaming int8 file in the LiteRT interpreter: its state lives in the graph."""

    model: LiteRTModel

    @classmethod
    def load(cls, path: str | Path) -> StreamingTFLite:
        return cls(LiteRTModel.load(path))

    def __call__(self, frames: np.ndarray) -> float:
        """(3, 40) features -> the wake word's probability after them."""
        return float(self.model(np.asarray(frames, np.float32)).reshape(-1)[0])

    def last_probability(self, features: np.ndarray) -> float:
        """Feed a window's frames, three a call, ending at its last frame; the probability
        after the last call. Zero frames before the first make the count a multiple of
        three; earlier state is flushed once the model's receptive field has been fed."""
        padding = np.zeros(((-len(features)) % STRIDE, micro.CHANNELS), np.float32)
        frames = np.concatenate([padding, np.asarray(features, np.float32)])
        result = 0.0
        for offset in range(0, len(frames), STRIDE):
            result = self(frames[offset:offset + STRIDE])
        return result

    def latency_ms(self, runs: int = 200) -> float:
        """Median milliseconds per call on one thread."""
        return self.model.latency_ms(np.zeros((STRIDE, micro.CHANNELS), np.float32), runs)
