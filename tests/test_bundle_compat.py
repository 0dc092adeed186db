"""A bundle exported by earlier code (format_version 1) keeps loading and scoring the same.

``fixtures/bundle_v1`` is a small streamable tone model (valid-padded DS-CNN,
4 classes, 8 kHz) exported before the package was reorganised;
``bundle_v1_expected.json`` holds what that code computed on seeded inputs:
whole-window probabilities and every stride of the stepped stream engine.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from earmark.runtime import load_bundle
from earmark.runtime.stream import StreamEngine

FIXTURES = Path(__file__).parent / "fixtures"


def _expected() -> dict:
    return json.loads((FIXTURES / "bundle_v1_expected.json").read_text())


def _inputs(bundle, expected: dict) -> np.ndarray:
    """The seeded windows the expected figures were computed on: three tones and noise."""
    rng = np.random.default_rng(expected["seed"])
    t = np.arange(bundle.window_samples) / bundle.sample_rate
    noise = expected["noise"]
    waves = [0.4 * np.sin(2 * np.pi * f * t) + noise * rng.standard_normal(len(t))
             for f in expected["frequencies"] if f is not None]
    waves.append(noise * rng.standard_normal(len(t)))
    return np.stack(waves).astype(np.float32)


def test_old_bundle_scores_windows_as_before():
    expected = _expected()
    bundle = load_bundle(FIXTURES / "bundle_v1")
    assert bundle.labels == expected["labels"]
    probabilities = bundle.predict_proba(_inputs(bundle, expected))
    np.testing.assert_allclose(probabilities, expected["probabilities"], atol=1e-6)


def test_old_bundle_streams_as_before():
    expected = _expected()
    bundle = load_bundle(FIXTURES / "bundle_v1")
    signal = np.concatenate(list(_inputs(bundle, expected)))
    engine = StreamEngine(bundle)
    assert engine.network_stepped
    results = [r for block in np.array_split(signal, expected["stream"]["blocks"])
               for r in engine.process(block)]
    assert [r.time_ms for r in results] == expected["stream"]["times_ms"]
    np.testing.assert_allclose([r.scores for r in results], expected["stream"]["scores"],
                               atol=1e-6)
