"""Event detection on long streams of real keywords: event-based F1 with a 200 ms collar.

Builds two 10-minute sequential mixtures of Speech Commands words over the
background-noise recordings, one from the run's validation speakers and one
from its test speakers (earmark.data.streams). Runs the bundle's event
detector on both, measures the onset/offset bias on the validation stream,
applies it to the test stream, and prints event- and segment-based scores.

    python benchmarks/event_detection.py --bundle bundles/keywords --run runs/keywords
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from earmark import audio
from earmark.data.streams import StreamSpec, build_stream
from earmark.runtime import load_bundle
from earmark.runtime.events import DetectionSettings, detect_events, timing_bias
from earmark.runtime.events_metrics import Event, event_based, format_report, segment_based
from earmark.stream_eval import _noise, _split_clips


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", default="bundles/keywords")
    parser.add_argument("--run", default="runs/keywords")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--collar", type=float, default=0.2)
    args = parser.parse_args()
    bundle = load_bundle(args.bundle)
    clips = _split_clips(args.run, bundle)
    noise = _noise(args.run, None, bundle.sample_rate)
    settings = DetectionSettings(hop_seconds=0.05)
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for seed, split in enumerate(("validation", "test")):
            samples, truth = build_stream(clips[split], noise, bundle.sample_rate,
                                          StreamSpec(duration_s=args.minutes * 60, seed=seed))
            path = Path(folder) / f"{split}.flac"
            audio.write(path, samples, bundle.sample_rate)
            reference = [Event(t.start_ms / 1000, t.end_ms / 1000, t.label) for t in truth
                         if t.label != "_unknown_"]
            results[split] = (reference, path)
        reference, path = results["validation"]
        detected, _ = detect_events(bundle, path, settings)
        onset_shift, offset_shift = timing_bias(reference, detected)
        print(f"timing bias on the validation stream: onset {onset_shift:+.3f} s, "
              f"offset {offset_shift:+.3f} s")
        shifted = DetectionSettings(hop_seconds=0.05, onset_shift=onset_shift,
                                    offset_shift=offset_shift)
        snapped = DetectionSettings(hop_seconds=0.05, snap=True)
        reference, path = results["test"]
        scores = {}
        for name, variant in (("window centres + validation bias", shifted),
                              ("boundaries snapped to activity", snapped)):
            detected, _ = detect_events(bundle, path, variant)
            scores[name] = (event_based(reference, detected, t_collar=args.collar),
                            segment_based(reference, detected))
    for name, (events, segments) in scores.items():
        print(f"\n== {name}")
        print(format_report(events, segments))
    print(f"\ntest stream ({args.minutes:g} min, unseen speakers), event-based F1 with a "
          f"{args.collar * 1000:.0f} ms onset collar:")
    for name, (events, _) in scores.items():
        print(f"  {name:<34} {events['overall']['f1']:.3f}")


if __name__ == "__main__":
    main()
