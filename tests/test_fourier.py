"""The split DFT (earmark.frontend.fourier) against numpy's FFT, and its tables as ONNX formulas."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from earmark.config import FeatureConfig
from earmark.frontend.module import FrontEnd
from earmark.frontend.filters import centred_window
from earmark.frontend.fourier import FramePower, split
from earmark.export.tables import compact_frontend


@pytest.mark.parametrize("n_fft, expected", [(512, (16, 32)), (400, (20, 20)), (401, (1, 401)),
                                             (480, (20, 24)), (2, (1, 2))])
def test_split_takes_the_divisor_nearest_the_square_root(n_fft, expected):
    assert split(n_fft) == expected


@pytest.mark.parametrize("n_fft, window_length, hop", [(512, 480, 320), (512, 400, 160),
                                                        (401, 400, 100), (256, 256, 300)])
def test_power_matches_numpy_fft_frame_by_frame(n_fft, window_length, hop):
    rng = np.random.default_rng(n_fft + hop)
    signal = rng.standard_normal((2, 4000))
    window = centred_window(window_length, n_fft)
    bins = np.arange(3, n_fft // 2 + 1)
    spectrum = FramePower(window, hop, int(bins[-1])).double()
    power = spectrum.power(spectrum(torch.from_numpy(signal)), bins).numpy()
    frames = 1 + (signal.shape[1] - n_fft) // hop
    starts = hop * np.arange(frames)
    expected = np.stack([[np.abs(np.fft.rfft(clip[s:s + n_fft] * window)[bins]) ** 2
                          for s in starts] for clip in signal]).transpose(0, 2, 1)
    assert power.shape == expected.shape == (2, len(bins), frames)
    # The tables are made in float32 (torch's default dtype), then widened.
    np.testing.assert_allclose(power, expected, rtol=1e-5, atol=1e-6 * expected.max())


def test_filterbank_weighs_each_bin_once_in_split_order():
    spectrum = FramePower(centred_window(400, 512), 160, last_bin=200)
    bins = np.arange(5, 201)
    weights = torch.rand(7, len(bins), dtype=torch.float64)
    squared = torch.rand(1, 3, spectrum.rows, 2 * spectrum.depth, dtype=torch.float64)
    direct = torch.matmul(squared.flatten(2), spectrum.filterbank(weights, bins))
    natural = torch.matmul(weights, spectrum.power(squared.double(), bins)).transpose(1, 2)
    torch.testing.assert_close(direct, natural)


@pytest.mark.filterwarnings("ignore::FutureWarning")   # torch's exporter internals
@pytest.mark.parametrize("kind, n_fft", [("logmel", 0), ("logmel", 401), ("mfcc", 400),
                                         ("spectrogram", 0)])
def test_tables_written_as_formulas_give_the_same_features(kind, n_fft, tmp_path):
    config = FeatureConfig(kind=kind, window_ms=25.0, hop_ms=10.0, n_fft=n_fft, fmax=7600.0)
    front_end = FrontEnd(config, 16000).eval()
    example = torch.from_numpy(np.random.default_rng(0).standard_normal((2, 8000))).float()
    path = tmp_path / "frontend.onnx"
    torch.onnx.export(front_end, (example,), str(path), dynamo=True, external_data=False,
                      input_names=["waveform"], output_names=["features"],
                      dynamic_shapes={"waveform": {0: torch.export.Dim("batch")}},
                      verbose=False)
    model = compact_frontend(onnx.load(str(path)), FrontEnd(config, 16000))
    # The window, DFT and filterbank tables are gone: filter edges and scales are left
    # (and the DCT, for MFCC).
    float_tables = [table for table in model.graph.initializer
                    if table.data_type == onnx.TensorProto.FLOAT]
    largest = config.n_mfcc * config.n_mels if kind == "mfcc" else config.n_mels
    assert max(np.prod(table.dims) for table in float_tables) <= largest
    session = onnxruntime.InferenceSession(model.SerializeToString(),
                                           providers=["CPUExecutionProvider"])
    exported = session.run(None, {"waveform": example.numpy()})[0]
    with torch.no_grad():
        expected = front_end(example).numpy()
    loud = expected > expected.max(axis=-1, keepdims=True) - 40.0   # out of deep nulls
    assert np.abs(exported - expected)[loud].max() <= 1e-4
