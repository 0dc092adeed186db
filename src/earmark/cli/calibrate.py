"""`earmark calibrate`: a bundle's threshold set on recordings of what it must not hear."""

from __future__ import annotations

import sys
from pathlib import Path

from earmark.cli.common import (add_smoother_options, check_output_suffix, command, progress_bars,
                                smoother_config, stream_stride_ms)
from earmark.plots import IMAGE_SUFFIXES

#: Thresholds the printed table shows (the JSON holds the whole sweep).
SHOWN = (0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999)


def register(commands) -> None:
    from earmark.data.voices import ENGINES

    sub = command(commands, "calibrate",
                  "Set a wake-word bundle's threshold for a false-alarm budget on your own "
                  "long recordings (conversation, TV, music) and say how sure that is.",
                  "earmark calibrate runs/view-glass/bundle --negatives recordings/living-room/ "
                  "--positives my-voice/ --false-alarms-per-hour 1 --store", _calibrate)
    sub.add_argument("bundle", help="a bundle (from `earmark wakeword` or `earmark export`)")
    sub.add_argument("--negatives", nargs="+", default=[], metavar="PATH",
                     help="recordings that never say the phrase: files, folders or globs, "
                          "hours of them for a rate of about one an hour")
    sub.add_argument("--conversation-minutes", type=float, default=0.0, metavar="MIN",
                     help="also this much synthesized conversation, as `earmark wakeword` "
                          "calibrates on (needs earmark[train,wakeword])")
    sub.add_argument("--voices", nargs="*", default=list(ENGINES), choices=ENGINES,
                     help="engines besides espeak-ng whose installed voices speak half the "
                          "conversation's turns (tools/install-voices; default both; none: "
                          "espeak-ng only)")
    sub.add_argument("--phrase", help="the phrase the conversation leaves out (default: the "
                                      "label, underscores as spaces)")
    sub.add_argument("--noise-dir", help="background noise under the conversation (default: "
                                         "none)")
    sub.add_argument("--seed", type=int, default=0,
                     help="which conversation is synthesized (default 0)")
    sub.add_argument("--positives", nargs="+", metavar="PATH",
                     help="short recordings of the phrase (one saying each): the miss rate "
                          "at each threshold")
    sub.add_argument("--label", help="the label the positives say (default: the bundle's only "
                                     "one besides _unknown_ and _silence_)")
    sub.add_argument("--false-alarms-per-hour", type=float, default=1.0, metavar="RATE",
                     help="the budget the threshold is chosen for (default 1)")
    sub.add_argument("--store", action="store_true",
                     help="write the chosen threshold into the bundle (listen and serve use it)")
    sub.add_argument("--out", help="folder for calibration.json (every threshold's figures)")
    sub.add_argument("--plot", nargs="?", const="", metavar="PNG",
                     help="draw false alarms (and misses) against the threshold (default "
                          "OUT/calibration.png)")
    add_smoother_options(sub)


def _calibrate(args) -> int:
    from earmark.atomic import check_output_folder
    from earmark.calibrate import StreamSettings, report, store_threshold, sweep_recordings
    from earmark.errors import ConfigError, DataError
    from earmark.input_limits import check_non_negative
    from earmark.metrics.streaming import WAKE_THRESHOLDS
    from earmark.runtime import load_bundle

    budget = check_non_negative(args.false_alarms_per_hour, "--false-alarms-per-hour")
    if args.plot == "" and not args.out:
        raise ConfigError("--plot without a file name needs --out (or name the PNG)")
    check_output_suffix(args.plot, "--plot", IMAGE_SUFFIXES)
    if args.out:
        check_output_folder(args.out)
    minutes = check_non_negative(args.conversation_minutes, "--conversation-minutes",
                                 maximum=24 * 60.0)
    if not args.negatives and not minutes:
        raise ConfigError("give --negatives (recordings of what the device hears), "
                          "--conversation-minutes, or both")
    if args.threshold is not None:
        raise ConfigError("--threshold is what calibrate chooses: leave it out")
    smoother_config(args)                  # the options checked before the bundle loads
    bundle = load_bundle(args.bundle, threads=1)
    detection = bundle.metadata.detection
    settings = StreamSettings(stream_stride_ms(args, detection),
                              smoother_config(args, detection))
    stored = (detection or {}).get("detection_threshold")
    thresholds = sorted({*WAKE_THRESHOLDS, *([stored] if stored is not None else [])})
    sweep = sweep_recordings(bundle, args.negatives, settings, args.positives or (),
                             args.label, thresholds, progress=progress_bars(args))
    if minutes:
        sweep = sweep.pooled(_conversation(args, bundle, settings, thresholds, minutes))
    result = {**report(sweep, budget, stored), "conversation_hours": minutes / 60}
    print(_table(result))
    _write(args, result)
    chosen = result["chosen"]
    if chosen is None:
        raise DataError(f"no threshold keeps false alarms at or below {budget:g} an hour on "
                        f"these recordings (at {sweep.thresholds[-1]:g}: "
                        f"{result['sweep'][-1]['false_alarms']} in {sweep.hours:.2f} h); "
                        "nothing was stored: allow more, or retrain with these recordings "
                        "among the negatives")
    if args.store:
        _check_enough_to_store(sweep.hours, budget)
        store_threshold(args.bundle, settings, chosen["threshold"], budget)
        print(f"stored threshold {chosen['threshold']:g} in {Path(args.bundle) / 'earmark.json'}"
              + ("" if stored is None else f" (was {stored:g})"), file=sys.stderr)
    return 0


def _check_enough_to_store(hours: float, budget: float) -> None:
    """Store only a threshold chosen on at least an hour per false alarm allowed: on less,
    a single false alarm already breaks the budget, and the threshold is merely the
    lowest at which these few minutes had none."""
    from earmark.errors import DataError

    if budget > 0 and hours < 1 / budget:
        raise DataError(f"--store: {hours * 60:.1f} minutes of audio cannot set a threshold "
                        f"for {budget:g} false alarm(s) an hour (one false alarm in them is "
                        f"{1 / max(hours, 1e-9):.0f} an hour); give at least "
                        f"{60 / budget:.0f} minutes (more --negatives, or "
                        f"--conversation-minutes); nothing was stored")


def _conversation(args, bundle, settings, thresholds, minutes: float):
    """False alarms on synthesized conversation (:mod:`earmark.wakeword.conversation`)."""
    from earmark import audio
    from earmark.calibrate import sweep_pieces, target_label
    from earmark.wakeword.conversation import running_speech
    from earmark.wakeword.phrases import check_phrase

    text = args.phrase or target_label(bundle, settings.smoother, args.label).replace("_", " ")
    noise = (audio.load_folder(args.noise_dir, bundle.sample_rate, "--noise-dir")
             if args.noise_dir else [])
    pieces = running_speech(check_phrase(text), minutes, bundle.sample_rate, noise, args.seed,
                            tuple(args.voices))
    return sweep_pieces(bundle, pieces, settings, thresholds, minutes * 60,
                        progress_bars(args))


def _table(result: dict) -> str:
    """The chosen and stored thresholds among a few others, with 95% intervals."""
    rows = {row["threshold"]: row for row in result["sweep"]
            if any(abs(row["threshold"] - t) < 1e-9 for t in SHOWN)}
    marks = {}
    for name in ("stored", "chosen"):
        if result[name] is not None:
            rows[result[name]["threshold"]] = result[name]
            marks[result[name]["threshold"]] = marks.get(result[name]["threshold"], []) + [name]
    hours = result["negative_hours"]
    talk = result.get("conversation_hours", 0.0)
    heard = []
    if result["negative_files"]:
        heard.append(f"{result['negative_files']} negative recording(s)")
    if talk:
        heard.append(f"{talk:.2f} h of synthesized conversation")
    lines = [" and ".join(heard) + f", {hours:.2f} h in all"
             + (f"; {result['positives']} recording(s) of the phrase" if result["positives"]
                else ""),
             f"{'threshold':>10} {'false alarms':>12} {'per hour (95%)':>22} {'missed (95%)':>22}"]
    for threshold in sorted(rows):
        row = rows[threshold]
        low, high = row["false_alarms_per_hour_95"]
        missed = ""
        if "miss_rate" in row:
            m_low, m_high = row["miss_rate_95"]
            missed = f"{row['miss_rate']:.1%} ({max(m_low, 0.0):.1%}-{m_high:.1%})"
        per_hour = f"{row['false_alarms_per_hour']:.2f} ({low:.2f}-{high:.2f})"
        lines.append(f"{threshold:>10.4f} {row['false_alarms']:>12} {per_hour:>22} "
                     f"{missed:>22}  {' '.join(marks.get(threshold, []))}".rstrip())
    needed = result["hours_to_show_budget"]          # None for a budget of 0
    if needed is not None and hours < needed:
        upper_none = needed * result["budget_per_hour"]
        lines.append(f"{hours:.2f} h cannot show a rate of {result['budget_per_hour']:g} an "
                     f"hour: even with no false alarm the 95% interval reaches "
                     f"{upper_none / max(hours, 1e-12):.1f} an hour; "
                     f"{needed:.1f} h without one would show it")
    return "\n".join(lines)


def _write(args, result: dict) -> None:
    from earmark.atomic import write_json

    if args.out:
        path = Path(args.out) / "calibration.json"
        write_json(path, result)
        print(f"wrote {path}", file=sys.stderr)
    if args.plot is not None:
        from earmark.plots import plot_threshold_sweep

        path = plot_threshold_sweep(result, args.plot or Path(args.out) / "calibration.png")
        print(f"wrote {path}", file=sys.stderr)
