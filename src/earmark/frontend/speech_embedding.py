"""A pretrained speech embedding: 96 numbers every 80 ms that already know speech (numpy + ONNX).

Google's speech embedding (Lin et al., "Training keyword spotters with
limited and synthesized speech data", ICASSP 2020) was trained on a large
corpus of real speech to make keyword spotting work from few or synthesized
examples. earmark ships it as openWakeWord published it, two ONNX graphs
under the Apache License 2.0 (``pretrained/``, with the licence and the
files' hashes):

- ``melspectrogram.onnx``: 16-bit-scaled samples -> 32 log-mel bands every
  10 ms (512-sample window, no centring), here scaled ``x / 10 + 2`` as the
  embedding expects;
- ``embedding_model.onnx``: 76 mel frames (0.76 s) -> 96 numbers, taken
  every 8 frames (80 ms).

The mel graph floors its output 80 dB below the loudest value of the whole
input; earmark computes the same numbers for half the work and floors them at a
fixed level instead (:mod:`earmark.frontend.embedding_mel`), so each frame
depends on its own samples: a clip in a batch, alone or in a stream gives the
same numbers. The embedding stays frozen: a model on top
learns the phrase. No torch here: bundles run these graphs in onnxruntime.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from earmark.errors import ConfigError

KIND = "embedding"        #: ``features.kind`` of this front-end
SAMPLE_RATE = 16000
MEL_WINDOW = 512          #: samples per mel frame
MEL_HOP = 160             #: 10 ms
MEL_BANDS = 32
EMBEDDING_FRAMES = 76     #: mel frames per embedding (0.76 s)
EMBEDDING_STEP = 8        #: mel frames between embeddings (80 ms)
DIMENSIONS = 96
HOP_SAMPLES = MEL_HOP * EMBEDDING_STEP                      #: 1280: 80 ms
#: The samples the first embedding needs (0.78 s).
WINDOW_SAMPLES = MEL_WINDOW + (EMBEDDING_FRAMES - 1) * MEL_HOP
#: The window of a model of a phrase on the embedding (a wake word): 16 columns of 80 ms,
#: as openWakeWord's heads read.
PHRASE_WINDOW_SECONDS = 2.0
#: The window of a model of single words on the embedding: 10 columns. A one-second clip
#: in its middle lies whole inside several 0.78 s columns; in a one-second window it fills
#: three, none of them whole (the demo, real speakers: 85.5% and 85.4% against 76.9% and
#: 74.8%). In 2 s it is heard as well (84.9-85.7%), but a stream's neighbouring words share
#: the window and a word is judged about a second after it ends (the demo's streams: 5-71%
#: of the words found, against 70-79% in 1.5 s).
WORD_WINDOW_SECONDS = 1.5
#: The mel graph's floor, dB of mel power in 16-bit units (0 dB: one step squared).
FLOOR_DB = 0.0
#: The mel stage as earmark's log-mel settings describe it (what a person hears of an
#: embedding bundle: 32 bands from 60 to 3,800 Hz, a 512-sample Hann window every 10 ms).
MEL_SETTINGS = {"kind": "logmel", "window_ms": 32.0, "hop_ms": 10.0, "n_fft": 512,
                "n_mels": MEL_BANDS, "fmin": 60.0, "fmax": 3800.0}
#: The shipped graphs (``pretrained/``) and their SHA-256.
FILES = {"mel": ("melspectrogram.onnx",
                 "ba2b0e0f8b7b875369a2c89cb13360ff53bac436f2895cced9f479fa65eb176f"),
         "embedding": ("embedding_model.onnx",
                       "70d164290c1d095d1d4ee149bc5e00543250a7316b59f31d056cff7bd3075c1f")}


@functools.lru_cache(maxsize=1)
def model_files() -> dict[str, Path]:
    """The two ONNX files shipped with earmark, checked against their hashes."""
    folder = Path(str(resources.files("earmark.frontend") / "pretrained"))
    paths = {}
    for name, (file, digest) in FILES.items():
        path = folder / file
        if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            raise ConfigError(f"{path}: missing or damaged (not the file earmark shipped); "
                              "reinstall earmark")
        paths[name] = path
    return paths


def mel_frame_count(samples: int) -> int:
    """Mel frames for ``samples`` samples (0 under one 512-sample window)."""
    return 0 if samples < MEL_WINDOW else 1 + (samples - MEL_WINDOW) // MEL_HOP


def column_count(mel_frames: int) -> int:
    """Embeddings for ``mel_frames`` mel frames (0 under 76)."""
    if mel_frames < EMBEDDING_FRAMES:
        return 0
    return 1 + (mel_frames - EMBEDDING_FRAMES) // EMBEDDING_STEP


def embedding_count(samples: int) -> int:
    """Embeddings for ``samples`` samples (0 under :data:`WINDOW_SAMPLES`)."""
    return column_count(mel_frame_count(samples))


#: The embedding network's blocks: each a few convolutions and a max-pooling (the last
#: block also the final convolution that gives the 96 numbers).
BLOCKS = 5


@dataclass(frozen=True)
class Depth:
    """The first ``blocks`` blocks of the embedding network, slid along the mel frames.

    Their output is a column of ``channels`` x ``bands`` numbers every
    ``step_frames`` mel frames, the first from ``first_frames``: fewer blocks
    keep the pretrained network's lower layers (fewer parameters, finer in
    time) for a trained model to take over from; all five are the embedding.
    """

    blocks: int
    channels: int
    bands: int
    step_frames: int
    first_frames: int
    parameters: int       #: the pretrained weights and biases of these blocks

    @property
    def dimensions(self) -> int:
        """Numbers per column."""
        return self.channels * self.bands

    @property
    def hop_samples(self) -> int:
        """Samples between columns."""
        return self.step_frames * MEL_HOP

    @property
    def window_samples(self) -> int:
        """The samples the first column needs."""
        return MEL_WINDOW + (self.first_frames - 1) * MEL_HOP

    def columns(self, mel_frames: int) -> int:
        """Columns for ``mel_frames`` mel frames (0 under :attr:`first_frames`)."""
        if mel_frames < self.first_frames:
            return 0
        return 1 + (mel_frames - self.first_frames) // self.step_frames

    def count(self, samples: int) -> int:
        """Columns for ``samples`` samples (0 under :attr:`window_samples`)."""
        return self.columns(mel_frame_count(samples))


#: Each depth's geometry, from the shipped graph (checked against it by the tests): time
#: convolutions of kernel 3 unpadded, time poolings in blocks 1, 3 and 5.
_DEPTHS = {1: Depth(1, 24, 16, 2, 6, 3_744),
           2: Depth(2, 48, 8, 2, 14, 28_128),
           3: Depth(3, 72, 4, 4, 24, 85_440),
           4: Depth(4, 96, 2, 4, 40, 189_504),
           5: Depth(5, DIMENSIONS, 1, EMBEDDING_STEP, EMBEDDING_FRAMES, 328_128)}


def depth(blocks: int) -> Depth:
    """The geometry of the embedding network's first ``blocks`` blocks (1 to 5)."""
    if blocks not in _DEPTHS:
        raise ConfigError(f"features.embedding_blocks = {blocks!r}: the speech embedding has "
                          f"blocks 1 to {BLOCKS}; give one of them ({BLOCKS}: the whole "
                          "embedding)")
    return _DEPTHS[blocks]
