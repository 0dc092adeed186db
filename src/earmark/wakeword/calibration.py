"""Streams of held-out audio, the threshold for a false-alarm budget, and the report card.

The run's validation split (voices and negative speakers never trained
on) becomes one long stream: every positive take and every negative
recording placed once, over background noise. Beside it, two hours of
synthesized conversation (:mod:`earmark.wakeword.conversation`). The
threshold is the lowest from which on the false alarms of both, pooled per
hour, stay within the budget (:func:`pick_pooled`). The test
split, built like the validation stream, is scored once at each budget's
threshold: the report card.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from earmark.data.keywords import SILENCE, UNKNOWN
from earmark.data.streams import StreamSpec, build_stream, speech_extent
from earmark.metrics.classification import wilson_interval
from earmark.metrics.streaming import (WAKE_THRESHOLDS, ThresholdError, poisson_interval,
                                       sweep_thresholds)
from earmark.calibrate import ThresholdSweep
from earmark.runtime.smoother import SmootherConfig
from earmark.stream_eval import StreamRun

#: Thresholds swept (:data:`earmark.metrics.streaming.WAKE_THRESHOLDS`).
THRESHOLDS = WAKE_THRESHOLDS
#: A micro model's cutoffs: its rule (the wake word's mean above the cutoff) is
#: earmark's (the top class's mean) from 0.5 on, and its uint8 output tops out at 255/256.
MICRO_THRESHOLDS = tuple(t for t in THRESHOLDS if 0.5 <= t < 255 / 256)
#: False alarms per hour the card reports a miss rate at.
CARD_BUDGETS = (0.5, 1.0, 2.0)
#: Wake words: one detection per utterance, then quiet for 2 s.
WAKE_SMOOTHER = SmootherConfig(average_window_ms=300, suppression_ms=2000, minimum_count=3)
STRIDE_MS = 20.0
#: Quiet after each phrase in the held-out streams: the suppression and the 2 s window
#: pass before the next clip, so the phrase's own late scores never meet another phrase
#: (said twice within a second, the second one was suppressed, then heard late and
#: counted a false alarm, which set thresholds no real speaker reached).
QUIET_AFTER_PHRASE_S = 2.5
#: A detection counts for a phrase whose end is at most this far from it; any other is
#: a false alarm. The quiet after a phrase holds nothing else, so a detection in it is
#: the phrase's own, heard late (the 2 s window is surest of a phrase up to a second
#: after it ends, later at high thresholds): counted as a false alarm, it pushed the
#: lowest threshold within the budget up to where no phrase was heard at all.
TOLERANCE_MS = 1000.0 * QUIET_AFTER_PHRASE_S
#: Pauses between the other clips.
GAP_S = (0.5, 2.0)


def held_out_audio(clips: list[tuple[np.ndarray, str]], noise: list[np.ndarray], rate: int,
                   seed: int) -> tuple[np.ndarray, list]:
    """Each clip placed once over noise, 0.5-2 s apart and at least
    :data:`QUIET_AFTER_PHRASE_S` after a phrase: the samples and their truth."""
    quiet = {label: QUIET_AFTER_PHRASE_S for _, label in clips
             if label not in (UNKNOWN, SILENCE)}
    spec = StreamSpec(gap_s=GAP_S, noise_volume=0.1, seed=seed, quiet_after_s=quiet)
    spoken = sum(np.subtract(*speech_extent(c, rate)[::-1]) for c, _ in clips) / rate
    gaps = sum(max(np.mean(GAP_S), quiet.get(label, 0.0)) for _, label in clips)
    spec = dataclasses.replace(spec, duration_s=spoken + gaps + 5)
    return build_stream(clips, noise, rate, spec)


def sweep(run: StreamRun, labels: list[str], smoother: SmootherConfig | None = None,
          thresholds: tuple[float, ...] = THRESHOLDS):
    """``(threshold, StreamScore)`` over ``thresholds``."""
    return sweep_thresholds(run.times_ms, run.scores, labels, smoother or WAKE_SMOOTHER,
                            run.truth_pairs(), run.seconds, thresholds,
                            time_tolerance_ms=TOLERANCE_MS)


def pick_pooled(calibration: list, validation_seconds: float,
                conversation: ThresholdSweep | None, per_hour: float) -> float:
    """The lowest threshold from which on every higher one keeps the false alarms of the
    validation stream and the conversation (at the same thresholds), pooled per hour,
    within ``per_hour``.

    The lowest, not the one finding the most validation phrases: synthesized voices are
    found up to thresholds real speakers do not reach, so their count ties over a wide
    range of thresholds, and only the false alarms tell them apart.

    Raises
    ------
    ThresholdError
        When even the highest threshold breaks the budget.
    """
    calibration = sorted(calibration, key=lambda item: item[0])
    held_out = ThresholdSweep(np.array([threshold for threshold, _ in calibration]),
                              np.array([score.false_alarms for _, score in calibration]),
                              validation_seconds, 1)
    chosen = (held_out.pooled(conversation) if conversation else held_out).choose(per_hour)
    if chosen is None:
        raise ThresholdError(f"no threshold keeps false alarms at or below {per_hour}/hour "
                             "on the held-out audio")
    return chosen


def report_card(validation: StreamRun, test: StreamRun, labels: list[str], cpu_seconds: float,
                model_bytes: int, budget: float, smoother: SmootherConfig | None = None,
                thresholds: tuple[float, ...] = THRESHOLDS,
                conversation: ThresholdSweep | None = None) -> dict:
    """Miss rates at :data:`CARD_BUDGETS` (thresholds from validation and the conversation,
    scored on test), the scores smoothed by ``smoother`` (:data:`WAKE_SMOOTHER` by default)."""
    calibration = sweep(validation, labels, smoother, thresholds)
    tested = dict(sweep(test, labels, smoother, thresholds))
    rows = []
    for per_hour in sorted({*CARD_BUDGETS, budget}):
        try:
            threshold = pick_pooled(calibration, validation.seconds, conversation, per_hour)
            met = True
        except ThresholdError:              # even the highest threshold fires too often
            threshold, met = thresholds[-1], False
        score = tested[threshold]
        positives = score.truth_words
        low, high = wilson_interval(score.missed, positives) if positives else (None, None)
        alarms = score.false_alarms
        rows.append({"budget_per_hour": per_hour, "threshold": threshold,
                     "met_on_validation": met,
                     "miss_rate": score.missed_rate, "miss_rate_95": [low, high],
                     "positives": positives, "false_alarms": alarms,
                     "false_alarms_per_hour": score.false_alarms_per_hour,
                     "false_alarms_per_hour_95": [x * 3600 / test.seconds
                                                  for x in poisson_interval(alarms)],
                     "latency_ms_median": _percentile(score.latencies_ms, 50),
                     "latency_ms_p95": _percentile(score.latencies_ms, 95),
                     "conversation_false_alarms": (None if conversation is None else
                                                   conversation.row(threshold)["false_alarms"])})
    return {"rows": rows, "test_hours": test.seconds / 3600,
            "validation_hours": validation.seconds / 3600,
            "conversation_hours": 0.0 if conversation is None else conversation.hours,
            "cpu_seconds_per_hour": cpu_seconds / (test.seconds / 3600),
            "model_bytes": model_bytes,
            "threshold": next(r["threshold"] for r in rows if r["budget_per_hour"] == budget),
            "budget_per_hour": budget}


def format_card(card: dict, phrase: str) -> str:
    """The card for people."""
    conversation = card.get("conversation_hours", 0.0)
    lines = [f"wake phrase {phrase!r}: held-out voices among everyday negative audio "
             f"({card['test_hours'] * 60:.1f} min test, {card['validation_hours'] * 60:.1f} min "
             "calibration" + (f" + {conversation * 60:.0f} min of synthesized conversation"
                              if conversation else "") + ")",
             f"{'budget/h':>9} {'threshold':>9} {'miss rate':>10} {'95% interval':>15} "
             f"{'FA/h on test':>13} {'latency median/p95':>19}"]
    for row in card["rows"]:
        low, high = row["miss_rate_95"]
        interval = "n/a" if low is None else f"{low:.1%}-{high:.1%}"
        latency = ("n/a" if row["latency_ms_median"] is None else
                   f"{row['latency_ms_median']:.0f}/{row['latency_ms_p95']:.0f} ms")
        lines.append(f"{row['budget_per_hour']:>9g} {row['threshold']:>9.4f} "
                     f"{row['miss_rate']:>10.1%} {interval:>15} "
                     f"{row['false_alarms_per_hour']:>13.2f} {latency:>19}"
                     + ("" if row["met_on_validation"] else
                        "  (over budget on validation even at the highest threshold)"))
    stored = next(r for r in card["rows"] if r["budget_per_hour"] == card["budget_per_hour"])
    low, high = stored["false_alarms_per_hour_95"]
    if stored.get("conversation_false_alarms") is not None:
        lines.append(f"on the synthesized conversation the stored threshold fires "
                     f"{stored['conversation_false_alarms']} times in {conversation:.1f} h")
    lines.append(f"false alarms at the stored threshold: {stored['false_alarms']} in "
                 f"{card['test_hours'] * 60:.1f} min of test audio, so between {low:.1f} and "
                 f"{high:.1f} an hour (95%); more negative audio (--negatives) narrows it")
    lines.append(f"CPU {card['cpu_seconds_per_hour']:.1f} s per hour of audio (one thread); "
                 f"model {card['model_bytes'] / 1024:.0f} KiB; threshold stored in the "
                 f"bundle: {card['threshold']:.4f} (for {card['budget_per_hour']:g} false "
                 "alarms/h)")
    made = card.get("made_negatives")
    if made:
        lines.append(f"negatives made from the phrase (its parts, sound-alikes, sentences "
                     f"carrying them; {made['takes']} held-out takes, not in the streams "
                     f"above): {made['detections']} detections at the stored threshold")
    lines.append("a development figure: held-out synthesized voices and the negative "
                 "recordings you gave; measure real speakers with benchmarks/wake_words.py")
    return "\n".join(lines)


def plot_card(validation: StreamRun, test: StreamRun, labels: list[str], card: dict,
              path: str | Path, smoother: SmootherConfig | None = None,
              thresholds: tuple[float, ...] = THRESHOLDS) -> Path:
    """Miss rate against false alarms per hour on the test stream, the chosen point marked."""
    from earmark.plots import plot_tradeoff

    points = sweep(test, labels, smoother, thresholds)
    return plot_tradeoff([t for t, _ in points], [s.correct_rate for _, s in points],
                         [s.false_alarms_per_hour for _, s in points], path,
                         chosen=card["threshold"], title="Wake phrase: detected vs false alarms "
                                                         "(test stream)")


def _percentile(values, q: float) -> float | None:
    return float(np.percentile(values, q)) if len(values) else None
