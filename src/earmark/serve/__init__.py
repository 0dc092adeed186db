"""``earmark serve``: a bundle behind an HTTP API and a live page (torch-free).

- ``POST /classify``: an audio file in, top labels and per-window results out;
- ``/stream`` (websocket): PCM blocks in, per-stride scores, detections and
  spectrogram columns out (the engine of ``earmark listen``);
- ``GET /model``, ``GET /health``; the page at ``/`` (microphone, waveform,
  spectrogram, scores, detections, file drop).
"""

from earmark.serve.app import create_app
from earmark.serve.limits import ServeLimits

__all__ = ["ServeLimits", "create_app"]
