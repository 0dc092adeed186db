"""`earmark export`, `classify`, `footprint`: a run to a bundle, and the bundle at work."""

from __future__ import annotations

import json
import sys

from earmark.cli.common import check_output_suffix, command, progress_bars
from earmark.data.dataset import EXPORT_CALIBRATION_WINDOWS
from earmark.errors import ConfigError, EarmarkError

#: The most timed inferences `footprint --runs` makes (a window each: minutes at most).
MAX_TIMED_RUNS = 100_000

#: The fewest training windows ``export --calibration`` accepts: fewer set int8 ranges
#: from too little sound (one window gave a LiteRT model at chance).
MIN_CALIBRATION = 32
#: The most audio `earmark footprint --stream-seconds` streams (an hour: it takes a while).
MAX_STREAM_SECONDS = 3600.0


def register(commands) -> None:
    _add_export(commands)
    _add_classify(commands)
    _add_footprint(commands)


def _add_export(commands) -> None:
    sub = command(commands, "export",
                  "Export a run's best model as a bundle (ONNX waveform -> probabilities), "
                  "and for the edge as LiteRT .tflite files with C source.",
                  "earmark export runs/keywords --out bundles/keywords --int8\n"
                  "  earmark export runs/keywords --out bundles/keywords-edge --target litert "
                  "--int8\n"
                  "  earmark export runs/view-glass-micro/run --out bundles/view-glass-micro "
                  "--target micro --cutoff 0.9", _export)
    sub.add_argument("run", help="a run folder written by `earmark train`")
    sub.add_argument("--out", required=True, help="bundle folder to write (replaced if present)")
    sub.add_argument("--int8", action="store_true",
                     help="quantize the network to static int8 (front-end stays float)")
    sub.add_argument("--calibration", type=int, default=EXPORT_CALIBRATION_WINDOWS,
                     metavar="N", help="training windows used to calibrate int8 (default "
                                       f"{EXPORT_CALIBRATION_WINDOWS}, as many as training kept)")
    sub.add_argument("--target", choices=["onnx", "litert", "micro"], default="onnx",
                     help="onnx: the bundle (default); litert: the float ONNX bundle plus "
                          "OUT/litert/ (model.tflite, with --int8 a fully integer network for "
                          "microcontrollers, C source, parity and arena figures); micro: a "
                          "microWakeWord / ESPHome wake word (streaming int8 .tflite + its "
                          "JSON manifest) from a run on the micro front-end. litert and "
                          "micro need earmark[edge]")
    sub.add_argument("--wake-word", metavar="LABEL",
                     help="--target micro: the class to wake on (default: the run's only "
                          "class other than _unknown_ and _silence_)")
    sub.add_argument("--cutoff", type=float,
                     help="--target micro: the manifest's probability cutoff (default 0.9; "
                          "`earmark wakeword --target micro` calibrates it)")
    sub.add_argument("--sliding-window", type=int, metavar="CALLS",
                     help="--target micro: calls (30 ms each) whose probabilities are "
                          "averaged before the cutoff (default 5)")


def _export(args) -> int:
    from earmark.export import export_run

    if args.calibration < MIN_CALIBRATION:
        raise ConfigError(f"--calibration {args.calibration}: int8 needs at least "
                          f"{MIN_CALIBRATION} training windows to set its ranges (default "
                          f"{EXPORT_CALIBRATION_WINDOWS})")
    micro_only = [name for name, value in (("--wake-word", args.wake_word),
                                           ("--cutoff", args.cutoff),
                                           ("--sliding-window", args.sliding_window))
                  if value is not None]
    if args.target != "micro" and micro_only:
        raise ConfigError(f"{', '.join(micro_only)}: only --target micro takes them")
    if args.target == "litert":
        return _export_litert(args)
    if args.target == "micro":
        return _export_micro(args)
    result = export_run(args.run, args.out, int8=args.int8,
                        calibration_windows=args.calibration, progress=progress_bars(args))
    print(f"bundle written to {result.bundle}")
    return 0


def _export_litert(args) -> int:
    from earmark.export.litert import export_litert, format_figures

    result = export_litert(args.run, args.out, int8=args.int8,
                           calibration_windows=args.calibration, progress=progress_bars(args))
    print(format_figures(result.figures))
    print(f"bundle written to {result.bundle}, LiteRT files in {result.bundle / 'litert'}")
    return 0


def _export_micro(args) -> int:
    from earmark.export.micro_wakeword import export_micro, format_micro
    from earmark.input_limits import check_count, check_fraction

    if args.int8:
        raise ConfigError("--int8: --target micro is always int8 (its calibration: the "
                          "run's training windows streamed through the model)")
    cutoff = 0.9 if args.cutoff is None else check_fraction(args.cutoff, "--cutoff")
    if not 0.0 < cutoff < 1.0:
        raise ConfigError(f"--cutoff {cutoff}: give a probability strictly between 0 and 1 "
                          "(the device fires when the average is above it)")
    calls = 5 if args.sliding_window is None else args.sliding_window
    result = export_micro(args.run, args.out, wake_word=args.wake_word,
                          probability_cutoff=cutoff,
                          sliding_window=check_count(calls, "--sliding-window", 1, 100),
                          progress=progress_bars(args))
    print(format_micro(result.figures))
    print(f"microWakeWord files written to {result.folder}")
    return 0


def _add_classify(commands) -> None:
    sub = command(commands, "classify",
                  "Classify audio files with a bundle (no torch needed).",
                  "earmark classify bundles/keywords clips/ --top-k 3 --output results.csv",
                  _classify)
    sub.add_argument("bundle", help="a bundle folder written by `earmark export`")
    sub.add_argument("inputs", nargs="+", help="files, folders (searched recursively) or globs")
    sub.add_argument("--top-k", type=int, default=3, help="labels to show per file (default 3)")
    sub.add_argument("--output", help="write results to a .csv or .json file")
    sub.add_argument("--hop", type=float, help="seconds between analysis windows of long files "
                                              "(default: the bundle's)")
    sub.add_argument("--aggregate", choices=["mean", "vote"],
                     help="judge long files by mean probability or majority vote")
    sub.add_argument("--per-window", action="store_true",
                     help="include every window's top label in the output")
    sub.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0 = auto)")


def _classify(args) -> int:
    from tqdm import tqdm

    from earmark.runtime import Classifier
    from earmark.runtime.results import expand_inputs, table, write_results

    if args.top_k < 1:
        raise ConfigError(f"--top-k {args.top_k}: give 1 or more labels to show")
    check_output_suffix(args.output, "--output", (".csv", ".json"))
    classifier = Classifier.from_bundle(args.bundle, threads=args.threads,
                                        window_hop_seconds=args.hop, aggregate=args.aggregate)
    paths = expand_inputs(args.inputs)
    results, failures = [], []
    for path in tqdm(paths, desc="classifying", unit="file",
                     disable=args.quiet or len(paths) < 10):
        try:
            results.append(classifier.classify_file(path))
        except EarmarkError as error:
            failures.append(str(error))
    print(table(results, args.top_k))
    if args.output and results:
        write_results(results, args.output, args.top_k, args.per_window)
        print(f"results written to {args.output}")
    elif args.output:
        print(f"earmark: nothing classified, {args.output} not written", file=sys.stderr)
    for failure in failures:
        print(f"earmark: skipped: {failure}", file=sys.stderr)
    if failures:
        print(f"earmark: {len(failures)} of {len(paths)} file(s) could not be classified",
              file=sys.stderr)
        return 1
    return 0


def _add_footprint(commands) -> None:
    sub = command(commands, "footprint",
                  "Parameters, MACs, size, peak memory, latency and a stream's CPU time of "
                  "a bundle; flash, tensor arena and latency of a LiteRT .tflite file.",
                  "earmark footprint bundles/keywords --json\n"
                  "  earmark footprint bundles/keywords-edge/litert/network_int8.tflite",
                  _footprint)
    sub.add_argument("bundle", help="a bundle folder, or a .tflite file (needs earmark[edge])")
    sub.add_argument("--runs", type=int, default=200, help="timed inferences (default 200)")
    sub.add_argument("--stream-seconds", type=float, default=None,
                     help="seconds of audio streamed to measure the CPU time of `earmark "
                          "listen` on the bundle (default 60; 0: skip)")
    sub.add_argument("--stream-block-ms", type=float, default=None, metavar="MS",
                     help="the blocks that audio arrives in for that measure (default 100, "
                          "as `earmark listen` reads a file; see listen --block-ms)")
    sub.add_argument("--json", action="store_true", help="print JSON")


def _footprint(args) -> int:
    from earmark.input_limits import check_positive
    from earmark.runtime.footprint import footprint, format_footprint
    from earmark.runtime.sources import MAX_BLOCK_MS

    if not 1 <= args.runs <= MAX_TIMED_RUNS:
        raise ConfigError(f"--runs {args.runs}: give 1 to {MAX_TIMED_RUNS} timed inferences")
    stream = {}
    if args.stream_seconds is not None:
        if not 0 <= args.stream_seconds <= MAX_STREAM_SECONDS:
            raise ConfigError(f"--stream-seconds {args.stream_seconds:g}: give 0 (skip) to "
                              f"{MAX_STREAM_SECONDS:g} seconds")
        stream["stream_seconds"] = args.stream_seconds
    if args.stream_block_ms is not None:
        stream["stream_block_seconds"] = check_positive(
            args.stream_block_ms, "--stream-block-ms", maximum=MAX_BLOCK_MS) / 1000.0
    if args.bundle.lower().endswith(".tflite"):
        from earmark.runtime.litert_model import format_litert_footprint, litert_footprint

        figures = litert_footprint(args.bundle, runs=args.runs)
        print(json.dumps(figures, indent=2) if args.json else format_litert_footprint(figures))
        return 0
    figures = footprint(args.bundle, runs=args.runs, **stream)
    print(json.dumps(figures, indent=2) if args.json else format_footprint(figures))
    return 0
