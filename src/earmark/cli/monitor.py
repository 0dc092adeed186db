"""`earmark monitor`: sound levels and their sources over hours of recordings."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

from earmark.cli.common import check_output_suffix, command, progress_bars
from earmark.plots import IMAGE_SUFFIXES


def register(commands) -> None:
    sub = command(commands, "monitor",
                  "Noise monitoring: A-weighted levels (LAeq, LAFmax, LA10, LA90), the "
                  "sources a bundle hears, and events, per second and per interval.",
                  "earmark monitor bundles/esc10 recordings/2024-06-01/ --out monitor/ "
                  "--interval 300 --calibration 124 --plot", _monitor)
    sub.add_argument("bundle", help="a bundle written by `earmark export` (names the sources)")
    sub.add_argument("recordings", nargs="+",
                     help="files, folders (their audio files sorted by name) or globs: one "
                          "timeline, each file following the one before")
    sub.add_argument("--out", required=True, help="folder for the CSV and JSON reports")
    sub.add_argument("--interval", type=float, default=60.0,
                     help="seconds per reported interval, a whole number (default 60)")
    sub.add_argument("--calibration", type=float, metavar="DB",
                     help="dB SPL of a 0 dBFS sine: report dB SPL instead of dBFS")
    sub.add_argument("--hop", type=float,
                     help="seconds between analysis windows (default: the bundle's)")
    sub.add_argument("--plot", nargs="?", const="", metavar="PNG",
                     help="draw the level timeline with the sources (default "
                          "OUT/monitor.png)")
    sub.add_argument("--on", type=float, default=0.5, help="event start threshold (0.5)")
    sub.add_argument("--off", type=float, default=0.3, help="event end threshold (0.3)")
    sub.add_argument("--min-duration", type=float, default=1.0,
                     help="shortest event, s (1.0)")
    sub.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0 = auto)")


def _monitor(args) -> int:
    from earmark.atomic import check_output_folder
    from earmark.runtime import load_bundle
    from earmark.runtime.detect import DetectionSettings
    from earmark.runtime.monitor import MonitorSettings, monitor, write_reports

    detection = DetectionSettings(on_threshold=args.on, off_threshold=args.off,
                                  min_duration=args.min_duration)
    settings = MonitorSettings(interval_seconds=args.interval, calibration_db=args.calibration,
                               window_hop_seconds=args.hop, detection=detection)
    check_output_suffix(args.plot, "--plot", IMAGE_SUFFIXES)
    check_output_folder(args.out)
    bundle = load_bundle(args.bundle, threads=args.threads)
    result = monitor(bundle, args.recordings, settings, progress=progress_bars(args))
    written = write_reports(result, args.out)
    if args.plot is not None:
        written.append(_draw(result, args.plot or Path(args.out) / "monitor.png"))
    _print_summary(result)
    for path in written:
        print(f"wrote {path}", file=sys.stderr)
    return 0


def _draw(result, path) -> Path:
    import numpy as np

    from earmark.plots import plot_monitor

    edges = np.array([i.start for i in result.intervals] + [result.intervals[-1].end])
    levels = {name: np.array([getattr(i.levels, name.lower()) for i in result.intervals])
              for name in ("LAeq", "LA10", "LA90")}
    dominant = [interval.dominant(result.labels)[0] for interval in result.intervals]
    count = len(result.recordings)
    title = (f"{Path(result.recordings[0].path).name}"
             + (f" … {Path(result.recordings[-1].path).name} ({count} files)" if count > 1
                else "") + f": LAeq {result.seconds.summary().laeq:.1f} {result.settings.unit}")
    return plot_monitor(result.seconds.laeq, edges, levels, dominant, result.labels, path,
                        unit=result.settings.unit,
                        file_starts=[r.start for r in result.recordings], title=title)


def _print_summary(result) -> None:
    unit, overall = result.settings.unit, result.seconds.summary()
    hours = result.duration / 3600
    print(f"{len(result.recordings)} recording(s), {result.duration:.0f} s "
          f"({hours:.2f} h), {len(result.intervals)} interval(s) of "
          f"{result.settings.interval_seconds:g} s, {len(result.events)} event(s)")
    print(f"LAeq {overall.laeq:.1f}  LAFmax {overall.lafmax:.1f}  LA10 {overall.la10:.1f}  "
          f"LA90 {overall.la90:.1f}  ({unit})")
    loudest = max(result.intervals, key=lambda interval: interval.levels.laeq)
    print(f"loudest interval {loudest.start:g}-{loudest.end:g} s: LAeq "
          f"{loudest.levels.laeq:.1f} {unit}, mostly {loudest.dominant(result.labels)[0]}")
    shares = Counter(interval.dominant(result.labels)[0] for interval in result.intervals)
    print("dominant source: " + ", ".join(
        f"{label} {count / len(result.intervals):.0%}" for label, count in shares.most_common()))
