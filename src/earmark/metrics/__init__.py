"""Scores, numpy only (no torch), usable by a deployment as much as by training:
:mod:`~earmark.metrics.classification` (accuracy, F1, confusion),
:mod:`~earmark.metrics.streaming` (keyword streams: matched, wrong, false alarms, latency),
:mod:`~earmark.metrics.events` (event- and segment-based F1 and error rate)."""
