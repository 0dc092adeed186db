"""The live page end to end in real headless browsers, spoken keywords as the microphone.

A small keyword model is trained on synthesized speech ("yes", "no",
unknown words, silence). In Chromium, the fake microphone plays a WAV of a
voice saying "yes" in a loop; the page must draw the spectrogram and log
the detection, and classify a file given to its file input. In Firefox
(driven over WebDriver BiDi), the page must load the model and classify a
file dropped on the drop zone; its live microphone is not tested there,
because headless Firefox without a sound server never starts Web Audio.
Screenshots are saved (to ``$EARMARK_ARTIFACTS`` when set).

Skipped when a browser is not installed, unless ``EARMARK_REQUIRE_BROWSER=1``
(set by ``.ci/run``), which turns the skip into a failure.
"""

from __future__ import annotations

import base64
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("espeakng_loader")
pytest.importorskip("fastapi")

from firefox_bidi import FIREFOX, Firefox  # noqa: E402
from live_server import LiveServer  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
REQUIRED = os.environ.get("EARMARK_REQUIRE_BROWSER") == "1"
pytest.importorskip("playwright")

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _needs(browser: str | None, name: str):
    if browser is None and REQUIRED:
        raise RuntimeError(f"EARMARK_REQUIRE_BROWSER=1 but no {name} on PATH: "
                           "run tools/install-browser")
    return pytest.mark.skipif(browser is None, reason=f"needs {name} (tools/install-browser)")

CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
]


@pytest.fixture(scope="module")
def spoken_keywords(tmp_path_factory) -> tuple[Path, Path]:
    """(bundle, fake microphone WAV): a yes/no model and a loop of "yes"."""
    from earmark import audio
    from earmark.config import from_dict
    from earmark.data.synth_keywords import KeywordSynthesis, synthesize_keywords
    from earmark.export import export_run
    from earmark.train import train

    base = tmp_path_factory.mktemp("spoken")
    manifest = synthesize_keywords(KeywordSynthesis(words=["yes", "no"], takes_per_word=100,
                                                    unknown_words=["house", "bird", "tree",
                                                                   "marvin", "wow"]),
                                   base / "data", progress=False)
    # Synthesized takes are digitally silent around the word, and a microphone
    # never is: without a noise floor in training, a model hears any floor as
    # _silence_ (a faint 0.003 white noise turned this "yes" into silence).
    floor = np.random.default_rng(1).standard_normal(10 * 16000).astype(np.float32)
    audio.write(base / "noise" / "white.flac", 0.3 * floor / np.abs(floor).max(), 16000)
    config = from_dict({
        "data": {"csv": str(base / "data" / "manifest.csv"), "split": "group",
                 "ratios": [0.8, 0.1, 0.1], "sample_rate": 16000, "clip_seconds": 1.0,
                 "cache_dir": str(base / "cache")},
        "features": {"kind": "logmel", "window_ms": 30.0, "hop_ms": 20.0, "n_mels": 40},
        "model": {"name": "dscnn", "channels": 64, "blocks": 3},
        "augment": {"shift_ms": 100.0, "gain_db": [-6.0, 6.0],
                    "noise_dir": str(base / "noise"), "noise_probability": 0.8,
                    "noise_mix": "snr", "noise_snr_db": [10.0, 50.0]},
        "train": {"epochs": 25, "batch_size": 32, "learning_rate": 0.005, "threads": 2},
    })
    summary = train(config, base / "run", progress=False)
    assert summary["test_accuracy"] > 0.8, summary
    export_run(base / "run", base / "bundle", progress=False)
    yes = [row for row in manifest.rows if row.label == "yes"][-1]     # a late, test-split take
    said = audio.load(base / "data" / yes.path, 48000)
    said *= np.minimum(1.0, np.minimum(np.arange(len(said)), np.arange(len(said))[::-1]) / 480)
    quiet = np.zeros(48000, dtype=np.float32)
    loop = np.concatenate([quiet, said, quiet, quiet])
    loop += 0.003 * np.random.default_rng(0).standard_normal(len(loop)).astype(np.float32)
    microphone = base / "microphone.wav"
    audio.write(microphone, loop, 48000)
    return base / "bundle", microphone


@_needs(CHROMIUM, "Debian's chromium")
def test_the_live_page_shows_what_the_model_hears(spoken_keywords, tmp_path):
    from playwright.sync_api import sync_playwright

    from earmark.serve import create_app

    bundle, microphone = spoken_keywords
    flags = CHROMIUM_FLAGS + [f"--use-file-for-fake-audio-capture={microphone}"]
    with LiveServer(create_app(bundle)) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=flags)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(server.url)
        page.click("#start")
        page.wait_for_function(
            "window.earmark && window.earmark.detections.some(d => d.label === 'yes')",
            timeout=60_000)
        page.wait_for_function("window.earmark.columnsDrawn > 150", timeout=30_000)
        assert "yes" in page.inner_text("#detections")
        assert _canvas_is_drawn(page, "spectrogram") and _canvas_is_drawn(page, "waveform")
        _classify_a_dropped_file(page, microphone)
        target = tmp_path / "live-page.png"
        page.screenshot(path=str(target), full_page=True)
        _keep_screenshot(target)
        page.click("#start")                                    # stop
        page.wait_for_function("window.earmark.state !== 'streaming'", timeout=10_000)
        browser.close()
        assert server.get_json("/health")["streams_served"] >= 1
    assert not errors, errors


_DISTINCT_COLOURS = """(() => {
    const canvas = document.getElementById('ID');
    const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width,
                                                        canvas.height).data;
    const colours = new Set();
    for (let i = 0; i < pixels.length; i += 4 * 7) {
        colours.add((pixels[i] << 16) | (pixels[i + 1] << 8) | pixels[i + 2]);
    }
    return colours.size;
})()"""


def _canvas_is_drawn(page, canvas_id: str) -> bool:
    """Whether the canvas holds more than a handful of distinct colours."""
    return page.evaluate(_DISTINCT_COLOURS.replace("ID", canvas_id)) > 20


def _classify_a_dropped_file(page, path: Path) -> None:
    page.set_input_files("#file", str(path))
    page.wait_for_selector("#windows tbody tr", timeout=30_000)
    rows = page.locator("#windows tbody tr").count()
    assert rows >= 4                               # a 4.7 s file: 1 s windows every 0.5 s
    assert "yes" in page.inner_text("#windows")
    assert _canvas_is_drawn(page, "file-spectrogram")


def _keep_screenshot(target: Path) -> None:
    assert target.stat().st_size > 10_000
    artifacts = os.environ.get("EARMARK_ARTIFACTS")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(target, Path(artifacts) / target.name)


@_needs(FIREFOX, "Debian's firefox-esr")
def test_the_page_works_in_firefox(spoken_keywords, tmp_path):
    from earmark.serve import create_app

    bundle, microphone = spoken_keywords
    wav = base64.b64encode(microphone.read_bytes()).decode("ascii")
    with LiveServer(create_app(bundle)) as server, Firefox() as firefox:
        firefox.navigate(server.url)
        assert firefox.wait_for("window.earmark && window.earmark.labels.length === 4")
        assert "yes" in firefox.evaluate("document.getElementById('model').textContent")
        firefox.evaluate(f"""(() => {{
            const bytes = Uint8Array.from(atob('{wav}'), c => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], 'spoken.wav', {{type: 'audio/wav'}}));
            document.getElementById('drop').dispatchEvent(
                new DragEvent('drop', {{dataTransfer: transfer, bubbles: true,
                                       cancelable: true}}));
            return true;
        }})()""")
        assert firefox.wait_for("document.querySelectorAll('#windows tbody tr').length >= 4")
        assert "yes" in firefox.evaluate("document.getElementById('windows').textContent")
        assert "spoken.wav" in firefox.evaluate(
            "document.getElementById('file-name').textContent")
        assert firefox.evaluate(_DISTINCT_COLOURS.replace("ID", "file-spectrogram")) > 20
        target = tmp_path / "firefox-page.png"
        firefox.screenshot(target)
        _keep_screenshot(target)
