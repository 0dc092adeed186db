"""The speech embedding's mel (earmark.frontend.embedding_mel): the shipped graph's numbers
from the bins its filters use, floored at a fixed level."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime
import pytest

from earmark.errors import ConfigError
from earmark.frontend import embedding_mel
from earmark.frontend import sliding_embedding as sliding
from earmark.frontend import speech_embedding as embedding

from conftest import onnx_session

RATE = 16000


@pytest.fixture(scope="module")
def ours() -> onnxruntime.InferenceSession:
    return onnx_session(embedding_mel.mel_graph())


def chirp_in_noise(seconds: float, seed: int) -> np.ndarray:
    """16-bit-scaled noise under a sweep through the mel range, silent from 1.0 to 1.2 s."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    sweep = np.sin(2 * np.pi * (80 * t + 900 * t ** 2))
    samples = 8000 * sweep + 300 * rng.standard_normal(len(t))
    samples[RATE:RATE + 3200] = 0.0
    return samples.astype(np.float32)


@pytest.mark.parametrize("samples", [512, 671, 672, 1632, 2 * RATE + 17])
def test_the_frames_are_the_shipped_graphs_above_the_floor(ours, samples):
    shipped = onnx_session(onnx.load(str(embedding.model_files()["mel"])))
    clip = chirp_in_noise(2.2, seed=samples)[None, :samples]
    theirs = shipped.run(None, {"input": clip})[0]
    mine = ours.run(None, {"input": clip})[0]
    assert mine.shape == theirs.shape == (1, 1, embedding.mel_frame_count(samples),
                                          embedding.MEL_BANDS)
    # The shipped graph floors 80 dB below the call's loudest value, this one at FLOOR_DB.
    above = theirs > max(theirs.max() - 80.0, embedding.FLOOR_DB) + 1e-3
    assert above.mean() > 0.5
    np.testing.assert_allclose(mine[above], theirs[above], atol=1e-3)
    assert np.all(mine[~above] <= np.maximum(theirs[~above], embedding.FLOOR_DB) + 1e-3)


def test_silence_sits_at_the_fixed_floor_whatever_else_is_in_the_batch(ours):
    quiet, loud = chirp_in_noise(1.5, seed=1) * 1e-3, chirp_in_noise(1.5, seed=2)
    alone = ours.run(None, {"input": quiet[None]})[0]
    batched = ours.run(None, {"input": np.stack([loud, quiet])})[0]
    np.testing.assert_array_equal(batched[1], alone[0])
    silent = embedding.mel_frame_count(RATE + 3200) - 1           # within 1.0-1.2 s
    assert alone[0, 0, silent].max() == embedding.FLOOR_DB < alone[0, 0, 0].max()


def test_the_convolution_covers_only_the_bins_the_filters_use():
    shipped = {t.name: onnx.numpy_helper.to_array(t)
               for t in onnx.load(str(embedding.model_files()["mel"])).graph.initializer}
    used = np.count_nonzero(np.abs(shipped[embedding_mel.FILTERS]).sum(axis=1))
    kernels = next(t for t in embedding_mel.mel_graph().graph.initializer
                   if t.name == "m/kernels")
    assert list(kernels.dims) == [2 * used, 1, embedding.MEL_WINDOW]
    assert 2 * used < embedding.MEL_WINDOW + 2             # fewer than the dense DFT's 514
    # what a bundle reports: the mel alone for a single frame (too short for a column)
    assert sliding.macs(embedding.MEL_WINDOW) == 2 * used * (embedding.MEL_WINDOW + 32)


def test_a_graph_that_is_not_the_shipped_mel_is_refused(tmp_path):
    model = onnx.load(str(embedding.model_files()["mel"]))
    filters = next(t for t in model.graph.initializer if t.name == embedding_mel.FILTERS)
    model.graph.initializer.remove(filters)
    path = tmp_path / "melspectrogram.onnx"
    onnx.save(model, str(path))
    with pytest.raises(ConfigError, match="not the mel graph earmark ships"):
        embedding_mel.mel_graph(path)
