"""Shared test helpers: audio made on the spot, a small dataset, the realdata marker.

Every test makes its own audio (tones, noise) with soundfile in ``tmp_path``;
the real recordings in ``../shared/data`` are only used by tests marked
``@pytest.mark.realdata``, which skip when that folder is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile

#: The real recordings (see its README); absent on a fresh machine.
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

#: The frequency of each class's tone in :func:`class_folder`.
CLASS_FREQUENCIES = {"down": 300.0, "go": 700.0, "yes": 1500.0}
SPEAKERS_PER_CLASS = 6
TAKES_PER_SPEAKER = 2
DATASET_RATE = 16000


def tone(seconds: float, rate: int, freq: float, channels: int = 1,
         amplitude: float = 0.5) -> np.ndarray:
    """A sine tone, float32, ``(frames,)`` or ``(frames, channels)``.

    Channel ``c`` is scaled by ``1 / (c + 1)`` so channels differ and a
    mix-down is checkable.
    """
    frames = int(round(seconds * rate))
    wave = amplitude * np.sin(2 * np.pi * freq * np.arange(frames) / rate)
    if channels == 1:
        return wave.astype(np.float32)
    return np.stack([wave / (c + 1) for c in range(channels)], axis=1).astype(np.float32)


def write_tone(path: str | os.PathLike, seconds: float, rate: int, freq: float,
               channels: int = 1, subtype: str | None = "PCM_16",
               amplitude: float = 0.5) -> np.ndarray:
    """Write a tone with soundfile and return the float32 samples written.

    The format follows the extension (soundfile's own rule); ``subtype=None``
    lets soundfile pick its default for the format (needed for OGG and MP3).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    samples = tone(seconds, rate, freq, channels, amplitude)
    soundfile.write(str(path), samples, rate, subtype=subtype)
    return samples


def write_noise(path: str | os.PathLike, seconds: float, rate: int, seed: int = 0,
                amplitude: float = 0.3, subtype: str = "PCM_16") -> np.ndarray:
    """Write uniform white noise and return the samples written."""
    rng = np.random.default_rng(seed)
    samples = (amplitude * rng.uniform(-1, 1, int(round(seconds * rate)))).astype(np.float32)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), samples, rate, subtype=subtype)
    return samples


def onnx_session(model):
    """An onnxruntime session of an in-memory ONNX model, on the CPU."""
    import onnxruntime

    return onnxruntime.InferenceSession(model.SerializeToString(),
                                        providers=["CPUExecutionProvider"])


def speaker_id(class_index: int, speaker: int) -> str:
    """An 8-hex-digit Speech Commands-style speaker hash, distinct per class and speaker."""
    return f"{(class_index + 1) * 0x1000 + speaker:08x}"


def dominant_frequency(audio: np.ndarray, rate: int) -> float:
    """The frequency (Hz) of the FFT magnitude peak."""
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    return float(np.fft.rfftfreq(len(audio), 1 / rate)[np.argmax(spectrum)])


@pytest.fixture
def class_folder(tmp_path: Path) -> Path:
    """A folder per class: 3 classes x 6 speakers x 2 takes of 0.1 s tones.

    Files are named ``<8 hex>_nohash_<n>.wav`` (Speech Commands style); each
    class has its own tone frequency, each speaker its own hash (speakers are
    not shared between classes). A ``_background_noise_`` folder and a stray
    file at the top level are there to be ignored.
    """
    root = tmp_path / "dataset"
    for class_index, (label, freq) in enumerate(CLASS_FREQUENCIES.items()):
        for speaker in range(SPEAKERS_PER_CLASS):
            for take in range(TAKES_PER_SPEAKER):
                name = f"{speaker_id(class_index, speaker)}_nohash_{take}.wav"
                write_tone(root / label / name, 0.1, DATASET_RATE, freq,
                           amplitude=0.2 + 0.1 * take)
    write_noise(root / "_background_noise_" / "white_noise.wav", 0.2, DATASET_RATE)
    write_tone(root / "stray.wav", 0.1, DATASET_RATE, 100.0)
    (root / "README.txt").write_text("not audio")
    return root


@pytest.fixture(scope="session", autouse=True)
def _earmark_cache(tmp_path_factory: pytest.TempPathFactory):
    """Point EARMARK_CACHE at a temporary folder so no test writes to ~/.cache."""
    folder = tmp_path_factory.mktemp("earmark-cache")
    previous = os.environ.get("EARMARK_CACHE")
    os.environ["EARMARK_CACHE"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("EARMARK_CACHE", None)
    else:
        os.environ["EARMARK_CACHE"] = previous


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``realdata`` tests when ``../shared/data`` is absent."""
    if SHARED_DATA.is_dir():
        return
    skip = pytest.mark.skip(reason=f"needs the real recordings in {SHARED_DATA}")
    for item in items:
        if "realdata" in item.keywords:
            item.add_marker(skip)


# ----------------------------------------------------------- a trained model
TONE_RATE = 8000
TONE_FREQUENCIES = {"high": 2000.0, "low": 300.0, "mid": 900.0}


def write_tone_dataset(root: Path, speakers: int = 10, takes: int = 3, seed: int = 0) -> Path:
    """Three classes of noisy tones (0.4-0.6 s, 8 kHz) and ``_silence_`` (the noise alone),
    with Speech Commands-style names."""
    rng = np.random.default_rng(seed)
    for label, frequency in {**TONE_FREQUENCIES, "_silence_": 0.0}.items():
        (root / label).mkdir(parents=True)
        for speaker in range(speakers):
            for take in range(takes):
                seconds = rng.uniform(0.4, 0.6)
                t = np.arange(int(seconds * TONE_RATE)) / TONE_RATE
                pitch = frequency * rng.uniform(0.95, 1.05)
                level = 0.4 if frequency else 0.0
                clip = level * np.sin(2 * np.pi * pitch * t) + 0.05 * rng.standard_normal(len(t))
                soundfile.write(root / label / f"{speaker:08x}_nohash_{take}.wav",
                                clip.astype(np.float32), TONE_RATE)
    return root


def tone_config(root: Path, cache: Path, **train):
    from earmark.config import from_dict

    return from_dict({
        "data": {"root": str(root), "sample_rate": TONE_RATE, "clip_seconds": 0.5,
                 "hop_seconds": 0.25, "cache_dir": str(cache), "ratios": [0.6, 0.2, 0.2]},
        "features": {"kind": "logmel", "n_mels": 16, "window_ms": 32.0, "hop_ms": 16.0},
        "model": {"name": "dscnn", "channels": 16, "blocks": 2},
        "augment": {"shift_ms": 20.0, "gain_db": [-3.0, 3.0]},
        "train": {"epochs": 15, "batch_size": 8, "learning_rate": 0.01, "threads": 1,
                  "report_every": 3, **train},
    })


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small model trained once on tones; tests read it, never change it."""
    from earmark.train import train

    base = tmp_path_factory.mktemp("trained")
    root = write_tone_dataset(base / "tones")
    train(tone_config(root, base / "cache"), base / "run", progress=False)
    return base / "run"


@pytest.fixture(scope="session")
def bundle(trained_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The trained tone model exported once as a float bundle."""
    from earmark.export import export_run

    out = tmp_path_factory.mktemp("bundle") / "tones"
    export_run(trained_run, out, progress=False)
    return out


# ------------------------------------------------ a wake word as a pattern of tones

PATTERN_RATE = 16000


def write_pattern_dataset(root: Path, speakers: int = 8, takes: int = 4) -> Path:
    """"wake": a low tone then a high one; "_unknown_": the same tones the other way
    round, and the noise alone. 1 s clips at 16 kHz, Speech Commands names."""
    rng = np.random.default_rng(0)
    clips = {"wake": [(500.0, 1500.0)] * takes,
             "_unknown_": [(1500.0, 500.0)] * takes + [None] * (takes // 2)}
    for label, orders in clips.items():
        (root / label).mkdir(parents=True)
        for speaker in range(speakers):
            for take, order in enumerate(orders):
                soundfile.write(root / label / f"{speaker:08x}_nohash_{take}.wav",
                                pattern_clip(order, rng), PATTERN_RATE)
    return root


def pattern_clip(order, rng) -> np.ndarray:
    clip = 0.03 * rng.standard_normal(PATTERN_RATE)
    if order:
        start = int(rng.uniform(0.3, 0.45) * PATTERN_RATE)
        t = np.arange(int(0.25 * PATTERN_RATE)) / PATTERN_RATE
        for k, pitch in enumerate(order):
            at = start + k * len(t)
            clip[at:at + len(t)] += 0.4 * np.sin(2 * np.pi * pitch * rng.uniform(0.95, 1.05) * t)
    return clip.astype(np.float32)


def train_pattern_run(base: Path, features: dict, model: dict, epochs: int,
                      ratios: list[float], speakers: int = 8, takes: int = 4) -> Path:
    """A run trained on :func:`write_pattern_dataset` with ``features`` and ``model``."""
    from earmark.config import from_dict
    from earmark.train import train

    root = write_pattern_dataset(base / "patterns", speakers, takes)
    config = from_dict({
        "data": {"root": str(root), "sample_rate": PATTERN_RATE, "clip_seconds": 1.0,
                 "hop_seconds": 0.5, "cache_dir": str(base / "cache"), "ratios": ratios},
        "features": features, "model": model, "augment": {"gain_db": [-3.0, 3.0]},
        "train": {"epochs": epochs, "batch_size": 8, "learning_rate": 0.01, "threads": 1}})
    train(config, base / "run", progress=False)
    return base / "run"
