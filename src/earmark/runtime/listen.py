"""``earmark listen``: each command as it is recognised, a summary at the end.

The library hands each detection to a callback and returns a summary; the
command line prints them (:mod:`earmark.cli.streaming`).

    >>> engine = StreamEngine(bundle, input_rate=source.sample_rate)
    >>> summary = listen(engine, source, lambda d: print(format_detection(d)))
    >>> print(summary.to_text())
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

from earmark.runtime.smoother import Detection
from earmark.runtime.sources import AudioSource
from earmark.runtime.stream import StreamEngine


@dataclass
class ListenSummary:
    """What a listening session heard."""

    audio_seconds: float                       #: audio processed, at the model's rate
    wall_seconds: float                        #: time it took
    counts: Counter = field(default_factory=Counter)   #: detections per label

    def to_text(self) -> str:
        """One line: audio heard, time taken, the commands per label."""
        summary = ", ".join(f"{label} x{n}" for label, n in self.counts.most_common()) or "none"
        return (f"heard {self.audio_seconds:.1f} s of audio in {self.wall_seconds:.1f} s; "
                f"{sum(self.counts.values())} command(s): {summary}")


def listening_banner(engine: StreamEngine, source: AudioSource) -> str:
    """The line shown when listening starts: rates, stride and threshold."""
    return (f"listening ({engine.rate} Hz model, input {source.sample_rate} Hz, "
            f"stride {engine.stride_ms:.0f} ms, threshold "
            f"{engine.smoother.config.detection_threshold}); Ctrl-C to stop")


def format_detection(detection: Detection, as_json: bool = False) -> str:
    """A detection as one line of text, or as a JSON object (time in s, label, score)."""
    if as_json:
        return json.dumps({"time": round(detection.time_ms / 1000, 3), "label": detection.label,
                           "score": round(float(detection.score), 4)})
    return f"{detection.time_ms / 1000:9.2f} s  {detection.label:<12} {detection.score:.2f}"


def listen(engine: StreamEngine, source: AudioSource,
           on_detection: Callable[[Detection], None] | None = None) -> ListenSummary:
    """Run ``engine`` over ``source`` until it ends or Ctrl-C.

    Parameters
    ----------
    engine : StreamEngine
        Built for the source's rate (``input_rate=source.sample_rate``).
    source : AudioSource
        Microphone, file or PCM stream.
    on_detection : callable, optional
        Called with each :class:`~earmark.runtime.smoother.Detection` as it fires.

    Returns
    -------
    ListenSummary
        Audio heard, time taken and the detections per label.
    """
    counts: Counter = Counter()
    started = time.monotonic()
    try:
        for result in engine.run(source):
            if result.detection is None:
                continue
            counts[result.detection.label] += 1
            if on_detection is not None:
                on_detection(result.detection)
    except KeyboardInterrupt:
        pass
    return ListenSummary(engine.samples_seen / engine.rate, time.monotonic() - started, counts)
