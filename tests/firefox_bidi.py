"""Headless Firefox driven over WebDriver BiDi, which Firefox speaks natively.

No geckodriver and no Playwright build of Firefox are needed (neither installs
offline): Firefox is started with ``--remote-debugging-port`` and a fresh
profile whose prefs give a fake microphone without a permission prompt, and
this client sends BiDi commands over a websocket.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from websockets.sync.client import connect

FIREFOX = shutil.which("firefox-esr") or shutil.which("firefox")

PREFS = {
    "media.navigator.streams.fake": True,          # a generated tone as the microphone
    "media.navigator.permission.disabled": True,
    "media.autoplay.default": 0,
    "media.autoplay.block-webaudio": False,
    "browser.shell.checkDefaultBrowser": False,
    "app.update.enabled": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "toolkit.telemetry.enabled": False,
    "network.captive-portal-service.enabled": False,
    "browser.startup.homepage_override.mstone": "ignore",
}


class BidiError(RuntimeError):
    """Firefox answered a command with an error."""


class Firefox:
    """``with Firefox() as firefox: firefox.navigate(url); firefox.evaluate("1 + 1")``."""

    def __init__(self, startup_seconds: float = 60.0):
        self.profile = Path(tempfile.mkdtemp(prefix="earmark-firefox-"))
        (self.profile / "user.js").write_text("".join(
            f"user_pref({json.dumps(k)}, {json.dumps(v)});\n" for k, v in PREFS.items()))
        # Firefox's messages go to a file (a pipe nobody reads would fill and stall it).
        self.log = self.profile / "firefox.log"
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(
                [FIREFOX, "--headless", "--no-remote", "--profile", str(self.profile),
                 "--remote-debugging-port=0", "about:blank"],
                stdout=subprocess.DEVNULL, stderr=log)
        try:
            self._socket = connect(self._bidi_url(startup_seconds) + "/session",
                                   max_size=2 ** 26, legacy=True)
            self._ids = itertools.count(1)
            self.command("session.new", {"capabilities": {}})
            tree = self.command("browsingContext.getTree", {})
            self.context = tree["contexts"][0]["context"]
        except BaseException:
            self.close()
            raise

    def _bidi_url(self, seconds: float) -> str:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and self.process.poll() is None:
            found = re.search(r"WebDriver BiDi listening on (ws://\S+)", self.log.read_text())
            if found:
                return found.group(1)
            time.sleep(0.1)
        raise RuntimeError("Firefox did not open its WebDriver BiDi port; it said:\n"
                           + self.log.read_text()[-1000:])

    def __enter__(self) -> "Firefox":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if getattr(self, "_socket", None) is not None:
            self._socket.close()
            self._socket = None
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        shutil.rmtree(self.profile, ignore_errors=True)

    def command(self, method: str, params: dict) -> dict:
        """Send one command; return its result (events in between are skipped)."""
        ident = next(self._ids)
        self._socket.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(self._socket.recv(timeout=60))
            if message.get("id") != ident:
                continue
            if message.get("type") == "error":
                raise BidiError(f"{method}: {message.get('error')}: {message.get('message')}")
            return message["result"]

    def navigate(self, url: str) -> None:
        self.command("browsingContext.navigate",
                     {"context": self.context, "url": url, "wait": "complete"})

    def evaluate(self, expression: str, user_gesture: bool = False):
        """The JSON value of a page expression (promises awaited)."""
        result = self.command("script.evaluate", {
            "expression": f"(async () => JSON.stringify(await ({expression})))()",
            "target": {"context": self.context}, "awaitPromise": True,
            "userActivation": user_gesture})
        if result["type"] == "exception":
            raise BidiError(result["exceptionDetails"]["text"])
        value = result["result"].get("value")
        return None if value is None else json.loads(value)

    def wait_for(self, expression: str, seconds: float = 30.0) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.evaluate(expression):
                return True
            time.sleep(0.2)
        return False

    def screenshot(self, path: Path) -> None:
        data = self.command("browsingContext.captureScreenshot",
                            {"context": self.context, "origin": "document"})["data"]
        path.write_bytes(base64.b64decode(data))
