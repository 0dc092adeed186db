"""`earmark anomaly`: how unusual a machine's sound is (score), and alarms over time (monitor).

``score`` and ``monitor`` run an anomaly bundle torch-free
(:mod:`earmark.runtime.anomaly_bundle`); the training side adds its
subcommands (train, evaluate, export) to the same group through
:func:`register`'s ``registrars``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, Iterable

from earmark.cli import anomaly_training
from earmark.cli.common import check_output_suffix, command, progress_bars
from earmark.cli.events import AUDACITY_DECIMALS, DETECTION_DECIMALS
from earmark.errors import EarmarkError
from earmark.plots import IMAGE_SUFFIXES

#: The suffixes each alarm output option takes.
ALARM_OUTPUTS = {"csv": (".csv", ".tsv"), "json": (".json",), "audacity": (".txt",)}
#: Files shorter than this share of a window are scored mostly on padding: noted.
SHORT_SHARE = 0.5


def register(commands, registrars: Iterable[Callable] = (anomaly_training.register,)) -> None:
    """The ``anomaly`` group: ``score``, ``monitor``, then each of ``registrars``
    (a function given the group's subcommands, as ``register`` is given ``commands``)."""
    parser = commands.add_parser(
        "anomaly", help="Anomalous machine sounds: score recordings, monitor long ones.",
        description="Anomalous machine sounds: a model of a machine's normal sound scores "
                    "how far each recording (or window of one) is from it.",
        epilog="example:\n  earmark anomaly score bundles/fan recordings/\n"
               "  earmark anomaly monitor bundles/fan shift.flac --plot alarms.png\n\n"
               "Run `earmark anomaly SUBCOMMAND --help` for its options.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.set_defaults(handler=lambda args: _print_help(parser), quiet=False, verbose=False)
    subcommands = parser.add_subparsers(title="subcommands", metavar="SUBCOMMAND")
    _add_score(subcommands)
    _add_monitor(subcommands)
    # ---- training side: train, evaluate, export register here (src/earmark/cli/
    # anomaly_training.py: `register(subcommands)`), passed in as a registrar or called here.
    for add in registrars:
        add(subcommands)


def _print_help(parser) -> int:
    parser.print_help()
    return 2


def _add_score(subcommands) -> None:
    sub = command(subcommands, "score",
                  "Score recordings with an anomaly bundle: normal or anomalous (no torch).",
                  "earmark anomaly score bundles/fan recordings/ --csv scores.csv --windows",
                  _score)
    sub.add_argument("bundle", help="an anomaly bundle folder written by `earmark anomaly "
                                    "export`")
    sub.add_argument("inputs", nargs="+", help="files, folders (searched recursively) or globs")
    sub.add_argument("--csv", metavar="OUT", help="write the scores to a .csv file")
    sub.add_argument("--json", metavar="OUT", help="write the scores to a .json file")
    sub.add_argument("--windows", action="store_true",
                     help="also every window's score (table rows, CSV rows, JSON lists)")
    sub.add_argument("--hop", type=float, help="seconds between windows of long files "
                                               "(default: the bundle's)")
    sub.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0 = auto)")


def _score(args) -> int:
    from tqdm import tqdm

    from earmark.runtime.anomaly_bundle import load_anomaly_bundle
    from earmark.runtime.anomaly_results import score_table, write_scores
    from earmark.runtime.anomaly_score import score_file
    from earmark.runtime.results import expand_inputs

    check_output_suffix(args.csv, "--csv", (".csv",))
    check_output_suffix(args.json, "--json", (".json",))
    bundle = load_anomaly_bundle(args.bundle, threads=args.threads)
    paths = expand_inputs(args.inputs)
    windows_bar = progress_bars(args) if len(paths) == 1 else None    # one long file
    results, failures = [], []
    for path in tqdm(paths, desc="scoring", unit="file", disable=args.quiet or len(paths) < 10):
        try:
            results.append(score_file(bundle, path, windows_bar, hop_seconds=args.hop))
        except EarmarkError as error:
            failures.append(str(error))
    print(score_table(results, args.windows))
    anomalous = sum(result.is_anomalous for result in results)
    print(f"{anomalous} of {len(results)} file(s) anomalous (score above "
          f"{bundle.threshold:.4g}, method {bundle.metadata.method})", file=sys.stderr)
    short = [r.path for r in results if r.duration < SHORT_SHARE * r.window_seconds]
    if short:
        print(f"earmark: note: {len(short)} file(s) are less than half a window "
              f"({results[0].window_seconds:g} s) long and were scored mostly on padding, "
              f"e.g. {short[0]}: their verdicts are weak", file=sys.stderr)
    for path in (args.csv, args.json):
        if path:
            write_scores(results, path, args.windows)
            print(f"scores written to {path}", file=sys.stderr)
    for failure in failures:
        print(f"earmark: skipped: {failure}", file=sys.stderr)
    if failures:
        print(f"earmark: {len(failures)} of {len(paths)} file(s) could not be scored",
              file=sys.stderr)
        return 1
    return 0


def _add_monitor(subcommands) -> None:
    sub = command(subcommands, "monitor",
                  "Score every window of a long recording or a live microphone; raise and "
                  "clear alarms with hysteresis.",
                  "earmark anomaly monitor bundles/fan shift.flac --csv alarms.csv --plot "
                  "alarms.png\n  earmark anomaly monitor bundles/fan --mic --seconds 600",
                  _monitor)
    sub.add_argument("bundle", help="an anomaly bundle folder")
    sub.add_argument("file", nargs="?", help="the recording (any length: read in blocks)")
    live = sub.add_argument_group("live input (instead of FILE)")
    live.add_argument("--mic", action="store_true", help="monitor a microphone until Ctrl-C")
    live.add_argument("--device", help="microphone index or name (default: the system's)")
    live.add_argument("--rate", type=int, help="microphone sample rate (default: the device's)")
    live.add_argument("--seconds", type=float, help="stop the microphone after this long")
    out = sub.add_argument_group("outputs")
    out.add_argument("--csv", metavar="OUT", help="alarms as .csv (or .tsv)")
    out.add_argument("--json", metavar="OUT", help="alarms as .json")
    out.add_argument("--audacity", metavar="OUT", help="alarms as an Audacity label track .txt")
    out.add_argument("--plot", metavar="PNG", help="the score timeline with the threshold and "
                                                   "the alarms shaded (.png, .svg or .pdf)")
    _add_alarm_options(sub)
    sub.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0 = auto)")


def _add_alarm_options(sub) -> None:
    from earmark.runtime.anomaly_monitor import AlarmSettings

    defaults = AlarmSettings()
    group = sub.add_argument_group("alarms (see earmark.runtime.anomaly_monitor)")
    group.add_argument("--on", type=float, help="raise an alarm at this score (default: the "
                                                "bundle's threshold)")
    group.add_argument("--off", type=float, help="clear it below this score (default: --on; "
                                                 "give a lower one for hysteresis in level)")
    group.add_argument("--smooth", type=int, default=defaults.smooth, metavar="K",
                       help=f"median of K windows, odd (default {defaults.smooth}; 1 = none)")
    group.add_argument("--min-seconds", type=float, default=defaults.min_seconds,
                       help=f"drop alarms shorter than this (default {defaults.min_seconds:g})")
    group.add_argument("--min-gap", type=float, default=defaults.min_gap,
                       help=f"join alarms closer than this, s (default {defaults.min_gap:g})")
    group.add_argument("--hop", type=float, help="seconds between windows (default: the "
                                                 "bundle's)")


def _monitor(args) -> int:
    from earmark.errors import ConfigError
    from earmark.input_limits import check_positive
    from earmark.runtime.anomaly_bundle import load_anomaly_bundle
    from earmark.runtime.anomaly_monitor import AlarmSettings, monitor_file

    if bool(args.file) == bool(args.mic):
        raise ConfigError("give a recording to monitor, or --mic for the microphone (not both)")
    if not args.mic and (args.seconds, args.device, args.rate) != (None, None, None):
        raise ConfigError("--seconds, --device and --rate are for --mic")
    if args.seconds is not None:
        check_positive(args.seconds, "--seconds")
    for option, suffixes in ALARM_OUTPUTS.items():
        check_output_suffix(getattr(args, option), f"--{option}", suffixes)
    check_output_suffix(args.plot, "--plot", IMAGE_SUFFIXES)
    settings = AlarmSettings(on=args.on, off=args.off, smooth=args.smooth,
                             min_seconds=args.min_seconds, min_gap=args.min_gap)
    bundle = load_anomaly_bundle(args.bundle, threads=args.threads)
    if args.mic:
        result = _monitor_microphone(args, bundle, settings)
    else:
        result = monitor_file(bundle, args.file, settings, progress_bars(args), args.hop)
        for alarm in result.alarms:
            print(_alarm_line(alarm))
    _report(args, result)
    return 0


def _monitor_microphone(args, bundle, settings):
    from earmark.runtime.anomaly_monitor import monitor_stream, resampled
    from earmark.runtime.sources import MicrophoneSource

    device = int(args.device) if args.device and args.device.isdigit() else args.device
    source = MicrophoneSource(args.rate, device)
    limit = None if args.seconds is None else int(args.seconds * source.sample_rate)
    print(f"monitoring the microphone at {source.sample_rate} Hz (Ctrl-C stops)",
          file=sys.stderr)

    def changed(change) -> None:
        alarm = change.alarm
        if change.kind == "raised":
            print(f"alarm raised at {alarm.onset:9.2f} s  (score {alarm.confidence:.4g})",
                  flush=True)
        else:
            print(_alarm_line(alarm), flush=True)

    blocks = resampled(_until_stopped(source.blocks(), limit), source.sample_rate,
                       bundle.sample_rate)
    return monitor_stream(bundle, blocks, settings, "microphone", args.hop, on_change=changed)


def _until_stopped(blocks, limit: int | None):
    """The blocks until ``limit`` samples or Ctrl-C, whichever comes first."""
    seen = 0
    try:
        for block in blocks:
            if limit is not None and seen + len(block) >= limit:
                yield block[:limit - seen]
                return
            seen += len(block)
            yield block
    except KeyboardInterrupt:
        return


def _alarm_line(alarm) -> str:
    return (f"alarm {alarm.onset:9.2f} s to {alarm.offset:9.2f} s  ({alarm.duration:.2f} s, "
            f"peak score {alarm.confidence:.4g})")


def _report(args, result) -> None:
    """The summary on stderr, then the alarm files and the plot."""
    from earmark.events import write_events

    scores = result.scores
    above = int((result.smoothed >= result.on).sum())
    print(f"{len(result.alarms)} alarm(s) in {scores.duration:.1f} s: on {result.on:.4g}, off "
          f"{result.off:.4g}; {above} of {len(scores.window_scores)} window(s) at or above on "
          f"after smoothing", file=sys.stderr)
    for option in ALARM_OUTPUTS:
        path = getattr(args, option)
        if path:
            decimals = AUDACITY_DECIMALS if option == "audacity" else DETECTION_DECIMALS
            write_events(path, result.alarms, decimals=decimals)
            print(f"alarms written to {path}", file=sys.stderr)
    if args.plot:
        from earmark.plots import plot_anomaly_timeline

        plot_anomaly_timeline(scores.window_starts + scores.window_seconds / 2,
                              scores.window_scores, result.on, result.alarms, args.plot,
                              title=f"{Path(scores.path).name}: {len(result.alarms)} alarm(s)",
                              off=result.off, smoothed=result.smoothed,
                              duration=scores.duration)
        print(f"timeline drawn in {args.plot}", file=sys.stderr)
