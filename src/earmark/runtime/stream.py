"""Keyword spotting on a live stream: blocks in, per-stride scores and commands out.

Audio arrives in blocks of any size and rate. The engine resamples it
(soxr, streaming), computes only the *new* front-end frames at each hop
(the bundle's ``stream/frames.onnx``) into a ring buffer, runs the network
on the last window's frames every ``stride_ms`` (``stream/window.onnx``), and
passes the scores through the :class:`~earmark.runtime.smoother.Smoother`.
The result at each stride is exactly what the whole-window model gives on
the same second of audio, for a fraction of the work.

However much audio arrives at once (a long block, a burst the resampler
releases), the engine takes it in slices of at most ``MAX_STRIDES_PER_CALL``
strides, so one onnxruntime call and the memory it needs stay bounded.

Front-ends that look across the whole clip before framing (``center=True``,
the 128x128 image) cannot be computed incrementally; for them, and with
``incremental=False``, the engine runs the whole-window graph every stride.

    >>> engine = StreamEngine(load_bundle("bundles/keywords"), input_rate=44100)
    >>> for event in engine.run(MicrophoneSource(44100)):
    ...     if event.detection:
    ...         print(event.detection)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import onnxruntime
from numpy.lib.stride_tricks import as_strided
import soxr

from earmark.errors import ConfigError, DataError
from earmark.input_limits import check_sample_rate, check_stride_ms, check_threads
from earmark.runtime.bundle import Bundle
from earmark.runtime.metadata import (BUNDLE_JSON, STREAM_FRAMES, STREAM_FRAMES_STEP,
                                      STREAM_STEP, STREAM_WINDOW, StepNetwork, StreamMetadata,
                                      file_sha256)
from earmark.runtime.smoother import Detection, Smoother, SmootherConfig
from earmark.runtime.sources import AudioSource

#: The most one step of the engine takes on: strides, and seconds of audio at the
#: model's rate. A longer block, or a resampler's burst, goes through in slices this
#: long, so one onnxruntime call never scores more and memory stays flat however much
#: audio arrives at once; blocks shorter than a slice (every live source's) take the
#: one call they always took, and the scores do not depend on the slicing.
MAX_STRIDES_PER_CALL = 256
MAX_SECONDS_PER_CALL = 8.0


@dataclass
class StrideResult:
    """The model's view at one stride."""

    time_ms: float                   #: end of the analysed window, from the stream's start
    scores: np.ndarray               #: (classes,) probabilities
    detection: Detection | None      #: a command, when the smoother reports one
    top_label: str | None = None     #: the smoother's current leader (for displays)
    top_score: float = 0.0


class StreamEngine:
    """Incremental front-end + network + smoother over a stream of blocks.

    Parameters
    ----------
    bundle : Bundle
        An exported keyword model.
    stride_ms : float
        How often the network runs; rounded to whole front-end hops (default 20 ms);
        above 0 and at most :data:`earmark.input_limits.MAX_STRIDE_MS`.
    input_rate : int, optional
        Rate of the incoming blocks (the model's when omitted); resampled to the
        model's when different. Checked by :func:`earmark.input_limits.check_sample_rate`.
    smoother : SmootherConfig, optional
        Averaging window, threshold, suppression, minimum count.
    incremental : bool
        Compute only new frames (True) or the whole window every stride (False).
    threads : int
        onnxruntime threads for the incremental graphs (1 keeps a core free).
    graphs : StreamGraphs, optional
        The bundle's stream graphs, already open (shared between engines).
    stepped_network : bool
        Where the bundle has a one-frame network step (a valid-padded DS-CNN),
        compute each layer's new column once per frame (True) instead of the
        whole window's network every stride (False). The scores are the same.
    stepped_frames : bool
        Where the bundle's front-end has a step with states (the speech
        embedding), compute each new frame from its new samples (True) instead
        of from all of its samples (False). The scores are the same.

    Raises
    ------
    ConfigError
        A stride or input rate out of range, naming it.
    DataError
        Stream graphs the bundle promises that are missing, damaged or from
        another bundle.
    """

    def __init__(self, bundle: Bundle, stride_ms: float = 20.0, input_rate: int | None = None,
                 smoother: SmootherConfig | None = None, incremental: bool = True,
                 threads: int = 1, graphs: StreamGraphs | None = None,
                 stepped_network: bool = True, stepped_frames: bool = True):
        self.bundle = bundle
        self.labels = bundle.labels
        self.rate = bundle.sample_rate
        self.window = bundle.window_samples
        self.input_rate = (self.rate if input_rate is None
                           else check_sample_rate(input_rate, "StreamEngine input_rate"))
        stride_ms = check_stride_ms(stride_ms, "StreamEngine stride_ms")
        self.smoother = Smoother(self.labels, smoother or SmootherConfig())
        self.listeners: list[Callable[[StrideResult], None]] = []
        stream = bundle.metadata.stream
        self.incremental = incremental and StreamGraphs.available(bundle)
        # Strides are whole front-end hops, so each window starts on a frame boundary.
        self.frame_hop = stream.frame_hop_samples if stream is not None else 1
        self.stride_samples = max(1, round(stride_ms * self.rate / 1000 / self.frame_hop)) * self.frame_hop
        _check_count_fits(self.smoother.config, 1000 * self.stride_samples / self.rate)
        # The longest slice of audio one step takes, at the model's rate and at the input's.
        most = min(MAX_STRIDES_PER_CALL * self.stride_samples,
                   int(MAX_SECONDS_PER_CALL * self.rate))
        self.slice_samples = max(self.stride_samples, most)
        self._input_slice = max(1, self.slice_samples * self.input_rate // self.rate)
        self._resampler = (soxr.ResampleStream(self.input_rate, self.rate, 1, dtype="float32")
                           if self.input_rate != self.rate else None)
        if self.incremental:
            graphs = graphs or StreamGraphs(bundle, threads)
            self._frames = _frame_stream(graphs, stepped_network, stepped_frames)(graphs, stream)
        else:
            self._samples = _SampleWindow(bundle, self.window)
        self.samples_seen = 0           # at the model's rate
        self._next_result = self.window

    @property
    def network_stepped(self) -> bool:
        """Whether each layer's new column is computed once per frame (``stepped_network``)."""
        return self.incremental and isinstance(self._frames, _SteppedStream)

    @property
    def frames_stepped(self) -> bool:
        """Whether each new frame comes from its new samples only (``stepped_frames``)."""
        return self.incremental and isinstance(self._frames, _StatefulFrameStream)

    @property
    def stride_ms(self) -> float:
        return 1000.0 * self.stride_samples / self.rate

    def add_listener(self, listener: Callable[[StrideResult], None]) -> None:
        """Call ``listener(result)`` for every stride result."""
        self.listeners.append(listener)

    def process(self, block: np.ndarray) -> list[StrideResult]:
        """Feed one block (at ``input_rate``); return the strides it completed.

        A block longer than ``slice_samples`` (or a burst the resampler
        releases) is taken in slices of that length, each scored in one
        onnxruntime call, so the work and memory of a call stay bounded
        whatever arrives; the results are the same as for smaller blocks.
        """
        block = np.asarray(block, dtype=np.float32).reshape(-1)
        if self._resampler is not None:
            if len(block) > self._input_slice:
                return [result for piece in _slices(block, self._input_slice)
                        for result in self.process(piece)]
            block = self._resampler.resample_chunk(block)
        if len(block) > self.slice_samples:
            return [result for piece in _slices(block, self.slice_samples)
                    for result in self._advance(piece)]
        return self._advance(block)

    def _advance(self, block: np.ndarray) -> list[StrideResult]:
        """Take a slice at the model's rate; score the strides it completes."""
        self.samples_seen += len(block)
        if self.incremental:
            self._frames.append(block)
        else:
            self._samples.append(block)
        if self._next_result > self.samples_seen:
            return []
        ends = np.arange(self._next_result, self.samples_seen + 1, self.stride_samples)
        self._next_result = int(ends[-1]) + self.stride_samples
        return self._strides(ends)

    def finish(self) -> list[StrideResult]:
        """The stream has ended: flush the resampler's last samples through."""
        if self._resampler is None:
            return []
        tail = self._resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
        self._resampler = None
        return self.process(tail) if len(tail) else []

    def run(self, source: AudioSource | Iterable[np.ndarray]) -> Iterator[StrideResult]:
        """Iterate the stride results of a whole source (or any iterable of blocks)."""
        blocks = source.blocks() if hasattr(source, "blocks") else source
        for block in blocks:
            yield from self.process(block)
        yield from self.finish()

    def _strides(self, end_samples: np.ndarray) -> list[StrideResult]:
        """Score the windows ending at these samples (one model call for all of them),
        then smooth them in order and tell the listeners about each."""
        if self.incremental:
            scores = self._frames.scores(end_samples - self.window)
        else:
            scores = self._samples.scores(end_samples)
        smoother, results = self.smoother, []
        for end_sample, row in zip(end_samples.tolist(), scores):
            time_ms = 1000.0 * end_sample / self.rate
            detection = smoother.update(row, time_ms)
            result = StrideResult(time_ms, row, detection, smoother.top_label,
                                  smoother.top_score)
            for listener in self.listeners:
                listener(result)
            results.append(result)
        return results


def _frame_stream(graphs: StreamGraphs, stepped_network: bool,
                  stepped_frames: bool) -> type[_FrameStream]:
    """How new frames become scores: the network stepped, the front-end stepped, or new
    frames from all their samples and the window's network on them."""
    if graphs.step_session is not None and stepped_network:
        return _SteppedStream
    if graphs.frames_step_session is not None and stepped_frames:
        return _StatefulFrameStream
    return _FrameStream


def _slices(block: np.ndarray, size: int) -> Iterator[np.ndarray]:
    """``block`` in consecutive views of at most ``size`` samples."""
    return (block[start:start + size] for start in range(0, len(block), size))


class StreamGraphs:
    """A bundle's stream graphs: new frames, the network on a window of frames, and
    (for a valid-padded DS-CNN) the network one frame at a time.

    Opened once, they can serve many engines at once, from many threads
    (onnxruntime sessions are thread-safe): a server keeps one.

    Raises
    ------
    DataError
        A graph the metadata promises that is missing, that onnxruntime cannot
        load, or whose inputs and outputs are not what the metadata describes
        (a file from another bundle): naming the file, saying to re-export.
    """

    def __init__(self, bundle: Bundle, threads: int = 1):
        self.stream = stream = _promised_stream(bundle)
        self.network: StepNetwork | None = self.stream.network
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = check_threads(threads)
        options.inter_op_num_threads = 1
        classes = len(bundle.labels)
        self.frames_session = _open_graph(bundle, STREAM_FRAMES, "stream", options,
                                          [{"waveform": (None, None)}], (None, None, None))
        self.window_session = _open_graph(
            bundle, STREAM_WINDOW, "stream", options,
            [{"frames": (None, None, stream.frames_per_window)}], (None, classes))
        self.step_session = (None if self.network is None else _open_graph(
            bundle, STREAM_STEP, "stream.network", options, _step_inputs(stream),
            (1, classes, None)))
        self.frames_step_session = (None if stream.frames_step is None else _open_graph(
            bundle, STREAM_FRAMES_STEP, "stream.frames_step", options,
            _frames_step_inputs(stream), (1, None, None)))

    @staticmethod
    def available(bundle: Bundle) -> bool:
        """Whether the bundle was exported with incremental stream graphs.

        True when its metadata says ``stream.incremental``; :class:`StreamGraphs`
        then fails with a clear error if the files are missing.
        """
        stream = bundle.metadata.stream
        return stream is not None and stream.incremental and bundle.path.is_dir()


def _check_count_fits(config: SmootherConfig, stride_ms: float) -> None:
    """The averaging window holds at least ``minimum_count`` results at this stride (else
    nothing could ever be detected)."""
    fits = int(config.average_window_ms // stride_ms) + 1
    if config.minimum_count > fits:
        raise ConfigError(f"minimum count {config.minimum_count}: a {config.average_window_ms:g} "
                          f"ms averaging window at a stride of {stride_ms:g} ms holds at most "
                          f"{fits} results, so nothing could be detected; give a count of at "
                          f"most {fits}, a longer window or a shorter stride")


def _promised_stream(bundle: Bundle) -> StreamMetadata:
    """The bundle's stream metadata; a :class:`DataError` when it has none."""
    stream = bundle.metadata.stream
    if stream is None or not bundle.path.is_dir():
        raise DataError(f"{bundle.path}: no stream graphs (its metadata has no 'stream' field; "
                        "a model.onnx loaded alone has none); load the whole bundle folder, "
                        "or use StreamEngine(..., incremental=False)")
    return stream


#: A graph's inputs as the engine feeds them: name -> shape (``None``: any size there;
#: a shape of ``None``: not checked).
_GraphInputs = dict[str, tuple[int | None, ...] | None]


def _step_inputs(stream: StreamMetadata) -> list[_GraphInputs]:
    """What the network step takes: frames (or, exported earlier, samples) and its states."""
    states = {name: tuple(shape) for name, shape in stream.network.states.items()}
    return [{"frames": (1, None, stream.frame_samples), **states}, {"samples": None, **states}]


def _frames_step_inputs(stream: StreamMetadata) -> list[_GraphInputs]:
    """What the front-end's step takes: samples and its states (any number of positions)."""
    states = {name: (*shape[:2], None, *shape[3:])
              for name, shape in stream.frames_step.states.items()}
    return [{"samples": (1, None), **states}]


def _check_stream_file(bundle: Bundle, name: str, path: Path) -> None:
    """The graph's bytes are the ones exported with this bundle (where it says so)."""
    expected = bundle.metadata.stream.files_sha256.get(name)
    if expected is not None and file_sha256(path) != expected:
        raise DataError(f"{path} does not belong to {bundle.path / BUNDLE_JSON}: its sha256 "
                        f"differs from field 'stream.files_sha256' (the file was changed or "
                        "copied from another bundle); copy the whole bundle folder, or "
                        "re-export it with `earmark export`")


def _open_graph(bundle: Bundle, name: str, promised_by: str,
                options: onnxruntime.SessionOptions, takes: list[_GraphInputs],
                gives: tuple[int | None, ...] | None) -> onnxruntime.InferenceSession:
    """One of the stream graphs the metadata promises, opened and checked against what
    the engine feeds it (``takes``: the inputs it may have) and reads from it (``gives``:
    the first output's shape); a clear error if missing, damaged or another's."""
    path = bundle.path / name
    if not path.is_file():
        raise DataError(f"{path}: missing, but {bundle.path / BUNDLE_JSON} promises it (field "
                        f"{promised_by!r}); copy the whole bundle folder, stream/ included, "
                        "or re-export the bundle with `earmark export`")
    _check_stream_file(bundle, name, path)
    try:
        session = onnxruntime.InferenceSession(str(path), options,
                                               providers=["CPUExecutionProvider"])
    except Exception as error:
        raise DataError(f"{path}: damaged, not a loadable ONNX model ({error}); re-export the "
                        "bundle with `earmark export`") from error
    inputs = {arg.name: tuple(arg.shape) for arg in session.get_inputs()}
    output = tuple(session.get_outputs()[0].shape)
    if (not any(inputs.keys() == wanted.keys() and all(_fits(inputs[key], shape)
                                                       for key, shape in wanted.items())
                for wanted in takes) or not _fits(output, gives)):
        raise DataError(f"{path}: takes {inputs} and gives {output}, but "
                        f"{bundle.path / BUNDLE_JSON} (field {promised_by!r}) describes a graph "
                        f"that takes {' or '.join(map(str, takes))} and gives {gives}; the file "
                        "is from another bundle or damaged: re-export the bundle with "
                        "`earmark export`")
    return session


def _fits(shape: tuple, wanted: tuple | None) -> bool:
    """Whether a graph's declared shape can be ``wanted`` (named sizes fit any number)."""
    if wanted is None:
        return True
    return len(shape) == len(wanted) and all(
        size is None or not isinstance(have, int) or have == size
        for have, size in zip(shape, wanted))


class _FrameStream:
    """New frames only, kept in a ring buffer; the window graph on the last ones."""

    def __init__(self, graphs: StreamGraphs, stream: StreamMetadata):
        self.frames_session = graphs.frames_session
        self.window_session = graphs.window_session
        self.frame_hop = stream.frame_hop_samples
        self.frame_samples = stream.frame_samples
        self.window_frames = stream.frames_per_window
        self.samples = np.zeros(0, dtype=np.float32)
        self.samples_start = 0          # absolute index of samples[0]
        self.next_frame = 0             # index of the next frame to compute
        self.ring: np.ndarray | None = None
        self.ring_start = 0             # absolute index of the frame in ring[:, 0]

    def append(self, block: np.ndarray) -> None:
        """Take a block of samples and compute every frame it completes."""
        self.samples = np.concatenate([self.samples, block])
        available = self.samples_start + len(self.samples)
        first = self.next_frame * self.frame_hop
        count = (available - first - self.frame_samples) // self.frame_hop + 1
        if count <= 0:
            return
        offset = first - self.samples_start
        self._compute(self.samples[offset:offset + (count - 1) * self.frame_hop + self.frame_samples])
        self.next_frame += count
        consumed = self.next_frame * self.frame_hop - self.samples_start
        self.samples = self.samples[consumed:]
        self.samples_start += consumed

    def _compute(self, chunk: np.ndarray) -> None:
        """The new columns of ``chunk`` (exactly whole frames) onto the ring."""
        columns = self._new_columns(chunk)
        self.ring = columns if self.ring is None else np.concatenate([self.ring, columns], axis=1)

    def _new_columns(self, chunk: np.ndarray) -> np.ndarray:
        """The frames of ``chunk``: (features, frames)."""
        return self.frames_session.run(None, {"waveform": chunk[None, :]})[0][0]

    def scores(self, window_starts: np.ndarray) -> np.ndarray:
        """Run the window graph once on the frames of the windows starting at these
        samples (ascending); (windows, classes) probabilities."""
        first = window_starts // self.frame_hop - self.ring_start
        if first[0] < 0 or first[-1] + self.window_frames > self.ring.shape[1]:
            raise RuntimeError("stream frames out of step with the window (internal error)")
        frames = np.stack([self.ring[:, start:start + self.window_frames]
                           for start in first.tolist()])
        scores = self.window_session.run(None, {"frames": frames})[0]
        # Later windows start later: frames before the last one are no longer needed.
        self._forget(int(first[-1]))
        return scores

    def _forget(self, columns: int) -> None:
        """Drop the ring's first ``columns`` columns."""
        self.ring = self.ring[:, columns:]
        self.ring_start += columns


class _StatefulFrameStream(_FrameStream):
    """New frames from their new samples only, the front-end's states carried between
    calls (the speech embedding's network slid along the stream).

    The first call gives the step whole frames with empty states; each later one the
    new frames' samples and the ``context_samples`` before them. The frames are those the
    frames graph gives from all their samples.
    """

    def __init__(self, graphs: StreamGraphs, stream: StreamMetadata):
        super().__init__(graphs, stream)
        self.step_session = graphs.frames_step_session
        self.context = stream.frames_step.context_samples
        # float32, or uint8 where the embedding's int8 network carries a state
        types = {arg.name: np.uint8 if arg.type == "tensor(uint8)" else np.float32
                 for arg in self.step_session.get_inputs()}
        self.states = {name: np.zeros((*shape[:2], 0, *shape[3:]), dtype=types[name])
                       for name, shape in stream.frames_step.states.items()}
        self.primed = False

    def _new_columns(self, chunk: np.ndarray) -> np.ndarray:
        if self.primed:
            count = (len(chunk) - self.frame_samples) // self.frame_hop + 1
            chunk = chunk[len(chunk) - count * self.frame_hop - self.context:]
        frames, *states = self.step_session.run(None, {"samples": chunk[None, :],
                                                       **self.states})
        self.states, self.primed = dict(zip(self.states, states)), True
        return frames[0]


class _SteppedStream(_FrameStream):
    """New frames through the network step once: one window's scores per new frame.

    The step graph carries the front-end, every layer's last columns and the
    head (see :mod:`earmark.models.dscnn_stream`), so a block costs one
    onnxruntime call whatever its size; here only the results are kept, in
    the ring, one column of probabilities per frame. The frames are cut here,
    as views of the samples the engine keeps anyway (bundles exported before
    that take the samples themselves).
    """

    def __init__(self, graphs: StreamGraphs, stream: StreamMetadata):
        super().__init__(graphs, stream)
        network = graphs.network
        self.step_session = graphs.step_session
        self.takes_frames = self.step_session.get_inputs()[0].name == "frames"
        self.last = network.last       # frame n's result is the window from n - last
        self.states = {name: np.zeros(shape, dtype=np.float32)
                       for name, shape in network.states.items()}

    def _new_columns(self, chunk: np.ndarray) -> np.ndarray:
        """One column of probabilities per new frame: (classes, frames)."""
        if self.takes_frames:
            # Frames as strided views of the chunk, copied once (numpy's
            # sliding_window_view costs three times as much for a few frames).
            count = (len(chunk) - self.frame_samples) // self.frame_hop + 1
            step = chunk.itemsize
            frames = as_strided(chunk, (1, count, self.frame_samples), (0, self.frame_hop * step, step))
            feed = {"frames": frames.copy()}
        else:
            feed = {"samples": chunk[None, :]}
        probabilities, *states = self.step_session.run(None, {**feed, **self.states})
        self.states = dict(zip(self.states, states))
        return probabilities[0]

    def scores(self, window_starts: np.ndarray) -> np.ndarray:
        """The results computed when each window's last column arrived."""
        columns = window_starts // self.frame_hop + self.last - self.ring_start
        if columns[0] < 0 or columns[-1] >= self.ring.shape[1]:
            raise RuntimeError("stream steps out of step with the window (internal error)")
        scores = self.ring[:, columns].T
        # Later windows start later: results before the last one are no longer needed.
        self._forget(int(columns[-1]))
        return scores


class _SampleWindow:
    """The last window of samples; the whole-window graph every stride."""

    def __init__(self, bundle: Bundle, window: int):
        self.bundle = bundle
        self.window = window
        self.samples = np.zeros(0, dtype=np.float32)
        self.samples_start = 0

    def append(self, block: np.ndarray) -> None:
        self.samples = np.concatenate([self.samples, block])

    def scores(self, end_samples: np.ndarray) -> np.ndarray:
        """The whole-window model on the windows ending at these samples (ascending)."""
        stops = end_samples - self.samples_start
        windows = np.stack([self.samples[stop - self.window:stop] for stop in stops.tolist()])
        drop = max(0, int(stops[-1]) - self.window)
        self.samples = self.samples[drop:]
        self.samples_start += drop
        return self.bundle.predict_proba(windows)
