"""The ASGI application: the live page, ``/classify``, ``/stream``, ``/model``, ``/health``.

    >>> app = create_app("bundles/keywords")          # then: uvicorn.run(app)

Everything CPU-heavy (decoding, the network) runs in worker threads, so one
slow upload never stalls the streams; every refusal is a 4xx with a JSON
body ``{"error": "..."}`` (or a websocket error message and close code).
"""

from __future__ import annotations

import asyncio
import contextlib
import base64
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from earmark.runtime.bundle import Bundle, load_bundle
from earmark.runtime.classify import Classifier, ClipResult
from earmark.runtime.results import to_records
from earmark.runtime.smoother import SmootherConfig
from earmark.frontend.spectrogram import SpectrogramSettings, file_spectrogram
from earmark.runtime.stream import StreamGraphs
from earmark.serve.limits import ServeLimits
from earmark.serve.streaming import (CLOSE_INTERNAL, CLOSE_NORMAL, CLOSE_TRY_LATER,
                                     ProtocolError, StreamSession, stream_parameters)
from earmark.serve.uploads import UploadError, decode_upload, save_upload, too_large

STATIC = Path(__file__).parent / "static"
log = logging.getLogger("earmark.serve")


class ServerState:
    """What every request shares: the bundle, its graphs, limits, counters."""

    def __init__(self, bundle: Bundle, limits: ServeLimits, smoother: SmootherConfig,
                 stride_ms: float):
        self.bundle = bundle
        self.limits = limits
        self.smoother = smoother
        self.stride_ms = stride_ms
        self.classifier = Classifier(bundle)
        self.graphs = StreamGraphs(bundle) if StreamGraphs.available(bundle) else None
        self.classify_slots = asyncio.Semaphore(limits.classify_workers)
        # Stream blocks are short (about a millisecond): a few long-lived threads take them
        # in turn, which costs far less than handing each to a fresh pool thread.
        self.stream_workers = ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 2),
                                                 thread_name_prefix="earmark-stream")
        self.started = time.monotonic()
        self.streams_open = 0
        self.streams_served = 0
        self.uploads_classified = 0
        self.uploads_waiting = 0


def create_app(bundle: str | os.PathLike | Bundle, limits: ServeLimits | None = None,
               smoother: SmootherConfig | None = None, stride_ms: float = 20.0) -> FastAPI:
    """The server for one bundle (a folder written by ``earmark export``)."""
    bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle, threads=1)
    state = ServerState(bundle, limits or ServeLimits(), smoother or SmootherConfig(),
                        stride_ms)
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        state.stream_workers.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="earmark", summary=f"audio classifier {bundle.path.name}",
                  version=bundle.metadata.earmark_version or "0", lifespan=lifespan)
    app.state.earmark = state
    _add_error_handlers(app)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    _add_routes(app, state)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(UploadError)
    async def upload_error(request: Request, error: UploadError):
        return JSONResponse({"error": error.message}, status_code=error.status)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException):
        return JSONResponse({"error": str(error.detail)}, status_code=error.status_code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError):
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                             for e in error.errors())
        return JSONResponse({"error": problems}, status_code=422)


def _add_routes(app: FastAPI, state: ServerState) -> None:
    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC / "index.html")

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", "uptime_s": round(time.monotonic() - state.started, 1),
                "streams_open": state.streams_open, "streams_served": state.streams_served,
                "uploads_classified": state.uploads_classified}

    @app.get("/model")
    async def model() -> dict:
        return model_description(state)

    @app.post("/classify")
    async def classify(request: Request, spectrogram: bool = False, windows: bool = True,
                       top: int | None = None) -> dict:
        """An audio file (multipart field ``file``, or the raw body) -> labels and windows."""
        top = min(5, len(state.bundle.labels)) if top is None else top
        if not 1 <= top <= len(state.bundle.labels):
            raise UploadError(422, f"top={top}: give 1..{len(state.bundle.labels)}")
        if state.uploads_waiting >= state.limits.uploads_in_flight:
            raise UploadError(503, f"the server is busy with {state.uploads_waiting} uploads; "
                              "try again in a moment")
        state.uploads_waiting += 1
        try:
            path, name = await _receive_upload(request, state.limits)
            try:
                async with state.classify_slots:
                    record = await run_in_threadpool(_classify_saved, state, path, name,
                                                     spectrogram, windows, top)
            finally:
                path.unlink(missing_ok=True)
        finally:
            state.uploads_waiting -= 1
        state.uploads_classified += 1
        return record

    @app.websocket("/stream")
    async def stream(websocket: WebSocket):
        await _serve_stream(websocket, state)


def model_description(state: ServerState) -> dict:
    """``GET /model``: what the model expects and how well it did."""
    bundle, metadata = state.bundle, state.bundle.metadata
    return {"name": bundle.path.name, "labels": bundle.labels,
            "sample_rate": bundle.sample_rate,
            "window_seconds": bundle.window_samples / bundle.sample_rate,
            "hop_seconds": bundle.window_hop_samples / bundle.sample_rate,
            "aggregate": metadata.aggregate,
            "quantization": metadata.quantization,
            "parameters": metadata.parameters,
            "features": {key: metadata.features.get(key) for key in ("kind", "n_mels", "n_mfcc",
                                                                     "window_ms", "hop_ms")},
            "metrics": metadata.metrics,
            "stream": {"incremental": state.graphs is not None, "stride_ms": state.stride_ms,
                       "smoother": asdict(state.smoother)},
            "limits": asdict(state.limits)}


async def _receive_upload(request: Request, limits: ServeLimits) -> tuple[Path, str]:
    """Save the upload (multipart field ``file``, or the raw body) to a temporary file.

    Multipart bodies are parsed whole before a handler sees them, so they must
    declare their length, and a length over the limit is refused before reading.
    """
    declared = request.headers.get("content-length")
    if declared is not None and int(declared) > limits.max_upload_bytes + 65536:
        raise UploadError(413, too_large("upload", limits))
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        name = request.query_params.get("name", "upload")
        return await save_upload(request.stream(), name, limits), name
    if declared is None:
        raise UploadError(411, "a multipart upload needs a Content-Length header "
                          "(or send the file as the raw body)")
    async with request.form(max_files=1, max_fields=8) as form:
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise UploadError(400, "multipart upload without a file field named 'file'; "
                              "send it as: curl -F file=@clip.wav .../classify")
        name = upload.filename or "upload"
        return await save_upload(_read_upload(upload), name, limits), name


async def _read_upload(upload):
    while chunk := await upload.read(1 << 20):
        yield chunk


def _classify_saved(state: ServerState, path: Path, name: str, spectrogram: bool,
                    windows: bool, top: int) -> dict:
    samples = decode_upload(path, name, state.bundle.sample_rate, state.limits)
    result: ClipResult = state.classifier.classify_array(samples, state.bundle.sample_rate,
                                                         source=name)
    record = to_records([result], top, per_window=windows)[0]
    if windows:
        for window in record["windows"]:
            window["end"] = round(window["start"] + result.window_seconds, 4)
    if spectrogram:
        levels, per_second = file_spectrogram(
            samples, state.bundle.sample_rate,
            SpectrogramSettings(fmax=state.bundle.sample_rate / 2))
        record["spectrogram"] = {"n_mels": levels.shape[1], "columns": len(levels),
                                 "frames_per_second": per_second,
                                 "data": base64.b64encode(levels.tobytes()).decode("ascii")}
    return record


async def _serve_stream(websocket: WebSocket, state: ServerState) -> None:
    await websocket.accept()
    if state.streams_open >= state.limits.max_streams:
        await _refuse(websocket, CLOSE_TRY_LATER, f"the server already holds "
                      f"{state.limits.max_streams} streams; try again later")
        return
    state.streams_open += 1
    try:
        rate, sample_format = stream_parameters(dict(websocket.query_params),
                                                state.bundle.sample_rate)
        session = await run_in_threadpool(
            StreamSession, state.bundle, state.graphs, state.smoother, state.stride_ms, rate,
            sample_format, state.limits)
        await websocket.send_json(session.ready())
        await _stream_messages(websocket, session, state.limits.idle_seconds,
                               state.stream_workers)
    except ProtocolError as error:
        await _refuse(websocket, error.code, error.message)
    except WebSocketDisconnect:
        pass                      # the client went away (possibly mid-block): nothing to keep
    except Exception as error:   # a bug of ours: this stream ends, the server goes on
        log.exception("stream failed")
        await _refuse(websocket, CLOSE_INTERNAL, f"internal error ({type(error).__name__}); "
                      "the stream is closed, the server goes on")
    finally:
        state.streams_open -= 1
        state.streams_served += 1


async def _stream_messages(websocket: WebSocket, session: StreamSession,
                           idle_seconds: float, workers: ThreadPoolExecutor) -> None:
    while True:
        try:
            message = await asyncio.wait_for(websocket.receive(), idle_seconds)
        except asyncio.TimeoutError:
            raise ProtocolError(CLOSE_NORMAL, f"no audio for {idle_seconds:g} s; "
                                "closing the stream") from None
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1006))
        if message.get("bytes") is not None:
            result = await asyncio.get_running_loop().run_in_executor(
                workers, session.on_block, message["bytes"])
            await websocket.send_json(result)
        elif message.get("text") is not None:
            end = await run_in_threadpool(session.on_text, message["text"])
            await websocket.send_json(end)
            await websocket.close(CLOSE_NORMAL)
            return


async def _refuse(websocket: WebSocket, code: int, message: str) -> None:
    """Tell the client why, then close with ``code``; a client already gone is fine."""
    try:
        await websocket.send_json({"type": "error", "error": message})
        # A close reason is at most 123 bytes of UTF-8.
        await websocket.close(code, reason=message.encode()[:120].decode(errors="ignore"))
    except Exception:            # the client is gone already: nothing to tell
        pass
