"""The speech embedding slid along a clip: the same columns as cutting windows, computed
once per layer; a step with states that gives a stream's columns from its new samples."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime
import pytest

from earmark.errors import ConfigError
from earmark.export.embedding_graph import STEP_CONTEXT_SAMPLES, frames_step_graph
from earmark.frontend import sliding_embedding as sliding
from earmark.frontend import speech_embedding as embedding

from conftest import onnx_session

RATE = 16000


@pytest.fixture(scope="module")
def mel() -> np.ndarray:
    """Log-mel frames of 3 s of moving tones and noise, 2 clips: (2, frames, 32)."""
    rng = np.random.default_rng(0)
    t = np.arange(3 * RATE) / RATE
    sweep = np.sin(2 * np.pi * (200 + 300 * t) * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
    clips = np.stack([0.3 * sweep, 0.05 * rng.standard_normal(len(t))]).astype(np.float32)
    return sliding.SpeechEmbedding(threads=1).mel(clips)


def windowed(mel: np.ndarray) -> np.ndarray:
    """The shipped graph on each 76-frame window cut out, 8 frames apart: (batch, 96, n)."""
    shipped = onnxruntime.InferenceSession(str(embedding.model_files()["embedding"]),
                                           providers=["CPUExecutionProvider"])
    count = embedding.column_count(mel.shape[1])
    windows = [mel[:, 8 * i:8 * i + 76, :, None] for i in range(count)]
    columns = [shipped.run(None, {"input_1": w})[0].reshape(len(mel), 96) for w in windows]
    return np.stack(columns, axis=2)


@pytest.mark.parametrize("frames", [76, 83, 84, 91, 100, 163, 297])
def test_sliding_gives_every_windows_column(mel, frames):
    slid = onnx_session(sliding.sliding_graph()).run(
        None, {"input_1": mel[:, :frames, :, None]})[0]
    expected = windowed(mel[:, :frames])
    assert slid.shape == expected.shape == (2, 96, embedding.column_count(frames))
    np.testing.assert_allclose(slid, expected, atol=1e-4 * np.abs(expected).max())


def test_the_step_carries_states_to_the_same_columns(mel):
    model, states = sliding.stepped_graph()
    stepper = onnx_session(model)
    clip = mel[:1, :, :, None]
    feeds = {name: np.zeros((1, channels, 0, bands), np.float32)
             for name, (channels, bands) in states.items()}
    columns, start = [], 0
    for length in [76 + 8, 8, 24, 8, 16, 8 * 10]:         # the first takes whole windows
        out = stepper.run(None, {"input_1": clip[:, start:start + length], **feeds})
        columns.append(out[0])
        feeds = dict(zip(states, out[1:]))
        start += length
        assert all(f.shape[2] == sliding.STATE_POSITIONS for f in feeds.values())
    stepped = np.concatenate(columns, axis=2)
    expected = windowed(mel[:1, :start])
    assert stepped.shape == expected.shape
    np.testing.assert_allclose(stepped, expected, atol=1e-4 * np.abs(expected).max())


@pytest.mark.parametrize("blocks,int8", [(embedding.BLOCKS, False), (2, False),
                                         (embedding.BLOCKS, True), (2, True)])
def test_the_bundles_step_takes_samples_with_their_context(blocks, int8):
    depth = embedding.depth(blocks)
    model, shapes = frames_step_graph(blocks=blocks, int8=int8)
    stepper = onnx_session(model)
    rng = np.random.default_rng(1)
    samples = (0.1 * rng.standard_normal((1, depth.window_samples + 12 * depth.hop_samples))
               ).astype(np.float32)
    whole = sliding.SpeechEmbedding(threads=1, blocks=blocks, int8=int8)(samples
                                                                         ).transpose(0, 2, 1)
    feeds = {name: np.zeros((*shape[:2], 0, *shape[3:]), state_types(stepper)[name])
             for name, shape in shapes.items()}
    out = stepper.run(None, {"samples": samples[:, :depth.window_samples], **feeds})
    columns, end = [out[0]], depth.window_samples
    for count in (1, 1, 3, 7):
        feeds = dict(zip(shapes, out[1:]))
        out = stepper.run(None, {"samples": samples[:, end - STEP_CONTEXT_SAMPLES:
                                                    end + count * depth.hop_samples], **feeds})
        columns.append(out[0])
        end += count * depth.hop_samples
    stepped = np.concatenate(columns, axis=2)
    assert stepped.shape == whole.shape == (1, depth.dimensions, 13)
    np.testing.assert_allclose(stepped, whole, atol=1e-4 * np.abs(whole).max())


def state_types(session) -> dict[str, type]:
    """Each input's numpy type: a state the int8 network carries is uint8."""
    return {arg.name: np.uint8 if arg.type == "tensor(uint8)" else np.float32
            for arg in session.get_inputs()}


def test_the_int8_network_steps_to_exactly_its_own_sliding_columns(mel):
    model, states = sliding.stepped_graph(int8=True)
    stepper = onnx_session(model)
    types = state_types(stepper)
    # between two int8 convolutions a state is uint8; the first convolution's stays float
    assert types["state_0"] is np.float32
    assert all(types[name] is np.uint8 for name in states if name != "state_0")
    clip = mel[:1, :, :, None]
    feeds = {name: np.zeros((1, channels, 0, bands), types[name])
             for name, (channels, bands) in states.items()}
    columns, start = [], 0
    for length in [76, 8, 24, 8, 8 * 12]:
        out = stepper.run(None, {"input_1": clip[:, start:start + length], **feeds})
        columns.append(out[0])
        feeds = dict(zip(states, out[1:]))
        start += length
    slid = onnx_session(sliding.sliding_graph(int8=True)).run(
        None, {"input_1": clip[:, :start]})[0]
    np.testing.assert_array_equal(np.concatenate(columns, axis=2), slid)


def test_int8_columns_follow_the_float_networks(mel):
    graph = sliding.sliding_graph(int8=True).graph
    kinds = [node.op_type for node in graph.node]
    assert kinds.count("QLinearConv") == 19 and kinds.count("Conv") == 1
    # activations stay uint8 between them: one QLinearLeakyRelu for LeakyRelu and Max
    assert kinds.count("QLinearLeakyRelu") == 18 and kinds.count("Max") == 1
    assert kinds.count("QuantizeLinear") == kinds.count("DequantizeLinear") == 1
    weights = [t for t in graph.initializer if t.name.endswith("/w")]
    assert len(weights) == 19 and all(t.data_type == onnx.TensorProto.INT8 for t in weights)
    feed = {"input_1": mel[:, :, :, None]}
    exact = onnx_session(sliding.sliding_graph()).run(None, feed)[0]
    int8 = onnx_session(sliding.sliding_graph(int8=True)).run(None, feed)[0]
    assert not np.array_equal(int8, exact)
    assert np.corrcoef(int8.ravel(), exact.ravel())[0, 1] > 0.98
    assert np.abs(int8 - exact).mean() < 0.2 * np.abs(exact).mean()


def shipped_block_outputs(window: np.ndarray) -> list[np.ndarray]:
    """The shipped graph on one 76-frame window, each block's pooled output as it computes
    it: ``(batch, channels, frames, bands)`` per block 1-4."""
    model = onnx.load(str(embedding.model_files()["embedding"]))
    pooled = [n.output[0] for n in model.graph.node if n.op_type == "MaxPool"][:4]
    model.graph.output.extend(onnx.ValueInfoProto(name=name) for name in pooled)
    return onnx_session(model).run(pooled, {"input_1": window})


@pytest.mark.parametrize("blocks", [1, 2, 3, 4])
def test_the_first_blocks_give_the_shipped_networks_own_values(mel, blocks):
    depth = embedding.depth(blocks)
    expected = shipped_block_outputs(mel[:, :76, :, None])[blocks - 1]
    channels, frames, bands = expected.shape[1:]
    assert (channels, bands) == (depth.channels, depth.bands)
    assert frames == depth.columns(76)
    slid = onnx_session(sliding.sliding_graph(blocks)).run(
        None, {"input_1": mel[:, :76, :, None]})[0]
    np.testing.assert_allclose(slid, expected.transpose(0, 1, 3, 2).reshape(2, -1, frames),
                               atol=1e-5 * np.abs(expected).max())


@pytest.mark.parametrize("blocks", [1, 2, 3, 4, 5])
def test_each_depth_slides_as_its_geometry_says(mel, blocks):
    depth = embedding.depth(blocks)
    slid = onnx_session(sliding.sliding_graph(blocks))
    for frames in (depth.first_frames, depth.first_frames + 1,
                   depth.first_frames + depth.step_frames, 150):
        out = slid.run(None, {"input_1": mel[:, :frames, :, None]})[0]
        assert out.shape == (2, depth.dimensions, depth.columns(frames))
    assert depth.columns(depth.first_frames - 1) == 0
    graph = sliding.sliding_graph(blocks).graph
    sizes = {t.name: int(np.prod(t.dims)) for t in graph.initializer}
    weights = sum(sizes[name] for node in graph.node if node.op_type == "Conv"
                  for name in node.input[1:])
    assert weights == depth.parameters


def test_an_unknown_depth_is_refused():
    for blocks in (0, 6):
        with pytest.raises(ConfigError, match="blocks 1 to 5"):
            embedding.depth(blocks)


def test_a_column_costs_a_seventh_of_a_window():
    first = sliding.macs(embedding.WINDOW_SAMPLES)
    later = sliding.macs(embedding.WINDOW_SAMPLES + 1280) - first
    assert 50e6 < first < 55e6                  # 42 M of network, 10 M of mel
    assert 6e6 < later < first / 7              # 8 new mel frames, each layer's new outputs


def test_a_graph_that_cannot_slide_is_refused(tmp_path, monkeypatch):
    model = onnx.load(str(embedding.model_files()["embedding"]))
    conv = next(n for n in model.graph.node if n.op_type == "Conv")
    for attribute in conv.attribute:
        if attribute.name == "pads":
            attribute.ints[:] = [1, 1, 1, 1]               # padded along time
    path = tmp_path / "embedding_model.onnx"
    onnx.save(model, str(path))
    files = dict(embedding.model_files(), embedding=path)
    monkeypatch.setattr(embedding, "model_files", lambda: files)
    for rewrite in (sliding.sliding_graph, sliding.stepped_graph):
        with pytest.raises(ConfigError, match="padded or strided"):
            rewrite()
