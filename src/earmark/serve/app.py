"""The ASGI application: the live page, ``/classify``, ``/hear``, ``/stream``, ``/model``,
``/health``.

    >>> app = create_app("bundles/keywords")          # then: uvicorn.run(app)

Everything CPU-heavy (decoding, the network) runs in worker threads, so one
slow upload never stalls the streams; every refusal is a 4xx with a JSON
body ``{"error": "..."}`` (or a websocket error message and close code).
"""

from __future__ import annotations

import asyncio
import contextlib
import base64
import io
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from earmark.errors import ConfigError
from earmark.frontend.inversion import hear
from earmark.input_limits import check_stride_ms
from earmark.runtime.bundle import Bundle, load_bundle
from earmark.runtime.classify import Classifier, ClipResult
from earmark.runtime.hear import front_end_of
from earmark.runtime.results import to_records
from earmark.runtime.smoother import SmootherConfig
from earmark.frontend.spectrogram import SpectrogramSettings, file_spectrogram
from earmark.runtime.stream import StreamGraphs
from earmark.serve.limits import ServeLimits
from earmark.serve.streaming import (CLOSE_INTERNAL, CLOSE_NORMAL, CLOSE_TOO_BIG,
                                     CLOSE_TRY_LATER, ProtocolError, StreamSession,
                                     stream_parameters)
from earmark.serve.uploads import (CLOSE, UploadError, decode_upload, save_upload, timed_receive,
                                   too_large)

STATIC = Path(__file__).parent / "static"
#: ``POST /hear`` turns back into sound at most this many seconds (the end of the upload).
HEAR_SECONDS = 10.0
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
        self.uploads_receiving = 0      # bodies arriving (each under the body deadlines)
        self.uploads_waiting = 0        # received, waiting for or in a classify slot


def create_app(bundle: str | os.PathLike | Bundle, limits: ServeLimits | None = None,
               smoother: SmootherConfig | None = None, stride_ms: float = 20.0) -> FastAPI:
    """The server for one bundle (a folder written by ``earmark export``)."""
    stride_ms = check_stride_ms(stride_ms, "create_app stride_ms")
    bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle, threads=1)
    state = ServerState(bundle, limits or ServeLimits(), smoother or SmootherConfig(),
                        stride_ms)
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        state.stream_workers.shutdown(wait=False, cancel_futures=True)

    # No /docs or /redoc: FastAPI's pages load their scripts from a CDN, and the server must
    # work offline; /openapi.json (plain JSON) describes the API.
    app = FastAPI(title="earmark", summary=f"audio classifier {bundle.path.name}",
                  version=bundle.metadata.earmark_version or "0", lifespan=lifespan,
                  docs_url=None, redoc_url=None)
    app.state.earmark = state
    _add_error_handlers(app)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    _add_routes(app, state)
    return app


def error_response(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    """``{"error": message}`` with ``status``; a 503 always says when to retry."""
    headers = dict(headers or {})
    if status == 503:
        headers.setdefault("Retry-After", "1")
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(UploadError)
    async def upload_error(request: Request, error: UploadError):
        return error_response(error.status, error.message, error.headers)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException):
        return error_response(error.status_code, str(error.detail), error.headers)

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
                "uploads_classified": state.uploads_classified,
                "uploads_receiving": state.uploads_receiving,
                "uploads_waiting": state.uploads_waiting}

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
        path, name = await _receive_counted(request, state)
        try:
            record = await _classify_queued(state, path, name, spectrogram, windows, top)
        finally:
            path.unlink(missing_ok=True)
        state.uploads_classified += 1
        return record

    @app.post("/hear")
    async def hear_upload(request: Request) -> Response:
        """An audio file (as ``/classify`` takes it) -> the model's features of its last
        seconds turned back into sound: a WAV at the model's rate (Griffin-Lim)."""
        path, name = await _receive_counted(request, state)
        try:
            wav, convergence = await _queued(state, _hear_saved, state, path, name)
        finally:
            path.unlink(missing_ok=True)
        return Response(wav, media_type="audio/wav",
                        headers={"X-Spectral-Convergence": f"{convergence:.4f}"})

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


def _busy(state: ServerState) -> UploadError | None:
    """The 503 for an upload that finds every slot taken, or None when there is room."""
    limits = state.limits
    if state.uploads_waiting >= limits.uploads_in_flight:
        return UploadError(503, f"the server is busy with {state.uploads_waiting} uploads; "
                           "try again in a moment", CLOSE)
    if state.uploads_receiving >= limits.uploads_receiving:
        retry = limits.busy_retry_seconds
        return UploadError(503, f"the server is already receiving {state.uploads_receiving} "
                           f"uploads; try again in {retry} s",
                           {**CLOSE, "Retry-After": str(retry)})
    return None


async def _receive_counted(request: Request, state: ServerState) -> tuple[Path, str]:
    """Receive the upload in a receiving slot, under the body deadlines (408 past them).

    A stalled body holds its slot for at most ``body_stall_seconds``; the
    slots that judge uploads are taken only once a body has arrived whole.
    """
    if (busy := _busy(state)) is not None:
        raise busy
    who = f"POST /classify from {request.client.host if request.client else 'a client'}"
    state.uploads_receiving += 1
    try:
        timed = Request(request.scope, timed_receive(request.receive, state.limits))
        return await _receive_upload(timed, state.limits)
    except ClientDisconnect:
        log.info("%s: the client went away during its upload", who)
        raise UploadError(400, "the client went away during its upload") from None
    except UploadError as error:
        if error.status == 408:
            log.info("%s: %s", who, error.message)
        raise
    finally:
        state.uploads_receiving -= 1


async def _classify_queued(state: ServerState, path: Path, name: str, spectrogram: bool,
                           windows: bool, top: int) -> dict:
    """Judge a received upload once a classify slot is free (503 when too many wait)."""
    return await _queued(state, _classify_saved, state, path, name, spectrogram, windows, top)


async def _queued(state: ServerState, work, *args):
    """``work(*args)`` in a worker thread once a classify slot is free (503 when too many
    wait)."""
    if state.uploads_waiting >= state.limits.uploads_in_flight:
        raise _busy(state)
    state.uploads_waiting += 1
    try:
        async with state.classify_slots:
            return await run_in_threadpool(work, *args)
    finally:
        state.uploads_waiting -= 1


async def _receive_upload(request: Request, limits: ServeLimits) -> tuple[Path, str]:
    """Save the upload (multipart field ``file``, or the raw body) to a temporary file.

    Multipart bodies are parsed whole before a handler sees them, so they must
    declare their length, and a length over the limit is refused before reading.
    """
    declared = request.headers.get("content-length")
    if declared is not None and int(declared) > limits.max_upload_bytes + 65536:
        raise UploadError(413, too_large("upload", limits), CLOSE)
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
    # decode_upload gives checked float32 mono at the model's rate: judged as it is.
    result: ClipResult = state.classifier.classify_blocks([samples], name)
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


def _hear_saved(state: ServerState, path: Path, name: str) -> tuple[bytes, float]:
    """The last :data:`HEAR_SECONDS` of a received upload as the model hears them: 16-bit
    WAV bytes, and the spectral convergence against the upload."""
    import soundfile

    rate = state.bundle.sample_rate
    samples = decode_upload(path, name, rate, state.limits)[-int(HEAR_SECONDS * rate):]
    try:
        hearing = hear(samples, rate, front_end_of(state.bundle.metadata))
    except ConfigError as error:
        raise UploadError(422, f"{name}: {error}") from None
    buffer = io.BytesIO()
    soundfile.write(buffer, hearing.audio, rate, subtype="PCM_16", format="WAV")
    return buffer.getvalue(), hearing.spectral_convergence


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
    except WebSocketDisconnect as gone:
        # The client went away (possibly mid-block): nothing to keep. 1009: the websocket
        # server refused a message over its ws_max_size, telling the client so itself.
        if gone.code == CLOSE_TOO_BIG:
            log.warning("stream closed (1009): %s", gone.reason or "a message over the limit")
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
            raise WebSocketDisconnect(message.get("code", 1006), message.get("reason"))
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
