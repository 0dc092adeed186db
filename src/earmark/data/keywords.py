"""A keyword-spotting task from a folder of words, the Speech Commands way.

Chosen words keep their labels; every other word becomes ``_unknown_``,
sampled down to ``unknown_percent`` of the keyword clips; ``_silence_``
clips are one-window cuts of background recordings (``silence_percent``
of the keyword clips), their level varied by the gain augmentation. Splits
apply afterwards as for any manifest (by speaker, or the hashing scheme);
when the words already carry a split (the official lists of a dataset
recipe), the ``_silence_`` clips are dealt to the splits in the words'
proportions.
"""

from __future__ import annotations

import random
from dataclasses import replace

from earmark import audio
from earmark.data.manifest import SPLITS, Manifest, Row
from earmark.errors import DataError

SILENCE, UNKNOWN = "_silence_", "_unknown_"


def keyword_task(manifest: Manifest, words: list[str], unknown_percent: float,
                 silence_percent: float, noise_dir: str, clip_seconds: float,
                 seed: int = 0) -> Manifest:
    """Relabel a manifest of many words into ``words + [_unknown_, _silence_]``."""
    present = set(manifest.labels())
    missing = [w for w in words if w not in present]
    if missing:
        raise DataError(f"data.keywords {missing} have no recordings; found words: "
                        f"{sorted(present)[:20]}")
    rng = random.Random(seed)
    keyword_rows = [row for row in manifest if row.label in words]
    others = [replace(row, label=UNKNOWN) for row in manifest
              if row.label not in words and row.label not in (SILENCE, UNKNOWN)]
    others += [row for row in manifest if row.label == UNKNOWN]
    unknown_count = min(len(others), round(len(keyword_rows) * unknown_percent / 100))
    unknown_rows = rng.sample(others, unknown_count)
    silence_count = round(len(keyword_rows) * silence_percent / 100)
    silence_rows = _silence_rows(noise_dir, silence_count, clip_seconds, rng) \
        if silence_count else []
    return Manifest(keyword_rows + unknown_rows + _split_like(silence_rows, keyword_rows))


def _split_like(rows: list[Row], reference: list[Row]) -> list[Row]:
    """``rows`` with the splits of ``reference`` in the same proportions, when every
    reference row has one (otherwise unchanged: the split comes later)."""
    splits = sorted((row.split for row in reference), key=_split_order)
    if not rows or not splits or not all(splits):
        return rows
    return [replace(row, split=splits[index * len(splits) // len(rows)])
            for index, row in enumerate(rows)]


def _split_order(split: str) -> int:
    return SPLITS.index(split) if split in SPLITS else len(SPLITS)


def _silence_rows(noise_dir: str, count: int, clip_seconds: float,
                  rng: random.Random) -> list[Row]:
    """``count`` random one-clip cuts of the background recordings, each its own group."""
    if not noise_dir:
        raise DataError("data.silence_percent > 0 needs data.silence_noise_dir (a folder of "
                        "background recordings, e.g. _background_noise_)")
    files = audio.find_audio_files(noise_dir, "data.silence_noise_dir")
    durations = {str(f): audio.info(f).duration for f in files}
    rows = []
    for index in range(count):
        file = rng.choice(list(durations))
        start = rng.uniform(0, max(0.0, durations[file] - clip_seconds))
        rows.append(Row(file, SILENCE, f"silence-{index}", start=round(start, 4),
                        end=round(min(start + clip_seconds, durations[file]), 4)))
    return rows
