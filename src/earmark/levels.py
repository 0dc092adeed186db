"""Sound levels as a sound level meter gives them: A-weighting, LAeq, LAFmax, LA10 and LA90.

numpy only (the deployed runtime uses it), and block by block: a day of
audio is measured in the memory of one block plus a few numbers per second.

A-weighting (IEC 61672-1)
    The analytic weighting of IEC 61672-1 (poles at 20.6, 107.7, 737.9 and
    12194 Hz), normalised to exactly 0 dB at 1 kHz, applied as a zero-phase
    linear-phase FIR designed by sampling that curve every ``2 / (N / rate)``
    Hz (``N`` = the power of two >= half a second of samples, Hann-windowed)
    and run as an FFT convolution (overlap-save) with its delay taken out.
    Why not the usual bilinear IIR: the bilinear transform squeezes the curve
    towards Nyquist, so at 16 kHz (the models' rate) it is off by several dB
    above 3 kHz, and running it in numpy needs a per-sample loop (scipy is not
    a runtime dependency). Sampling the curve itself is exact at any rate up
    to Nyquist; the FIR's finite length smooths it by about ``rate / N`` Hz,
    which costs at most 0.03 dB at 31.5 Hz (0.01 dB at 44.1 and 48 kHz) and
    nothing measurable above 63 Hz. Content above Nyquist is not there to be
    weighted: at 16 kHz, A-weighted levels cover 10 Hz to 8 kHz.

Levels in dBFS, or dB with a calibration
    ``10 * log10(mean square / 0.5) + calibration_db``: a full-scale sine
    (amplitude 1) reads 0 dBFS, as AES17 and IEC 61606 define dBFS for
    measurements (a full-scale square wave reads +3.01 dBFS). This is 3.01 dB
    above ``10 * log10(mean square)``, the convention of earmark's
    spectrograms (0 dB = power 1). With ``calibration_db`` = the sound
    pressure level that reads 0 dBFS (record a 94 dB calibrator at, say,
    -30 dBFS: ``calibration_db = 124``), levels are dB SPL (re 20 µPa).

What is measured (all A-weighted)
    - ``LAeq`` over any span: the energy mean, ``10 * log10(mean(10 ** (L /
      10)))`` of the per-second levels weighted by their durations (exact: the
      per-second levels hold each second's energy).
    - ``LAFmax``: the maximum of the F ("fast", time constant 125 ms)
      exponentially time-weighted level, computed per sample as IEC 61672-1
      defines it (``y[n] = a * y[n-1] + (1 - a) * x[n] ** 2``, ``a =
      exp(-1 / (0.125 * rate))``), then the maximum per second and per span.
    - ``LA10``, ``LA90``: the levels exceeded 10 % and 90 % of the time, the
      90th and 10th percentiles of the F-weighted level sampled ten times a
      second (at the end of each tenth of a second), as sound level meters
      compute statistical levels.

    >>> meter = LevelMeter(16000, calibration_db=0.0)
    >>> for block in audio.read_blocks("day.flac", 16000):
    ...     meter.push(block)
    >>> seconds = meter.finish()
    >>> seconds.summary(0, 60)        # the first minute
    SpanLevels(laeq=..., lafmax=..., la10=..., la90=...)
"""

from __future__ import annotations

import math
import os
from array import array
from dataclasses import dataclass

import numpy as np

from earmark.input_limits import check_sample_rate

#: The mean square that reads 0 dBFS: a full-scale sine's (AES17).
FULL_SCALE_MEAN_SQUARE = 0.5
#: The F ("fast") time constant of IEC 61672-1, in seconds.
FAST_SECONDS = 0.125
#: F-weighted levels sampled per second for LA10 and LA90.
STATISTICS_PER_SECOND = 10
#: Mean squares are floored here before the logarithm (-197 dBFS): silence stays finite.
MEAN_SQUARE_FLOOR = 1e-20
#: The IEC 61672-1 pole frequencies of A-weighting, Hz.
_POLES_HZ = (20.598997, 107.65265, 737.86223, 12194.217)
#: Exponential weighting runs in pieces this many time constants long (keeps a ** -n small).
_PIECE_TIME_CONSTANTS = 4


def a_weighting_gain(frequencies: np.ndarray | float) -> np.ndarray:
    """The A-weighting's amplitude gain at ``frequencies`` (Hz): 1 at 1 kHz, 0 at 0 Hz."""
    f2 = np.square(np.asarray(frequencies, dtype=np.float64))
    p1, p2, p3, p4 = (p * p for p in _POLES_HZ)

    def response(f2):
        return p4 * f2 ** 2 / ((f2 + p1) * np.sqrt((f2 + p2) * (f2 + p3)) * (f2 + p4))

    return response(f2) / response(1000.0 ** 2)


def a_weighting_db(frequencies: np.ndarray | float) -> np.ndarray:
    """A-weighting in dB at ``frequencies`` (Hz), per IEC 61672-1's formula.

    Normalised to exactly 0 dB at 1 kHz; within 0.05 dB of the standard's
    table (given to 0.1 dB) at its exact base-ten frequencies (``1000 *
    10 ** (n / 10)`` Hz: 31.62 for the nominal 31.5 Hz, 125.9 for 125 Hz ...):
    -39.4 dB at 31.5 Hz, -19.1 at 100 Hz, +1.2 at 2 kHz, -2.5 at 10 kHz.
    0 Hz gives -inf.
    """
    with np.errstate(divide="ignore"):
        return 20.0 * np.log10(a_weighting_gain(frequencies))


def a_weighting_taps(sample_rate: int) -> np.ndarray:
    """The zero-phase FIR (delay ``len // 2`` samples) that A-weights audio at ``sample_rate``.

    The curve sampled at the FFT bins of ``N`` points (``N`` = the power of
    two >= half a second of samples), its impulse response centred and
    Hann-windowed; see the module docstring for its accuracy.
    """
    rate = check_sample_rate(sample_rate, "A-weighting sample_rate")
    length = 1 << math.ceil(math.log2(rate / 2))
    response = a_weighting_gain(np.fft.rfftfreq(length, 1.0 / rate))
    taps = np.roll(np.fft.irfft(response, length), length // 2)
    return taps * np.hanning(length + 1)[:length]


class AWeightingFilter:
    """A-weights a stream of blocks at one rate; its output lines up with its input.

    :meth:`process` returns fewer samples than it is given at first (the
    filter's delay, half a second or less), :meth:`finish` the rest: over a
    whole stream, out is exactly as long as in and sample ``t`` out is the
    weighted signal at input time ``t`` (the signal taken as zero outside).
    """

    def __init__(self, sample_rate: int):
        self.taps = a_weighting_taps(sample_rate)
        self.delay = len(self.taps) // 2
        # Overlap-save in FFTs of 8 filter lengths: 7/8 of each is new output, which
        # costs about half what one FFT over a whole long block would.
        self._size = 8 * len(self.taps)
        self._spectrum = np.fft.rfft(self.taps, self._size)
        self._history = np.zeros(len(self.taps) - 1)
        self._to_skip = self.delay

    def process(self, block: np.ndarray) -> np.ndarray:
        """The weighted samples that ``block`` completes (float64)."""
        block = np.asarray(block, dtype=np.float64)
        step = self._size - len(self._history)
        pieces = [self._convolve(block[start:start + step])
                  for start in range(0, len(block), step)]
        out = np.concatenate(pieces) if pieces else np.zeros(0)
        skipped = min(self._to_skip, len(out))
        self._to_skip -= skipped
        return out[skipped:]

    def _convolve(self, piece: np.ndarray) -> np.ndarray:
        """The filter's output over ``piece`` (at most one FFT's worth of new samples)."""
        segment = np.concatenate([self._history, piece])
        full = np.fft.irfft(np.fft.rfft(segment, self._size) * self._spectrum, self._size)
        self._history = segment[len(piece):]
        return full[len(self._history):len(segment)]

    def finish(self) -> np.ndarray:
        """The last ``delay`` weighted samples (the input followed by silence)."""
        return self.process(np.zeros(self.delay))


@dataclass(frozen=True)
class SpanLevels:
    """The levels of one span of time, in dB (dBFS, or dB SPL with a calibration)."""

    laeq: float         #: A-weighted equivalent level (energy mean)
    lafmax: float       #: maximum A-weighted F-time-weighted level
    la10: float         #: exceeded 10 % of the time
    la90: float         #: exceeded 90 % of the time

    def as_dict(self, decimals: int = 2) -> dict[str, float | None]:
        """The levels rounded; ``None`` for one that is undefined (LA10 and LA90 of a span
        shorter than the level's 0.1 s step), so that JSON stays JSON."""
        levels = {"LAeq": self.laeq, "LAFmax": self.lafmax, "LA10": self.la10,
                  "LA90": self.la90}
        return {name: round(float(value), decimals) if math.isfinite(value) else None
                for name, value in levels.items()}


@dataclass
class SecondLevels:
    """A recording's levels second by second, from :class:`LevelMeter`."""

    sample_rate: int
    calibration_db: float
    durations: np.ndarray         #: (seconds,) s measured in each second (the last may be short)
    laeq: np.ndarray              #: (seconds,) dB, each second's LAeq
    lafmax: np.ndarray            #: (seconds,) dB, each second's LAFmax
    fast: np.ndarray              #: (seconds, 10) dB, the F level every 0.1 s (NaN: past the end)

    @property
    def duration(self) -> float:
        return float(self.durations.sum())

    def summary(self, start: float = 0.0, end: float | None = None) -> SpanLevels:
        """LAeq, LAFmax, LA10 and LA90 of the whole seconds from ``start`` to ``end`` (s).

        The span is taken in whole seconds (``start`` rounded down, ``end`` up);
        NaN levels when it holds none.
        """
        first = max(0, int(math.floor(start)))
        last = len(self.laeq) if end is None else min(len(self.laeq), int(math.ceil(end)))
        if last <= first:
            return SpanLevels(math.nan, math.nan, math.nan, math.nan)
        fast = self.fast[first:last].ravel()
        fast = fast[~np.isnan(fast)]
        return SpanLevels(energy_mean(self.laeq[first:last], self.durations[first:last]),
                          float(self.lafmax[first:last].max()),
                          exceeded_level(fast, 10.0), exceeded_level(fast, 90.0))


def to_decibels(mean_square: np.ndarray | float, calibration_db: float = 0.0) -> np.ndarray:
    """Mean squares (full scale 1) as levels: 0 dB for a full-scale sine, plus ``calibration_db``."""
    floored = np.maximum(np.asarray(mean_square, dtype=np.float64), MEAN_SQUARE_FLOOR)
    return 10.0 * np.log10(floored / FULL_SCALE_MEAN_SQUARE) + calibration_db


def energy_mean(levels_db: np.ndarray, durations: np.ndarray | None = None) -> float:
    """The equivalent level of consecutive levels: ``10 log10`` of their duration-weighted
    mean energy (NaN for none)."""
    levels_db = np.asarray(levels_db, dtype=np.float64)
    if levels_db.size == 0:
        return math.nan
    weights = np.ones_like(levels_db) if durations is None else np.asarray(durations, float)
    if weights.sum() <= 0:
        return math.nan
    top = float(levels_db.max())         # factored out: no overflow, no underflow
    energy = np.sum(weights * 10.0 ** ((levels_db - top) / 10.0)) / weights.sum()
    return top + 10.0 * math.log10(energy)


def exceeded_level(levels_db: np.ndarray, percent: float) -> float:
    """``L_N``: the level exceeded ``percent`` % of the time (the ``100 - N`` percentile)."""
    levels_db = np.asarray(levels_db, dtype=np.float64)
    if levels_db.size == 0:
        return math.nan
    return float(np.percentile(levels_db, 100.0 - percent))


class LevelMeter:
    """Feed consecutive blocks of audio (full scale 1) at one rate; :meth:`finish` gives the
    levels of each second (see the module docstring for what is measured)."""

    def __init__(self, sample_rate: int, calibration_db: float = 0.0,
                 time_constant: float = FAST_SECONDS):
        self.sample_rate = check_sample_rate(sample_rate, "level meter sample_rate")
        self.calibration_db = float(calibration_db)
        self.weighting = AWeightingFilter(self.sample_rate)
        self._decay = math.exp(-1.0 / (time_constant * self.sample_rate))
        self._piece = max(1, int(_PIECE_TIME_CONSTANTS * time_constant * self.sample_rate))
        self._fast_state = 0.0
        self._samples = 0                       # weighted samples measured so far
        # Compact growing columns (a day is 86400 seconds, 864000 tenths):
        self._energy = array("d")               # per second: sum of squares
        self._counts = array("q")               # per second: samples
        self._maxima = array("d")               # per second: highest F mean square
        self._fast = array("d")                 # per tenth of a second: F mean square

    def push(self, block: np.ndarray) -> None:
        """Measure the next block of samples."""
        self._measure(self.weighting.process(block))

    def finish(self) -> SecondLevels:
        """The levels of every second so far (the last one may be partial)."""
        self._measure(self.weighting.finish())
        seconds = len(self._energy)
        counts = np.asarray(self._counts, dtype=np.float64)
        mean_square = np.asarray(self._energy) / np.maximum(counts, 1)
        fast = np.full(seconds * STATISTICS_PER_SECOND, np.nan)
        fast[:len(self._fast)] = to_decibels(np.asarray(self._fast), self.calibration_db)
        return SecondLevels(self.sample_rate, self.calibration_db, counts / self.sample_rate,
                            to_decibels(mean_square, self.calibration_db),
                            to_decibels(np.asarray(self._maxima), self.calibration_db),
                            fast.reshape(seconds, STATISTICS_PER_SECOND))

    def _measure(self, weighted: np.ndarray) -> None:
        if weighted.size == 0:
            return
        squares = np.square(weighted)
        fast = self._exponential(squares)
        rate, first = self.sample_rate, self._samples
        opened = first % rate == 0                    # the block starts a new second
        # Where seconds start inside the block (and the block's own start):
        starts = np.arange(-(first % rate) % rate, len(squares), rate)
        if not opened:
            starts = np.concatenate([[0], starts])
        energy = np.add.reduceat(squares, starts)
        maxima = np.maximum.reduceat(fast, starts)
        counts = np.diff(np.concatenate([starts, [len(squares)]]))
        if not opened:                                   # carry on the open second
            self._energy[-1] += float(energy[0])
            self._counts[-1] += int(counts[0])
            self._maxima[-1] = max(self._maxima[-1], float(maxima[0]))
            energy, maxima, counts = energy[1:], maxima[1:], counts[1:]
        self._energy.frombytes(energy.tobytes())
        self._maxima.frombytes(maxima.tobytes())
        self._counts.frombytes(counts.astype(np.int64).tobytes())
        self._sample_tenths(fast, first)
        self._samples += len(squares)

    def _sample_tenths(self, fast: np.ndarray, first: int) -> None:
        """Keep the F mean square at the last sample of each tenth of a second in ``fast``."""
        rate, done = self.sample_rate, len(self._fast)
        # Tenth t ends at sample (t + 1) * rate // 10; those ending inside this block:
        count = (STATISTICS_PER_SECOND * (first + len(fast)) + STATISTICS_PER_SECOND - 1) \
            // rate - done
        tenths = np.arange(done + 1, done + 1 + max(0, count), dtype=np.int64)
        ends = tenths * rate // STATISTICS_PER_SECOND - 1 - first
        self._fast.frombytes(fast[ends].tobytes())

    def _exponential(self, squares: np.ndarray) -> np.ndarray:
        """``y[n] = a * y[n-1] + (1 - a) * squares[n]`` over the block, vectorised in pieces
        short enough that ``a ** -n`` stays small."""
        a, out = self._decay, np.empty_like(squares)
        powers = a ** np.arange(1, self._piece + 1)            # a, a**2, ...
        state = self._fast_state
        for begin in range(0, len(squares), self._piece):
            piece = squares[begin:begin + self._piece]
            grow = powers[:len(piece)]
            out[begin:begin + len(piece)] = grow * (state + (1 - a) * np.cumsum(piece / grow))
            state = float(out[begin + len(piece) - 1])
        self._fast_state = state
        return out


def measure_file(path: str | os.PathLike, sample_rate: int | None = None,
                 calibration_db: float = 0.0, block_seconds: float = 30.0) -> SecondLevels:
    """The per-second levels of a file, read in blocks (at its own rate unless given one)."""
    from earmark import audio

    header = audio.info(path)
    rate = sample_rate or header.sample_rate
    meter = LevelMeter(rate, calibration_db)
    for block in audio.read_blocks(path, rate, block_seconds, header=header):
        meter.push(block)
    return meter.finish()
