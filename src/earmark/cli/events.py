"""`earmark detect`, `evaluate-events`: sound events in long recordings, and their scores."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from earmark.cli.common import check_output_suffix, command
from earmark.plots import IMAGE_SUFFIXES

#: Decimals of the times and confidences `earmark detect --output` writes: 0.1 ms in CSV,
#: TSV and JSON; Audacity label tracks get microseconds.
DETECTION_DECIMALS = 4
AUDACITY_DECIMALS = 6


def register(commands) -> None:
    _add_detect(commands)
    _add_evaluate_events(commands)


def _add_detect(commands) -> None:
    sub = command(commands, "detect",
                  "Find sound events (onset, offset, label) in long recordings.",
                  "earmark detect bundles/keywords meeting.flac --output events.csv --plot "
                  "events.png", _detect)
    sub.add_argument("bundle", help="a bundle written by `earmark export`")
    sub.add_argument("file", help="the recording (any length: read in blocks)")
    sub.add_argument("--output", help="events as .csv, .tsv, .json or .txt (Audacity label "
                                      "track)")
    sub.add_argument("--plot", help="PNG: spectrogram, class probabilities and events")
    sub.add_argument("--hop", type=float, default=0.1, help="seconds between windows (0.1)")
    sub.add_argument("--median", type=int, default=5, help="median filter, in windows (5)")
    sub.add_argument("--on", type=float, default=0.5, help="threshold to start an event (0.5)")
    sub.add_argument("--off", type=float, default=0.3, help="threshold to end it (0.3)")
    sub.add_argument("--class-threshold", action="append", default=[], metavar="LABEL=ON:OFF",
                     help="per-class thresholds, e.g. yes=0.7:0.4 (repeatable)")
    sub.add_argument("--min-duration", type=float, default=0.1, help="shortest event, s (0.1)")
    sub.add_argument("--min-gap", type=float, default=0.2,
                     help="merge same-label events closer than this, s (0.2)")
    sub.add_argument("--onset-shift", type=float, default=0.0,
                     help="seconds added to onsets (see evaluate-events' timing bias)")
    sub.add_argument("--offset-shift", type=float, default=0.0,
                     help="seconds added to offsets")
    sub.add_argument("--snap", action="store_true",
                     help="move each event's boundaries to where the signal is active "
                          "(sounds over a quieter background, such as words)")
    sub.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0 = auto)")


def _detect(args) -> int:
    from earmark.errors import ConfigError
    from earmark.events import EVENT_FILE_FORMATS, write_events
    from earmark.runtime import load_bundle
    from earmark.runtime.detect import DetectionSettings, detect_events

    thresholds = {}
    for item in args.class_threshold:
        label, _, values = item.partition("=")
        on, _, off = values.partition(":")
        try:
            thresholds[label] = (float(on), float(off or on))
        except ValueError:
            raise ConfigError(f"--class-threshold {item!r}: write LABEL=ON:OFF") from None
    settings = DetectionSettings(window_hop_seconds=args.hop, median_windows=args.median,
                                 on_threshold=args.on, off_threshold=args.off,
                                 thresholds=thresholds, min_duration=args.min_duration,
                                 min_gap=args.min_gap, onset_shift=args.onset_shift,
                                 offset_shift=args.offset_shift, snap=args.snap)
    check_output_suffix(args.output, "--output", tuple(EVENT_FILE_FORMATS))
    check_output_suffix(args.plot, "--plot", IMAGE_SUFFIXES)
    bundle = load_bundle(args.bundle, threads=args.threads)
    events, result = detect_events(bundle, args.file, settings)
    for event in events:
        print(f"{event.onset:9.2f} {event.offset:9.2f}  {event.label:<14} {event.confidence:.2f}")
    print(f"{len(events)} event(s) in {result.duration:.1f} s", file=sys.stderr)
    if args.output:
        audacity = Path(args.output).suffix.lower() == ".txt"
        write_events(args.output, events,
                     decimals=AUDACITY_DECIMALS if audacity else DETECTION_DECIMALS)
    if args.plot:
        from earmark.plots import plot_events
        from earmark.runtime.detect import coarse_spectrogram

        spectrogram, seconds_per_frame = coarse_spectrogram(args.file, bundle.sample_rate)
        plot_events(spectrogram, seconds_per_frame, bundle.sample_rate,
                    result.window_starts + result.window_seconds / 2,
                    result.window_probabilities, result.labels, events, args.plot,
                    title=f"{Path(args.file).name}: {len(events)} events")
    return 0


def _add_evaluate_events(commands) -> None:
    sub = command(commands, "evaluate-events",
                  "Score detected events against reference events (event and segment based).",
                  "earmark evaluate-events truth.csv events.csv --collar 0.2", _evaluate_events)
    sub.add_argument("reference", help="reference events (.csv, .json or Audacity .txt)")
    sub.add_argument("estimated", help="detected events, same formats")
    sub.add_argument("--collar", type=float, default=0.2, help="onset tolerance, s (0.2)")
    sub.add_argument("--offset", action="store_true", help="also require matching offsets")
    sub.add_argument("--segment", type=float, default=1.0, help="segment length, s (1.0)")
    sub.add_argument("--ignore", nargs="*", default=["_silence_", "_unknown_"],
                     help="labels left out of both lists (default: _silence_ _unknown_)")
    sub.add_argument("--json", action="store_true", help="print JSON")


def _evaluate_events(args) -> int:
    from earmark.events import read_events
    from earmark.metrics.events import event_based, format_report, segment_based, timing_bias

    def kept(path):
        return [e for e in read_events(path) if e.label not in set(args.ignore)]

    reference, estimated = kept(args.reference), kept(args.estimated)
    events = event_based(reference, estimated, t_collar=args.collar,
                         evaluate_offset=args.offset)
    segments = segment_based(reference, estimated, segment_length=args.segment)
    onset_bias, offset_bias = timing_bias(reference, estimated)
    if args.json:
        print(json.dumps({"event_based": events, "segment_based": segments,
                          "timing_bias": {"onset": onset_bias, "offset": offset_bias}},
                         indent=2, default=str))
    else:
        print(format_report(events, segments))
        print(f"\ntiming bias (reference - detected, median): onset {onset_bias:+.3f} s, "
              f"offset {offset_bias:+.3f} s; correct it with earmark detect --onset-shift "
              f"{onset_bias:.3f} --offset-shift {offset_bias:.3f}")
    return 0
