"""The front-end against librosa, a numpy reference, the seed code and ONNX.

Audio is made here (noise + chirp with fixed seeds) so that every mel band
holds energy well above the log floor: where a band is near the floor,
float32 rounding, not the algorithm, would decide the difference.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from earmark.config import FeatureConfig
from earmark.errors import ConfigError
from earmark.frontend.module import FrontEnd
from earmark.frontend.reference import reference_features
from earmark.frontend.filters import dct_matrix, mel_filterbank

librosa = pytest.importorskip("librosa")


def noisy_chirp(sample_rate: int, seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    """White noise plus a linear chirp from 50 Hz to just below Nyquist."""
    rng = np.random.default_rng(seed)
    samples = int(round(seconds * sample_rate))
    time = np.arange(samples) / sample_rate
    sweep = (sample_rate / 2 - 100 - 50) / seconds
    chirp = 0.5 * np.sin(2 * np.pi * (50 * time + sweep / 2 * time ** 2))
    return (chirp + 0.1 * rng.standard_normal(samples)).astype(np.float32)


def features_of(front_end: FrontEnd, clip: np.ndarray) -> np.ndarray:
    """FrontEnd output for one clip, (channels, bands, frames)."""
    with torch.no_grad():
        return front_end(torch.from_numpy(clip)[None])[0].numpy()


def librosa_log_mel(clip: np.ndarray, front_end: FrontEnd, config: FeatureConfig,
                    sample_rate: int) -> np.ndarray:
    """librosa's log-mel in float64, on the same settings."""
    mel = librosa.feature.melspectrogram(
        y=clip.astype(np.float64), sr=sample_rate, n_fft=front_end.n_fft,
        hop_length=front_end.hop_length, win_length=front_end.window_length,
        window="hann", center=config.center, pad_mode="reflect", power=2.0,
        n_mels=config.n_mels, fmin=config.fmin, fmax=config.fmax or sample_rate / 2)
    return librosa.power_to_db(mel, ref=1.0, amin=config.log_floor, top_db=None)


# ---------------------------------------------------------------- librosa


@pytest.mark.parametrize("sample_rate", [8000, 16000])
@pytest.mark.parametrize("center", [False, True])
def test_log_mel_matches_librosa(sample_rate, center):
    config = FeatureConfig(kind="logmel", center=center)
    front_end = FrontEnd(config, sample_rate)
    clip = noisy_chirp(sample_rate)
    ours = features_of(front_end, clip)[0]
    theirs = librosa_log_mel(clip, front_end, config, sample_rate)
    assert ours.shape == theirs.shape
    assert np.abs(ours - theirs).max() <= 1e-3       # float32: ~2e-5 dB measured


@pytest.mark.parametrize("sample_rate, n_fft, n_mels, fmin, fmax", [
    (16000, 512, 40, 20.0, 0.0),
    (16000, 1024, 64, 0.0, 7600.0),
    (8000, 256, 23, 60.0, 3800.0),
    (22050, 2048, 128, 0.0, 0.0),
])
def test_mel_filterbank_matches_librosa(sample_rate, n_fft, n_mels, fmin, fmax):
    ours = mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax)
    theirs = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin,
                                 fmax=fmax or sample_rate / 2, htk=False, norm="slaney",
                                 dtype=np.float64)
    assert ours.shape == (n_mels, n_fft // 2 + 1)
    assert np.abs(ours - theirs).max() <= 1e-6


def test_dct_matrix_is_orthonormal_dct_ii():
    import scipy.fft

    signal = np.random.default_rng(1).standard_normal((40, 7))
    expected = scipy.fft.dct(signal, type=2, norm="ortho", axis=0)[:13]
    assert np.allclose(dct_matrix(13, 40) @ signal, expected, atol=1e-12)
    assert np.allclose(dct_matrix(40, 40) @ dct_matrix(40, 40).T, np.eye(40), atol=1e-12)


@pytest.mark.parametrize("center", [False, True])
def test_mfcc_matches_librosa(center):
    config = FeatureConfig(kind="mfcc", window_ms=40.0, hop_ms=20.0, n_mfcc=10,
                           center=center)
    front_end = FrontEnd(config, 16000)
    clip = noisy_chirp(16000, seed=2)
    ours = features_of(front_end, clip)[0]
    log_mel = librosa_log_mel(clip, front_end, config, 16000)
    theirs = librosa.feature.mfcc(S=log_mel, n_mfcc=10, dct_type=2, norm="ortho")
    assert ours.shape == theirs.shape == (10, front_end.frames_for(len(clip)))
    assert np.abs(ours - theirs).max() <= 1e-3


@pytest.mark.parametrize("width", [3, 5, 9])
def test_deltas_match_librosa(width):
    config = FeatureConfig(kind="logmel", deltas=2, delta_width=width)
    front_end = FrontEnd(config, 16000)
    stacked = features_of(front_end, noisy_chirp(16000, seed=3)).astype(np.float64)
    delta = librosa.feature.delta(stacked[0], width=width, order=1, mode="nearest")
    # Delta-delta is the delta of the delta (not librosa's order=2 fit).
    delta_delta = librosa.feature.delta(delta, width=width, order=1, mode="nearest")
    assert np.abs(stacked[1] - delta).max() <= 1e-4
    assert np.abs(stacked[2] - delta_delta).max() <= 1e-4


@pytest.mark.parametrize("center", [False, True])
def test_linear_spectrogram_matches_librosa_stft(center):
    config = FeatureConfig(kind="spectrogram", window_ms=25.0, hop_ms=10.0, center=center)
    front_end = FrontEnd(config, 16000)
    clip = noisy_chirp(16000, seed=4)
    ours = features_of(front_end, clip)[0]
    power = np.abs(librosa.stft(clip.astype(np.float64), n_fft=front_end.n_fft,
                                hop_length=front_end.hop_length,
                                win_length=front_end.window_length, window="hann",
                                center=center, pad_mode="reflect")) ** 2
    theirs = librosa.power_to_db(power, ref=1.0, amin=config.log_floor, top_db=None)
    assert ours.shape == theirs.shape
    # Single bins of noise can sit in deep spectral nulls where float32
    # rounding of the frame's total energy dominates; judge the bins within
    # 60 dB of their frame's loudest (> 99.8 % of them).
    audible = theirs > theirs.max(axis=0, keepdims=True) - 60.0
    assert audible.mean() > 0.99
    assert np.abs(ours - theirs)[audible].max() <= 1e-3


# ---------------------------------------------------------------- the seed


def seed_spectrogram128(audio: np.ndarray) -> np.ndarray:
    """The seed project's image front-end, transcribed without changes."""
    needed = 512 + 127 * 121
    if len(audio) < needed:
        audio = np.concatenate([audio, np.zeros(needed - len(audio))])
    window = np.hanning(512)
    frames = np.array([audio[i * 121:i * 121 + 512] * window for i in range(128)])
    spectrum = np.abs(np.fft.rfft(frames, axis=1))[:, 1:129]
    s = spectrum.T                                    # (frequency, time)
    s = (s - s.min()) / (s.max() - s.min())
    s = np.log10(s * 100 + 0.01)
    s = (s - s.min()) / (s.max() - s.min()) - 0.5
    return s


@pytest.mark.parametrize("samples", [16000, 8000, 24000])
def test_spectrogram128_matches_seed(samples):
    front_end = FrontEnd(FeatureConfig(kind="spectrogram128"), 16000)
    clip = noisy_chirp(16000, seconds=samples / 16000, seed=5)
    ours = features_of(front_end, clip)
    assert ours.shape == (1, 128, 128) == front_end.output_shape(samples)
    assert np.abs(ours[0] - seed_spectrogram128(clip.astype(np.float64))).max() <= 1e-4


def test_spectrogram128_of_silence_is_finite():
    front_end = FrontEnd(FeatureConfig(kind="spectrogram128"), 16000)
    image = features_of(front_end, np.zeros(16000, dtype=np.float32))
    assert np.all(image == -0.5)


# ------------------------------------------------------- numpy reference


@pytest.mark.parametrize("kind", ["spectrogram", "logmel", "mfcc", "spectrogram128"])
@pytest.mark.parametrize("center", [False, True])
def test_front_end_matches_numpy_reference(kind, center):
    config = FeatureConfig(kind=kind, center=center, deltas=2, n_fft=512 if center else 0)
    front_end = FrontEnd(config, 16000)
    clip = noisy_chirp(16000, seed=6)
    ours = features_of(front_end, clip)
    reference = reference_features(clip, config, 16000)
    assert ours.shape == reference.shape
    if kind == "spectrogram":       # deep nulls: see the librosa test above
        audible = reference[0] > reference[0].max(axis=0, keepdims=True) - 60.0
        assert np.abs(ours[0] - reference[0])[audible].max() <= 1e-3
    else:
        assert np.abs(ours - reference).max() <= 1e-3


def test_float64_module_on_float64_input():
    config = FeatureConfig(kind="mfcc", deltas=1)
    front_end = FrontEnd(config, 16000).double()
    clip = noisy_chirp(16000, seed=7).astype(np.float64)
    with torch.no_grad():
        ours = front_end(torch.from_numpy(clip)[None])[0].numpy()
    assert ours.dtype == np.float64
    assert np.abs(ours - reference_features(clip, config, 16000)).max() <= 1e-4


# ---------------------------------------------------------------- shapes


@pytest.mark.parametrize("kind, window_ms, hop_ms, center, samples, expected", [
    ("logmel", 30.0, 10.0, False, 16000, (1, 40, 97)),        # n_fft 512: 1 + 15488 // 160
    ("logmel", 30.0, 10.0, True, 16000, (1, 40, 101)),        # 1 + 16000 // 160
    ("mfcc", 40.0, 20.0, False, 16000, (1, 10, 47)),          # n_fft 1024: 1 + 14976 // 320
    ("spectrogram", 25.0, 10.0, False, 8000, (1, 257, 47)),   # 400 -> n_fft 512
    ("spectrogram128", 30.0, 10.0, False, 3000, (1, 128, 128)),
])
def test_output_shape_and_frames_for(kind, window_ms, hop_ms, center, samples, expected):
    config = FeatureConfig(kind=kind, window_ms=window_ms, hop_ms=hop_ms, center=center)
    front_end = FrontEnd(config, 16000)
    assert front_end.output_shape(samples) == expected
    assert front_end.frames_for(samples) == expected[2]
    with torch.no_grad():
        out = front_end(torch.zeros(2, samples))
    assert tuple(out.shape) == (2, *expected)


def test_geometry_properties():
    front_end = FrontEnd(FeatureConfig(window_ms=30.0, hop_ms=10.0), 16000)
    assert (front_end.window_length, front_end.hop_length, front_end.n_fft) == (480, 160, 512)
    explicit = FrontEnd(FeatureConfig(window_ms=25.0, hop_ms=10.0, n_fft=1024), 8000)
    assert (explicit.window_length, explicit.hop_length, explicit.n_fft) == (200, 80, 1024)


def test_channels_stack_deltas():
    front_end = FrontEnd(FeatureConfig(kind="mfcc", deltas=2), 16000)
    assert front_end.output_shape(16000) == (3, 10, 97)


# ---------------------------------------------------------------- errors


def test_too_short_input_says_how_many_samples():
    front_end = FrontEnd(FeatureConfig(kind="logmel"), 16000)
    with pytest.raises(ConfigError, match="at least 512 samples"):
        front_end(torch.zeros(1, 400))
    with pytest.raises(ConfigError, match="at least 512 samples"):
        front_end.frames_for(511)
    centred = FrontEnd(FeatureConfig(kind="logmel", center=True), 16000)
    assert centred.frames_for(257) == 2
    with pytest.raises(ConfigError, match="at least 257 samples"):
        centred.frames_for(256)
    with pytest.raises(ConfigError, match="at least 512 samples"):
        reference_features(np.zeros(300), FeatureConfig(kind="mfcc"), 16000)


@pytest.mark.parametrize("changes, message", [
    ({"kind": "cqt"}, "is not one of"),
    ({"n_mels": 128, "window_ms": 16.0}, "too many for n_fft"),
    ({"kind": "mfcc", "n_mfcc": 50}, "n_mfcc"),
    ({"n_fft": 256}, "shorter than the window"),
    ({"fmax": 9000.0}, "Nyquist"),
    ({"fmin": 5000.0, "fmax": 4000.0}, "fmin < fmax"),
    ({"hop_ms": 0.01}, "hop_ms"),
    ({"deltas": 3}, "deltas"),
    ({"delta_width": 4}, "delta_width"),
    ({"log_floor": 0.0}, "log_floor"),
])
def test_impossible_settings_raise_config_error(changes, message):
    with pytest.raises(ConfigError, match=message):
        FrontEnd(FeatureConfig(**changes), 16000)


def test_wrong_rank_is_rejected():
    with pytest.raises(ValueError, match="batch, samples"):
        FrontEnd(FeatureConfig(), 16000)(torch.zeros(16000))


# ---------------------------------------------------------------- batches


@pytest.mark.parametrize("kind", ["logmel", "mfcc", "spectrogram128"])
def test_a_clip_gives_the_same_features_alone_or_in_a_batch(kind):
    front_end = FrontEnd(FeatureConfig(kind=kind, deltas=1), 16000)
    clips = np.stack([noisy_chirp(16000, seed=seed) for seed in (10, 11, 12)])
    clips[2] *= 0.01                                  # a quiet neighbour
    with torch.no_grad():
        batch = front_end(torch.from_numpy(clips)).numpy()
    for index, clip in enumerate(clips):
        alone = features_of(front_end, clip)
        assert np.abs(batch[index] - alone).max() <= 1e-4


# ------------------------------------------------------------------- ONNX


@pytest.mark.filterwarnings("ignore::FutureWarning")   # torch's exporter internals
@pytest.mark.parametrize("kind", ["spectrogram", "logmel", "mfcc", "spectrogram128"])
def test_onnx_export_matches_torch(kind, tmp_path):
    """Export with dynamic batch and length; run other batch sizes and lengths."""
    ort = pytest.importorskip("onnxruntime")
    config = FeatureConfig(kind=kind, deltas=0 if kind == "spectrogram" else 2,
                           center=kind == "logmel")
    front_end = FrontEnd(config, 16000).eval()
    example = torch.from_numpy(np.stack([noisy_chirp(16000, seed=s) for s in (20, 21)]))
    path = tmp_path / f"{kind}.onnx"
    dynamic = {0: torch.export.Dim("batch"),
               1: torch.export.Dim("samples", min=max(front_end.min_samples, 2))}
    torch.onnx.export(front_end, (example,), str(path), dynamo=True, external_data=False,
                      input_names=["waveform"], output_names=["features"],
                      dynamic_shapes={"waveform": dynamic}, verbose=False)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch, seconds in ((3, 1.0), (1, 0.75)):
        clips = np.stack([noisy_chirp(16000, seconds, seed=22 + s) for s in range(batch)])
        exported = session.run(None, {"waveform": clips})[0]
        with torch.no_grad():
            expected = front_end(torch.from_numpy(clips)).numpy()
        assert exported.shape == expected.shape == (batch, *front_end.output_shape(
            clips.shape[1]))
        difference = np.abs(exported - expected)
        if kind == "spectrogram":   # judge bins out of deep nulls, as above
            difference = difference[expected > expected.max(axis=2, keepdims=True) - 40.0]
        assert difference.max() <= 1e-4


@pytest.mark.parametrize("kind", ["logmel", "mfcc", "spectrogram"])
def test_top_db_makes_features_independent_of_level(kind):
    """dB relative to the clip's maximum: a 20 dB quieter copy gives the same features."""
    import librosa
    config = FeatureConfig(kind=kind, top_db=60.0, window_ms=32.0, hop_ms=16.0)
    front_end = FrontEnd(config, 16000)
    clip = noisy_chirp(16000, seed=3)
    loud, quiet = front_end(torch.from_numpy(np.stack([clip, clip * 0.1]))).numpy()
    np.testing.assert_allclose(loud, quiet, atol=2e-3)
    if kind == "logmel":
        mel = librosa.feature.melspectrogram(
            y=clip.astype(np.float64), sr=16000, n_fft=512, hop_length=256, win_length=512,
            center=False, n_mels=config.n_mels, fmin=config.fmin, power=2.0)
        expected = librosa.power_to_db(mel, ref=np.max, amin=config.log_floor, top_db=60.0)
        assert np.abs(loud[0] - expected).max() <= 1e-3
        assert loud.max() == pytest.approx(0.0, abs=1e-5) and loud.min() >= -60.0
    np.testing.assert_allclose(loud, reference_features(clip, config, 16000), atol=1e-3)


def test_frequency_scale_moves_a_tone_to_the_scaled_band_and_one_changes_nothing():
    from earmark.frontend.module import scale_frequencies
    config = FeatureConfig(kind="logmel", window_ms=32, hop_ms=16, n_mels=64, fmax=8000)
    frontend = FrontEnd(config, 16000)
    t = torch.arange(16000) / 16000
    tone = (0.5 * torch.sin(2 * torch.pi * 1000.0 * t))[None, :].repeat(2, 1)
    plain = frontend(tone)
    scaled = frontend(tone, frequency_scale=torch.tensor([1.0, 1.3]))
    torch.testing.assert_close(scaled[0], plain[0])
    mel_of = lambda features: int(features[0, :, 10].argmax())
    expected = FrontEnd(config, 16000)(
        (0.5 * torch.sin(2 * torch.pi * 1300.0 * t))[None, :])
    assert abs(mel_of(scaled[1]) - mel_of(expected[0])) <= 1
    assert mel_of(scaled[1]) > mel_of(plain[0]) + 3
    spectrum = torch.rand(3, 20, 5)
    torch.testing.assert_close(scale_frequencies(spectrum, 4, torch.ones(3)), spectrum)


def test_mean_normalize_removes_a_fixed_channel_colouring_and_matches_the_reference():
    from earmark.augment import random_equalizer
    rng = np.random.default_rng(5)
    t = np.arange(16000) / 16000
    speechlike = np.sin(2 * np.pi * (300 + 200 * t) * t) * (0.2 + 0.8 * (t > 0.3) * (t < 0.7))
    clip = torch.from_numpy((0.3 * speechlike + 0.01 * rng.standard_normal(16000))
                            .astype(np.float32))[None, :]
    clip[:, 12000:] = 0.0                                   # trailing silence, as padded clips
    coloured = random_equalizer(clip, 8.0, 16000, torch.Generator().manual_seed(1))
    for normalize in (False, True):
        config = FeatureConfig(kind="logmel", n_mels=32, top_db=80, mean_normalize=normalize)
        frontend = FrontEnd(config, 16000)
        plain, changed = frontend(clip)[0, 0], frontend(coloured)[0, 0]
        difference = (plain - changed)[:, 10:40].abs().mean()   # voiced frames
        if normalize:
            assert difference < 1.0
            # silent frames are set to the band mean: zero
            assert float(plain[:, -5:].abs().max()) == 0.0
            reference = reference_features(clip[0].double().numpy(), config, 16000)[0]
            np.testing.assert_allclose(plain.numpy(), reference, atol=2e-3)
        else:
            assert difference > 2.0
