"""A microWakeWord export in microWakeWord's own client, next to earmark's runtime.

The wake-word benchmark's stream (``benchmarks/wake_words.py``: the real
recordings of a phrase between LibriSpeech background speech, noise at
10 dB SNR) goes through:

- earmark's runtime (:class:`earmark.runtime.micro_wakeword.MicroWindowModel`):
  the micro front-end's features, the float window model at every call,
  earmark's smoother with the manifest's rule (mean of the last
  ``sliding_window_size`` calls above the cutoff, then quiet for 1 s);
- ``pymicro-wakeword`` (microWakeWord's Python client, the TFLite C library
  it ships) loading the exported ``.json`` + streaming int8 ``.tflite``, fed
  100 ms blocks of 16-bit PCM: a detection where its answer turns true
  (1 s apart, as ESPHome resets its window after a detection);
- the same int8 file in earmark's LiteRT wrapper (CPU only);
- microWakeWord's four shipped models in the same client (CPU only: they
  listen for other phrases).

Prints, at the manifest's cutoff and at 0.5 and 0.9, the phrases each engine found, the ones
only one of them found, false alarms, detection-time differences, and each
engine's miss rate at <= 1 false alarm an hour over a sweep of cutoffs; CPU
seconds per hour of audio on one thread, and the ratios.

    earmark wakeword "view glass" --out runs/view-glass-micro --target micro ...   # once
    python benchmarks/micro_wake_word.py --export runs/view-glass-micro/micro
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from wake_words import (BUDGET, PHRASES, RATE, TOLERANCE_MS, best_miss_rate, build_stream,
                        micro_wake_word_cpu)

from earmark.frontend import micro
from earmark.metrics.streaming import score_stream
from earmark.runtime.micro_wakeword import (STRIDE, SUPPRESSION_MS, MicroWindowModel,
                                            StreamingTFLite, manifest_path, read_description)
from earmark.runtime.smoother import detect

#: Cutoffs the two engines' detections are compared at, besides the manifest's.
COMPARED_AT = (0.5, 0.9)
CUTOFFS = tuple(np.round(np.concatenate([np.arange(0.5, 0.9, 0.05),
                                         1 - np.geomspace(0.1, 0.002, 12)]), 4))


def earmark_scores(folder: Path, samples: np.ndarray):
    model = MicroWindowModel.load(folder, threads=1)
    started = time.process_time()
    times, scores = model.stream_scores(samples)
    return model, times, scores, time.process_time() - started


def earmark_detections(model: MicroWindowModel, times, scores, cutoff: float) -> list[float]:
    return [d.time_ms for d in detect(times, scores, model.description["labels"],
                                      model.smoother(cutoff))]


def client_probabilities(manifest: Path, samples: np.ndarray):
    """pymicro-wakeword's averaged probability at every call, with its times; CPU seconds."""
    from pymicro_wakeword import MicroWakeWord, MicroWakeWordFeatures

    detector, features = MicroWakeWord.from_config(manifest), MicroWakeWordFeatures()
    pcm = micro.to_pcm(samples)
    answers, started = [], time.process_time()
    for offset in range(0, len(pcm), 3200):                          # 100 ms blocks
        answers += [detector.process_streaming_prob(frame)
                    for frame in features.process_streaming(pcm[offset:offset + 3200])]
    cpu = time.process_time() - started
    calls = np.arange(STRIDE - 1, len(answers), STRIDE)             # it answers every third
    times = 1000.0 * (micro.WINDOW_SAMPLES + calls * micro.HOP_SAMPLES) / RATE
    return times, np.asarray(answers)[calls], cpu


def client_detections(times, averaged, cutoff: float) -> list[float]:
    """Where the client's answer turns true, at least SUPPRESSION_MS apart."""
    found, last = [], -np.inf
    above = averaged > cutoff
    for index in np.flatnonzero(above & ~np.r_[False, above[:-1]]):
        if times[index] - last > SUPPRESSION_MS:
            found.append(float(times[index]))
            last = times[index]
    return found


def found_phrases(truth, detections: list[float]) -> set[int]:
    """Indices of the phrases a detection lies within the tolerance of (as scored)."""
    return {i for i, word in enumerate(truth)
            if any(abs(t - word.end_ms) <= TOLERANCE_MS for t in detections)}


def call_agreement(model: MicroWindowModel, times, scores, their_times, averaged,
                   cutoff: float) -> str:
    """Call by call, where both engines answer: the averaged probabilities' difference and
    how often they fall on the same side of the cutoff."""
    calls = int(model.description["sliding_window_size"])
    ours = np.convolve(scores[:, int(model.description["target"])], np.ones(calls) / calls,
                       mode="valid")
    ours_times = times[calls - 1:]
    common, mine, theirs = np.intersect1d(np.round(ours_times), np.round(their_times),
                                          return_indices=True)
    difference = np.abs(ours[mine] - averaged[theirs])
    same_side = np.mean((ours[mine] > cutoff) == (averaged[theirs] > cutoff))
    return (f"{len(common)} calls both answered: |difference| mean {difference.mean():.4f}, "
            f"99th percentile {np.percentile(difference, 99):.3f}, max {difference.max():.3f}; "
            f"same side of {cutoff}: {same_side:.4%}")


def score(truth, detections: list[float], seconds: float, label: str):
    return score_stream([(label, w.end_ms) for w in truth], [(label, t) for t in detections],
                        seconds, TOLERANCE_MS)


def best_miss(truth, seconds: float, label: str, detections_at) -> tuple[float, float, float]:
    """(miss rate, false alarms/h, cutoff) at the best cutoff within the budget."""
    return best_miss_rate([(float(cutoff), score(truth, detections_at(cutoff), seconds, label))
                           for cutoff in CUTOFFS])


def int8_cpu(folder: Path, manifest: dict, samples: np.ndarray) -> float:
    stream = StreamingTFLite.load(folder / manifest["model"])
    started = time.process_time()
    features = micro.MicroFeatures().push(samples)
    for start in range(0, len(features) - STRIDE + 1, STRIDE):
        stream(features[start:start + STRIDE])
    return time.process_time() - started


def compare(truth, ours: list[float], theirs: list[float]) -> str:
    found_ours, found_theirs = found_phrases(truth, ours), found_phrases(truth, theirs)
    both = found_ours & found_theirs
    gaps = [gap for gap in (min((abs(a - b) for b in theirs), default=np.inf) for a in ours)
            if gap <= TOLERANCE_MS]
    return (f"phrases found: earmark {len(found_ours)}, pymicro-wakeword {len(found_theirs)}, "
            f"both {len(both)}; only earmark {sorted(found_ours - found_theirs)}, only "
            f"pymicro-wakeword {sorted(found_theirs - found_ours)}; detections earmark "
            f"{len(ours)}, pymicro-wakeword {len(theirs)}; median time between matching "
            f"detections {np.median(gaps) if gaps else float('nan'):.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--export", required=True, help="a folder from export --target micro")
    parser.add_argument("--phrase", default=PHRASES[0], choices=PHRASES)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    folder = Path(args.export)
    described = read_description(folder)
    manifest_file = manifest_path(folder, described)
    manifest = json.loads(manifest_file.read_text())
    cutoff, label = manifest["micro"]["probability_cutoff"], described["wake_word"]
    stream = build_stream(args.phrase, args.seed)
    samples, truth = stream.samples, stream.truth
    seconds = len(samples) / RATE
    hours = seconds / 3600
    print(f"stream: {len(truth)} real '{args.phrase}' recordings between background speech, "
          f"{seconds / 60:.1f} min; manifest cutoff {cutoff}, sliding window "
          f"{manifest['micro']['sliding_window_size']} calls")
    model, times, scores, our_cpu = earmark_scores(folder, samples)
    their_times, averaged, their_cpu = client_probabilities(manifest_file, samples)
    for at in sorted({cutoff, *COMPARED_AT}):
        ours = earmark_detections(model, times, scores, at)
        theirs = client_detections(their_times, averaged, at)
        print(f"at cutoff {at}{' (the manifest)' if at == cutoff else ''}: "
              + compare(truth, ours, theirs))
        print("  " + call_agreement(model, times, scores, their_times, averaged, at))
        for name, found in (("earmark runtime (float window)", ours),
                            ("pymicro-wakeword (int8 stream)", theirs)):
            result = score(truth, found, seconds, label)
            print(f"  {name:<32} miss {result.missed_rate:6.1%}, "
                  f"{result.false_alarms_per_hour:7.2f} false alarms/h")
    for name, detections_at in (
            ("earmark runtime", lambda c: earmark_detections(model, times, scores, c)),
            ("pymicro-wakeword", lambda c: client_detections(their_times, averaged, c))):
        miss, alarms, chosen = best_miss(truth, seconds, label, detections_at)
        print(f"  {name:<17} best miss at <= {BUDGET:g} false alarm/h: {miss:6.1%} "
              f"({alarms:.2f}/h, cutoff {chosen}; chosen on this stream: a development figure)")
    stream_cpu = int8_cpu(folder, manifest, samples)
    print(f"CPU s per hour of audio, one thread: earmark float window {our_cpu / hours:.1f}, "
          f"int8 stream in LiteRT {stream_cpu / hours:.1f}, in pymicro-wakeword "
          f"{their_cpu / hours:.1f}")
    for name, cpu in micro_wake_word_cpu(samples).items():
        print(f"microWakeWord {name:<12}: CPU {cpu / hours:.1f} s/h in pymicro-wakeword "
              f"(ours / it: {their_cpu / max(cpu, 1e-9):.2f})")


if __name__ == "__main__":
    main()
