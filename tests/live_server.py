"""A real uvicorn server on a free loopback port, in a background thread, for tests."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request

import uvicorn


class LiveServer:
    """``with LiveServer(app) as server: server.url`` -- stopped on exit."""

    def __init__(self, app, startup_seconds: float = 20.0, **config):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # ``config``: more uvicorn settings, e.g. ``ws_max_size`` as `earmark serve` sets it.
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                ws="websockets-sansio", **config)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._startup_seconds = startup_seconds

    def __enter__(self) -> "LiveServer":
        self._thread.start()
        deadline = time.monotonic() + self._startup_seconds
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def wait_for(self, condition, seconds: float = 10.0) -> bool:
        """Poll ``condition()`` until it holds or ``seconds`` pass; whether it held."""
        deadline = time.monotonic() + seconds
        while not condition():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def get_json(self, path: str) -> dict:
        with urllib.request.urlopen(self.url + path, timeout=10) as response:
            return json.loads(response.read())


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
