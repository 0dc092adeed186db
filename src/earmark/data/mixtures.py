"""Labelled mixtures: clips of one class placed into long recordings, with exact event times.

For tasks on long recordings (who is speaking, what kind of voices fill a
room) the training examples are mixtures built from short clips:

* **sequential** -- the clips follow one another with a pause drawn from
  ``gap_s`` (0-5 s by default) before each one, the first included; the
  clip that would run past the end is cut there and its offset is the
  mixture's duration; clips left over are not used.
* **simultaneous** -- up to ``max_sources`` clips overlaid, all from t = 0
  (the default ``start_s = (0, 0)``: a room full of people talking at once)
  or each from a random start in ``start_s``; clips are cut at the end.

Every clip gets its own loudness (``gain_db``) and length perturbation
(``stretch``: resampling with soxr, so a factor of 1.1 makes the clip 10 %
longer *and* lowers its pitch by 10 %). The bed is silence, or background
recordings at ``noise_volume`` (white noise at that peak level when none are
given). If the sum peaks above 1 the whole mixture is scaled down, never
clipped, and :attr:`Mixture.scaled_by` says by how much.

Each placed clip is a :class:`PlacedClip`: its :class:`earmark.events.Event`
(label and source id) and the gain and stretch it got. Events are
sample-exact: an event's onset is the index of the first sample of the
placed clip divided by the rate, its offset the index one past the last
placed sample divided by the rate, so ``mixture[onset * rate:offset *
rate]`` is ``stretch(clip, placed.stretch) * 10 ** (placed.gain_db / 20) *
scaled_by`` (plus the bed, and plus any clip it overlaps).

:func:`make_mixtures` builds a set of them for one split of a manifest from
that split's rows only, so speakers stay disjoint between splits; all the
clips of a mixture share one class (e.g. all female speakers), given by
``label_of(row)``. Output for each mixture ``NAME`` (``mix-<split>-<mode>-<i>``)::

    OUT/<split>/NAME.flac          the audio
    OUT/<split>/NAME.events.csv    onset,offset,label,source (seconds, 6 decimals)
    OUT/<split>/NAME.events.json   events (with gain, stretch, sample indices) and the spec
    OUT/<split>/NAME.labels.txt    Audacity label track: onset<TAB>offset<TAB>label (6 decimals)
    OUT/mixtures.csv               a manifest of all mixtures (path,label,group,split,...),
                                   readable with earmark.data.manifest.from_csv; each call
                                   replaces the rows of its own split and mode and keeps
                                   the others (so one folder can hold both modes)

:func:`earmark.events.read_events` reads the events back from any of the
three event files.

The same seed gives the same mixtures; mixture ``i`` depends only on the seed
and ``i``, not on ``count``. numpy and soxr only: no torch.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import soxr

from earmark import audio
from earmark.atomic import write_json
from earmark.data.cache import load_segment  # the one reader of a row's start/end
from earmark.data.manifest import Manifest, Row, from_csv
from earmark.errors import ConfigError, DataError
from earmark.events import Event, write_events

MODES = ("sequential", "simultaneous")
BASES = ("silence", "noise")
AUDIO_FORMATS = ("flac", "wav")

#: A source for :func:`mix`: ``(samples at spec.sample_rate, label, source id)``.
Source = tuple[np.ndarray, str, str]

#: Decimals of the times in ``NAME.events.csv`` and ``NAME.labels.txt`` (1 microsecond).
EVENT_FILE_DECIMALS = 6


@dataclass
class MixSpec:
    """How to build a mixture. Ranges are ``(low, high)``, drawn uniformly."""

    duration_s: float = 60.0
    mode: str = "sequential"                      #: "sequential" or "simultaneous"
    gap_s: tuple[float, float] = (0.0, 5.0)       #: pause before each clip (sequential)
    gain_db: tuple[float, float] = (-6.0, 0.0)    #: per-clip loudness change
    stretch: tuple[float, float] = (1.0, 1.0)     #: per-clip length factor (1.1 = 10 % longer)
    base: str = "silence"                         #: "silence" or "noise"
    noise_volume: float = 0.05                    #: bed gain (recordings' own level x this)
    sample_rate: int = 16000
    seed: int = 0
    max_sources: int = 8                          #: simultaneous: at most this many clips
    min_sources: int = 4                          #: simultaneous: make_mixtures draws min..max
    start_s: tuple[float, float] = (0.0, 0.0)     #: simultaneous: each clip's start

    def __post_init__(self) -> None:
        if not self.duration_s > 0:
            raise ConfigError(f"duration_s must be > 0, got {self.duration_s}")
        if self.mode not in MODES:
            raise ConfigError(f"mode {self.mode!r} is not one of {MODES}")
        if self.base not in BASES:
            raise ConfigError(f"base {self.base!r} is not one of {BASES}")
        if self.sample_rate <= 0:
            raise ConfigError(f"sample_rate must be > 0, got {self.sample_rate}")
        if self.noise_volume < 0:
            raise ConfigError(f"noise_volume must be >= 0, got {self.noise_volume}")
        if not 1 <= self.min_sources <= self.max_sources:
            raise ConfigError(f"need 1 <= min_sources <= max_sources, got "
                              f"{self.min_sources} and {self.max_sources} (lower "
                              "min_sources with max_sources)")
        for name in ("gap_s", "gain_db", "stretch", "start_s"):
            low, high = getattr(self, name)
            if not low <= high:
                raise ConfigError(f"{name} = ({low}, {high}): need low <= high")
        if self.gap_s[0] < 0 or self.start_s[0] < 0:
            raise ConfigError(f"gap_s and start_s must be >= 0, got {self.gap_s}, {self.start_s}")
        if self.stretch[0] <= 0:
            raise ConfigError(f"stretch factors must be > 0, got {self.stretch}")

    @property
    def total_samples(self) -> int:
        """The mixture's length in samples."""
        return int(round(self.duration_s * self.sample_rate))


@dataclass(frozen=True)
class PlacedClip:
    """One clip placed in a mixture: its event and how it was perturbed.

    Parameters
    ----------
    event : Event
        Seconds from the mixture's start, sample-exact; ``event.source`` is
        the clip's source id.
    gain_db : float
        Loudness change applied, in dB (before any ``Mixture.scaled_by``).
    stretch : float
        Length factor applied (1.1 = 10 % longer).
    """

    event: Event
    gain_db: float = 0.0
    stretch: float = 1.0

    def samples(self, sample_rate: int) -> tuple[int, int]:
        """``(first, one past last)`` sample index at ``sample_rate`` (Hz)."""
        return (int(round(self.event.onset * sample_rate)),
                int(round(self.event.offset * sample_rate)))


@dataclass
class Mixture:
    """A mixture's audio (float32, peak <= 1), its placed clips (by onset) and its label."""

    audio: np.ndarray
    clips: list[PlacedClip]
    label: str
    scaled_by: float = 1.0        #: < 1 when the sum peaked above 1 and was scaled down
    spec: MixSpec | None = field(default=None, repr=False)

    @property
    def events(self) -> list[Event]:
        """The placed clips' events, by onset."""
        return [clip.event for clip in self.clips]


# ------------------------------------------------------------------ mixing
def mix(sources: list[Source], spec: MixSpec,
        noise: list[np.ndarray] | None = None) -> Mixture:
    """Place ``sources`` (in the given order) into one mixture; see the module docstring.

    Parameters
    ----------
    sources : list of (samples, label, source_id)
        Mono clips at ``spec.sample_rate``. Sequential mode uses them in order
        until the mixture is full; simultaneous mode uses the first
        ``spec.max_sources``.
    spec : MixSpec
        Mode, duration, ranges and seed.
    noise : list of ndarray, optional
        Background recordings at ``spec.sample_rate`` for ``base="noise"``
        (ignored for ``base="silence"``).

    Returns
    -------
    Mixture
        Its label is the most common label of the clips placed (ties go to
        the first in sorted order).
    """
    _check_sources(sources)
    rng = np.random.default_rng(spec.seed)
    total = spec.total_samples
    canvas = np.zeros(total, dtype=np.float64)     # float64: no float32 rounding while summing
    if spec.mode == "sequential":
        clips = _place_sequential(canvas, sources, spec, rng)
    else:
        clips = _place_simultaneous(canvas, sources, spec, rng)
    if not clips:
        raise DataError(f"no clip fits into a {spec.duration_s} s mixture: the first pause "
                        f"(gap_s = {spec.gap_s}) or every start (start_s = {spec.start_s}) "
                        "fell past its end")
    if spec.base == "noise":
        canvas += _bed(noise, total, spec, rng)
    peak = float(np.abs(canvas).max())
    scaled_by = 1.0
    if peak > 1.0:
        scaled_by = 1.0 / peak
        canvas *= scaled_by
    samples = np.clip(canvas, -1.0, 1.0).astype(np.float32)  # clip: float32 rounding only
    return Mixture(samples, clips, majority_label([clip.event for clip in clips]), scaled_by,
                   spec)


def stretch(samples: np.ndarray, factor: float, sample_rate: int = 16000) -> np.ndarray:
    """Make a clip ``factor`` times as long (within a sample) by resampling with soxr.

    Played at the original rate, the result is slower and lower in pitch for
    ``factor > 1`` (a tape-speed change, not a pitch-preserving stretch).
    """
    if factor <= 0:
        raise ConfigError(f"stretch factor must be > 0, got {factor}")
    samples = np.asarray(samples, dtype=np.float32)
    if factor == 1.0 or samples.size == 0:
        return samples
    return soxr.resample(samples, sample_rate, sample_rate * factor,
                         quality="HQ").astype(np.float32, copy=False)


def noise_bed(noise: list[np.ndarray] | None, total: int, sample_rate: int, volume: float,
              rng: np.random.Generator, frequency: float = 1.0) -> np.ndarray:
    """Background recordings joined end to end (random pieces of 5-30 s) times ``volume``.

    Each piece is present with probability ``frequency``. Draws from ``rng``
    exactly as :func:`earmark.data.streams.build_stream`'s background does, so
    that builder can call this one and keep its streams bit for bit.
    """
    bed = np.zeros(total, dtype=np.float32)
    if not noise or volume <= 0:
        return bed
    position = 0
    while position < total:
        source = noise[int(rng.integers(len(noise)))]
        length = min(len(source), total - position, int(rng.uniform(5, 30) * sample_rate))
        offset = int(rng.integers(0, max(1, len(source) - length)))
        if rng.random() < frequency:
            piece = source[offset:offset + length]
            bed[position:position + len(piece)] = piece * volume
        position += max(length, 1)
    return bed


def majority_label(events: Sequence[Event]) -> str:
    """The most common label of ``events``; ties go to the first in sorted order."""
    counts = Counter(event.label for event in events)
    return min(counts, key=lambda label: (-counts[label], label))


def _place_sequential(canvas: np.ndarray, sources: list[Source], spec: MixSpec,
                      rng: np.random.Generator) -> list[PlacedClip]:
    rate, total = spec.sample_rate, len(canvas)
    clips: list[PlacedClip] = []
    position = 0
    for samples, label, source_id in sources:
        position += int(round(rng.uniform(*spec.gap_s) * rate))
        if position >= total:
            break
        clip, position = _place(canvas, samples, label, source_id, position, spec, rng)
        clips.append(clip)
    return clips


def _place_simultaneous(canvas: np.ndarray, sources: list[Source], spec: MixSpec,
                        rng: np.random.Generator) -> list[PlacedClip]:
    rate, total = spec.sample_rate, len(canvas)
    clips = []
    for samples, label, source_id in sources[:spec.max_sources]:
        start = int(round(rng.uniform(*spec.start_s) * rate))
        if start >= total:
            continue            # a start_s range beyond the duration: nothing to place
        clips.append(_place(canvas, samples, label, source_id, start, spec, rng)[0])
    return sorted(clips, key=lambda clip: clip.event.onset)


def _place(canvas: np.ndarray, samples: np.ndarray, label: str, source_id: str, start: int,
           spec: MixSpec, rng: np.random.Generator) -> tuple[PlacedClip, int]:
    """Add one perturbed clip at ``start`` (cut at the end); return it and its end index."""
    gain_db = float(rng.uniform(*spec.gain_db))
    factor = float(rng.uniform(*spec.stretch))
    piece = stretch(samples, factor, spec.sample_rate) * np.float32(10 ** (gain_db / 20))
    end = min(start + len(piece), len(canvas))
    canvas[start:end] += piece[:end - start]
    rate = spec.sample_rate
    return PlacedClip(Event(start / rate, end / rate, label, source_id), gain_db, factor), end


def _bed(noise: list[np.ndarray] | None, total: int, spec: MixSpec,
         rng: np.random.Generator) -> np.ndarray:
    if noise:
        return noise_bed(noise, total, spec.sample_rate, spec.noise_volume, rng)
    # No recordings: white noise whose peak is noise_volume.
    return (rng.uniform(-1.0, 1.0, total) * spec.noise_volume).astype(np.float32)


def _check_sources(sources: list[Source]) -> None:
    if not sources:
        raise DataError("mix() needs at least one source clip")
    for samples, label, source_id in sources:
        if np.ndim(samples) != 1 or len(samples) == 0:
            raise DataError(f"source {source_id!r}: need a non-empty mono (1-D) array, got "
                            f"shape {np.shape(samples)}")
        audio.check_finite(np.asarray(samples), source_id)


# ----------------------------------------------------------------- writing
def write_mixture(folder: str | os.PathLike, name: str, mixture: Mixture,
                  sample_rate: int | None = None, audio_format: str = "flac") -> Path:
    """Write a mixture's audio and its event files into ``folder``, each atomically.

    Parameters
    ----------
    folder : str or os.PathLike
        Created if missing.
    name : str
        The files are ``NAME.flac`` (or ``.wav``; 16-bit PCM),
        ``NAME.events.csv`` (``onset,offset,label,source``),
        ``NAME.labels.txt`` (Audacity; both with times in seconds to
        :data:`EVENT_FILE_DECIMALS` decimals) and ``NAME.events.json`` (see
        :func:`mixture_description`).
    mixture : Mixture
    sample_rate : int, optional
        Hz; default: the mixture's spec's rate.
    audio_format : {"flac", "wav"}

    Returns
    -------
    Path
        The audio file.
    """
    if sample_rate is None:
        if mixture.spec is None:
            raise ConfigError("write_mixture needs a sample_rate (the mixture has no spec)")
        sample_rate = mixture.spec.sample_rate
    if audio_format not in AUDIO_FORMATS:
        raise ConfigError(f"audio_format {audio_format!r} is not one of {AUDIO_FORMATS}")
    folder = Path(folder)
    audio_path = folder / f"{name}.{audio_format}"
    audio.write(audio_path, mixture.audio, sample_rate)
    write_events(folder / f"{name}.events.csv", mixture.events,
                 decimals=EVENT_FILE_DECIMALS, extra_fields=("source",))
    write_events(folder / f"{name}.labels.txt", mixture.events, decimals=EVENT_FILE_DECIMALS)
    write_json(folder / f"{name}.events.json",
               mixture_description(mixture, audio_path.name, sample_rate))
    return audio_path


def mixture_description(mixture: Mixture, audio_name: str, sample_rate: int) -> dict:
    """The content of ``NAME.events.json``: the audio file's name, ``sample_rate`` (Hz),
    ``duration_s``, ``label``, ``scaled_by``, the ``spec`` and the ``events``, each with
    ``onset``, ``offset`` (s), ``label``, ``source``, ``gain_db``, ``stretch`` and its
    ``onset_sample`` and ``offset_sample``."""
    return {
        "audio": audio_name,
        "sample_rate": sample_rate,
        "duration_s": len(mixture.audio) / sample_rate,
        "label": mixture.label,
        "scaled_by": mixture.scaled_by,
        "spec": None if mixture.spec is None else asdict(mixture.spec),
        "events": [{"onset": clip.event.onset, "offset": clip.event.offset,
                    "label": clip.event.label, "source": clip.event.source,
                    "gain_db": clip.gain_db, "stretch": clip.stretch,
                    "onset_sample": clip.samples(sample_rate)[0],
                    "offset_sample": clip.samples(sample_rate)[1]} for clip in mixture.clips],
    }


# ------------------------------------------------------------ a whole set
def make_mixtures(manifest: Manifest, split: str, count: int, spec: MixSpec,
                  out_dir: str | os.PathLike, label_of: Callable[[Row], str | None] | None = None,
                  noise: list[np.ndarray] | None = None, *, order: str = "alternate",
                  audio_format: str = "flac") -> Manifest:
    """Build ``count`` mixtures from the rows of one split; return their manifest.

    Parameters
    ----------
    manifest : Manifest
        The clips; only rows whose ``split`` is ``split`` are read, so the
        mixtures of different splits share no speaker when the manifest's
        splits are group-disjoint.
    split : str
        The split to build (``train``, ``validation``, ``test``).
    count : int
        How many mixtures.
    spec : MixSpec
        Mixture settings; ``spec.seed`` with the mixture's index seeds each one.
    out_dir : str or PathLike
        Files go to ``out_dir/<split>/``, the manifest to ``out_dir/mixtures.csv``.
    label_of : callable, optional
        ``row -> class`` (default ``row.label``), e.g. a speaker's gender.
        Rows it maps to ``None`` or ``""`` are not used.
    noise : list of ndarray, optional
        Background recordings at ``spec.sample_rate`` for ``base="noise"``.
    order : {"alternate", "random"}
        The class of mixture ``i``: the sorted classes in turn (balanced), or
        drawn at random.
    audio_format : {"flac", "wav"}

    Returns
    -------
    Manifest
        One row per mixture: ``path`` (absolute), ``label`` (its class),
        ``group = mix-<split>-<mode>-<i>``, ``split``.
    """
    if count < 1:
        raise ConfigError(f"count must be >= 1, got {count}")
    if order not in ("alternate", "random"):
        raise ConfigError(f"order {order!r} is not 'alternate' or 'random'")
    label_of = label_of or (lambda row: row.label)
    pools = _class_pools(manifest, split, label_of)
    classes = sorted(pools)
    out_dir = Path(out_dir)
    batch = f"mix-{split}-{spec.mode}-"
    rows = []
    for index in range(count):
        pick = np.random.default_rng([spec.seed, index])
        label = (classes[index % len(classes)] if order == "alternate"
                 else classes[int(pick.integers(len(classes)))])
        sources = _draw_sources(pools[label], label, spec, pick)
        mixture = mix(sources, replace(spec, seed=int(pick.integers(2**31))), noise)
        name = f"{batch}{index}"
        path = write_mixture(out_dir / split, name, mixture, spec.sample_rate, audio_format)
        rows.append(Row(os.path.abspath(path), mixture.label, name, split))
    made = Manifest(rows)
    _update_index(out_dir / "mixtures.csv", batch, made)
    return made


def _class_pools(manifest: Manifest, split: str,
                 label_of: Callable[[Row], str | None]) -> dict[str, list[Row]]:
    """The split's rows by class."""
    pools: dict[str, list[Row]] = {}
    rows = [row for row in manifest if row.split == split]
    if not rows:
        present = sorted({row.split or "(none)" for row in manifest})
        raise DataError(f"the manifest has no rows in split {split!r}; its splits: {present}")
    for row in rows:
        label = label_of(row)
        if label:
            pools.setdefault(str(label), []).append(row)
    if not pools:
        raise DataError(f"label_of gave no class to any row of split {split!r}")
    return pools


def _draw_sources(pool: list[Row], label: str, spec: MixSpec,
                  rng: np.random.Generator) -> list[Source]:
    """Clips of one class: the pool in shuffled order (repeating only once it is used up),
    as many as the mode needs."""
    rows = _shuffled_cycle(pool, rng)
    if spec.mode == "simultaneous":
        wanted = int(rng.integers(spec.min_sources, spec.max_sources + 1))
        return [_source(next(rows), label, spec.sample_rate) for _ in range(wanted)]
    # Sequential: enough clips to fill the duration even at the shortest
    # stretch and pauses; mix() leaves the rest unused.
    sources, filled = [], 0.0
    shortest_gap = spec.gap_s[0] * spec.sample_rate
    while filled < spec.total_samples:
        source = _source(next(rows), label, spec.sample_rate)
        sources.append(source)
        filled += len(source[0]) * spec.stretch[0] + shortest_gap
    return sources


def _shuffled_cycle(pool: list[Row], rng: np.random.Generator) -> Iterator[Row]:
    while True:
        for position in rng.permutation(len(pool)):
            yield pool[position]


def _source(row: Row, label: str, sample_rate: int) -> Source:
    if row.start is None and row.end is None:
        samples = audio.load(row.path, sample_rate)
        source_id = row.path
    else:
        samples = load_segment(row, sample_rate)
        source_id = f"{row.path}#{row.start or 0}-{'' if row.end is None else row.end}"
    return samples, label, source_id


def _update_index(path: Path, batch: str, made: Manifest) -> None:
    """Write the mixtures manifest, keeping the rows of other batches (split and mode) that
    earlier calls wrote; this batch's earlier rows are replaced."""
    kept = ([row for row in from_csv(path) if not row.group.startswith(batch)]
            if path.is_file() else [])
    Manifest(kept + made.rows).to_csv(path, relative=True)
