"""Acoustic anomaly detection: learn a machine's normal sound, score how far new sounds are.

Training sees normal recordings only (``split.py`` keeps anomalies out of it and sets
aside validation normals for the threshold); a method (``lines.py``: the machine's
tonal lines and a k-nearest-neighbour distance; ``autoencoder.py``: the DCASE 2020
baseline) becomes a torch scorer, waveform windows -> scores, that ``train.py`` fits,
``evaluate.py`` measures and ``export.py`` turns into an ONNX bundle.
"""
