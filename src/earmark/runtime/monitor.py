"""Noise monitoring: how loud, and what is making the noise, over hours of recordings.

:func:`monitor` reads recordings (a folder of them is one timeline, its files
sorted by name and taken as consecutive, as a recorder writes a day in hourly
files) once, in blocks: each block goes to a :class:`~earmark.levels.LevelMeter`
at the files' own rate (the highest of them when they differ, so A-weighting
reaches its Nyquist and no file is low-passed) and,
resampled, to the bundle's classifier, which scores analysis windows across
the whole timeline. Memory holds one block plus a few numbers per second
and per window, whatever the length.

Per second: LAeq and LAFmax. Per ``interval`` (60 s by default): LAeq,
LAFmax, LA10, LA90 (:mod:`earmark.levels`), the mean class probabilities of
the windows whose centres fall in it and the dominant source (the highest
mean). Events come from the window probabilities as ``earmark detect`` finds
them (:func:`~earmark.runtime.detect.events_from_tracks`). Levels are dBFS (a
full-scale sine is 0 dBFS), or dB SPL with ``calibration_db``.

:func:`write_reports` writes ``seconds.csv``, ``intervals.csv``,
``windows.csv``, ``events.csv`` and ``summary.json``, each atomically.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import soxr

from earmark import audio
from earmark.atomic import write_json, write_text
from earmark.errors import ConfigError
from earmark.events import Event, write_events
from earmark.input_limits import check_positive
from earmark.levels import (FAST_SECONDS, FULL_SCALE_MEAN_SQUARE, LevelMeter, SecondLevels,
                            SpanLevels)
from earmark.progress import ProgressLike, as_progress
from earmark.runtime.bundle import Bundle
from earmark.runtime.classify import Classifier, ClipResult
from earmark.runtime.detect import DetectionSettings, events_from_tracks
from earmark.runtime.results import expand_inputs

log = logging.getLogger("earmark.monitor")

#: Decimals of levels (dB), times (s) and probabilities in the reports.
LEVEL_DECIMALS, TIME_DECIMALS, PROBABILITY_DECIMALS = 2, 3, 4


#: The range a --calibration offset (dB SPL of a 0 dBFS sine) may take.
CALIBRATION_DB = (0.0, 200.0)


@dataclass
class MonitorSettings:
    """What a monitoring run measures and how."""

    interval_seconds: float = 60.0          #: whole seconds per reported interval
    calibration_db: float | None = None     #: the dB SPL that reads 0 dBFS; None: dBFS
    window_hop_seconds: float | None = None  #: between analysis windows; None: the bundle's
    block_seconds: float = 10.0             #: audio read at once
    detection: DetectionSettings = field(default_factory=DetectionSettings)

    def __post_init__(self) -> None:
        interval = check_positive(self.interval_seconds, "interval (seconds)")
        if interval < 1 or interval != int(interval):
            raise ConfigError(f"interval = {self.interval_seconds} s: give a whole number of "
                              "seconds, 1 or more (levels are kept per second)")
        if self.calibration_db is not None and not (
                CALIBRATION_DB[0] <= self.calibration_db <= CALIBRATION_DB[1]):
            raise ConfigError(f"calibration = {self.calibration_db} dB: give the dB SPL a "
                              f"full-scale sine reads as, {CALIBRATION_DB[0]:g} to "
                              f"{CALIBRATION_DB[1]:g} (a measurement microphone's is about "
                              "90-130)")
        check_positive(self.block_seconds, "block_seconds")

    @property
    def unit(self) -> str:
        return "dBFS" if self.calibration_db is None else "dB SPL"


@dataclass(frozen=True)
class Recording:
    """One file of the timeline: where it starts on it, and how long it lasts (s)."""

    path: str
    start: float
    duration: float


@dataclass
class Interval:
    """The levels and sources of one interval of the timeline."""

    start: float
    end: float
    levels: SpanLevels
    probabilities: np.ndarray          #: (classes,) mean over the windows centred in it

    def dominant(self, labels: list[str]) -> tuple[str, float]:
        index = int(np.argmax(self.probabilities))
        return labels[index], float(self.probabilities[index])


@dataclass
class MonitorResult:
    """Everything a monitoring run found; :func:`write_reports` writes it."""

    bundle: str
    recordings: list[Recording]
    settings: MonitorSettings
    seconds: SecondLevels
    windows: ClipResult
    intervals: list[Interval]
    events: list[Event]

    @property
    def labels(self) -> list[str]:
        return self.windows.labels

    @property
    def duration(self) -> float:
        return self.seconds.duration


def find_recordings(inputs: Iterable[str | os.PathLike]) -> list[audio.AudioInfo]:
    """The headers of the recordings named: files as given, folders' audio files sorted by
    name, globs expanded. Every header is read here, so a missing, empty or undecodable
    file stops the run before hours are spent, naming it (AudioError)."""
    return [audio.info(path) for path in expand_inputs([str(item) for item in inputs])]


def monitor(bundle: Bundle, inputs: Iterable[str | os.PathLike],
            settings: MonitorSettings | None = None,
            progress: ProgressLike = None) -> MonitorResult:
    """Levels, sources and events of recordings taken as one timeline (see the module).

    Parameters
    ----------
    bundle : Bundle
        The model that names the sources.
    inputs : iterable of str or os.PathLike
        Files and folders (searched for audio, sorted by name), consecutive.
    settings : MonitorSettings, optional
        Interval, calibration, window hop, event detection.
    progress : Progress, optional
        Advanced by the seconds of audio read.

    Raises
    ------
    AudioError
        A recording is missing, empty, corrupt or truncated (named).
    DataError
        No audio found among ``inputs``.
    """
    settings = settings or MonitorSettings()
    headers = find_recordings(inputs)
    rate = max(header.sample_rate for header in headers)
    if any(header.sample_rate != rate for header in headers):
        log.warning("recordings at several rates (%s Hz): levels are measured at %d Hz, the "
                    "highest, so no file loses its high frequencies; the others hold nothing "
                    "above their own Nyquist",
                    ", ".join(str(r) for r in sorted({h.sample_rate for h in headers})), rate)
    meter = LevelMeter(rate, settings.calibration_db or 0.0)
    classifier = Classifier(bundle, window_hop_seconds=settings.window_hop_seconds)
    recordings = _timeline(headers, rate)
    total = sum(recording.duration for recording in recordings)
    with as_progress(progress)(total=int(math.ceil(total)), description="monitoring",
                               unit="s") as advance:
        blocks = _measured_blocks(headers, rate, bundle.sample_rate, meter, settings, advance)
        windows = classifier.classify_blocks(blocks, f"{len(headers)} recording(s)")
    seconds = meter.finish()
    return MonitorResult(str(bundle.path), recordings, settings, seconds, windows,
                         intervals(seconds, windows, settings.interval_seconds),
                         events_from_tracks(windows, settings.detection))


def _timeline(headers: list[audio.AudioInfo], rate: int) -> list[Recording]:
    """Each file's start and length on the timeline, in samples at ``rate`` turned to s."""
    recordings, start = [], 0
    for header in headers:
        frames = int(round(header.frames * rate / header.sample_rate))
        recordings.append(Recording(header.path, start / rate, frames / rate))
        start += frames
    return recordings


def _measured_blocks(headers: list[audio.AudioInfo], rate: int, model_rate: int,
                     meter: LevelMeter, settings: MonitorSettings,
                     advance) -> Iterator[np.ndarray]:
    """Every file's blocks at ``rate`` into the meter, then out at the model's rate (one
    resampler across the files: the timeline is continuous)."""
    resampler = (soxr.ResampleStream(rate, model_rate, 1, dtype="float32")
                 if rate != model_rate else None)
    for header in headers:
        for block in audio.read_blocks(header.path, rate, settings.block_seconds,
                                       header=header):
            meter.push(block)
            advance(len(block) / rate)
            if resampler is not None:
                block = resampler.resample_chunk(block)
            if block.size:
                yield block
    if resampler is not None:
        tail = resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
        if tail.size:
            yield tail


def intervals(seconds: SecondLevels, windows: ClipResult,
              interval_seconds: float) -> list[Interval]:
    """The timeline cut into intervals of ``interval_seconds`` (the last may be shorter):
    levels from the seconds, class probabilities from the windows centred in each (the
    nearest window's when none is)."""
    length = int(interval_seconds)
    count = max(1, int(math.ceil(len(seconds.laeq) / length)))
    centres = windows.window_starts + windows.window_seconds / 2
    owner = np.minimum((centres // length).astype(np.int64), count - 1)
    sums = np.zeros((count, len(windows.labels)))
    np.add.at(sums, owner, windows.window_probabilities)
    counts = np.bincount(owner, minlength=count)
    result = []
    for index in range(count):
        start, end = index * length, min((index + 1) * length, seconds.duration)
        if counts[index]:
            probabilities = sums[index] / counts[index]
        else:
            nearest = int(np.argmin(np.abs(centres - (start + end) / 2)))
            probabilities = windows.window_probabilities[nearest]
        result.append(Interval(float(start), float(end), seconds.summary(start, end),
                               probabilities))
    return result


# --------------------------------------------------------------------------
# reports


def write_reports(result: MonitorResult, folder: str | os.PathLike) -> list[Path]:
    """``seconds.csv``, ``intervals.csv``, ``windows.csv``, ``events.csv`` and
    ``summary.json`` in ``folder`` (created), each written atomically."""
    folder = Path(folder)
    unit = result.settings.unit.replace(" ", "")
    return [write_text(folder / "seconds.csv", _seconds_csv(result, unit)),
            write_text(folder / "intervals.csv", _intervals_csv(result, unit)),
            write_text(folder / "windows.csv", _windows_csv(result.windows)),
            write_events(folder / "events.csv", result.events, decimals=TIME_DECIMALS),
            write_json(folder / "summary.json", summary(result))]


def summary(result: MonitorResult) -> dict:
    """The run as JSON: settings, files, the whole span's levels, each interval."""
    settings, labels = result.settings, result.labels
    return {
        "bundle": result.bundle, "labels": labels, "unit": settings.unit,
        "calibration_db": settings.calibration_db,
        "duration_s": round(result.duration, TIME_DECIMALS),
        "interval_s": settings.interval_seconds,
        "window_s": round(result.windows.window_seconds, TIME_DECIMALS),
        "window_hop_s": round(_window_hop(result.windows), TIME_DECIMALS),
        "measurement": {
            "sample_rate": result.seconds.sample_rate,
            "weighting": "A (IEC 61672-1), zero-phase FIR",
            "reference": f"0 dBFS = mean square {FULL_SCALE_MEAN_SQUARE} (a full-scale sine)",
            "LAFmax": f"maximum of the F time-weighted level ({FAST_SECONDS * 1000:g} ms)",
            "LA10_LA90": "percentiles of the F time-weighted level sampled every 0.1 s"},
        "recordings": [{"path": r.path, "start_s": round(r.start, TIME_DECIMALS),
                        "duration_s": round(r.duration, TIME_DECIMALS)}
                       for r in result.recordings],
        "overall": result.seconds.summary().as_dict(LEVEL_DECIMALS),
        "events": len(result.events),
        "intervals": [_interval_record(interval, labels) for interval in result.intervals],
    }


def _interval_record(interval: Interval, labels: list[str]) -> dict:
    dominant, probability = interval.dominant(labels)
    return {"start_s": interval.start, "end_s": round(interval.end, TIME_DECIMALS),
            **interval.levels.as_dict(LEVEL_DECIMALS), "dominant": dominant,
            "dominant_probability": round(probability, PROBABILITY_DECIMALS),
            "probabilities": {label: round(float(p), PROBABILITY_DECIMALS)
                              for label, p in zip(labels, interval.probabilities)}}


def _window_hop(windows: ClipResult) -> float:
    starts = windows.window_starts
    return float(starts[1] - starts[0]) if len(starts) > 1 else windows.window_seconds


def _table(header: list[str], rows: Iterable[list]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def _time(seconds: float) -> str:
    """Seconds with at most :data:`TIME_DECIMALS` decimals, no trailing zeros."""
    return f"{seconds:.{TIME_DECIMALS}f}".rstrip("0").rstrip(".")


def _decibels(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.{LEVEL_DECIMALS}f}"


def _seconds_csv(result: MonitorResult, unit: str) -> str:
    seconds, names = result.seconds, _file_of_each_second(result)
    rows = ([f"{index:d}", _time(index + duration), names[index], _decibels(laeq),
             _decibels(lafmax)]
            for index, (duration, laeq, lafmax)
            in enumerate(zip(seconds.durations, seconds.laeq, seconds.lafmax)))
    return _table(["start_s", "end_s", "file", f"LAeq_{unit}", f"LAFmax_{unit}"], rows)


def _file_of_each_second(result: MonitorResult) -> list[str]:
    """The name of the file each second starts in."""
    starts = np.array([recording.start for recording in result.recordings])
    names = [Path(recording.path).name for recording in result.recordings]
    owner = np.searchsorted(starts, np.arange(len(result.seconds.laeq)), side="right") - 1
    return [names[max(0, index)] for index in owner]


def _intervals_csv(result: MonitorResult, unit: str) -> str:
    labels = result.labels
    header = ["start_s", "end_s"] + [f"{name}_{unit}" for name in
                                     ("LAeq", "LAFmax", "LA10", "LA90")]
    header += ["dominant", "dominant_probability"] + labels
    rows = []
    for interval in result.intervals:
        dominant, probability = interval.dominant(labels)
        levels = interval.levels
        rows.append([_time(interval.start), _time(interval.end)]
                    + [_decibels(v) for v in (levels.laeq, levels.lafmax, levels.la10,
                                              levels.la90)]
                    + [dominant, f"{probability:.{PROBABILITY_DECIMALS}f}"]
                    + [f"{p:.{PROBABILITY_DECIMALS}f}" for p in interval.probabilities])
    return _table(header, rows)


def _windows_csv(windows: ClipResult) -> str:
    rows = ([_time(start), _time(start + windows.window_seconds)]
            + [f"{p:.{PROBABILITY_DECIMALS}f}" for p in probabilities]
            for start, probabilities in zip(windows.window_starts,
                                            windows.window_probabilities))
    return _table(["start_s", "end_s"] + windows.labels, rows)
