"""Many files in, a table out: input expansion and result files (CSV, JSON)."""

from __future__ import annotations

import csv
import glob
import io
import json
import os
from pathlib import Path

from earmark.atomic import write_text
from earmark.audio import is_audio_file
from earmark.errors import DataError
from earmark.runtime.classify import ClipResult


def expand_inputs(inputs: list[str]) -> list[str]:
    """Files as given, folders searched recursively for audio, globs expanded.

    A name that matches nothing is kept, so that reading it reports it.
    """
    paths = []
    for item in inputs:
        if os.path.isdir(item):
            paths.extend(sorted(str(p) for p in Path(item).rglob("*")
                                if p.is_file() and is_audio_file(p)))
        elif any(ch in item for ch in "*?["):
            paths.extend(sorted(glob.glob(item, recursive=True)))
        else:
            paths.append(item)
    if not paths:
        raise DataError(f"no audio files found in {inputs}")
    return _each_file_once(paths)


def _each_file_once(paths: list[str]) -> list[str]:
    """``paths`` without repeats of one file (a glob's ``**`` through a link back up the
    tree reaches the same file under many names), the first name kept."""
    seen, kept = set(), []
    for path in paths:
        key = os.path.realpath(path)
        if key not in seen:
            seen.add(key)
            kept.append(path)
    return kept


def table(results: list[ClipResult], top_k: int) -> str:
    """A terminal table: file, duration, windows, top-k labels with probabilities."""
    if not results:
        return "(no results)"
    width = min(max(len(r.source) for r in results), 60)
    lines = [f"{'file':<{width}}  {'seconds':>7}  {'windows':>7}  top {top_k}"]
    for result in results:
        tops = "  ".join(f"{label} {p:.3f}" for label, p in result.top(top_k))
        name = result.source if len(result.source) <= width else "..." + result.source[-width + 3:]
        lines.append(f"{name:<{width}}  {result.duration:7.2f}  "
                     f"{len(result.window_starts):7d}  {tops}")
    return "\n".join(lines)


def to_records(results: list[ClipResult], top_k: int, per_window: bool) -> list[dict]:
    """Plain dicts for JSON (and CSV, flattened)."""
    records = []
    for result in results:
        record = {"file": result.source, "duration": round(result.duration, 4),
                  "label": result.label,
                  "top": [{"label": label, "probability": round(p, 6)}
                          for label, p in result.top(top_k)]}
        if per_window:
            record["windows"] = [
                {"start": round(float(start), 4),
                 "label": result.labels[int(probs.argmax())],
                 "probability": round(float(probs.max()), 6)}
                for start, probs in zip(result.window_starts, result.window_probabilities)]
        records.append(record)
    return records


def write_results(results: list[ClipResult], path: str, top_k: int, per_window: bool) -> None:
    """Write ``.json`` (full records) or ``.csv`` (one row per file, or per window)."""
    records = to_records(results, top_k, per_window)
    suffix = Path(path).suffix.lower()
    if suffix == ".json":
        write_text(path, json.dumps(records, indent=2) + "\n")
        return
    if suffix != ".csv":
        raise DataError(f"--output {path}: use a .csv or .json file name")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if per_window:
        writer.writerow(["file", "start", "label", "probability"])
        for record in records:
            for window in record["windows"]:
                writer.writerow([record["file"], window["start"], window["label"],
                                 window["probability"]])
    else:
        header = ["file", "duration"]
        ranks = max((len(record["top"]) for record in records), default=top_k)
        for rank in range(1, ranks + 1):
            header += [f"label_{rank}", f"probability_{rank}"]
        writer.writerow(header)
        for record in records:
            row = [record["file"], record["duration"]]
            for top in record["top"]:
                row += [top["label"], top["probability"]]
            writer.writerow(row)
    write_text(path, buffer.getvalue())
