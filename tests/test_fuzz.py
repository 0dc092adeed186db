"""Fuzzing what comes from outside: audio files, bundles and arrays never crash earmark.

Hypothesis feeds random and mutated inputs to the functions that read them:

- audio files (valid WAV, FLAC, OGG, MP3 and AIFF bytes written by soundfile,
  then truncated, overwritten, spliced, or random bytes) to
  :func:`earmark.audio.info`, :func:`~earmark.audio.load`,
  :func:`~earmark.audio.read_blocks` and
  :meth:`earmark.runtime.Classifier.classify_file`;
- ``earmark.json`` and ``model.onnx`` of a copy of ``fixtures/bundle_v1`` (an
  8 kHz, 4-class model), rewritten field by field, garbled or cut short, to
  :func:`earmark.runtime.load_bundle`;
- arrays of every dtype and shape, with NaN, infinities and huge values, and
  odd rates, to :meth:`~earmark.runtime.Classifier.classify_array`;
- websocket query strings and messages (PCM blocks, random bytes, text) to the
  stream's own objects (:mod:`earmark.serve.streaming`, no server), where a
  ``ProtocolError`` is an answer too, and every reply must be strict JSON.

Every outcome must be a result or an :class:`earmark.errors.EarmarkError`; any
other exception is a bug. Inputs are small (at most :data:`MAX_FILE_BYTES` per
file, :data:`MAX_ARRAY_SAMPLES` per array) so no call may take long: an
example that runs past :data:`HANG_SECONDS` prints every thread's stack and
ends the test run (``faulthandler``), so a hang fails instead of stalling.
Each example's peak traced memory (``tracemalloc``: Python and numpy
allocations, above what was held before it) must stay under
:data:`MEMORY_BUDGET`, so a header that promises gigabytes costs none.

By default each property tries a fixed set of :data:`DEFAULT_EXAMPLES`
examples (derandomized: the same ones every run, a few seconds in all). For a
longer search, set ``EARMARK_FUZZ_EXAMPLES``; the examples are then drawn at
random on each run (Hypothesis prints how to reproduce a failure)::

    EARMARK_FUZZ_EXAMPLES=5000 .venv/bin/python -m pytest tests/test_fuzz.py
"""

from __future__ import annotations

import contextlib
import faulthandler
import functools
import io
import json
import os
import shutil
import string
import tempfile
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from earmark import audio
from earmark.errors import EarmarkError
from earmark.input_limits import MAX_CHANNELS, MAX_SAMPLE_RATE, MIN_SAMPLE_RATE
from earmark.runtime import Bundle, Classifier, load_bundle

FIXTURE_BUNDLE = Path(__file__).parent / "fixtures" / "bundle_v1"
#: Examples per property by default; ``EARMARK_FUZZ_EXAMPLES`` raises it.
DEFAULT_EXAMPLES = 60
EXAMPLES = int(os.environ.get("EARMARK_FUZZ_EXAMPLES", DEFAULT_EXAMPLES))
#: The largest input file one example writes.
MAX_FILE_BYTES = 64 * 1024
#: The most samples (all channels) in one fuzzed array.
MAX_ARRAY_SAMPLES = 12_000
#: One example running longer than this is a hang.
HANG_SECONDS = 120
#: The peak traced memory one example may add.
MEMORY_BUDGET = 64 * 2**20

FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                derandomize="EARMARK_FUZZ_EXAMPLES" not in os.environ,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return Classifier.from_bundle(FIXTURE_BUNDLE, threads=1)


class Watch:
    """Watches each example: its peak traced memory and how long it runs."""

    def __init__(self):
        self.worst, self.worst_case = 0, ""

    @contextlib.contextmanager
    def example(self, case: object):
        """Measure the block's peak traced memory above what was held when it began; dump
        every stack and exit when it outlasts :data:`HANG_SECONDS`."""
        held = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        faulthandler.dump_traceback_later(HANG_SECONDS, exit=True)
        try:
            yield
        finally:
            faulthandler.cancel_dump_traceback_later()
            peak = tracemalloc.get_traced_memory()[1] - held
            if peak > self.worst:
                self.worst, self.worst_case = peak, repr(case)[:300]


@settings(max_examples=1, database=None)
@given(st.none())
def warm_up(_) -> None:
    """Nothing; running it lets Hypothesis read the project's source for constants (once,
    on the first run in a process) before tracemalloc starts, which slows that reading."""


@contextlib.contextmanager
def memory_budget(budget: int = MEMORY_BUDGET):
    """Trace allocations in the block; fail when one example's peak passes ``budget`` bytes."""
    watch = Watch()
    warm_up()
    tracemalloc.start()
    try:
        yield watch
    finally:
        tracemalloc.stop()
    assert watch.worst < budget, (f"an example's peak traced memory was "
                                  f"{watch.worst / 2**20:.1f} MiB (budget "
                                  f"{budget / 2**20:.0f} MiB): {watch.worst_case}")


def outcome(call):
    """``call()``'s result, or the EarmarkError it raised; anything else propagates."""
    try:
        return call()
    except EarmarkError as error:
        return error


# ------------------------------------------------------------------ audio files

def _tone(seconds: float, rate: int, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.4 * np.sin(2 * np.pi * 440.0 * t) + 0.1 * np.sin(2 * np.pi * 1300.0 * t)
    return np.stack([wave / (c + 1) for c in range(channels)], axis=1).astype(np.float32)


@functools.cache
def seed_files() -> tuple[tuple[str, bytes], ...]:
    """Valid files to mutate: ``(suffix, bytes)``, each under :data:`MAX_FILE_BYTES`."""
    recipes = [  # suffix, container, subtype, rate, channels, seconds
        (".wav", "WAV", "PCM_16", 8000, 1, 0.6), (".wav", "WAV", "FLOAT", 16000, 2, 0.2),
        (".wav", "WAV", "PCM_U8", 11025, 1, 0.3), (".wav", "WAV", "PCM_24", 44100, 1, 0.1),
        (".flac", "FLAC", "PCM_16", 8000, 1, 0.6), (".flac", "FLAC", "PCM_24", 48000, 2, 0.1),
        (".ogg", "OGG", "VORBIS", 16000, 1, 0.6), (".aiff", "AIFF", "PCM_16", 22050, 1, 0.2)]
    if "MP3" in soundfile.available_formats():
        recipes.append((".mp3", "MP3", "MPEG_LAYER_III", 16000, 1, 0.6))
    seeds = []
    for suffix, container, subtype, rate, channels, seconds in recipes:
        buffer = io.BytesIO()
        soundfile.write(buffer, _tone(seconds, rate, channels), rate, format=container,
                        subtype=subtype)
        assert len(buffer.getvalue()) <= MAX_FILE_BYTES, (suffix, subtype)
        seeds.append((suffix, buffer.getvalue()))
    return tuple(seeds)


#: Values a mutated header field takes: zero, one, sign and size edges, absurd rates.
FIELD_VALUES = [0, 1, 2, 3, 999, 1000, 65535, 65536, 384001, 5_000_000, 0x7FFFFFFF,
                0x80000000, 0xFFFFFFFE, 0xFFFFFFFF]
MAGIC = [b"", b"RIFF\x24\x00\x00\x00WAVEfmt ", b"fLaC", b"OggS\x00\x02", b"ID3\x04\x00",
         b"\xff\xfb\x90\x00", b"FORM\x00\x00\x10\x00AIFFCOMM"]


@st.composite
def mutation(draw, data: bytes, other: bytes) -> bytes:
    """One change to ``data``: cut, overwrite, set a header field, insert, delete, splice."""
    size = len(data)
    at = draw(st.integers(0, max(size - 1, 0)))
    if size > 64 and draw(st.booleans()):
        at = draw(st.integers(0, 63))                        # most damage where the header is
    kind = draw(st.sampled_from(["cut", "bytes", "field", "insert", "delete", "splice"]))
    if kind == "cut":
        return data[:at]
    if kind == "bytes":
        return data[:at] + draw(st.binary(min_size=1, max_size=8)) + data[at + 8:]
    if kind == "field":                                      # mostly an aligned header field
        at = draw(st.integers(0, 15)) * 4 if draw(st.booleans()) else at
        value = draw(st.sampled_from(FIELD_VALUES)).to_bytes(4, draw(st.sampled_from(
            ["little", "big"])))
        width = draw(st.sampled_from([1, 2, 4]))
        return data[:at] + value[:width] + data[at + width:]
    if kind == "insert":
        return data[:at] + draw(st.binary(min_size=1, max_size=256)) + data[at:]
    if kind == "delete":
        return data[:at] + data[at + draw(st.integers(1, 512)):]
    cut = draw(st.integers(0, len(other)))
    return data[:at] + other[cut:]                           # one file's header, another's body


@st.composite
def audio_file(draw) -> tuple[str, bytes]:
    """``(suffix, bytes)``: a mutated valid file, or random bytes behind a format's magic."""
    seeds = seed_files()
    suffix, data = draw(st.sampled_from(seeds))
    if draw(st.integers(0, 5)) == 0:
        data = draw(st.sampled_from(MAGIC)) + draw(st.binary(max_size=4096))
    else:
        for _ in range(draw(st.integers(1, 4))):
            other = draw(st.sampled_from(seeds))[1]
            data = draw(mutation(data, other))
    if draw(st.integers(0, 4)) == 0:
        suffix = draw(st.sampled_from([".wav", ".flac", ".ogg", ".mp3", ".aiff", ".opus", ".bin"]))
    return suffix, data[:MAX_FILE_BYTES]


def _check_file(path: Path, classifier: Classifier) -> None:
    header = outcome(lambda: audio.info(path))
    if isinstance(header, audio.AudioInfo):
        assert MIN_SAMPLE_RATE <= header.sample_rate <= MAX_SAMPLE_RATE
        assert 1 <= header.channels <= MAX_CHANNELS
    loaded = outcome(lambda: audio.load(path, 8000))
    if isinstance(loaded, np.ndarray):
        assert loaded.dtype == np.float32 and loaded.ndim == 1 and np.isfinite(loaded).all()
    blocks = outcome(lambda: list(audio.read_blocks(path, 8000, block_seconds=0.05)))
    if isinstance(blocks, list):
        assert all(b.dtype == np.float32 and np.isfinite(b).all() for b in blocks)
    result = outcome(lambda: classifier.classify_file(path, block_seconds=0.1))
    if not isinstance(result, EarmarkError):
        assert np.isfinite(result.window_probabilities).all()
        assert result.probabilities.sum() == pytest.approx(1.0, abs=1e-3)


def test_audio_files_give_results_or_audio_errors(classifier, tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz-audio")

    @FUZZ
    @given(audio_file())
    def check(case):
        suffix, data = case
        path = folder / f"fuzzed{suffix}"
        path.write_bytes(data)
        with watch.example(case):
            _check_file(path, classifier)

    with memory_budget() as watch:
        check()


# ---------------------------------------------------------------------- bundles

#: Characters for fuzzed text: ASCII, controls, accents, a symbol outside the BMP.
ALPHABET = string.printable + "\x00\x7f\u00e9\u20ac\ufeff\U0001f3b5"


def text(max_size: int, min_size: int = 0) -> st.SearchStrategy[str]:
    """Strings of :data:`ALPHABET`. (``st.text`` makes Hypothesis build its Unicode tables
    on a fresh machine first: seconds, and half a minute and 200 MiB under tracemalloc.)"""
    return st.lists(st.sampled_from(ALPHABET), min_size=min_size, max_size=max_size).map(
        "".join)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63) | st.floats() | text(20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(text(10), inner, max_size=5),
    max_leaves=10)


def _json_paths(value, prefix=()):
    """Every key path in a JSON document (objects only)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield prefix + (key,)
            yield from _json_paths(item, prefix + (key,))


@st.composite
def metadata_text(draw) -> bytes:
    """``earmark.json``: a field changed, removed or added, or the text garbled."""
    original = (FIXTURE_BUNDLE / "earmark.json").read_bytes()
    kind = draw(st.sampled_from(["set", "set", "set", "remove", "add", "garble", "random"]))
    if kind == "garble":
        return draw(mutation(original, original))
    if kind == "random":
        return draw(st.binary(max_size=2048) | text(2048).map(str.encode))
    document = json.loads(original)
    path = draw(st.sampled_from(sorted(_json_paths(document), key=str)))
    parent = functools.reduce(lambda node, key: node[key], path[:-1], document)
    if kind == "remove":
        del parent[path[-1]]
    elif kind == "add":
        parent[draw(text(10, min_size=1))] = draw(JSON_VALUES)
    else:
        parent[path[-1]] = draw(JSON_VALUES | st.sampled_from(FIELD_VALUES + [-1, 0.5, 1e308]))
    return json.dumps(document).encode()


@st.composite
def model_bytes(draw) -> bytes | None:
    """``model.onnx``: untouched (None), cut short, overwritten in places, or random."""
    original = (FIXTURE_BUNDLE / "model.onnx").read_bytes()
    kind = draw(st.sampled_from(["same", "same", "mutated", "random", "stream"]))
    if kind == "same":
        return None
    if kind == "random":
        return draw(st.binary(max_size=4096))
    if kind == "stream":                     # a graph from the same bundle, but the wrong one
        return (FIXTURE_BUNDLE / "stream" / "window.onnx").read_bytes()
    data = original
    for _ in range(draw(st.integers(1, 3))):
        data = draw(mutation(data, original))
    return data


def test_bundles_load_or_give_data_errors(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz-bundles")

    @FUZZ
    @given(metadata_text(), model_bytes())
    def check(metadata, model):
        folder = Path(tempfile.mkdtemp(dir=root))
        try:
            shutil.copytree(FIXTURE_BUNDLE, folder, dirs_exist_ok=True)
            (folder / "earmark.json").write_bytes(metadata)
            if model is not None:
                (folder / "model.onnx").write_bytes(model)
            with watch.example((metadata, model)):
                bundle = outcome(lambda: load_bundle(folder, threads=1))
                if isinstance(bundle, Bundle):
                    clip = np.zeros(bundle.sample_rate // 10, dtype=np.float32)
                    outcome(lambda: Classifier(bundle).classify_array(clip, bundle.sample_rate))
        finally:
            shutil.rmtree(folder)

    with memory_budget() as watch:
        check()


# ----------------------------------------------------------------------- arrays

DTYPES = [np.float16, np.float32, np.float64, np.int8, np.int16, np.int32, np.int64,
          np.uint8, np.uint16, np.bool_, np.complex64]
SHAPES = st.one_of(
    st.tuples(st.integers(0, MAX_ARRAY_SAMPLES)),
    st.tuples(st.integers(0, 200), st.integers(0, MAX_CHANNELS + 2)),
    st.tuples(st.integers(0, 3), st.integers(0, 3000)),                 # (channels, samples)
    st.just(()), hnp.array_shapes(min_dims=3, max_dims=4, max_side=6))
RATES = st.one_of(st.sampled_from([8000, 16000, 44100, MIN_SAMPLE_RATE, MAX_SAMPLE_RATE]),
                  st.integers(-10, 10**7), st.floats(), st.sampled_from(["8000", None, True]))


@st.composite
def sample_array(draw):
    """An array of any dtype and shape; floats hold NaN, infinities and huge values."""
    if draw(st.integers(0, 9)) == 0:                # lists, ragged lists, strings
        return draw(st.lists(st.floats() | st.integers(-2**40, 2**40), max_size=50)
                    | st.just([[0.1, 0.2], [0.3]]) | st.just("not audio"))
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    shape = draw(SHAPES)
    if int(np.prod(shape)) > MAX_ARRAY_SAMPLES:
        shape = (MAX_ARRAY_SAMPLES,)
    fill = draw(hnp.from_dtype(dtype))               # one value everywhere (edge values)
    array = np.full(shape, fill, dtype=dtype)
    if array.size and draw(st.booleans()):           # plus varied values in places
        spots = draw(st.lists(st.tuples(st.integers(0, array.size - 1), hnp.from_dtype(dtype)),
                              max_size=8))
        for index, value in spots:
            array.flat[index] = value
    if dtype.kind == "f" and array.size and draw(st.booleans()):
        wave = 0.3 * np.sin(np.arange(array.size) * 0.05) * 10.0 ** draw(st.integers(0, 40))
        with np.errstate(all="ignore"):              # a tone, quiet to far too loud
            array = array + wave.reshape(shape).astype(dtype)
    return array


def test_arrays_give_results_or_errors(classifier):
    @FUZZ
    @given(sample_array(), RATES)
    def check(samples, rate):
        with watch.example((samples, rate)):
            result = outcome(lambda: classifier.classify_array(samples, rate))
        if not isinstance(result, EarmarkError):
            assert result.duration > 0
            assert len(result.window_starts) == len(result.window_probabilities) > 0
            assert np.isfinite(result.window_probabilities).all()
            assert result.probabilities.sum() == pytest.approx(1.0, abs=1e-3)

    with memory_budget() as watch:
        check()


# ------------------------------------------------------- websocket stream messages

PCM_FORMATS = ["f32le", "s16le", "s32le", "f32", "s16", "u8", "f64le", "", "F32LE"]


@st.composite
def stream_message(draw, sample_format: str) -> bytes | str:
    """One message a client might send: random bytes, PCM (NaN, loud, odd lengths), text."""
    kind = draw(st.sampled_from(["pcm", "pcm", "bytes", "text", "stop"]))
    if kind == "bytes":
        return draw(st.binary(max_size=4096))
    if kind == "text":
        return draw(text(200) | st.sampled_from(['{"type": "stop"', '{"type": "go"}', "[]",
                                                 '"stop"', '{"type": null}']))
    if kind == "stop":
        return '{"type": "stop"}'
    dtype = {"s16": np.int16, "s32": np.int32}.get(sample_format[:3].lower(), np.float32)
    samples = draw(hnp.arrays(np.dtype(dtype).newbyteorder("<"), st.integers(0, 2000)))
    data = samples.tobytes()
    return data[:len(data) - draw(st.integers(0, 3))] if data else data


def _run_stream(bundle, graphs, query: dict, messages: list, stream_kinds) -> None:
    """Open a session as the server does and pass it the messages until it ends or refuses."""
    StreamSession, ProtocolError, stream_parameters, ServeLimits, SmootherConfig = stream_kinds
    try:
        rate, sample_format = stream_parameters(query, bundle.sample_rate)
        session = StreamSession(bundle, graphs, SmootherConfig(), 20.0, rate, sample_format,
                                ServeLimits())
        replies = [session.ready()]
        for message in messages:
            handle = session.on_text if isinstance(message, str) else session.on_block
            replies.append(handle(message))
            if replies[-1]["type"] == "end":
                break
        else:
            replies.append(session.finish())
    except (ProtocolError, EarmarkError):
        return
    for reply in replies:                        # what the server sends must be strict JSON
        json.dumps(reply, allow_nan=False)


def test_stream_messages_give_replies_or_protocol_errors():
    """The websocket's session and protocol objects, driven directly (no server)."""
    streaming = pytest.importorskip("earmark.serve.streaming")
    from earmark.runtime.smoother import SmootherConfig
    from earmark.runtime.stream import StreamGraphs
    from earmark.serve.limits import ServeLimits

    bundle = load_bundle(FIXTURE_BUNDLE, threads=1)
    graphs = StreamGraphs(bundle) if StreamGraphs.available(bundle) else None   # as the app
    kinds = (streaming.StreamSession, streaming.ProtocolError, streaming.stream_parameters,
             ServeLimits, SmootherConfig)
    queries = st.fixed_dictionaries({}, optional={
        "rate": st.sampled_from(["8000", "16000", "44100", "0", "1", "nan", "1e9", "-8000",
                                 "8000.5", "", "x"]) | st.integers(-10, 10**6).map(str),
        "format": st.sampled_from(PCM_FORMATS),
        "extra": text(5)})

    @FUZZ
    @given(queries, st.data())
    def check(query, data):
        sample_format = query.get("format", "f32le") or "f32le"
        messages = data.draw(st.lists(stream_message(sample_format), max_size=6))
        with watch.example((query, messages)):
            _run_stream(bundle, graphs, query, messages, kinds)

    with memory_budget() as watch:
        check()
