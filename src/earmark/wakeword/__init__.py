"""Wake words from text alone: ``earmark wakeword "view glass" --out runs/view-glass``.

- :mod:`phrases`: the phrase checked, and the hard negatives made from it
  (its parts, words that sound like them, both inside sentences);
- :mod:`dataset`: synthesized positives and negatives plus the user's real
  negative recordings, as one manifest;
- :mod:`calibration`: streams of held-out audio, the threshold for a target
  false-alarm rate, miss rates with their intervals;
- :mod:`card`: the report card (text, JSON, PNG);
- :mod:`pipeline`: the steps from the phrase to a calibrated bundle.
"""
