"""`earmark anomaly train|evaluate|export`: learn a machine's normal sound, measure the
detector, and bundle it for `earmark anomaly score` and `monitor`."""

from __future__ import annotations

import json
import sys

from earmark.cli.common import add_config_options, command, load_config_from_args, progress_bars


def register(subcommands) -> None:
    """Add ``train``, ``evaluate`` and ``export`` to the ``anomaly`` group."""
    _add_train(subcommands)
    _add_evaluate(subcommands)
    _add_export(subcommands)


def _add_train(subcommands) -> None:
    from earmark.anomaly.methods import METHODS

    sub = command(subcommands, "train",
                  "Learn a machine's normal sound from normal recordings only.",
                  "earmark anomaly train configs/anomaly_fan.toml --out runs/fan", _train)
    add_config_options(sub)
    sub.add_argument("--out", required=True, help="run folder to write")
    sub.epilog += "\n\nmethods ([anomaly] method = ...):\n" + "\n".join(
        f"  {name:12s} {text}" for name, text in METHODS.items())


def _train(args) -> int:
    from earmark.anomaly.train import train_anomaly

    config = load_config_from_args(args)
    summary = train_anomaly(config, args.out, progress=progress_bars(args))
    validation = summary["validation"]
    print(f"{summary['method']}: threshold {summary['threshold']:.4g} "
          f"({summary['false_alarm_rate']:.0%} of validation normal windows above it); "
          f"{validation['recordings_above_threshold']} of {validation['normal_recordings']} "
          f"validation normal recordings flagged; run in {args.out}")
    return 0


def _add_evaluate(subcommands) -> None:
    sub = command(subcommands, "evaluate",
                  "AUC, pAUC (DCASE), precision/recall/F1 per machine and overall; ROC and "
                  "score plots.", "earmark anomaly evaluate runs/fan", _evaluate)
    sub.add_argument("run", help="run folder written by `earmark anomaly train`")
    sub.add_argument("--split", default="test", choices=["test", "validation"])
    sub.add_argument("--no-plots", action="store_true", help="skip the PNG files")


def _evaluate(args) -> int:
    from earmark.anomaly.evaluate import evaluate_detector

    report = evaluate_detector(args.run, args.split, plots=not args.no_plots,
                               progress=progress_bars(args))
    print(f"{'machine':20s} {'AUC':>6s} {'pAUC':>6s} {'pAUC-M':>6s} {'prec':>6s} "
          f"{'recall':>6s} {'F1':>6s}  normal/anomalous")
    for name, row in [*report["machines"].items(), ("overall", report["overall"])]:
        print(f"{name:20s} {row['auc']:6.3f} {row['pauc']:6.3f} {row['pauc_mcclish']:6.3f} "
              f"{row['precision']:6.3f} {row['recall']:6.3f} {row['f1']:6.3f}  "
              f"{row['normal']}/{row['anomalous']}")
    official = report["official"]
    print(f"DCASE score (harmonic means over machines): AUC {official['auc_hmean']:.3f}, "
          f"pAUC {official['pauc_hmean']:.3f}; report in {args.run}/eval_{args.split}.json")
    print("pAUC: area at false-positive rates up to 0.1 over 0.1 (chance 0.05, DCASE's task "
          "description); pAUC-M: McClish-standardised (chance 0.5, scikit-learn and the "
          "DCASE 2020 baseline code)", file=sys.stderr)
    return 0


def _add_export(subcommands) -> None:
    sub = command(subcommands, "export",
                  "Bundle a trained detector: ONNX from waveform to score, plus JSON.",
                  "earmark anomaly export runs/fan --out bundles/fan", _export)
    sub.add_argument("run", help="run folder written by `earmark anomaly train`")
    sub.add_argument("--out", required=True, help="bundle folder to write (replaced whole)")


def _export(args) -> int:
    from earmark.anomaly.export import export_detector

    record = export_detector(args.run, args.out)
    print(json.dumps({"bundle": args.out, "method": record["method"],
                      "threshold": record["threshold"], "parity": record["parity"]}))
    return 0
