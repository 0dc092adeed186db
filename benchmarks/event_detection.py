"""Event detection on long streams of real keywords: event-based F1 with a 200 ms collar.

Builds two 10-minute sequential mixtures of Speech Commands words over the
background-noise recordings, one from the run's validation speakers and one
from its test speakers (earmark.data.streams). Every setting is chosen on
the validation stream only: the onset/offset bias of window-centre events,
and for boundaries snapped to the signal's activity, the thresholds and the
snapping parameters (a small grid). The test stream is then scored once
with each, and the scores printed.

    python benchmarks/event_detection.py --bundle bundles/keywords --run runs/keywords
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
from dataclasses import replace
from pathlib import Path

from earmark import audio
from earmark.activity import ActivitySettings, LevelTrack, level_track, snap_to_activity
from earmark.data.streams import StreamSpec, build_stream
from earmark.events import Event
from earmark.metrics.events import event_based, format_report, segment_based, timing_bias
from earmark.runtime import load_bundle
from earmark.runtime.classify import Classifier, ClipResult
from earmark.runtime.detect import DetectionSettings, events_from_tracks
from earmark.stream_eval import background_noise, held_out_clips

HOP = 0.05


def detect(tracks: ClipResult, levels: LevelTrack, settings: DetectionSettings) -> list[Event]:
    """Events from window scores, snapped to the signal's activity when the settings say so."""
    events = events_from_tracks(tracks, settings)
    return snap_to_activity(events, levels, settings.activity) if settings.snap else events


def tuned_on_validation(reference: list[Event], tracks: ClipResult, levels: LevelTrack,
                        collar: float) -> DetectionSettings:
    """The snapping settings with the best event F1 on the validation stream."""
    best, best_f1 = None, -1.0
    for on, rise, margin, median in itertools.product((0.4, 0.5, 0.6), (6.0, 10.0, 14.0),
                                                      (0.1, 0.2, 0.35), (3, 5)):
        settings = DetectionSettings(window_hop_seconds=HOP, on_threshold=on,
                                     off_threshold=min(0.3, on), median_windows=median,
                                     snap=True, activity=ActivitySettings(
                                         rise_db=rise, margin_seconds=margin))
        f1 = event_based(reference, detect(tracks, levels, settings),
                         t_collar=collar)["overall"]["f1"]
        if f1 > best_f1:
            best, best_f1 = settings, f1
    print(f"snapping chosen on the validation stream (F1 {best_f1:.3f}): on "
          f"{best.on_threshold}, median {best.median_windows}, rise {best.activity.rise_db} dB, "
          f"margin {best.activity.margin_seconds} s")
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", default="bundles/keywords")
    parser.add_argument("--run", default="runs/keywords")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--collar", type=float, default=0.2)
    args = parser.parse_args()
    bundle = load_bundle(args.bundle)
    classifier = Classifier(bundle, window_hop_seconds=HOP)
    clips = held_out_clips(args.run, bundle.sample_rate)
    noise = background_noise(args.run, None, bundle.sample_rate)
    streams = {}
    with tempfile.TemporaryDirectory() as folder:
        for seed, split in enumerate(("validation", "test")):
            samples, truth = build_stream(clips[split], noise, bundle.sample_rate,
                                          StreamSpec(duration_s=args.minutes * 60, seed=seed))
            path = Path(folder) / f"{split}.flac"
            audio.write(path, samples, bundle.sample_rate)
            reference = [word.as_event() for word in truth if word.label != "_unknown_"]
            streams[split] = (reference, classifier.classify_file(path),
                              level_track(path, bundle.sample_rate))
    reference, tracks, levels = streams["validation"]
    plain = DetectionSettings(window_hop_seconds=HOP)
    onset_shift, offset_shift = timing_bias(reference, detect(tracks, levels, plain))
    print(f"timing bias on the validation stream: onset {onset_shift:+.3f} s, "
          f"offset {offset_shift:+.3f} s")
    variants = {"window centres + validation bias": replace(plain, onset_shift=onset_shift,
                                                            offset_shift=offset_shift),
                "boundaries snapped to activity": tuned_on_validation(reference, tracks, levels,
                                                                      args.collar)}
    reference, tracks, levels = streams["test"]
    scores = {}
    for name, settings in variants.items():
        detected = detect(tracks, levels, settings)
        scores[name] = (event_based(reference, detected, t_collar=args.collar),
                        segment_based(reference, detected))
        print(f"\n== {name}")
        print(format_report(*scores[name]))
    print(f"\ntest stream ({args.minutes:g} min, unseen speakers), event-based F1 with a "
          f"{args.collar * 1000:.0f} ms onset collar:")
    for name, (events, _) in scores.items():
        print(f"  {name:<34} {events['overall']['f1']:.3f}")


if __name__ == "__main__":
    main()
