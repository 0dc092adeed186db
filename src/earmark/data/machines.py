"""Synthetic machine sounds, normal and faulty, for acoustic anomaly detection.

A :class:`Machine` is a rotating part heard through a microphone: a hum of
harmonic lines at ``k * rotation_hz`` (``k = 1 .. len(harmonics)``, each with
its relative amplitude, the whole hum at ``hum_level_db`` dBFS RMS) whose
speed wanders slowly (a few slow sinusoids, relative RMS ``speed_jitter``),
plus broadband airflow noise (pink above 200 Hz, falling steeply above
4 kHz) at ``noise_level_db`` dBFS RMS. Every call of :func:`machine_sound`
draws new line phases, a new wander, new noise and a small wobble of each
line's level (0.5 dB RMS), so two normal recordings differ as two takes of
one machine do, while their harmonic lines stay where the machine puts them:
a detector has to learn those lines, not a fixed waveform.

Faults (``severity`` scales each one; 1.0 is clearly audible, 0.0 is none):

* ``shifted_harmonic`` -- the rotation runs ``2 % * severity`` slower or
  faster (the sign drawn per call): every line moves (a fan slowed by
  clogging, a motor on a wrong voltage).
* ``modulated`` -- the machine's sound (hum and airflow) is amplitude
  modulated at the rotation rate, in step with the rotation, depth
  ``0.5 * severity`` (at most 1): an imbalance.
* ``impacts`` -- a short decaying broadband click once every 1 to 3
  revolutions (drawn per call), peaks ``6 * severity`` times the machine's
  nominal RMS: a bearing defect.
* ``rattle`` -- bursts of band-passed noise (20-80 ms, about 4 a second at
  random times, one band of +-30 % around 1.5-4 kHz drawn per call), RMS
  ``2 * severity`` times the nominal RMS at a burst's peak: a loose part.
* ``missing_harmonic`` -- one harmonic line changes strongly: either a line
  the machine has fades by ``20 * severity`` dB, or a new half-order line
  (``(k + 0.5) * rotation_hz``, looseness) appears at ``0.5 * severity``
  times the strongest line's amplitude; which of the two is drawn per call.

``gain_db`` scales the whole output (another loudness or microphone distance)
and ``background`` adds another recording, so a detector that normalises
level must see a quieter or noisier normal machine as normal. The machine's
*nominal RMS* (:attr:`Machine.nominal_rms`) is its hum and airflow levels
combined; faults, wobble and gain do not change it, so a background mixed at
an SNR sits at the same level under normal and faulty sounds.

:func:`machine_dataset` writes a folder in MIMII's layout
(``<machine_id>/normal/00000000.wav``, ``<machine_id>/abnormal/00000000.wav``)
that :func:`earmark.data.recipes.mimii.build_mimii` reads. numpy only.
"""

from __future__ import annotations

import math
import os
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from earmark import audio
from earmark.atomic import write_text
from earmark.errors import ConfigError, DataError
from earmark.input_limits import (check_count, check_non_negative, check_positive,
                                  check_sample_rate)

FAULTS = ("shifted_harmonic", "modulated", "impacts", "rattle", "missing_harmonic")

#: The longest sound :func:`machine_sound` makes, in seconds (it holds a few float64
#: copies of the whole sound while it works).
MAX_SECONDS = 3600.0
MAX_SEVERITY = 10.0
#: ``gain_db`` and ``background_snr_db`` are refused beyond +-this many dB.
MAX_DB = 120.0
MAX_HARMONICS = 64
#: Most files :func:`machine_dataset` writes per condition.
MAX_FILES = 100_000

LINE_WOBBLE_DB = 0.5             #: per-call RMS wobble of each line's level
WANDER_PARTS = 3                 #: slow sinusoids summed into the speed wander
WANDER_HZ = (0.05, 0.5)          #: their frequencies
NOISE_CORNER_HZ = 200.0          #: airflow noise: flat below, pink above
NOISE_CUTOFF_HZ = 4000.0         #: and falling as f^-4 in power above this
SHIFT_PER_SEVERITY = 0.02
MODULATION_PER_SEVERITY = 0.5
IMPACT_PEAK = 6.0                #: click peak / nominal RMS at severity 1
IMPACT_EVERY = (1, 3)            #: a click every this many revolutions (drawn per call)
IMPACT_DECAY_S = 0.001
IMPACT_LENGTH_S = 0.006
IMPACT_SHAPES = 8                #: different click waveforms a call draws from
RATTLE_LEVEL = 2.0               #: burst RMS at its peak / nominal RMS at severity 1
RATTLE_RATE_HZ = 4.0
RATTLE_BURST_S = (0.02, 0.08)
RATTLE_BAND_HZ = (1500.0, 4000.0)
RATTLE_WIDTH = 0.3               #: the band is centre * (1 -+ this)
HARMONIC_DROP_DB = 20.0
EXTRA_LINE = 0.5                 #: a new line's amplitude / the strongest line's
MACHINE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
CONDITIONS = ("normal", "abnormal")


@dataclass(frozen=True)
class Machine:
    """One machine's normal sound (see the module docstring).

    Parameters
    ----------
    rotation_hz : float
        Fundamental of the rotating part, Hz.
    harmonics : tuple of float
        Relative amplitudes of harmonics 1..k (``>= 0``, one at least ``> 0``).
    hum_level_db : float
        RMS of the harmonic hum, dBFS (``<= 0``).
    noise_level_db : float
        RMS of the broadband airflow noise, dBFS (``<= 0``).
    speed_jitter : float
        Relative RMS of the slow wander of the rotation speed (0 to 0.1).
    sample_rate : int
        Hz.

    Raises
    ------
    ConfigError
        For a value out of range, or a top harmonic at or above half the rate.
    """

    rotation_hz: float = 50.0
    harmonics: tuple[float, ...] = (1.0, 0.5, 0.3, 0.15)
    hum_level_db: float = -20.0
    noise_level_db: float = -35.0
    speed_jitter: float = 0.002
    sample_rate: int = 16000

    def __post_init__(self) -> None:
        rate = check_sample_rate(self.sample_rate, "Machine.sample_rate")
        check_positive(self.rotation_hz, "Machine.rotation_hz")
        check_non_negative(self.speed_jitter, "Machine.speed_jitter", maximum=0.1)
        for name in ("hum_level_db", "noise_level_db"):
            level = _finite(getattr(self, name), f"Machine.{name}")
            if not -MAX_DB <= level <= 0:
                raise ConfigError(f"Machine.{name} must be from -{MAX_DB:g} to 0 dBFS, "
                                  f"got {level:g}")
            object.__setattr__(self, name, level)
        try:
            harmonics = tuple(float(a) for a in self.harmonics)
        except (TypeError, ValueError):
            raise ConfigError(f"Machine.harmonics must be a sequence of numbers, got "
                              f"{self.harmonics!r}") from None
        if not 1 <= len(harmonics) <= MAX_HARMONICS or not all(
                math.isfinite(a) and a >= 0 for a in harmonics) or max(harmonics) <= 0:
            raise ConfigError(f"Machine.harmonics must hold 1 to {MAX_HARMONICS} finite "
                              f"amplitudes >= 0, one at least above 0; got {self.harmonics!r}")
        if len(harmonics) * self.rotation_hz >= rate / 2:
            raise ConfigError(f"Machine: harmonic {len(harmonics)} of {self.rotation_hz:g} Hz "
                              f"is at or above half the sample rate ({rate / 2:g} Hz); use "
                              "fewer harmonics, a slower rotation or a higher rate")
        object.__setattr__(self, "harmonics", harmonics)
        object.__setattr__(self, "sample_rate", rate)

    @property
    def nominal_rms(self) -> float:
        """The RMS of hum and airflow together, as set (before faults, wobble and gain)."""
        return math.sqrt(10 ** (self.hum_level_db / 10) + 10 ** (self.noise_level_db / 10))


# ------------------------------------------------------------------ one sound
def machine_sound(machine: Machine, seconds: float, rng: np.random.Generator,
                  fault: str | None = None, severity: float = 1.0,
                  gain_db: float = 0.0, background: np.ndarray | None = None,
                  background_snr_db: float | None = None) -> np.ndarray:
    """One recording of ``machine``, normal or with a fault (see the module docstring).

    Parameters
    ----------
    machine : Machine
    seconds : float
        Length, above 0 and at most :data:`MAX_SECONDS`; the result has
        ``round(seconds * machine.sample_rate)`` samples.
    rng : numpy.random.Generator
        Every random draw comes from it: the same generator state gives the
        same sound, and each call on one generator gives a new take.
    fault : str, optional
        One of :data:`FAULTS`; None is the normal sound.
    severity : float
        Scales the fault, 0 to :data:`MAX_SEVERITY` (1.0: clearly audible).
    gain_db : float
        Scales the whole output, background included.
    background : array_like, optional
        Any recording at ``machine.sample_rate`` (mono, or ``(samples,
        channels)``, averaged), looped or cropped from a random start.
    background_snr_db : float, optional
        The machine's nominal RMS over the background recording's RMS, in dB;
        None adds the background at its own level.

    Returns
    -------
    numpy.ndarray
        float32 mono, clipped to [-1, 1].

    Raises
    ------
    ConfigError
        An unknown fault (naming the valid ones) or a value out of range.
    DataError
        A silent background to mix at an SNR.
    AudioError
        A background that is not an array of finite samples.
    """
    total, severity, gain_db, background_snr_db = _check_sound_options(
        machine, seconds, fault, severity, gain_db, background_snr_db)
    rate = machine.sample_rate
    orders, amplitudes = _lines(machine, fault, severity, rng)
    speed = 1.0
    if fault == "shifted_harmonic":
        speed += float(rng.choice([-1.0, 1.0])) * SHIFT_PER_SEVERITY * severity
    revolutions = _revolutions(machine, total, speed, rng)
    sound = _hum(revolutions, orders, amplitudes, rate, rng) + _airflow(machine, total, rng)
    sound = _time_fault(sound, machine, revolutions, fault, severity, rng)
    if background is not None:
        sound += _background(background, total, machine.nominal_rms, background_snr_db, rng)
    sound *= 10 ** (gain_db / 20)
    return np.clip(sound, -1.0, 1.0).astype(np.float32)


def _time_fault(sound: np.ndarray, machine: Machine, revolutions: np.ndarray,
                fault: str | None, severity: float, rng: np.random.Generator) -> np.ndarray:
    """``sound`` with a ``modulated``, ``impacts`` or ``rattle`` fault (others: as it is)."""
    if fault == "modulated":
        depth = min(1.0, MODULATION_PER_SEVERITY * severity)
        return sound * (1.0 + depth * np.sin(2 * np.pi * (revolutions + rng.uniform())))
    if fault == "impacts":
        return sound + _impacts(machine, revolutions, severity, rng)
    if fault == "rattle":
        return sound + _rattle(machine, len(sound), severity, rng)
    return sound


def _check_sound_options(machine: Machine, seconds: float, fault: str | None,
                         severity: float, gain_db: float, background_snr_db: float | None
                         ) -> tuple[int, float, float, float | None]:
    """The sound's length in samples, then severity, gain and SNR as floats; ConfigError
    for anything out of range."""
    if not isinstance(machine, Machine):
        raise ConfigError(f"machine must be a Machine, got {type(machine).__name__}")
    seconds = check_positive(seconds, "seconds", maximum=MAX_SECONDS)
    check_fault(fault)
    severity = check_non_negative(severity, "severity", maximum=MAX_SEVERITY)
    decibels = [_finite(gain_db, "gain_db"), None if background_snr_db is None
                else _finite(background_snr_db, "background_snr_db")]
    for value, what in zip(decibels, ("gain_db", "background_snr_db")):
        if value is not None and abs(value) > MAX_DB:
            raise ConfigError(f"{what} must be from -{MAX_DB:g} to {MAX_DB:g} dB, got {value}")
    total = int(round(seconds * machine.sample_rate))
    if total < 1:
        raise ConfigError(f"seconds = {seconds:g} is less than one sample at "
                          f"{machine.sample_rate} Hz")
    return total, severity, decibels[0], decibels[1]


def _finite(value, what: str) -> float:
    """``value`` as a finite float; ConfigError naming ``what`` otherwise."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{what} must be a number, got {value!r}") from None
    if isinstance(value, bool) or not math.isfinite(number):
        raise ConfigError(f"{what} must be a finite number, got {value!r}")
    return number


def check_fault(fault: str | None) -> None:
    """ConfigError unless ``fault`` is None or one of :data:`FAULTS` (naming them)."""
    if fault is not None and fault not in FAULTS:
        raise ConfigError(f"unknown fault {fault!r}; the faults are {', '.join(FAULTS)} "
                          "(or None for the normal sound)")


def _lines(machine: Machine, fault: str | None, severity: float,
           rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The hum's lines: orders (multiples of the rotation) and amplitudes, fault applied."""
    relative = np.asarray(machine.harmonics, dtype=np.float64)
    orders = np.arange(1, len(relative) + 1, dtype=np.float64)
    scale = 10 ** (machine.hum_level_db / 20) / math.sqrt(float(np.sum(relative ** 2)) / 2)
    wobble = 10 ** (rng.normal(0.0, LINE_WOBBLE_DB, len(relative)) / 20)
    amplitudes = relative * scale * wobble
    if fault != "missing_harmonic":
        return orders, amplitudes
    if rng.random() < 0.5:                   # a line the machine has fades
        faded = int(rng.choice(np.flatnonzero(amplitudes > 0)))
        amplitudes[faded] *= 10 ** (-HARMONIC_DROP_DB * severity / 20)
        return orders, amplitudes
    new_order = int(rng.integers(len(relative))) + 0.5    # a half-order line appears
    return (np.append(orders, new_order),
            np.append(amplitudes, EXTRA_LINE * severity * amplitudes.max()))


def _revolutions(machine: Machine, total: int, speed: float,
                 rng: np.random.Generator) -> np.ndarray:
    """Revolutions turned at each sample (float64), the speed wandering slowly."""
    time = np.arange(total) / machine.sample_rate
    frequencies = rng.uniform(*WANDER_HZ, WANDER_PARTS)
    phases = rng.uniform(0.0, 2 * np.pi, WANDER_PARTS)
    weights = rng.uniform(0.5, 1.0, WANDER_PARTS)
    wander = np.zeros(total)
    for frequency, phase, weight in zip(frequencies, phases, weights):
        wander += weight * np.sin(2 * np.pi * frequency * time + phase)
    wander /= math.sqrt(float(np.sum(weights ** 2)) / 2)      # unit RMS
    hertz = machine.rotation_hz * speed * (1.0 + machine.speed_jitter * wander)
    return rng.uniform() + np.cumsum(hertz) / machine.sample_rate


def _hum(revolutions: np.ndarray, orders: np.ndarray, amplitudes: np.ndarray, rate: int,
         rng: np.random.Generator) -> np.ndarray:
    """The harmonic lines, each at a random phase; lines reaching half the rate are left out."""
    phases = rng.uniform(0.0, 1.0, len(orders))
    top_hz = float(np.diff(revolutions).max(initial=0.0)) * rate
    hum = np.zeros(len(revolutions))
    for order, amplitude, phase in zip(orders, amplitudes, phases):
        if amplitude > 0 and order * top_hz < rate / 2:
            hum += amplitude * np.sin(2 * np.pi * (order * revolutions + phase))
    return hum


def _shaped_noise(total: int, rate: int, gain: np.ndarray | None,
                  rng: np.random.Generator, band: tuple[float, float] | None = None
                  ) -> np.ndarray:
    """Gaussian noise of unit RMS with amplitude spectrum ``gain(f)`` (or a flat ``band``)."""
    frequencies = np.fft.rfftfreq(total, 1 / rate)
    if band is not None:
        gain = ((frequencies >= band[0]) & (frequencies <= band[1])).astype(np.float64)
    gain = gain * (frequencies > 0)
    spectrum = rng.standard_normal(len(frequencies)) + 1j * rng.standard_normal(len(frequencies))
    noise = np.fft.irfft(spectrum * gain, total)
    rms = math.sqrt(float(np.mean(noise ** 2)))
    return noise / rms if rms > 0 else noise


def _airflow(machine: Machine, total: int, rng: np.random.Generator) -> np.ndarray:
    """Broadband airflow noise at ``machine.noise_level_db`` dBFS RMS."""
    frequencies = np.fft.rfftfreq(total, 1 / machine.sample_rate)
    power = 1.0 / ((1.0 + frequencies / NOISE_CORNER_HZ)
                   * (1.0 + (frequencies / NOISE_CUTOFF_HZ) ** 4))
    noise = _shaped_noise(total, machine.sample_rate, np.sqrt(power), rng)
    return noise * 10 ** (machine.noise_level_db / 20)


def _impacts(machine: Machine, revolutions: np.ndarray, severity: float,
             rng: np.random.Generator) -> np.ndarray:
    """A decaying broadband click at the start of every ``n``-th revolution."""
    rate = machine.sample_rate
    every = int(rng.integers(IMPACT_EVERY[0], IMPACT_EVERY[1] + 1))
    onsets = np.flatnonzero(np.diff(np.floor(revolutions / every)) > 0) + 1
    length = max(1, round(IMPACT_LENGTH_S * rate))
    decay = np.exp(-np.arange(length) / (IMPACT_DECAY_S * rate))
    shapes = rng.standard_normal((IMPACT_SHAPES, length)) * decay
    shapes /= np.abs(shapes).max(axis=1, keepdims=True)
    peaks = severity * IMPACT_PEAK * machine.nominal_rms * rng.uniform(0.6, 1.0, len(onsets))
    pieces = shapes[rng.integers(IMPACT_SHAPES, size=len(onsets))] * peaks[:, None]
    clicks = np.zeros(len(revolutions))
    _add_pieces(clicks, onsets, pieces)
    return clicks


def _add_pieces(out: np.ndarray, onsets: np.ndarray, pieces: np.ndarray) -> None:
    """``out[onset:onset + len(piece)] += piece`` for each row, overlaps summed, cut at the end."""
    where = onsets[:, None] + np.arange(pieces.shape[1])[None, :]
    inside = where < len(out)
    np.add.at(out, where[inside], pieces[inside])


def _rattle(machine: Machine, total: int, severity: float,
            rng: np.random.Generator) -> np.ndarray:
    """Bursts of band-passed noise at random times (at least one)."""
    rate = machine.sample_rate
    count = max(1, int(rng.poisson(RATTLE_RATE_HZ * total / rate)))
    onsets = np.sort(rng.integers(0, total, count))
    lengths = np.maximum(3, np.round(rng.uniform(*RATTLE_BURST_S, count) * rate)).astype(int)
    gate = np.zeros(total)
    for onset, length in zip(onsets, lengths):
        window = np.hanning(length)[:total - onset]
        gate[onset:onset + len(window)] = np.maximum(gate[onset:onset + len(window)], window)
    centre = min(float(rng.uniform(*RATTLE_BAND_HZ)), 0.6 * rate / 2)
    band = (centre * (1 - RATTLE_WIDTH), centre * (1 + RATTLE_WIDTH))
    noise = _shaped_noise(total, rate, None, rng, band)
    return noise * gate * (severity * RATTLE_LEVEL * machine.nominal_rms)


def _background(background, total: int, reference_rms: float, snr_db: float | None,
                rng: np.random.Generator) -> np.ndarray:
    """The background looped or cropped to ``total`` from a random start, at the SNR."""
    bed = audio.array_to_mono(background, "background").astype(np.float64)
    start = int(rng.integers(len(bed)))
    piece = bed[(start + np.arange(total)) % len(bed)]
    if snr_db is None:
        return piece
    rms = math.sqrt(float(np.mean(bed ** 2)))
    if rms == 0:
        raise DataError("background is silent: it cannot be mixed at background_snr_db = "
                        f"{snr_db:g} dB; give a recording with sound in it or "
                        "background_snr_db=None")
    return piece * (reference_rms * 10 ** (-snr_db / 20) / rms)


# ------------------------------------------------------------------ a dataset
def machine_dataset(folder: str | os.PathLike, machine: Machine, normal: int, anomalous: int,
                    seconds: float, seed: int = 0, faults: Sequence[str] = FAULTS,
                    machine_id: str = "id_00") -> Path:
    """Write one machine's recordings in MIMII's layout; return ``folder``.

    The files are ``folder/<machine_id>/normal/00000000.wav`` ... and
    ``folder/<machine_id>/abnormal/00000000.wav`` ... (16-bit WAV at
    ``machine.sample_rate``); abnormal file ``i`` has fault ``faults[i %
    len(faults)]`` at severity 1, and ``folder/<machine_id>/faults.csv`` says
    which (``file,condition,fault``, one row per file, normal ones with an
    empty fault). :func:`earmark.data.recipes.mimii.build_mimii` (any
    ``machine`` name) reads the folder. Each file depends only on ``seed``,
    ``machine_id``, its condition and its number, so a seed gives the same
    files, and more files extend a smaller set. Files already there are
    replaced.

    Parameters
    ----------
    folder : str or os.PathLike
        Created if missing.
    machine : Machine
    normal, anomalous : int
        How many recordings of each (0 to :data:`MAX_FILES`, one at least).
    seconds : float
        Each recording's length.
    seed : int
    faults : sequence of str
        Names from :data:`FAULTS`, used in turn.
    machine_id : str
        MIMII's ``id_XX`` (letters, digits, ``_.-``).

    Returns
    -------
    Path
        ``folder``.

    Raises
    ------
    ConfigError
        A count, fault, id or length out of range.
    DataError
        When ``folder/<machine_id>/{normal,abnormal}/`` already holds audio
        this call would not write (a larger earlier set): remove it first.
    """
    plan = _plan(normal, anomalous, faults, machine_id)
    check_positive(seconds, "seconds", maximum=MAX_SECONDS)
    root = Path(folder) / machine_id
    _check_no_strays(root, plan)
    rows = ["file,condition,fault"]
    for condition, index, fault in plan:
        key = [int(seed), zlib.crc32(machine_id.encode()), CONDITIONS.index(condition), index]
        sound = machine_sound(machine, seconds, np.random.default_rng(key), fault=fault)
        name = f"{condition}/{index:08d}.wav"
        audio.write(root / name, sound, machine.sample_rate)
        rows.append(f"{name},{condition},{fault or ''}")
    write_text(root / "faults.csv", "\n".join(rows) + "\n")
    return Path(folder)


def _plan(normal: int, anomalous: int, faults: Sequence[str],
          machine_id: str) -> list[tuple[str, int, str | None]]:
    """``(condition, number, fault)`` of each file to write; ConfigError for bad options."""
    normal = check_count(normal, "normal", minimum=0, maximum=MAX_FILES)
    anomalous = check_count(anomalous, "anomalous", minimum=0, maximum=MAX_FILES)
    if normal + anomalous == 0:
        raise ConfigError("machine_dataset needs at least one recording (normal + anomalous)")
    if isinstance(faults, str) or not isinstance(faults, Sequence):
        raise ConfigError(f"faults must be a sequence of fault names, got {faults!r}")
    for fault in faults:
        check_fault(fault)
    if anomalous and not faults:
        raise ConfigError(f"faults is empty; give some of {', '.join(FAULTS)}")
    if not isinstance(machine_id, str) or not MACHINE_ID.match(machine_id):
        raise ConfigError(f"machine_id {machine_id!r} must be a folder name of letters, "
                          "digits and _.- (MIMII's are id_00, id_02, ...)")
    return ([("normal", index, None) for index in range(normal)]
            + [("abnormal", index, faults[index % len(faults)]) for index in range(anomalous)])


def _check_no_strays(root: Path, plan: list[tuple[str, int, str | None]]) -> None:
    """DataError when the condition folders hold audio this plan would not write."""
    planned = {root / condition / f"{index:08d}.wav" for condition, index, _ in plan}
    strays = sorted(str(path) for condition in CONDITIONS if (root / condition).is_dir()
                    for path in (root / condition).iterdir()
                    if audio.is_audio_file(path) and path not in planned)
    if strays:
        raise DataError(f"{root} already holds {len(strays)} recording(s) this dataset would "
                        f"not replace, e.g. {', '.join(strays[:3])}; remove {root} or write "
                        "to another folder")
