"""``earmark wakeword PHRASE``: from the phrase to a calibrated bundle and a report card.

1. check the phrase and the negative folders (before any work);
2. build the training set (:mod:`earmark.wakeword.dataset`);
3. train a small network on the pretrained speech embedding (or a DS-CNN on
   log-mel, or the micro TCN) on a voice- and speaker-disjoint split, with the
   augmentation that makes synthetic speech sound recorded: rooms, a
   microphone EQ, band limits, noise, other talkers, clipping, level;
4. export the bundle;
5. calibrate the threshold for the false-alarm budget on the validation
   stream and on synthesized conversation (:mod:`earmark.wakeword.conversation`)
   and store it in the bundle (``listen`` and ``serve`` use it);
6. score the test stream: the report card (text, JSON, PNG).

Everything goes to one folder; a second run with the same folder resumes
training where it stopped and redoes the later steps.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from earmark.atomic import write_json, write_text
from earmark.config import ExperimentConfig, from_dict
from earmark.data.synth_keywords import write_noise_folder
from earmark.data.tts import speech
from earmark.errors import ConfigError, DataError
from earmark.frontend.speech_embedding import PHRASE_WINDOW_SECONDS, model_files
from earmark.progress import ProgressLike
from earmark.run_folder import RunFolder
from earmark.wakeword.conversation import CONVERSATION_MINUTES
from earmark.wakeword.dataset import (TWO_CLASS_MANIFEST, WINDOW_BOUNDS, WakeWordData,
                                      build_dataset, real_negatives,
                                      two_class_manifest)
from earmark.wakeword.ensemble import check_members, join, member_config, member_folder
from earmark.wakeword.phrases import Phrase, check_phrase

logger = logging.getLogger(__name__)


#: Heads the recipe averages on the embedding (README: the wake-word results).
ENSEMBLE_HEADS = 3


@dataclass
class WakeWordOptions:
    """What ``earmark wakeword`` was asked for."""

    phrase: str
    language: str = "en"
    data: WakeWordData = field(default_factory=WakeWordData)
    epochs: int = 20
    false_alarms_per_hour: float = 1.0
    config_overrides: dict = field(default_factory=dict)   #: ``{"augment": {...}, ...}``
    seed: int = 0
    #: ``onnx``: a bundle for earmark's runtime; ``micro``: a causal TCN on the
    #: TFLite-Micro front-end, exported for microWakeWord / ESPHome as well.
    target: str = "onnx"
    #: The bundle's model (``target = "onnx"``): ``embedding``, a small network on the
    #: pretrained speech embedding (hears real people best); ``dscnn``, a DS-CNN on
    #: log-mel (smaller and cheaper, but trained on synthesized speech it fires on real
    #: conversation).
    model: str = "embedding"
    #: Synthesized conversation the threshold must also keep within the budget (0: none).
    conversation_minutes: float = CONVERSATION_MINUTES
    #: Heads trained on the embedding that differ in their seed alone, their probabilities
    #: averaged in the bundle (:mod:`earmark.wakeword.ensemble`); 0: the recipe's,
    #: :data:`ENSEMBLE_HEADS` on the embedding, one network otherwise.
    ensemble: int = 0

    @property
    def heads(self) -> int:
        """How many networks are trained (and averaged)."""
        if self.ensemble:
            return self.ensemble
        return ENSEMBLE_HEADS if self.target == "onnx" and self.model == "embedding" else 1


def check_options(options: WakeWordOptions) -> Phrase:
    """What can be checked before any work: the phrase (spoken in its language), the
    negative folders (audio in each), the pretrained embedding (installed), the training
    config and the network it builds; the phrase."""
    from earmark.network import build_classifier         # torch: training needs it anyway

    phrase = check_phrase(options.phrase, options.language)
    if not speech().voices(options.language):
        raise ConfigError(f"--language {options.language}: espeak-ng has no voice for it "
                          "(`espeak-ng --voices` lists the languages it speaks)")
    real_negatives(options.data.negative_dirs)
    noise = options.data.noise_dir
    if noise and not Path(noise).is_dir():
        raise DataError(f"noise folder {noise}: no such folder; give a folder of background "
                        "recordings, or leave --noise-dir out to have one made")
    if options.target == "onnx" and options.model == "embedding":
        model_files()                                    # installed? (says how)
    # The training config the settings make (its checks), on the manifest still to come.
    config = wakeword_config(phrase.label, Path("manifest.csv"), options.data,
                             WINDOW_BOUNDS[1], options, write=False)
    build_classifier(config, 2)                          # the network's name and values
    return phrase


#: Where a run keeps the settings it was given (``run_wakeword(settings_text=...)``).
SETTINGS_FILE = "wakeword.toml"


def run_wakeword(options: WakeWordOptions, out_dir: str | Path,
                 progress: ProgressLike = None, settings_text: str = "") -> dict:
    """Every step; returns the report card (also ``OUT/card.json``, ``card.txt``, ``card.png``).
    ``settings_text`` (what the run was asked for, as a settings file) goes to
    ``OUT/wakeword.toml`` once the options have been checked."""
    from earmark.wakeword.calibration import format_card

    phrase = check_options(options)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--out {out_dir}: a file, not a folder; give a folder for the "
                          "data, run, bundle and card")
    if settings_text:
        write_text(out_dir / SETTINGS_FILE, settings_text)
    started = time.monotonic()
    data = options.data
    if not data.noise_dir:
        data.noise_dir = str(write_noise_folder(out_dir / "noise", options.seed))
    logger.info("1/4 synthesizing %r and its hard negatives ...", phrase.text)
    _, summary = build_dataset(phrase, data, out_dir / "data", progress=progress)
    logger.info("2/4 training ...")
    config = wakeword_config(phrase.label, out_dir / "data" / "manifest.csv", data,
                             summary["window_seconds"], options)
    run = out_dir / "run"
    trained = _train_ensemble(config, run, options.heads, progress)
    logger.info("3/4 exporting ...")
    deployed = (_deploy_micro if options.target == "micro" else _deploy_bundle)(
        run, data.noise_dir, options, out_dir)
    card = deployed["card"]
    card.update(phrase=phrase.text, data=summary, seconds=round(time.monotonic() - started, 1),
                validation_accuracy=trained.get("validation_accuracy"),   # None: an ensemble
                bundle=str(deployed["folder"]))
    write_json(out_dir / "card.json", card)
    write_text(out_dir / "card.txt", format_card(card, phrase.text) + "\n")
    return card


def _train_ensemble(config: ExperimentConfig, run_dir: Path, members: int,
                    progress: ProgressLike) -> dict:
    """One training in ``run_dir``; or ``members`` trainings that differ in their seed alone
    (in ``OUT/members/I``, the embedding's kept features shared), joined there. Each is
    resumed where a checkpoint is. The run's summary (the ensemble's: its members')."""
    from earmark.feature_copies import FeatureCopies
    from earmark.train import train

    if members == 1:
        run = RunFolder(run_dir)
        return train(config, run.path, resume=run.checkpoint.is_file(), progress=progress)
    copies = config.train.feature_copies
    kept = FeatureCopies(copies) if copies else None
    folders = [member_folder(run_dir.parent, index) for index in range(members)]
    for index, folder in enumerate(folders):
        logger.info("    head %d of %d ...", index + 1, members)
        run = RunFolder(folder)
        train(member_config(config, index), run.path, resume=run.checkpoint.is_file(),
              progress=progress, kept=kept)
    return join(folders, run_dir)


def _deploy_bundle(run_dir: Path, noise_dir: str, options: WakeWordOptions,
                   out_dir: Path) -> dict:
    """The ONNX bundle, its threshold calibrated and stored in it."""
    from earmark.export import export_run
    from earmark.runtime import load_bundle
    from earmark.runtime.metadata import write_detection
    from earmark.stream_eval import run_stream
    from earmark.wakeword.calibration import STRIDE_MS, WAKE_SMOOTHER

    folder = out_dir / "bundle"
    export_run(run_dir, folder, progress=False)
    logger.info("4/4 calibrating and scoring on held-out streams ...")
    bundle = load_bundle(folder, threads=1)
    card = _calibrate(lambda samples, truth: run_stream(bundle, samples, truth, STRIDE_MS,
                                                        WAKE_SMOOTHER),
                      bundle.sample_rate, list(bundle.labels), bundle.model_path.stat().st_size,
                      WAKE_SMOOTHER, run_dir, noise_dir, options, out_dir)
    hop = bundle.metadata.stream.frame_hop_samples if bundle.metadata.stream else 1
    write_detection(folder, _detection(card, 1000.0 * hop / bundle.sample_rate))
    return {"card": card, "folder": folder}


def _deploy_micro(run_dir: Path, noise_dir: str, options: WakeWordOptions,
                  out_dir: Path) -> dict:
    """The microWakeWord files; the manifest's cutoff calibrated on the float window model
    through earmark's smoother set to the manifest's rule (the mean of the last calls above
    the cutoff), then written into the manifest."""
    from earmark.export.micro_wakeword import export_micro, set_cutoff
    from earmark.frontend import micro
    from earmark.runtime.micro_wakeword import MicroWindowModel
    from earmark.stream_eval import StreamRun
    from earmark.wakeword.calibration import MICRO_THRESHOLDS

    folder = out_dir / "micro"
    export_micro(run_dir, folder)
    logger.info("4/4 calibrating the cutoff and scoring on held-out streams ...")
    model = MicroWindowModel.load(folder)

    def scored(samples, truth) -> StreamRun:
        times, scores = model.stream_scores(samples)
        return StreamRun(samples, truth, times, scores, len(samples) / micro.SAMPLE_RATE)

    card = _calibrate(scored, micro.SAMPLE_RATE, list(model.description["labels"]),
                      (folder / model.description["model"]).stat().st_size, model.smoother(),
                      run_dir, noise_dir, options, out_dir, MICRO_THRESHOLDS)
    card["threshold"] = set_cutoff(folder, card["threshold"])
    if not next(row["met_on_validation"] for row in card["rows"]
                if row["budget_per_hour"] == options.false_alarms_per_hour):
        logger.warning("even the highest cutoff (%s) fires more than %g times an hour on the "
                       "validation stream: the manifest holds it anyway", card["threshold"],
                       options.false_alarms_per_hour)
    return {"card": card, "folder": folder}


#: Augmented passes over the training windows whose embeddings training keeps.
EMBEDDING_FEATURE_COPIES = 6


def wakeword_config(label: str, manifest: Path, data: WakeWordData, window_seconds: float,
                    options: WakeWordOptions, write: bool = True) -> ExperimentConfig:
    """The training config, with recorded-sound augmentation: a small network on the
    pretrained speech embedding, the phrase against everything else (``model =
    "dscnn"``: a DS-CNN on 40 log-mel bands; ``target = "micro"``: a causal TCN on the
    TFLite-Micro front-end's 40 channels). The settings' training tables are merged over
    it (a ``[model]`` naming another network replaces the recipe's). ``write=False``
    builds it without writing the two-class manifest it would read (a check)."""
    from earmark.augment import RECORDED_SOUND       # torch: only where training is

    def two_classes() -> str:
        return str(two_class_manifest(manifest, label) if write
                   else manifest.with_name(TWO_CLASS_MANIFEST))

    raw = {
        "data": {"csv": str(manifest), "split": "group", "ratios": [0.8, 0.1, 0.1],
                 "sample_rate": data.sample_rate, "clip_seconds": window_seconds,
                 "hop_seconds": window_seconds / 2, "split_seed": options.seed,
                 "classes": [label, "_unknown_", "_silence_"]},
        "features": {"kind": "logmel", "window_ms": 30.0, "hop_ms": 20.0, "n_mels": 40,
                     "fmin": 20.0, "fmax": 7600.0},
        "model": recipe_model(options),
        "augment": {**RECORDED_SOUND, "shift_ms": 150.0, "noise_dir": data.noise_dir,
                    "time_masks": 2, "time_mask_frames": 5, "freq_masks": 2,
                    "freq_mask_bands": 5},
        # No label smoothing: it caps the phrase's probability below the high thresholds a
        # low false-alarm rate needs. (Without class weights the rare phrase collapsed into
        # _unknown_ within three epochs.)
        "train": {"epochs": options.epochs, "batch_size": 64, "learning_rate": 0.005,
                  "label_smoothing": 0.0, "report_every": 10, "seed": options.seed},
    }
    if options.target == "micro":      # one probability: the phrase against everything else
        raw["data"].update(csv=two_classes(), classes=[label, "_unknown_"])
        raw["features"] = {"kind": "micro"}
        del raw["augment"]["frequency_warp"]     # the front-end is the device's C code
    elif options.model == "embedding":
        seconds = max(window_seconds, PHRASE_WINDOW_SECONDS)
        raw["data"].update(csv=two_classes(), classes=[label, "_unknown_"],
                           clip_seconds=seconds, hop_seconds=seconds / 2)
        # The embedding in int8: ~half the CPU of float; with the heads' ensemble it misses
        # no more real speakers than Porcupine on the mean (README, Results).
        raw["features"] = {"kind": "embedding", "embedding_int8": True}
        del raw["augment"]["frequency_warp"]     # the embedding is a fixed pretrained graph
        # Masks of whole 80 ms columns blank most of the phrase; synthesized validation
        # voices pick the epoch worse than training to the end of the schedule does.
        raw["augment"].update(time_masks=0, freq_masks=0)
        # The embedding is nearly all of an epoch's cost: its features of a few augmented
        # passes are computed once and reused by the later epochs.
        raw["train"].update(select_epoch="last",
                            feature_copies=min(EMBEDDING_FEATURE_COPIES, options.epochs))
    for section, values in options.config_overrides.items():
        if section == "model" and values.get("name", raw["model"]["name"]) != raw["model"]["name"]:
            raw["model"] = {}                    # another network: none of the recipe's options
        raw.setdefault(section, {}).update(values)
    if options.target == "micro" and raw["model"]["name"] != "tcn":
        raise ConfigError(f"[model] name = {raw['model']['name']!r}: a micro wake word is "
                          "always the causal TCN (tcn) on the TFLite-Micro front-end")
    config = from_dict(raw, source="earmark wakeword")
    check_members(config, options.heads)
    return config


def recipe_model(options: WakeWordOptions) -> dict:
    """The recipe's ``[model]`` table, before a settings file's own."""
    if options.target == "micro":
        return {"name": "tcn", "channels": 48}
    if options.model == "embedding":
        return {"name": "embedding_mlp"}
    return {"name": "dscnn", "channels": 64, "blocks": 4}


def _calibrate(scored, rate: int, labels: list[str], model_bytes: int, smoother,
               run_dir: Path, noise_dir: str, options: WakeWordOptions, out_dir: Path,
               thresholds: tuple[float, ...] | None = None) -> dict:
    """The report card: ``scored(samples, truth)`` (a StreamRun) on the validation stream
    and the synthesized conversation picks the threshold, on the test stream scores it.
    The streams hold the held-out phrase takes among everyday negatives (the user's
    recordings, joined running sound); the negatives made from the phrase are scored on
    their own, at the chosen threshold."""
    from earmark.stream_eval import background_noise, held_out_clips
    from earmark.wakeword.calibration import (THRESHOLDS, held_out_audio, plot_card,
                                              report_card)
    from earmark.wakeword.dataset import made_negatives

    made = made_negatives(out_dir / "data")
    clips = held_out_clips(run_dir, rate, keep=lambda path: not made(path))
    noise = background_noise(run_dir, noise_dir, rate)
    validation = scored(*held_out_audio(clips["validation"], noise, rate, options.seed))
    conversation = _conversation(scored, labels, smoother, thresholds or THRESHOLDS, rate,
                                 noise, options)
    test_audio = held_out_audio(clips["test"], noise, rate, options.seed + 1)
    started = time.process_time()
    test = scored(*test_audio)
    cpu_seconds = time.process_time() - started
    chosen = {"thresholds": thresholds} if thresholds else {}
    card = report_card(validation, test, labels, cpu_seconds, model_bytes,
                       options.false_alarms_per_hour, smoother, **chosen,
                       conversation=conversation)
    plot_card(validation, test, labels, card, out_dir / "card.png", smoother, **chosen)
    try:
        hard = held_out_clips(run_dir, rate, keep=made, splits=("test",))["test"]
    except DataError:           # no made negatives among the test voices: nothing to report
        return card
    card["made_negatives"] = _made_negative_detections(scored, hard, noise, rate, labels,
                                                       smoother, card["threshold"],
                                                       options.seed + 2)
    return card


def _conversation(scored, labels: list[str], smoother, thresholds: tuple[float, ...], rate: int,
                  noise: list, options: WakeWordOptions):
    """False alarms on :attr:`WakeWordOptions.conversation_minutes` of synthesized
    conversation at each threshold (None for none)."""
    from earmark.wakeword.calibration import sweep
    from earmark.wakeword.conversation import conversation_false_alarms

    if options.conversation_minutes <= 0:
        return None
    logger.info("    %g min of synthesized conversation ...", options.conversation_minutes)

    def false_alarms(run) -> dict[float, int]:
        return {t: s.false_alarms for t, s in sweep(run, labels, smoother, thresholds)}

    phrase = check_phrase(options.phrase, options.language)
    return conversation_false_alarms(scored, false_alarms, thresholds, phrase,
                                     options.conversation_minutes, rate, noise,
                                     options.seed + 3, options.data.engines)


def _made_negative_detections(scored, clips: list, noise: list, rate: int, labels: list[str],
                              smoother, threshold: float, seed: int) -> dict:
    """How often the held-out negatives made from the phrase fire at ``threshold``."""
    from earmark.wakeword.calibration import held_out_audio, sweep

    run = scored(*held_out_audio(clips, noise, rate, seed))
    (_, score), = sweep(run, labels, smoother, (threshold,))
    return {"takes": len(clips), "detections": score.false_alarms}


def _detection(card: dict, frame_hop_ms: float) -> dict:
    from earmark.wakeword.calibration import STRIDE_MS, WAKE_SMOOTHER

    return {"stride_ms": max(STRIDE_MS, frame_hop_ms),
            "average_window_ms": WAKE_SMOOTHER.average_window_ms,
            "detection_threshold": card["threshold"],
            "suppression_ms": WAKE_SMOOTHER.suppression_ms,
            "minimum_count": WAKE_SMOOTHER.minimum_count,
            "calibrated_for_false_alarms_per_hour": card["budget_per_hour"]}
