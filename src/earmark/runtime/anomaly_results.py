"""Anomaly scores of many files out: a terminal table, CSV and JSON (``earmark anomaly score``)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from earmark.atomic import write_text
from earmark.errors import ConfigError
from earmark.runtime.anomaly_score import FileScores

#: Digits after the point of the scores and times written.
SCORE_DECIMALS = 6
TIME_DECIMALS = 4


def verdict(anomalous: bool) -> str:
    """How a verdict is written in tables and files."""
    return "anomalous" if anomalous else "normal"


def score_table(results: list[FileScores], windows: bool = False) -> str:
    """File, seconds, windows, score, threshold, verdict; with ``windows``, a row per window."""
    if not results:
        return "(no results)"
    width = max(4, min(max(len(r.path) for r in results), 60))
    lines = [f"{'file':<{width}}  {'seconds':>8}  {'windows':>7}  {'score':>10}  "
             f"{'threshold':>10}  verdict"]
    for result in results:
        name = result.path if len(result.path) <= width else "..." + result.path[-width + 3:]
        lines.append(f"{name:<{width}}  {result.duration:8.2f}  {len(result.window_scores):7d}"
                     f"  {result.score:10.4g}  {result.threshold:10.4g}  "
                     f"{verdict(result.is_anomalous)}")
        if windows:
            for start, score, anomalous in zip(result.window_starts, result.window_scores,
                                               result.window_anomalous):
                lines.append(f"{'  at ' + f'{start:.2f} s':<{width}}  {'':>8}  {'':>7}  "
                             f"{score:10.4g}  {'':>10}  {verdict(bool(anomalous))}")
    return "\n".join(lines)


def score_records(results: list[FileScores], windows: bool = False) -> list[dict]:
    """Plain dicts for JSON: one per file, with its windows when ``windows``."""
    records = []
    for result in results:
        record = {"file": result.path, "duration": round(result.duration, TIME_DECIMALS),
                  "windows": len(result.window_scores),
                  "score": round(result.score, SCORE_DECIMALS),
                  "threshold": result.threshold, "anomalous": result.is_anomalous}
        if windows:
            record["window_scores"] = [
                {"start": round(float(start), TIME_DECIMALS),
                 "score": round(float(score), SCORE_DECIMALS), "anomalous": bool(anomalous)}
                for start, score, anomalous in zip(result.window_starts, result.window_scores,
                                                   result.window_anomalous)]
        records.append(record)
    return records


def write_scores(results: list[FileScores], path: str, windows: bool = False) -> Path:
    """Write ``.json`` (the records) or ``.csv`` (a row per file, or per window)."""
    records = score_records(results, windows)
    suffix = Path(path).suffix.lower()
    if suffix == ".json":
        return write_text(path, json.dumps(records, indent=2) + "\n")
    if suffix != ".csv":
        raise ConfigError(f"{path}: write scores to a .csv or .json file")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if windows:
        writer.writerow(["file", "start", "score", "threshold", "anomalous"])
        for record in records:
            for window in record["window_scores"]:
                writer.writerow([record["file"], window["start"], window["score"],
                                 record["threshold"], int(window["anomalous"])])
    else:
        writer.writerow(["file", "duration", "windows", "score", "threshold", "anomalous"])
        for record in records:
            writer.writerow([record["file"], record["duration"], record["windows"],
                             record["score"], record["threshold"], int(record["anomalous"])])
    return write_text(path, buffer.getvalue())
