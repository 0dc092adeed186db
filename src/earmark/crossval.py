"""``earmark crossval CONFIG``: a config's figure as the mean and spread over folds of
groups (speakers, sources), every group tested exactly once.

A config that splits by ratio is turned into ``folds`` folds of groups (5 by
default), validation drawn from each fold's training groups
(``kfold_validation = "groups"``, ``ratios[1]`` of them), so every fold trains
on as much as the ratio split did. A config already split by folds (or a
dataset with official folds, such as ESC-50's) keeps its folds. Each fold is
a run folder under ``OUT/fold<k>``; a fold already trained is reused, so an
interrupted cross-validation picks up where it stopped (a fold stopped in the
middle of its training is resumed from its last epoch). With ``robustness``,
every fold's test split also goes through the robustness suite; with
``stream``, each fold's model is exported and scored as ``earmark
stream-test`` does (a 10-minute stream of the fold's validation speakers
calibrates the threshold for 60 false alarms an hour, one of its test
speakers is scored). A fold's finished reports are reused too.

The report: per fold accuracy (and mean corrupted accuracy), their mean and
sample standard deviation, and the pooled accuracy over every test clip with
its 95% Wilson interval.
"""

from __future__ import annotations

import copy
import json
import logging
import statistics
from pathlib import Path

from earmark.atomic import write_json, write_text
from earmark.config import ExperimentConfig
from earmark.data.dataset import read_manifest
from earmark.errors import ConfigError, DataError
from earmark.metrics.classification import wilson_interval
from earmark.progress import ProgressLike
from earmark.run_folder import RunFolder

logger = logging.getLogger(__name__)
#: Folds a ratio-split config is cut into.
DEFAULT_FOLDS = 5


def fold_configs(config: ExperimentConfig, folds: int | None = None
                 ) -> list[tuple[int, ExperimentConfig]]:
    """``(fold, config)`` for each fold: the config with ``data.fold`` set."""
    base = copy.deepcopy(config)
    data = base.data
    if data.split != "kfold":
        if data.split not in ("group", "hash"):
            raise ConfigError(f"data.split = {data.split!r}: cross-validation deals groups "
                              "into folds; use a config split by group, hash or kfold")
        data.split, data.kfold_validation, data.folds = "kfold", "groups", DEFAULT_FOLDS
        data.ratios = [1.0 - data.ratios[1], data.ratios[1], 0.0]
    if folds is not None:
        data.folds = folds
    manifest = read_manifest(base)
    official = [row.fold for row in manifest]
    has_folds = bool(official) and all(f is not None for f in official)
    present = sorted(set(official)) if has_folds else list(range(data.folds))
    if not has_folds and len(manifest.groups()) < data.folds:
        raise DataError(f"{data.folds} folds need at least {data.folds} groups (speakers), "
                        f"found {len(manifest.groups())}; give fewer --folds")
    chosen = []
    for fold in present:
        fold_config = copy.deepcopy(base)
        fold_config.data.fold = fold
        chosen.append((fold, fold_config))
    return chosen


def cross_validate(config: ExperimentConfig, out: str | Path, folds: int | None = None,
                   robustness: bool = False, progress: ProgressLike = None,
                   stream: bool = False, stream_minutes: float = 10.0) -> dict:
    """Train and test every fold (see the module); write ``OUT/crossval.json`` and
    ``.txt``; return the report."""
    from earmark.resume import check_reusable
    from earmark.train import train

    out = Path(out)
    rows = []
    for fold, fold_config in fold_configs(config, folds):
        run = RunFolder(out / f"fold{fold}")
        if run.summary.is_file():
            check_reusable(run, fold_config, f"fold {fold}", "cross-validate into another "
                           "--out folder, or remove the fold folders to train them again")
            logger.info("fold %s: already trained in %s", fold, run.path)
        else:
            interrupted = run.checkpoint.is_file() or run.teacher.checkpoint.is_file()
            logger.info("fold %s: %s %s", fold,
                        "resuming the interrupted training in" if interrupted else
                        "training into", run.path)
            train(fold_config, run.path, resume=interrupted, progress=progress)
        rows.append(_fold_row(fold, run, robustness, stream_minutes if stream else None))
        write_json(out / "crossval.json", summarise(rows))        # kept fold by fold
    report = summarise(rows)
    write_json(out / "crossval.json", report)
    write_text(out / "crossval.txt", crossval_table(report) + "\n")
    return report


#: What a fold's streaming test reports, by the name the row gives it.
STREAM_FIGURES = {"stream_correct": "correct_rate", "stream_wrong": "wrong_rate",
                  "stream_false_positive": "false_positive_rate"}


def _fold_row(fold: int, run: RunFolder, robustness: bool,
              stream_minutes: float | None = None) -> dict:
    summary = run.read_summary()
    row = {"fold": fold, "run": str(run.path), "accuracy": float(summary["test_accuracy"]),
           "clips": _test_count(run), "best_epoch": summary.get("best_epoch")}
    if "teacher" in summary:                      # a distilled run: its teacher's figure
        row["teacher_accuracy"] = float(summary["teacher"]["test_accuracy"])
    if robustness:
        row["mean_corrupted_accuracy"] = _robustness(run)["mean_corrupted_accuracy"]
    if stream_minutes:
        stream = _stream_test(run, stream_minutes)
        row.update({name: stream["score"][key] for name, key in STREAM_FIGURES.items()})
        row["stream_calibration_met"] = stream.get("calibration_met", True)
    return row


def _robustness(run: RunFolder) -> dict:
    """The fold's robustness report: read back when it is there, made otherwise."""
    done = run.robustness_report("test").with_suffix(".json")
    if done.is_file():
        return json.loads(done.read_text())
    from earmark.robustness.evaluate import evaluate_robustness

    return evaluate_robustness(run.path)


def _stream_test(run: RunFolder, minutes: float) -> dict:
    """The fold's streaming test (bundle in ``fold/bundle``, evidence in ``fold/stream``)."""
    done = run.path / "stream" / "report.json"
    if done.is_file():
        return json.loads(done.read_text())
    from earmark.export import export_run
    from earmark.runtime import load_bundle
    from earmark.stream_eval import evaluate_streaming

    if not (run.path / "bundle" / "earmark.json").is_file():
        export_run(run.path, run.path / "bundle", progress=False)
    return evaluate_streaming(load_bundle(run.path / "bundle", threads=1), run.path,
                              run.path / "stream", minutes=minutes)


def _test_count(run: RunFolder) -> int:
    return int(json.loads(run.report("test").with_suffix(".json").read_text())["count"])


def summarise(rows: list[dict]) -> dict:
    """Mean, spread and pooled interval of the folds' figures."""
    accuracies = [row["accuracy"] for row in rows]
    correct = sum(round(row["accuracy"] * row["clips"]) for row in rows)
    clips = sum(row["clips"] for row in rows)
    report = {"folds": rows, "mean_accuracy": statistics.mean(accuracies),
              "sd_accuracy": statistics.stdev(accuracies) if len(rows) > 1 else 0.0,
              "pooled_accuracy": correct / clips, "pooled_interval_95": list(
                  wilson_interval(correct, clips)), "clips": clips}
    teachers = [row["teacher_accuracy"] for row in rows if "teacher_accuracy" in row]
    if teachers:
        report["mean_teacher_accuracy"] = statistics.mean(teachers)
    corrupted = [row["mean_corrupted_accuracy"] for row in rows
                 if "mean_corrupted_accuracy" in row]
    if corrupted:
        report["mean_corrupted_accuracy"] = statistics.mean(corrupted)
        report["sd_corrupted_accuracy"] = (statistics.stdev(corrupted) if len(corrupted) > 1
                                           else 0.0)
    for name in STREAM_FIGURES:
        values = [row[name] for row in rows if name in row]
        if values:
            report[f"mean_{name}"] = statistics.mean(values)
    return report


def crossval_table(report: dict) -> str:
    """The folds and their summary as text."""
    robust = "mean_corrupted_accuracy" in report
    streamed = "mean_stream_correct" in report
    taught = "mean_teacher_accuracy" in report
    lines = [f"{'fold':>6s} {'accuracy':>9s} {'clips':>6s}"
             + (f" {'teacher':>8s}" if taught else "")
             + (f" {'corrupted':>10s}" if robust else "")
             + (f" {'stream correct/wrong/FP':>24s}" if streamed else "")]
    for row in report["folds"]:
        lines.append(f"{row['fold']:>6} {row['accuracy']:9.1%} {row['clips']:6d}"
                     + (f" {_percent(row.get('teacher_accuracy')):>8s}" if taught else "")
                     + (f" {row['mean_corrupted_accuracy']:10.1%}" if robust else "")
                     + (f" {_stream_cells(row, '')}" if streamed else "")
                     + ("  *" if not row.get("stream_calibration_met", True) else ""))
    low, high = report["pooled_interval_95"]
    lines.append(f"mean {report['mean_accuracy']:.1%} +/- {report['sd_accuracy']:.1%} (sd over "
                 f"{len(report['folds'])} folds); pooled {report['pooled_accuracy']:.1%} of "
                 f"{report['clips']} clips, 95% interval {low:.1%}-{high:.1%}")
    if taught:
        lines.append(f"teacher (train.teacher, trained per fold, not deployed): mean "
                     f"{report['mean_teacher_accuracy']:.1%} over the "
                     f"{sum('teacher_accuracy' in row for row in report['folds'])} folds "
                     "trained with one")
    if robust:
        lines.append(f"mean corrupted accuracy {report['mean_corrupted_accuracy']:.1%} +/- "
                     f"{report['sd_corrupted_accuracy']:.1%}")
    if streamed:
        lines.append(f"streams (threshold for 60 false alarms/h on each fold's validation "
                     f"speakers), mean correct/wrong/false positive: "
                     f"{_stream_cells(report, 'mean_')}")
    if any(not row.get("stream_calibration_met", True) for row in report["folds"]):
        lines.append("* no threshold kept that fold's validation stream within 60 false "
                     "alarms/h: its test stream was scored at the fewest")
    return "\n".join(lines)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _stream_cells(record: dict, prefix: str) -> str:
    return " / ".join(f"{record[prefix + name]:.1%}" for name in STREAM_FIGURES)
