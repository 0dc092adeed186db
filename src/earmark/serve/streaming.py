"""One websocket stream: PCM blocks in; scores, detections and spectrogram columns out.

The protocol (JSON text from the server, binary PCM from the client):

1. the client opens ``/stream?rate=48000&format=f32le`` (formats ``s16le``,
   ``s32le``, ``f32le``; mono, little-endian);
2. the server answers ``{"type": "ready", "labels": [...], ...}``;
3. each binary message is a block of whole samples; the server answers each
   with ``{"type": "result", "block", "audio_s", "latency_ms", "strides":
   [{"time", "scores"}], "detections": [{"time", "label", "score"}],
   "columns", "spectrogram"}`` (``columns`` x ``n_mels`` uint8 levels,
   base64, one column after another, low to high frequency);
4. the text ``{"type": "stop"}`` flushes the stream: ``{"type": "end", ...}``,
   then the server closes.

A bad message gets ``{"type": "error", "error": ...}`` and the stream is
closed with a websocket code that says why (:class:`ProtocolError`). A block
over the stream's ``max_block_bytes`` is closed with 1009 and a reason; a
message over :func:`websocket_max_size` never reaches the application: the
websocket server (uvicorn, ``ws_max_size``) refuses it from its header with
1009 and a reason of its own, so no client makes the server hold more.

The engine is the one ``earmark listen`` runs (:class:`StreamEngine`).
"""

from __future__ import annotations

import base64
import json
import time

import numpy as np
import soxr

from earmark.errors import ConfigError, EarmarkError
from earmark.input_limits import MAX_SAMPLE_RATE, check_sample_rate
from earmark.runtime.bundle import Bundle
from earmark.runtime.smoother import SmootherConfig
from earmark.runtime.sources import decode_pcm, pcm_dtype
from earmark.frontend.spectrogram import LiveSpectrogram, SpectrogramSettings
from earmark.runtime.stream import StreamEngine, StreamGraphs, StrideResult
from earmark.serve.limits import ServeLimits

#: Websocket close codes (RFC 6455) the server uses.
CLOSE_NORMAL = 1000
CLOSE_UNSUPPORTED = 1003       # the data is not what was agreed
CLOSE_POLICY = 1008            # a message breaks the protocol
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL = 1011          # a bug of ours: this stream ends, the server goes on
CLOSE_TRY_LATER = 1013         # too many streams

_FORMAT_ALIASES = {"f32": "f32le", "s16": "s16le", "s32": "s32le"}
#: Float samples beyond this are not audio in [-1, 1] but a wrong format.
MAX_FLOAT_LEVEL = 8.0


def websocket_max_size(limits: ServeLimits) -> int:
    """The largest websocket message a server with ``limits`` takes, in bytes.

    Twice the largest block any stream may send (float32 at the highest rate
    :mod:`earmark.input_limits` accepts), so a block a little too big still
    reaches its stream and is refused with the stream's own words; give it to
    uvicorn as ``ws_max_size``, which refuses anything bigger (1009) before
    holding it.
    """
    return 2 * limits.max_block_bytes(MAX_SAMPLE_RATE, np.dtype(np.float32).itemsize)


class ProtocolError(Exception):
    """A message the stream cannot take; ``code`` is the websocket close code."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def stream_parameters(query: dict[str, str], model_rate: int) -> tuple[int, str]:
    """``rate`` and ``format`` from the query string, checked (the rate by
    :func:`earmark.input_limits.check_sample_rate`); a :class:`ProtocolError` (1008) if not."""
    unknown = sorted(set(query) - {"rate", "format"})
    if unknown:
        raise ProtocolError(CLOSE_POLICY, f"unknown query parameter(s) {unknown}; "
                            "use rate=<Hz> and format=s16le|s32le|f32le")
    try:
        rate = (check_sample_rate(query["rate"], "the rate query parameter")
                if "rate" in query else model_rate)
    except ConfigError as error:
        raise ProtocolError(CLOSE_POLICY, f"{error} (/stream?rate=<Hz>)") from None
    sample_format = query.get("format", "f32le")
    sample_format = _FORMAT_ALIASES.get(sample_format, sample_format)
    try:
        pcm_dtype(sample_format)
    except EarmarkError as error:
        raise ProtocolError(CLOSE_POLICY, str(error)) from None
    return rate, sample_format


class StreamSession:
    """The state of one websocket stream; the caller moves the messages."""

    def __init__(self, bundle: Bundle, graphs: StreamGraphs | None, smoother: SmootherConfig,
                 stride_ms: float, input_rate: int, sample_format: str, limits: ServeLimits,
                 spectrogram: SpectrogramSettings | None = None):
        self.bundle = bundle
        self.input_rate = input_rate
        self.sample_format = sample_format
        self.dtype = pcm_dtype(sample_format)
        self.max_block_bytes = limits.max_block_bytes(input_rate, self.dtype.itemsize)
        # Resampled once here: the engine and the picture both take the model's rate,
        # so the picture shows what the model hears (and costs a quarter of 48 kHz's).
        self._resampler = (soxr.ResampleStream(input_rate, bundle.sample_rate, 1,
                                               dtype="float32")
                           if input_rate != bundle.sample_rate else None)
        self.engine = StreamEngine(bundle, stride_ms=stride_ms, smoother=smoother,
                                   graphs=graphs)
        self.smoother = smoother
        self.spectrogram = LiveSpectrogram(bundle.sample_rate, spectrogram)
        self.blocks = 0
        self.samples = 0
        self.detections = 0

    def ready(self) -> dict:
        settings = self.spectrogram.settings
        return {"type": "ready", "labels": self.bundle.labels,
                "model_rate": self.bundle.sample_rate, "input_rate": self.input_rate,
                "format": self.sample_format, "stride_ms": self.engine.stride_ms,
                "threshold": self.smoother.detection_threshold,
                "max_block_bytes": self.max_block_bytes,
                "spectrogram": {"n_mels": settings.n_mels,
                                "frames_per_second": settings.frames_per_second}}

    def on_block(self, data: bytes) -> dict:
        """Run one PCM block through the engine; the result message."""
        started = time.perf_counter()
        block = self._decode(data)
        self.blocks += 1
        self.samples += len(block)
        if self._resampler is not None:
            block = self._resampler.resample_chunk(block)
        strides = self.engine.process(block)
        columns = self.spectrogram.push(block)
        return self._result(strides, columns, started)

    def on_text(self, text: str) -> dict:
        """A control message: only ``{"type": "stop"}`` is known; the end message."""
        try:
            message = json.loads(text)
        except json.JSONDecodeError:
            message = None
        if not isinstance(message, dict) or message.get("type") != "stop":
            raise ProtocolError(CLOSE_POLICY, f"unknown text message {text[:80]!r}; send "
                                "binary PCM blocks, and {\"type\": \"stop\"} to end")
        return self.finish()

    def finish(self) -> dict:
        strides = []
        if self._resampler is not None:
            tail = self._resampler.resample_chunk(np.zeros(0, np.float32), last=True)
            strides = self.engine.process(tail)
        detections = self._detections(strides)
        return {"type": "end", "blocks": self.blocks,
                "audio_s": round(self.samples / self.input_rate, 3),
                "detections": detections, "total_detections": self.detections}

    def _decode(self, data: bytes) -> np.ndarray:
        if len(data) > self.max_block_bytes:
            raise ProtocolError(CLOSE_TOO_BIG, f"block of {len(data)} bytes is larger than "
                                f"{self.max_block_bytes} (send blocks of at most "
                                f"{self.max_block_bytes // self.dtype.itemsize} samples)")
        if len(data) % self.dtype.itemsize:
            raise ProtocolError(CLOSE_UNSUPPORTED, f"block of {len(data)} bytes is not a whole "
                                f"number of {self.sample_format} samples "
                                f"({self.dtype.itemsize} bytes each); is the format right?")
        try:
            block = decode_pcm(data, self.dtype, 1, f"block {self.blocks}")
        except EarmarkError as error:
            raise ProtocolError(CLOSE_UNSUPPORTED, str(error)) from None
        if block.size and np.abs(block).max() > MAX_FLOAT_LEVEL:
            raise ProtocolError(CLOSE_UNSUPPORTED, f"block {self.blocks}: samples up to "
                                f"{np.abs(block).max():.3g}, but float PCM is in [-1, 1]; "
                                "is the format right (s16le for 16-bit integers)?")
        return block

    def _result(self, strides: list[StrideResult], columns: np.ndarray,
                started: float) -> dict:
        return {"type": "result", "block": self.blocks - 1,
                "audio_s": round(self.samples / self.input_rate, 4),
                "strides": [{"time": round(stride.time_ms / 1000, 4),
                             "scores": np.round(stride.scores.astype(float), 4).tolist()}
                            for stride in strides],
                "detections": self._detections(strides),
                "columns": len(columns),
                "spectrogram": base64.b64encode(columns.tobytes()).decode("ascii"),
                "latency_ms": round(1000 * (time.perf_counter() - started), 3)}

    def _detections(self, strides: list[StrideResult]) -> list[dict]:
        found = [{"time": round(s.detection.time_ms / 1000, 3), "label": s.detection.label,
                  "score": round(float(s.detection.score), 4)}
                 for s in strides if s.detection is not None]
        self.detections += len(found)
        return found
