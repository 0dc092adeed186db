"""One experiment = one TOML file mapped onto dataclasses.

Sections: ``[data]``, ``[features]``, ``[model]``, ``[augment]``, ``[train]``.
Unknown keys are errors that name the key and suggest the nearest valid one;
relative paths are read from the config file's folder. Every run writes its
resolved config next to its outputs (:func:`to_toml`), so a result can be
reproduced from its folder alone.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from earmark.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass
class DataConfig:
    """Where the recordings are and how they are split and cut."""

    root: str = ""                 #: a folder per class (folder name = label)
    csv: str = ""                  #: or a manifest CSV (path, label[, group, split, start, end])
    dataset: str = ""              #: or a dataset recipe (`earmark datasets list`) ...
    dataset_root: str = ""         #: ... under this root ("": $EARMARK_DATA, else ./datasets)
    group_pattern: str = "auto"    #: preset name or regex with a named group ``(?P<group>...)``
    label_pattern: str = ""        #: "" = folder name; or a preset / regex with ``(?P<label>...)``
    split: str = "group"           #: group | hash | column | kfold
    ratios: list[float] = field(default_factory=lambda: [0.8, 0.1, 0.1])
    validation_percent: float = 10.0   #: for split = "hash"
    testing_percent: float = 10.0      #: for split = "hash"
    folds: int = 5                 #: for split = "kfold"
    fold: int = 0                  #: which fold is the test fold
    #: fold = the next fold; random = ratios[1] of training files; groups = of training groups
    kfold_validation: str = "fold"
    split_seed: int = 0
    classes: list[str] = field(default_factory=list)   #: order (and subset) of labels
    extra_train: list[str] = field(default_factory=list)  #: manifests added to train only
    keywords: list[str] = field(default_factory=list)     #: words kept; others -> _unknown_
    unknown_percent: float = 10.0  #: with keywords: _unknown_ clips, % of keyword clips
    silence_percent: float = 10.0  #: with keywords: _silence_ clips, % of keyword clips
    silence_noise_dir: str = ""    #: with keywords: recordings cut into _silence_ clips
    sample_rate: int = 16000
    clip_seconds: float = 1.0      #: the model's analysis window
    hop_seconds: float = 0.5       #: hop between windows of longer recordings
    aggregate: str = "mean"        #: how windows judge a recording: mean | vote
    #: regex with (?P<clip>...) on file names: one clip's files are judged together
    clip_pattern: str = ""
    cache_dir: str = ""            #: decoded-audio cache; "" = $EARMARK_CACHE or ~/.cache/earmark
    skip_bad_files: bool = False   #: skip (and list) unreadable files instead of stopping


@dataclass
class FeatureConfig:
    """The front-end: waveform -> spectrogram, log-mel or MFCC (+ deltas)."""

    kind: str = "logmel"           #: spectrogram | logmel | mfcc | spectrogram128 | micro | embedding
    window_ms: float = 30.0
    hop_ms: float = 10.0
    n_fft: int = 0                 #: 0 = next power of two >= window
    n_mels: int = 40
    n_mfcc: int = 10
    fmin: float = 20.0
    fmax: float = 0.0              #: 0 = Nyquist
    deltas: int = 0                #: 0, 1 (delta) or 2 (delta + delta-delta)
    delta_width: int = 5           #: frames in the delta regression window (odd)
    center: bool = False           #: pad half a window at both ends (reflect)
    log_floor: float = 1e-6        #: power floor before 10*log10 (-60 dB)
    top_db: float = 0.0            #: > 0: dB relative to the loudest bin, floored this far below
    mean_normalize: bool = False   #: subtract each band's mean over the window's active frames
    #: birdnet only: BirdNET hears each window at these playback rates (1: as recorded, 2:
    #: twice as fast, an octave up), the embeddings side by side
    playback_rates: list[float] = field(default_factory=lambda: [1.0])
    #: embedding only: the first N of the speech embedding's 5 blocks (5: all of it, 96
    #: numbers every 80 ms; 2: its lower layers, 384 numbers every 20 ms, 28k parameters)
    embedding_blocks: int = 5
    #: embedding only: its convolutions in int8 at fixed ranges (about half the CPU a
    #: column; the model trains on and deploys with the same int8 columns)
    embedding_int8: bool = False

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> FeatureConfig:
        """The front-end a bundle or run recorded (keys a newer earmark added left out)."""
        known = {spec.name for spec in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in record.items() if key in known})


@dataclass
class ModelConfig:
    """An architecture from the registry and its keyword arguments."""

    name: str = "dscnn"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class AugmentConfig:
    """Training-only, batched augmentation."""

    shift_ms: float = 0.0          #: random time shift up to +/- this
    noise_dir: str = ""            #: folder of background recordings
    noise_probability: float = 0.0
    noise_mix: str = "snr"         #: snr | volume
    noise_snr_db: list[float] = field(default_factory=lambda: [0.0, 20.0])
    noise_volume: list[float] = field(default_factory=lambda: [0.0, 0.1])
    gain_db: list[float] = field(default_factory=lambda: [0.0, 0.0])
    speed: list[float] = field(default_factory=lambda: [1.0, 1.0])
    frequency_warp: list[float] = field(default_factory=lambda: [1.0, 1.0])  #: VTLP factor range
    equalizer_db: float = 0.0      #: random smooth EQ curve of about +/- this (0 = off)
    lowpass_hz: list[float] = field(default_factory=lambda: [0.0, 0.0])   #: cut-off range
    highpass_hz: list[float] = field(default_factory=lambda: [0.0, 0.0])  #: cut-off range
    band_limit_probability: float = 0.0   #: share of examples low/high-passed
    reverb_probability: float = 0.0       #: share of examples heard in a simulated room
    reverb_rt60: list[float] = field(default_factory=lambda: [0.2, 0.8])  #: RT60 range (s)
    reverb_rooms: int = 16                #: rooms simulated at the start of training
    babble_probability: float = 0.0       #: share of examples with other talkers behind them
    babble_snr_db: list[float] = field(default_factory=lambda: [0.0, 20.0])
    babble_talkers: int = 3               #: other examples of the batch summed into the babble
    clipping_probability: float = 0.0     #: share of examples driven into clipping
    clipping_db: list[float] = field(default_factory=lambda: [0.0, 20.0])  #: overdrive range
    time_masks: int = 0            #: SpecAugment
    time_mask_frames: int = 10
    freq_masks: int = 0
    freq_mask_bands: int = 5
    mixup_alpha: float = 0.0


@dataclass
class TrainConfig:
    """The optimisation loop."""

    epochs: int = 40
    batch_size: int = 64
    learning_rate: float = 3e-3
    weight_decay: float = 1e-2
    schedule: str = "onecycle"     #: onecycle | cosine | constant
    label_smoothing: float = 0.0
    patience: int = 0              #: early stopping after this many epochs without gain (0 = off)
    #: the epoch whose weights are kept: best validation accuracy (ties: lower loss), lowest
    #: validation loss, or the last (when validation is too small or unlike the real use)
    select_epoch: str = "accuracy"  #: accuracy | loss | last
    balance: str = "weights"       #: weights | sampler | none
    #: the windows an epoch trains on: random crops (about one per window-length of each
    #: recording, drawn anew every epoch), or the grid the recordings are judged by (every
    #: window data.hop_seconds apart; windows of digital silence left out)
    windows: str = "random"        #: random | grid
    report_every: int = 5          #: classification report + confusion PNG every k epochs
    seed: int = 0
    device: str = "auto"           #: auto | cpu | cuda
    threads: int = 0               #: torch threads (0 = all cores; / processes under torchrun)
    #: with several processes: batch norm over every process's batch. auto = when each
    #: process's share of the batch is under 32 (its own statistics get noisy)
    sync_batchnorm: str = "auto"   #: auto | always | never
    #: a TOML file with a teacher's [features], [model], [augment], [train]: trained first
    #: on the same data into RUN/teacher, its softened scores join the labels as targets
    teacher: str = ""
    distill_weight: float = 0.5    #: share of the teacher in the targets (0-1)
    distill_temperature: float = 2.0   #: softens the teacher's scores (> 0)
    #: keep the features of this many augmented passes over the training windows (and of
    #: the validation windows) and let later epochs reuse them: for front-ends that learn
    #: nothing and cost most of an epoch (the speech embedding). 0 = compute every epoch
    feature_copies: int = 0


@dataclass
class AnomalyConfig:
    """``[anomaly]``: learning a machine's normal sound (``earmark anomaly train``)."""

    method: str = "lines"          #: lines | autoencoder (the DCASE 2020 baseline)
    false_alarm_rate: float = 0.05 #: share of validation normal clips above the threshold
    validation_share: float = 0.2  #: training normal groups held out to set the threshold
    # lines: a machine's tonal lines, learned from its normal sound
    resolution_hz: float = 1.0     #: FFT bin spacing (n_fft = next power of two)
    max_lines: int = 32            #: the most prominent lines kept
    line_bins: int = 2             #: bins either side of each line's peak
    prominence_db: float = 6.0     #: a line stands this far above the median around it
    max_hz: float = 0.0            #: highest line frequency (0 = Nyquist)
    neighbours: int = 1            #: k of the k-nearest-neighbour distance to the normal bank
    texture: bool = False          #: also score how the sound moves in time (impacts, rattles)
    # autoencoder (features from [features], epochs and learning rate from [train])
    context_frames: int = 5        #: frames stacked into one input vector
    hidden: int = 128
    bottleneck: int = 8


def default_cache_dir() -> str:
    """``$EARMARK_CACHE``, else ``~/.cache/earmark``: decoded audio and derived files."""
    default = os.path.join(os.path.expanduser("~"), ".cache", "earmark")
    return os.environ.get("EARMARK_CACHE", default)


@dataclass
class ExperimentConfig:
    """A whole experiment; ``base_dir`` is where relative paths start."""

    data: DataConfig = field(default_factory=DataConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    anomaly: AnomalyConfig = field(default_factory=AnomalyConfig)
    base_dir: str = "."

    def cache_dir(self) -> str:
        """Where decoded audio is kept (see ``data.cache_dir``)."""
        if self.data.cache_dir:
            return self.resolve(self.data.cache_dir)
        return default_cache_dir()

    def resolve(self, path: str) -> str:
        """A config path made absolute against the config file's folder."""
        return resolve_path(path, self.base_dir)


def resolve_path(path: str, folder: str) -> str:
    """``path`` (``~`` expanded) made absolute against ``folder``, as named: ``..`` is taken
    off the folder's name, not through a symbolic link (``configs/`` is one); ``""`` stays."""
    if not path:
        return path
    return os.path.normpath(os.path.join(folder, os.path.expanduser(path)))


_SECTIONS = {
    "data": DataConfig,
    "features": FeatureConfig,
    "model": ModelConfig,
    "augment": AugmentConfig,
    "train": TrainConfig,
    "anomaly": AnomalyConfig,
}


def load_config(path: str | os.PathLike) -> ExperimentConfig:
    """Read an experiment TOML file; errors name the file and the key."""
    raw = read_toml(path)
    return from_dict(raw, base_dir=os.path.dirname(os.path.abspath(path)), source=str(path))


#: A config file larger than this is not one (they are a few KB): refused before reading.
MAX_CONFIG_BYTES = 1 << 20
#: The longest analysis window (and hop) a config may ask for, as a bundle may declare.
MAX_CLIP_SECONDS = 60.0


def read_toml(path: str | os.PathLike) -> dict[str, Any]:
    """A TOML file's tables; a missing, oversized or malformed file is a
    :class:`ConfigError`."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path}: a folder, not a config file; give the .toml file in it")
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: {path.stat().st_size / 2**20:.1f} MB is no config file "
                          f"(they are a few KB; at most {MAX_CONFIG_BYTES >> 20} MB): is this "
                          "the right file?")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from error
    except OSError as error:
        raise ConfigError(f"{path}: cannot read it ({error.strerror or error})") from error


def from_dict(raw: dict[str, Any], base_dir: str = ".", source: str = "config") -> ExperimentConfig:
    """Build an :class:`ExperimentConfig` from nested dicts, validating every key."""
    if "wakeword" in raw:
        raise ConfigError(f"{source}: a [wakeword] table: this is a settings file for "
                          f"`earmark wakeword --config {source} --out OUT`, not an experiment "
                          "config")
    _reject_unknown(raw, list(_SECTIONS), source)
    sections = {}
    for name, cls in _SECTIONS.items():
        values = raw.get(name, {})
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: [{name}] must be a table, got {name} = {values!r}")
        values = dict(values)
        if cls is ModelConfig:
            values = {"name": values.pop("name", "dscnn"), "options": values}
        sections[name] = build_section(cls, values, f"{source} [{name}]")
    config = ExperimentConfig(**sections, base_dir=base_dir)
    validate(config, source)
    return config


def validate(config: ExperimentConfig, source: str = "config") -> None:
    """Check ranges and choices early, with messages that say what is allowed."""
    checks = [
        ("data.split", config.data.split, {"group", "hash", "column", "kfold"}),
        ("data.aggregate", config.data.aggregate, {"mean", "vote"}),
        ("data.kfold_validation", config.data.kfold_validation, {"fold", "random", "groups"}),
        ("features.kind", config.features.kind,
         {"spectrogram", "logmel", "mfcc", "spectrogram128", "micro", "embedding",
          "birdnet"}),
        ("augment.noise_mix", config.augment.noise_mix, {"snr", "volume"}),
        ("train.schedule", config.train.schedule, {"onecycle", "cosine", "constant"}),
        ("train.balance", config.train.balance, {"weights", "sampler", "none"}),
        ("train.windows", config.train.windows, {"random", "grid"}),
        ("train.select_epoch", config.train.select_epoch, {"accuracy", "loss", "last"}),
        ("train.device", config.train.device, {"auto", "cpu", "cuda"}),
        ("train.sync_batchnorm", config.train.sync_batchnorm, {"auto", "always", "never"}),
    ]
    for key, value, allowed in checks:
        if value not in allowed:
            raise ConfigError(f"{source}: {key} = {value!r} is not one of {sorted(allowed)}")
    if config.train.select_epoch == "last" and config.train.patience:
        raise ConfigError(f"{source}: train.patience stops when validation stops improving, "
                          "but train.select_epoch = \"last\" keeps every epoch: leave one "
                          "of them out")
    if len(config.data.ratios) != 3 or not all(0 <= r < math.inf for r in config.data.ratios) \
            or not 0 < sum(config.data.ratios) < math.inf:
        raise ConfigError(f"{source}: data.ratios must be three non-negative finite numbers "
                          f"(train, validation, test), got {config.data.ratios}")
    data = config.data
    if data.sample_rate <= 0 or data.clip_seconds <= 0 or data.hop_seconds <= 0:
        raise ConfigError(f"{source}: data.sample_rate, clip_seconds and hop_seconds must be > 0")
    if not data.clip_seconds <= MAX_CLIP_SECONDS or not data.hop_seconds <= MAX_CLIP_SECONDS:
        raise ConfigError(f"{source}: data.clip_seconds and hop_seconds must be at most "
                          f"{MAX_CLIP_SECONDS:g} (a window a model hears at once), got "
                          f"{data.clip_seconds} and {data.hop_seconds}")
    if data.hop_seconds * data.sample_rate < 1:
        raise ConfigError(f"{source}: data.hop_seconds = {data.hop_seconds} is less than one "
                          f"sample at {data.sample_rate} Hz; give a hop of at least "
                          f"{1 / data.sample_rate:.2g} s")
    _check_features(config.features, source)
    _check_train(config.train, source)
    _check_augment_ranges(config.augment, source)
    _check_anomaly(config.anomaly, source)
    if config.data.fold < 0 or config.data.folds < 2:
        raise ConfigError(f"{source}: data.fold must be >= 0 and data.folds >= 2 "
                          "(a manifest's own 'fold' column may number folds from 1)")


def _check_features(features: FeatureConfig, source: str) -> None:
    """Deltas and their width in range; the settings of one kind of front-end refused for
    another."""
    if features.deltas not in (0, 1, 2):
        raise ConfigError(f"{source}: features.deltas must be 0, 1 or 2")
    if features.kind != "birdnet" and list(features.playback_rates) != [1.0]:
        raise ConfigError(f"{source}: features.playback_rates are the views BirdNET hears "
                          f"(features.kind = \"birdnet\"); features.kind = "
                          f"\"{features.kind}\" takes none: leave it out")
    if features.kind != "embedding" \
            and features.embedding_blocks != FeatureConfig.embedding_blocks:
        raise ConfigError(f"{source}: features.embedding_blocks are the speech embedding's "
                          f"(features.kind = \"embedding\"); features.kind = "
                          f"\"{features.kind}\" takes none: leave it out")
    if features.kind != "embedding" and features.embedding_int8:
        raise ConfigError(f"{source}: features.embedding_int8 quantizes the speech embedding "
                          f"(features.kind = \"embedding\"); features.kind = "
                          f"\"{features.kind}\" takes none: leave it out (earmark "
                          "export --int8 quantizes earmark's own networks)")
    if features.delta_width < 3 or features.delta_width % 2 == 0:
        raise ConfigError(f"{source}: features.delta_width must be odd and >= 3")


def _check_train(train: TrainConfig, source: str) -> None:
    """Counts above 0, a finite learning rate above 0, distillation's weight a share."""
    if train.epochs <= 0 or train.batch_size <= 0:
        raise ConfigError(f"{source}: train.epochs and train.batch_size must be > 0")
    if not 0 < train.learning_rate < float("inf"):
        raise ConfigError(f"{source}: train.learning_rate = {train.learning_rate} must be a "
                          "finite number above 0 (the peak rate; 3e-3 is a usual start)")
    if train.feature_copies < 0:
        raise ConfigError(f"{source}: train.feature_copies must be >= 0 (0 = compute the "
                          "features every epoch)")
    if not 0.0 <= train.label_smoothing < 1.0:
        raise ConfigError(f"{source}: train.label_smoothing = {train.label_smoothing} must lie "
                          "in [0, 1) (a share of the target spread over the classes; 0.1 is "
                          "usual)")
    if not 0.0 <= train.weight_decay < math.inf:
        raise ConfigError(f"{source}: train.weight_decay = {train.weight_decay} must be a "
                          "finite number >= 0 (0.01 is usual)")
    if not 0 <= train.seed < 2 ** 32:
        raise ConfigError(f"{source}: train.seed = {train.seed} must be a whole number from "
                          "0 to 2**32 - 1")
    if not 0.0 <= train.distill_weight <= 1.0 or train.distill_temperature <= 0:
        raise ConfigError(f"{source}: train.distill_weight must lie in [0, 1] and "
                          "train.distill_temperature be > 0")


def _check_augment_ranges(augment: AugmentConfig, source: str) -> None:
    """Factor and frequency ranges are ``[low, high]`` pairs; shares lie in [0, 1]."""
    ranges = {"speed": (0.0, False), "frequency_warp": (0.0, False),
              "lowpass_hz": (0.0, True), "highpass_hz": (0.0, True), "reverb_rt60": (0.0, False)}
    for key, (floor, zero_is_off) in ranges.items():
        values = getattr(augment, key)
        if len(values) != 2:
            raise ConfigError(f"{source}: augment.{key} = {values} must be a [low, high] pair")
        low, high = values
        if zero_is_off and low == high == 0:
            continue
        if not floor < low <= high:
            unit = "cut-offs in Hz" if key.endswith("_hz") else "factors (1 = unchanged)"
            off = "; [0, 0] turns it off" if zero_is_off else ""
            raise ConfigError(f"{source}: augment.{key} = [{low}, {high}] must be a range of "
                              f"{unit} with 0 < low <= high{off}")
    if not max(augment.reverb_rt60) <= 2.0 or augment.reverb_rooms < 1:
        raise ConfigError(f"{source}: augment.reverb_rt60 = {augment.reverb_rt60} s and "
                          f"reverb_rooms = {augment.reverb_rooms}: give times up to 2 s and "
                          "at least one room")
    if augment.babble_talkers < 1:
        raise ConfigError(f"{source}: augment.babble_talkers = {augment.babble_talkers} must be "
                          "at least 1")
    for key in ("babble_snr_db", "clipping_db", "noise_snr_db", "gain_db"):
        values = getattr(augment, key)
        if len(values) != 2 or not values[0] <= values[1]:
            raise ConfigError(f"{source}: augment.{key} = {values} must be a [low, high] pair "
                              "in dB with low <= high")
    if augment.clipping_db[0] < 0:
        raise ConfigError(f"{source}: augment.clipping_db = {augment.clipping_db} is overdrive "
                          "in dB above full scale: give values >= 0")
    for key in ("noise_probability", "band_limit_probability", "reverb_probability",
                "babble_probability", "clipping_probability"):
        if not 0 <= getattr(augment, key) <= 1:
            raise ConfigError(f"{source}: augment.{key} = {getattr(augment, key)} must lie "
                              "in [0, 1]")


#: The fewest spectrum bins below ``anomaly.max_hz`` that lines are looked for in.
MIN_LINE_BINS = 16


def _check_anomaly(anomaly: AnomalyConfig, source: str) -> None:
    """The ``[anomaly]`` choices and ranges."""
    if anomaly.method not in ("lines", "autoencoder"):
        raise ConfigError(f"{source}: anomaly.method = {anomaly.method!r} is not one of "
                          "['autoencoder', 'lines']")
    shares = {"false_alarm_rate": anomaly.false_alarm_rate,
              "validation_share": anomaly.validation_share}
    for key, value in shares.items():
        if not 0 < value < 1:
            raise ConfigError(f"{source}: anomaly.{key} = {value} must lie between 0 and 1")
    positive = {"resolution_hz": anomaly.resolution_hz, "max_lines": anomaly.max_lines,
                "neighbours": anomaly.neighbours, "context_frames": anomaly.context_frames,
                "hidden": anomaly.hidden, "bottleneck": anomaly.bottleneck}
    for key, value in positive.items():
        if not value > 0:
            raise ConfigError(f"{source}: anomaly.{key} = {value} must be > 0")
    if anomaly.line_bins < 0 or anomaly.max_hz < 0 or anomaly.prominence_db < 0:
        raise ConfigError(f"{source}: anomaly.line_bins, max_hz and prominence_db must be >= 0")
    if 0 < anomaly.max_hz < MIN_LINE_BINS * anomaly.resolution_hz:
        raise ConfigError(f"{source}: anomaly.max_hz = {anomaly.max_hz} leaves fewer than "
                          f"{MIN_LINE_BINS} spectrum bins of {anomaly.resolution_hz} Hz to look "
                          "for lines in: give 0 (up to half the sample rate) or a higher "
                          "frequency")


def to_dict(config: ExperimentConfig) -> dict[str, Any]:
    """The config as nested dicts (model options flattened into [model])."""
    out: dict[str, Any] = {}
    for name in _SECTIONS:
        values = dataclasses.asdict(getattr(config, name))
        if name == "model":
            values = {"name": values["name"], **values["options"]}
        out[name] = values
    return out


def resolved_data(config: ExperimentConfig) -> DataConfig:
    """``[data]`` with its file paths made absolute: the same data from any folder."""
    data = config.data
    return dataclasses.replace(
        data, root=config.resolve(data.root), csv=config.resolve(data.csv),
        dataset_root=config.resolve(data.dataset_root), cache_dir=config.resolve(data.cache_dir),
        silence_noise_dir=config.resolve(data.silence_noise_dir),
        extra_train=[config.resolve(path) for path in data.extra_train])


def to_toml(config: ExperimentConfig) -> str:
    """Serialize to TOML (paths resolved to absolute, so the file stands alone)."""
    resolved = to_dict(config)
    resolved["data"] = dataclasses.asdict(resolved_data(config))
    resolved["augment"]["noise_dir"] = config.resolve(config.augment.noise_dir)
    resolved["train"]["teacher"] = config.resolve(config.train.teacher)
    return toml_text(resolved)


def toml_text(sections: dict[str, dict[str, Any]]) -> str:
    """Tables of plain values (numbers, text, booleans, lists, inline tables) as TOML."""
    lines = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines.extend(f"{key} = {_toml_value(value)}" for key, value in values.items())
        lines.append("")
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + "".join(_toml_character(c) for c in value) + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise ConfigError(f"cannot write {value!r} to TOML")


#: Characters a TOML basic string writes escaped.
_TOML_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _toml_character(character: str) -> str:
    """One character of a TOML basic string: quotes, backslashes and control characters
    escaped, so any text (a path with a newline in it) reads back as itself."""
    if character in _TOML_ESCAPES:
        return _TOML_ESCAPES[character]
    if ord(character) < 0x20 or ord(character) == 0x7F:
        return f"\\u{ord(character):04X}"
    return character


def build_section(cls: type, values: dict[str, Any], where: str) -> Any:
    """The dataclass ``cls`` from a TOML table: every key known, every value of its
    field's type (errors name ``where`` and the key, and suggest the closest name)."""
    names = [f.name for f in dataclasses.fields(cls)]
    _reject_unknown(values, names, where)
    kwargs = {}
    for spec in dataclasses.fields(cls):
        if spec.name not in values:
            continue
        kwargs[spec.name] = _coerce(values[spec.name], spec, where)
    return cls(**kwargs)


def _coerce(value: Any, spec: dataclasses.Field, where: str) -> Any:
    default = spec.default_factory() if spec.default_factory is not dataclasses.MISSING \
        else spec.default
    expected = type(default)
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, expected)
    if not ok:
        raise ConfigError(f"{where}: {spec.name} = {value!r} should be "
                          f"{_KINDS.get(expected, 'a ' + expected.__name__)} (like {default!r})")
    if isinstance(default, list):
        value = _coerce_items(value, spec, where)
    return value


#: How a value of each type is named in errors.
_KINDS = {bool: "true or false", int: "a whole number", float: "a number", str: "text",
          list: "a list"}

#: Element types of the list fields, from their annotations (strings here).
_LIST_ITEMS = {"list[float]": float, "list[str]": str}


def _coerce_items(values: list, spec: dataclasses.Field, where: str) -> list:
    """Check a list field's elements: numbers where floats go, text where strings go."""
    item = _LIST_ITEMS.get(str(spec.type).replace(" ", ""))
    if item is float:
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            return [float(v) for v in values]
    elif item is str:
        if all(isinstance(v, str) for v in values):
            return values
    else:
        return values
    raise ConfigError(f"{where}: {spec.name} = {values!r} should be a list of "
                      f"{item.__name__} values")


def _reject_unknown(values: dict[str, Any], allowed: list[str], where: str) -> None:
    for key in values:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"{where}: unknown key '{key}'{hint} "
                              f"(valid: {', '.join(allowed)})")
