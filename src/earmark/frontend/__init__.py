"""The front-end: waveform -> spectrogram, log-mel or MFCC (+ deltas).

- :mod:`~earmark.frontend.filters`: windows, mel filterbank, DCT (numpy);
- :mod:`~earmark.frontend.geometry`: kinds, validation, frame geometry and the
  spectral layout a config gives (numpy);
- :mod:`~earmark.frontend.reference`: the features in plain numpy, and a
  librosa-style :func:`~earmark.frontend.reference.logmel` (numpy);
- :mod:`~earmark.frontend.fourier`: the STFT as a split FFT of small matrix products (torch);
- :mod:`~earmark.frontend.module`: :class:`FrontEnd`, the torch module inside every bundle;
- :mod:`~earmark.frontend.spectrogram`: log-mel pictures for people (numpy);
- :mod:`~earmark.frontend.speech_embedding`, :mod:`~earmark.frontend.embedding_mel`,
  :mod:`~earmark.frontend.sliding_embedding`: the pretrained speech embedding, its mel and
  its network slid along clips and streams (numpy + ONNX).

Importing this package imports no torch; only :mod:`module` and :mod:`fourier` do.
"""
