"""The speech embedding's convolutions in int8 at shipped ranges (features.embedding_int8)."""

from __future__ import annotations

import numpy as np
import pytest

from earmark.config import ExperimentConfig, FeatureConfig, from_dict
from earmark.errors import ConfigError
from earmark.frontend import embedding_int8
from earmark.frontend import sliding_embedding as sliding


def test_the_shipped_ranges_cover_every_convolution_of_the_network():
    ranges = embedding_int8.shipped_ranges()
    graph = sliding.sliding_graph().graph
    names = {node.name for node in graph.node if node.op_type == "Conv"}
    assert set(ranges) == names and len(names) == 20
    for span in ranges.values():
        for low, high in (span["input"], span["output"]):
            assert np.isfinite(low) and np.isfinite(high) and low < high
    # every activation is floored at -0.4 (LeakyRelu then Max): later inputs start there
    later = [span["input"][0] for name, span in ranges.items() if name != "model/conv2d/Conv2D"]
    assert all(low == pytest.approx(-0.4) for low in later)


@pytest.mark.parametrize("low,high", [(-0.4, 36.8), (2.0, 13.5), (-29.0, -1.0), (0.0, 0.0)])
def test_an_activations_scale_covers_its_range_and_holds_zero_exactly(low, high):
    scale, zero = embedding_int8.activation_scale(low, high)
    assert zero.dtype == np.uint8 and scale > 0
    assert -int(zero) * scale <= min(low, 0) + scale / 2
    assert (255 - int(zero)) * scale >= max(high, 0) - scale / 2


def test_a_convolution_without_a_range_is_named():
    ranges = dict(embedding_int8.shipped_ranges())
    del ranges["model/conv2d_7/Conv2D"]
    with pytest.raises(ConfigError, match="'model/conv2d_7/Conv2D' has no int8 range"):
        embedding_int8.quantize_network(sliding.sliding_graph(), ranges)


def test_weights_keep_to_seven_bits():
    graph = sliding.sliding_graph(int8=True).graph
    from onnx import numpy_helper

    weights = [numpy_helper.to_array(t) for t in graph.initializer if t.name.endswith("/w")]
    assert max(int(np.abs(w.astype(np.int16)).max()) for w in weights) \
        == embedding_int8.WEIGHT_LEVELS


def test_int8_is_a_setting_of_the_embedding_alone():
    config = from_dict({"features": {"kind": "embedding", "embedding_int8": True}})
    assert config.features.embedding_int8
    assert not ExperimentConfig().features.embedding_int8
    with pytest.raises(ConfigError, match="features.embedding_int8 quantizes the speech "
                                          "embedding"):
        from_dict({"features": {"kind": "logmel", "embedding_int8": True}})
    assert FeatureConfig.from_record({"kind": "embedding"}).embedding_int8 is False
