"""``earmark demo``: the whole keyword pipeline offline, from synthesized speech, in minutes.

1. synthesize the ten Speech Commands words, unknown words and silence
   with many voices (:mod:`earmark.data.synth_keywords`) and some noise;
2. train the keyword model on a voice-disjoint split: a small network on the
   pretrained speech embedding (or a DS-CNN on log-mel), with augmentation that
   makes synthetic speech sound recorded;
3. evaluate it on the held-out voices;
4. export the bundle (ONNX, runs without torch);
5. build three-minute streams of held-out voices over noise, with the word
   times known: calibrate the threshold on the validation voices' stream,
   run the streaming recognizer on the test voices' stream and score it;
6. where a folder of real recordings of the words is at hand (by default the
   Speech Commands speakers in ``../shared/data``), score the model on them:
   what synthesized speech taught it about real people.

Everything goes to one folder; the report is printed and written as JSON.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from earmark.atomic import write_json
from earmark.augment import RECORDED_SOUND
from earmark.config import from_dict
from earmark.data.synth_keywords import (SPEECH_COMMANDS_WORDS, KeywordSynthesis,
                                         synthesize_keywords, write_noise_folder)
from earmark.data.voices import ENGINES, available_voices
from earmark.errors import ConfigError
from earmark.frontend.speech_embedding import WORD_WINDOW_SECONDS
from earmark.progress import ProgressLike
from earmark.run_folder import RunFolder

logger = logging.getLogger(__name__)


@dataclass
class DemoSize:
    """How big the demo is; the defaults finish in a few minutes on 2 cores."""

    takes_per_word: int = 160
    epochs: int = 0                 #: 0 = the model's own (:data:`DEFAULT_EPOCHS`)
    #: ``embedding``: a small network on the pretrained speech embedding (hears real
    #: people best); ``dscnn``: a DS-CNN on 40 log-mel bands (smaller, cheaper to run).
    model: str = "embedding"
    #: Each stream (calibration, test). At 60 false alarms an hour a one-minute
    #: calibration stream allows one: a single stray detection set the threshold.
    stream_minutes: float = 3.0
    #: Engines besides espeak-ng whose voices speak half the takes where they are installed
    #: (``tools/install-voices``): voices built from recordings of people.
    voices: tuple[str, ...] = ENGINES

    def __post_init__(self) -> None:
        if not self.epochs:
            self.epochs = DEFAULT_EPOCHS.get(self.model, 24)


#: Augmented passes over the training windows whose embeddings the demo's training keeps.
DEMO_FEATURE_COPIES = 8
#: Training epochs of each model: the embedding's later epochs reuse the kept copies.
DEFAULT_EPOCHS = {"embedding": 40, "dscnn": 24}

#: Real speakers saying the demo's words, where the repository sits beside ``shared/``.
REAL_SPEAKERS = Path("../shared/data/speech_commands_v2_test")


def run_demo(out_dir: str | Path, size: DemoSize | None = None, seed: int = 0,
             progress: ProgressLike = None, real_speakers: str | Path | None = None) -> dict:
    """Run every step; return the report (also ``OUT/report.json``; :func:`format_report`
    writes it for people). ``real_speakers``: a folder of class folders of real
    recordings of the words to score the model on (None: none)."""
    from earmark.evaluate import evaluate_folder
    from earmark.export import export_run
    from earmark.runtime import load_bundle
    from earmark.stream_eval import evaluate_streaming
    from earmark.train import train

    size = size or DemoSize()
    out_dir = Path(out_dir)
    started = time.monotonic()
    timings = {}
    noise_dir = write_noise_folder(out_dir / "noise", seed)
    logger.info("1/6 synthesizing keywords ...")
    engines = _synthesize(out_dir / "data", noise_dir, size, seed, progress)
    timings["synthesize_s"] = time.monotonic() - started
    logger.info("2/6 training ...")
    config = demo_config(out_dir, noise_dir, size, seed)
    run = RunFolder(out_dir / "run")
    summary = train(config, run.path, resume=run.checkpoint.is_file(), progress=progress)
    timings["train_s"] = summary["train_seconds"]
    logger.info("3/6 exporting ...")
    export_run(out_dir / "run", out_dir / "bundle", progress=False)
    logger.info("4/6 streaming ...")
    stream = evaluate_streaming(load_bundle(out_dir / "bundle", threads=1), out_dir / "run",
                                out_dir / "stream", minutes=size.stream_minutes,
                                noise_dir=str(noise_dir), noise_volume=0.05, seed=seed)
    real = None
    if real_speakers is not None:
        logger.info("5/6 scoring real speakers: %s ...", real_speakers)
        scored = evaluate_folder(out_dir / "run", real_speakers, "real_speakers",
                                 progress=progress)
        real = {"folder": str(real_speakers), "clips": scored.count,
                "accuracy": scored.accuracy, "interval_95": list(scored.accuracy_interval()),
                "macro_f1": scored.macro_f1,
                "confusion_matrix": str(run.report("real_speakers")) + "_confusion.png"}
    report = {
        "test_accuracy": summary.get("test_accuracy"),
        "test_macro_f1": summary.get("test_macro_f1"),
        "validation_accuracy": summary.get("validation_accuracy"),
        "confusion_matrix": str(run.report("test")) + "_confusion.png",
        "bundle": str(out_dir / "bundle"),
        "stream": stream,
        "real_speakers": real,
        "voices": engines,
        "seconds": round(time.monotonic() - started, 1),
        "timings": {k: round(v, 1) for k, v in timings.items()},
    }
    write_json(out_dir / "report.json", report)
    logger.info("6/6 report: %s", out_dir / "report.json")
    return report


def _synthesize(data_dir: Path, noise_dir: Path, size: DemoSize, seed: int,
                progress: ProgressLike) -> list[str]:
    """The keyword dataset in ``data_dir``; the engines whose voices speak it."""
    extra = tuple(available_voices(tuple(size.voices)))
    logger.info("voices: espeak-ng's%s", f" and {len(extra)} of {', '.join(size.voices)}"
                if extra else " only (tools/install-voices adds flite's and festival's)")
    synthesize_keywords(KeywordSynthesis(words=SPEECH_COMMANDS_WORDS,
                                         takes_per_word=size.takes_per_word,
                                         noise_dir=str(noise_dir), extra_voices=extra,
                                         seed=seed),
                        data_dir, progress=progress)
    return ["espeak-ng", *sorted({voice.engine for voice in extra})]


def format_report(report: dict) -> str:
    score = report["stream"]["score"]
    lines = [
        f"held-out voices: accuracy {report['test_accuracy']:.1%}, macro F1 "
        f"{report['test_macro_f1']:.3f}",
        f"confusion matrix: {report['confusion_matrix']}",
        f"bundle: {report['bundle']} (run it without torch: earmark classify / listen)",
        f"stream ({report['stream']['words']} words over noise): correct "
        f"{score['correct_rate']:.1%}, wrong {score['wrong_rate']:.1%}, false positives "
        f"{score['false_positive_rate']:.1%}",
        "detections:",
    ]
    for time_s, label, truth in report["stream"]["detections"][:12]:
        lines.append(f"  {time_s:6.2f} s  {label:<8} (said: {truth})")
    real = report.get("real_speakers")
    if real:
        low, high = real["interval_95"]
        lines.append(f"real speakers ({real['clips']} recordings in {real['folder']}): "
                     f"accuracy {real['accuracy']:.1%} [{low:.1%}-{high:.1%}], "
                     f"confusion matrix: {real['confusion_matrix']}")
    lines.append(f"done in {report['seconds']:.0f} s")
    return "\n".join(lines)


def demo_config(out_dir: Path, noise_dir: Path, size: DemoSize, seed: int):
    """The training config: the embedding recipe (or the DS-CNN's) on OUT/data."""
    raw = _dscnn_recipe(out_dir, noise_dir, size, seed)
    if size.model == "embedding":
        raw.update(features={"kind": "embedding"}, model={"name": "embedding_mlp"})
        # Each word in the middle of 1.5 s: several embedding columns hear all of it.
        raw["data"]["clip_seconds"] = WORD_WINDOW_SECONDS
        # Synthetic speech made to sound recorded (microphones, band limits, noise, other
        # talkers, clipping, level, speed), without the simulated rooms (earmark[robustness])
        # or the vocal tract warp and masks of features (the embedding is a fixed graph).
        recorded = {key: value for key, value in RECORDED_SOUND.items()
                    if key not in ("frequency_warp", "reverb_rt60")}
        raw["augment"].update(recorded, reverb_probability=0.0, time_masks=0, freq_masks=0)
        # The embedding is most of an epoch's cost: a few augmented passes are kept.
        raw["train"]["feature_copies"] = min(DEMO_FEATURE_COPIES, size.epochs)
    elif size.model != "dscnn":
        raise ConfigError(f"demo model {size.model!r}: choose embedding or dscnn")
    return from_dict(raw, source="earmark demo")


def _dscnn_recipe(out_dir: Path, noise_dir: Path, size: DemoSize, seed: int) -> dict:
    return {
        "data": {"csv": str(out_dir / "data" / "manifest.csv"), "split": "group",
                 "ratios": [0.8, 0.1, 0.1], "sample_rate": 16000, "clip_seconds": 1.0,
                 "split_seed": seed},
        "features": {"kind": "logmel", "window_ms": 30.0, "hop_ms": 20.0, "n_mels": 40,
                     "fmin": 20.0, "fmax": 7600.0},
        "model": {"name": "dscnn", "channels": 64, "blocks": 4},
        "augment": {"shift_ms": 100.0, "noise_dir": str(noise_dir), "noise_probability": 0.8,
                    "noise_mix": "snr", "noise_snr_db": [5.0, 30.0], "gain_db": [-6.0, 6.0],
                    "speed": [0.9, 1.1], "time_masks": 2, "time_mask_frames": 5,
                    "freq_masks": 2, "freq_mask_bands": 5},
        "train": {"epochs": size.epochs, "batch_size": 64, "learning_rate": 0.005,
                  "label_smoothing": 0.05, "report_every": 8, "seed": seed},
    }
