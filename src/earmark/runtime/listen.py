"""``earmark listen``: print each command as it is recognised, a summary at the end."""

from __future__ import annotations

import json
import sys
import time
from collections import Counter

from earmark.runtime.bundle import Bundle
from earmark.runtime.smoother import SmootherConfig
from earmark.runtime.sources import AudioSource
from earmark.runtime.stream import StreamEngine


def listen(bundle: Bundle, source: AudioSource, smoother: SmootherConfig,
           stride_ms: float = 20.0, as_json: bool = False, out=None) -> int:
    """Run the stream engine over ``source`` until it ends or Ctrl-C; return an exit code."""
    out = out or sys.stdout
    engine = StreamEngine(bundle, stride_ms=stride_ms, input_rate=source.sample_rate,
                          smoother=smoother)
    counts: Counter = Counter()
    started = time.monotonic()
    if not as_json:
        print(f"listening ({bundle.sample_rate} Hz model, input {source.sample_rate} Hz, "
              f"stride {engine.stride_ms:.0f} ms, threshold {smoother.detection_threshold}); "
              "Ctrl-C to stop", file=sys.stderr)
    try:
        for result in engine.run(source):
            if result.detection is None:
                continue
            detection = result.detection
            counts[detection.label] += 1
            if as_json:
                print(json.dumps({"time": round(detection.time_ms / 1000, 3),
                                  "label": detection.label,
                                  "score": round(float(detection.score), 4)}), file=out,
                      flush=True)
            else:
                print(f"{detection.time_ms / 1000:9.2f} s  {detection.label:<12} "
                      f"{detection.score:.2f}", file=out, flush=True)
    except KeyboardInterrupt:
        pass
    audio_seconds = engine.samples_seen / bundle.sample_rate
    summary = ", ".join(f"{label} x{n}" for label, n in counts.most_common()) or "none"
    print(f"heard {audio_seconds:.1f} s of audio in {time.monotonic() - started:.1f} s; "
          f"{sum(counts.values())} command(s): {summary}", file=sys.stderr)
    return 0
