"""``earmark evaluate RUN --robustness``: a run's test split scored clean and under every
corruption of the suite, by the run's model or by an exported bundle of it.

Each recording is corrupted with its own generator (seeded by the suite's
seed, the corruption and the recording), so two models, or two runs of one,
hear exactly the same recordings. Clips are judged as ``earmark evaluate``
judges them (pieces joined by ``data.clip_pattern``). The report gives the
clean accuracy with its 95% Wilson interval, each corruption's accuracy and
per-class recall, and the mean corrupted accuracy (every row weighs the same).
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from earmark import audio
from earmark.atomic import write_json, write_text
from earmark.config import ExperimentConfig, load_config
from earmark.data.cache import AudioStore, build_store
from earmark.data.manifest import clip_matcher, from_csv
from earmark.errors import DataError
from earmark.metrics.classification import wilson_interval
from earmark.progress import ProgressLike, as_progress
from earmark.robustness import require_libraries
from earmark.robustness.judges import Model, bundle_model, run_model
from earmark.robustness.suite import Corruption, Sources, build_suite, missing_families
from earmark.run_folder import RunFolder

#: Other test recordings kept as babble talkers (drawn evenly), and the most of each kept:
#: a bound on memory whatever the split's size.
MOST_TALKERS, MOST_TALKER_SECONDS = 50, 10.0


@dataclass
class Recording:
    """A test recording, read from the decoded-audio cache when it is scored."""

    store: AudioStore
    index: int
    label: str
    group: str
    clip: str

    @property
    def samples(self) -> np.ndarray:
        return self.store.window(self.index, 0, int(self.store.lengths[self.index]))


def evaluate_robustness(run_dir: str | os.PathLike, split: str = "test",
                        bundle: str | os.PathLike | None = None, seed: int = 0,
                        progress: ProgressLike = None) -> dict:
    """Score ``split`` of a run clean and corrupted (see the module); write
    ``RUN/robustness_<split>[_bundle].json``, ``.txt`` and ``.png``; return the report."""
    require_libraries()
    run = RunFolder(run_dir)
    run.require_trained()
    config = load_config(run.config)
    model = bundle_model(bundle) if bundle else run_model(run.path)
    recordings, sources = _recordings(run, config, split)
    unknown = sorted({r.label for r in recordings} - set(model.labels))
    if unknown:
        raise DataError(f"the {split} split has classes {unknown} that "
                        f"{model.name} does not know: it is not this run's model")
    suite = build_suite(config.data.sample_rate, sources, seed)
    report = score_suite(model, recordings, config.data.sample_rate, suite, seed, progress)
    report.update(split=split, left_out=missing_families(sources))
    stem = run.robustness_report(split, bundle is not None)
    write_json(stem.with_suffix(".json"), report)
    write_text(stem.with_suffix(".txt"), robustness_table(report) + "\n")
    from earmark.plots import plot_robustness

    plot_robustness(report, stem.with_suffix(".png"))
    return report


def _recordings(run: RunFolder, config: ExperimentConfig,
                split: str) -> tuple[list[Recording], Sources]:
    rate = config.data.sample_rate
    manifest = from_csv(run.manifest)
    store = build_store(manifest, rate, config.cache_dir(),
                        skip_bad_files=config.data.skip_bad_files)
    indices = [i for i, row in enumerate(store.manifest) if row.split == split]
    if not indices:
        raise DataError(f"{run.path}: the {split} split is empty; choose another with --split")
    clip_of = clip_matcher(config.data.clip_pattern)
    recordings = [Recording(store, i, row.label, row.group,
                            clip_of(row.path) if config.data.clip_pattern else str(i))
                  for i, row in ((i, store.manifest.rows[i]) for i in indices)]
    keep = np.linspace(0, len(recordings) - 1, min(len(recordings), MOST_TALKERS)).astype(int)
    longest = int(MOST_TALKER_SECONDS * rate)
    talkers = [(recordings[i].samples[:longest].copy(), recordings[i].group)
               for i in sorted(set(keep))]
    noise_dir = config.augment.noise_dir or config.data.silence_noise_dir
    backgrounds = audio.load_folder(config.resolve(noise_dir), rate) if noise_dir else []
    return recordings, Sources(talkers, [b for b in backgrounds if len(b)])


def score_suite(model: Model, recordings: list[Recording], rate: int,
                suite: list[Corruption], seed: int = 0, progress: ProgressLike = None) -> dict:
    """Accuracy clean and under each corruption of ``suite``."""
    rows = []
    with as_progress(progress)(total=len(suite) + 1, description="robustness",
                               unit="condition") as advance:
        clean = _score(model, recordings, lambda r, rng: (r.samples, rate))
        advance(1)
        for number, corruption in enumerate(suite, start=1):
            def corrupted(recording: Recording, rng, corruption=corruption):
                return corruption.apply(recording.samples, rate, rng, recording.group)

            rows.append({"family": corruption.family, "severity": corruption.severity,
                         **_score(model, recordings, corrupted, (seed, number))})
            advance(1)
    correct = round(clean["accuracy"] * clean["clips"])
    clean["interval_95"] = list(wilson_interval(correct, clean["clips"]))
    mean = float(np.mean([row["accuracy"] for row in rows])) if rows else float("nan")
    return {"model": model.name, "seed": seed, "clean": clean, "corruptions": rows,
            "mean_corrupted_accuracy": mean}


def _score(model: Model, recordings: list[Recording], corrupt, key: tuple = (0, 0)) -> dict:
    """Accuracy and per-class recall of the clips, each recording corrupted by
    ``corrupt(recording, rng)``."""
    clips: dict[str, list[np.ndarray]] = defaultdict(list)
    truth: dict[str, str] = {}
    for index, recording in enumerate(recordings):
        rng = np.random.default_rng([*key, index])
        samples, rate = corrupt(recording, rng)
        clips[recording.clip].append(model.judge(samples, rate))
        truth[recording.clip] = recording.label
    right: dict[str, list[bool]] = defaultdict(list)
    for clip, judged in clips.items():
        guess = model.labels[int(np.mean(judged, axis=0).argmax())]
        right[truth[clip]].append(guess == truth[clip])
    every = [hit for hits in right.values() for hit in hits]
    return {"accuracy": float(np.mean(every)), "clips": len(every),
            "recall": {label: float(np.mean(hits)) for label, hits in sorted(right.items())}}


def robustness_table(report: dict) -> str:
    """The report as a table a person reads: each condition, its accuracy and the change."""
    clean = report["clean"]
    low, high = clean["interval_95"]
    lines = [f"{report['model']}: {report.get('split', 'test')} split, {clean['clips']} clips, "
             f"seed {report['seed']}",
             f"{'condition':34s} {'accuracy':>8s} {'change':>7s}  weakest class",
             f"{'clean':34s} {clean['accuracy']:8.1%} {'':>7s}  {_weakest(clean)}"
             f"   (95% interval {low:.1%}-{high:.1%})"]
    for row in report["corruptions"]:
        change = row["accuracy"] - clean["accuracy"]
        lines.append(f"{row['family'] + ' ' + row['severity']:34s} {row['accuracy']:8.1%} "
                     f"{change * 100:+6.1f}p  {_weakest(row)}")
    lines.append(f"{'mean corrupted':34s} {report['mean_corrupted_accuracy']:8.1%} "
                 f"{(report['mean_corrupted_accuracy'] - clean['accuracy']) * 100:+6.1f}p")
    if report.get("left_out"):
        lines.append("left out (no recordings to mix in; babble needs talkers of another "
                     f"group): {', '.join(report['left_out'])}")
    return "\n".join(lines)


def _weakest(row: dict) -> str:
    label, recall = min(row["recall"].items(), key=lambda item: item[1])
    return f"{label} {recall:.0%}"


def stem_for(run_dir: str | os.PathLike, split: str, bundle: bool) -> Path:
    """Where :func:`evaluate_robustness` writes its report (without the suffix)."""
    return RunFolder(run_dir).robustness_report(split, bundle)
