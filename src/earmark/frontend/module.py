"""The front-end: waveform -> (log-)spectrogram, log-mel or MFCC (+ deltas).

:class:`FrontEnd` is a ``torch.nn.Module`` so that it can sit inside the
exported ONNX graph (raw waveform in, class probabilities out): a deployed
model then needs no feature code of its own. Every step is a fixed tensor
operation (convolution, matrix product, element-wise maths) with no Python
control flow that depends on the data, so ``torch.onnx.export(...,
dynamo=True)`` traces it with a dynamic batch dimension.

:func:`reference_features` computes the same features with plain numpy
(one ``np.fft.rfft`` per frame); tests hold the two against each other and
against librosa. librosa is never imported here: the filterbank
(:func:`mel_filterbank`) and the DCT (:func:`dct_matrix`) are written out.

Conventions (those of librosa)
------------------------------
- A frame is ``n_fft`` samples long; the periodic Hann window of
  ``window_length`` samples sits centred inside it when it is shorter.
- ``center=False``: frame ``t`` starts at sample ``t * hop_length`` and
  ``frames = 1 + (samples - n_fft) // hop_length``.
- ``center=True``: the waveform is first reflect-padded by ``n_fft // 2``
  samples at both ends, so frame ``t`` is centred on sample ``t * hop_length``.
- Levels are ``10 * log10(max(power, log_floor))`` in dB relative to a
  full-scale (amplitude 1) power of 1, like ``librosa.power_to_db(ref=1.0,
  amin=log_floor, top_db=None)``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from earmark.config import FeatureConfig
from earmark.errors import ConfigError
from earmark.frontend.filters import centred_window, dct_matrix, mel_filterbank, periodic_hann
from earmark.frontend.fourier import FramePower

#: The feature kinds :class:`FrontEnd` knows.
KINDS = ("spectrogram", "logmel", "mfcc", "spectrogram128")

# The "spectrogram128" preset transcribes the seed project's image front-end:
# fixed sizes in samples, chosen for 1 s clips at 16 kHz.
SEED_WINDOW = 512      #: samples per frame (symmetric Hann, np.hanning)
SEED_HOP = 121         #: samples between frame starts
SEED_FRAMES = 128      #: frames kept, the first starting at sample 0
SEED_BINS = 128        #: rfft bins 1..128 (DC dropped)
#: Samples the seed preset reads; shorter input is zero-padded to this.
SEED_SAMPLES = SEED_WINDOW + (SEED_FRAMES - 1) * SEED_HOP
# Added to the min-max ranges so that a silent clip gives -0.5, not NaN;
# far below float32 resolution for any real clip, so results are unchanged.
_SEED_EPSILON = 1e-12

#: With ``mean_normalize``, frames whose loudest band lies more than this far
#: below the window's loudest frame count as silence (dB).
ACTIVE_DB = 40.0

# 10 * log10(x) == _DB_PER_NEPER * ln(x); ONNX has Log but no Log10.
_DB_PER_NEPER = 10.0 / math.log(10.0)


# --------------------------------------------------------------------------
# Geometry and validation


def _geometry(config: FeatureConfig, sample_rate: int) -> tuple[int, int, int]:
    """``(window_length, hop_length, n_fft)`` in samples for a config."""
    if config.kind == "spectrogram128":
        return SEED_WINDOW, SEED_HOP, SEED_WINDOW
    window_length = int(round(config.window_ms * sample_rate / 1000.0))
    hop_length = int(round(config.hop_ms * sample_rate / 1000.0))
    if window_length < 2:
        raise ConfigError(f"features.window_ms = {config.window_ms} gives {window_length} "
                          f"samples at {sample_rate} Hz; it must give at least 2")
    if hop_length < 1:
        raise ConfigError(f"features.hop_ms = {config.hop_ms} gives {hop_length} samples "
                          f"at {sample_rate} Hz; it must give at least 1")
    n_fft = config.n_fft or 1 << (window_length - 1).bit_length()
    if n_fft < window_length:
        raise ConfigError(f"features.n_fft = {config.n_fft} is shorter than the window "
                          f"({window_length} samples = {config.window_ms} ms at "
                          f"{sample_rate} Hz); use n_fft >= {window_length} or 0 (automatic)")
    return window_length, hop_length, n_fft


def _fmax(config: FeatureConfig, sample_rate: int) -> float:
    """The filterbank's upper edge in Hz (0 in the config means Nyquist)."""
    return config.fmax if config.fmax > 0 else sample_rate / 2.0


def _validate(config: FeatureConfig, sample_rate: int) -> None:
    """Reject settings no front-end can honour, saying what is allowed."""
    if config.kind not in KINDS:
        raise ConfigError(f"features.kind = {config.kind!r} is not one of {list(KINDS)}")
    if sample_rate <= 0:
        raise ConfigError(f"sample_rate must be > 0 Hz, got {sample_rate}")
    if config.deltas not in (0, 1, 2):
        raise ConfigError(f"features.deltas = {config.deltas} must be 0, 1 or 2")
    if config.delta_width < 3 or config.delta_width % 2 == 0:
        raise ConfigError(f"features.delta_width = {config.delta_width} must be odd and >= 3")
    if not config.log_floor > 0:
        raise ConfigError(f"features.log_floor = {config.log_floor} must be > 0 "
                          f"(it keeps log10 away from zero)")
    if config.kind in ("logmel", "mfcc") and config.n_mels < 1:
        raise ConfigError(f"features.n_mels = {config.n_mels} must be >= 1")
    if config.kind == "mfcc" and not 1 <= config.n_mfcc <= config.n_mels:
        raise ConfigError(f"features.n_mfcc = {config.n_mfcc} must be in 1..n_mels "
                          f"({config.n_mels})")


def _min_samples(kind: str, center: bool, n_fft: int) -> int:
    """The shortest input (samples) that yields at least one frame."""
    if kind == "spectrogram128":
        return 1                      # zero-padded to SEED_SAMPLES
    if center:
        return n_fft // 2 + 1         # reflect padding needs pad < length
    return n_fft


def _frames(kind: str, center: bool, n_fft: int, hop_length: int, samples: int) -> int:
    """Frames produced from ``samples`` samples (checked against the minimum)."""
    needed = _min_samples(kind, center, n_fft)
    if samples < needed:
        raise ConfigError(f"input of {samples} samples is too short for this front-end: "
                          f"it needs at least {needed} samples (n_fft = {n_fft}, "
                          f"center = {center}); pad the clip or use a shorter window")
    if kind == "spectrogram128":
        return SEED_FRAMES
    padded = samples + 2 * (n_fft // 2) if center else samples
    return 1 + (padded - n_fft) // hop_length


# --------------------------------------------------------------------------
# Fixed matrices (numpy, float64)


def _dft_basis(window: np.ndarray, n_fft: int, bins: np.ndarray, first_sample: int) -> np.ndarray:
    """Windowed real/imaginary DFT rows for a conv1d kernel.

    Row ``j`` (``j < len(bins)``) is ``window * cos(2 pi bins[j] n / n_fft)``
    and row ``len(bins) + j`` the sine, for ``n = first_sample +
    arange(len(window))``: the kernel may cover just the non-zero part of a
    frame whose window is zero-padded to ``n_fft``.

    Returns
    -------
    np.ndarray, shape (2 * len(bins), 1, len(window))
    """
    positions = first_sample + np.arange(len(window))
    phase = 2.0 * np.pi * np.outer(bins, positions) / n_fft
    rows = np.concatenate([np.cos(phase), np.sin(phase)]) * window[None, :]
    return rows[:, None, :]


def _delta_kernel(width: int) -> np.ndarray:
    """Regression weights ``n / (2 sum n^2)`` for ``n = -N..N`` (``N = width // 2``)."""
    half = width // 2
    offsets = np.arange(-half, half + 1, dtype=np.float64)
    return offsets / (2.0 * np.sum(np.arange(1, half + 1) ** 2))


# --------------------------------------------------------------------------
# The torch module


class FrontEnd(torch.nn.Module):
    """Waveform -> features, as a traceable torch module.

    Parameters
    ----------
    config : FeatureConfig
        What to compute (kind, window and hop in ms, mel/MFCC sizes, deltas).
    sample_rate : int
        Sampling rate of the input in Hz.

    Notes
    -----
    ``forward(waveform)`` takes float ``(batch, samples)`` and returns
    ``(batch, channels, bands, frames)``: channels are the features, then
    their delta and delta-delta (``1 + config.deltas``); bands ascend in
    frequency (or MFCC index).

    The STFT is :class:`~earmark.frontend.fourier.FramePower`: frames cut by reshapes,
    then an FFT split once into small matrix products, all plain ONNX ops
    (onnxruntime's own STFT op is about 3x slower than even a dense DFT as a
    convolution, and the split DFT is about 2x faster than that). Only the
    bins some filter uses are computed, and the log-mel filterbank weighs
    the spectrum in the split's own bin order, so nothing is reordered.

    Buffers are created in torch's default dtype and follow ``.to(dtype)``:
    call ``.double()`` to run in float64 on float64 input. They are not
    persistent (not in ``state_dict``) because the config rebuilds them.

    ``kind = "spectrogram128"`` reproduces the seed project's image
    front-end and ignores ``window_ms``, ``hop_ms``, ``n_fft`` and
    ``center``: a symmetric Hann window (``np.hanning(512)``) every 121
    samples, 128 frames from sample 0 (shorter input is zero-padded to
    :data:`SEED_SAMPLES` = 15879 samples, longer input is cut), magnitude of
    rfft bins 1..128, then per clip ``s = (s - min) / (max - min)``,
    ``s = log10(100 s + 0.01)``, ``s = (s - min) / (max - min) - 0.5``. It is
    meant for 1 s at 16 kHz (bins 1..128 = 31 Hz .. 4 kHz) and is not
    rescaled for other rates.
    """

    def __init__(self, config: FeatureConfig, sample_rate: int):
        super().__init__()
        _validate(config, sample_rate)
        self.config = config
        self.sample_rate = int(sample_rate)
        self.kind = config.kind
        self._window_length, self._hop_length, self._n_fft = _geometry(config, sample_rate)
        # Where the window starts inside its n_fft frame (zeros before it).
        self._skip_left = (self._n_fft - self._window_length) // 2
        if self.kind == "spectrogram128":
            self._init_seed()
        else:
            self._init_spectral()
        if config.deltas:
            kernel = _delta_kernel(config.delta_width).reshape(1, 1, 1, -1)
            self._buffer("delta_kernel", kernel)

    def _buffer(self, name: str, values: np.ndarray) -> None:
        tensor = torch.as_tensor(values, dtype=torch.get_default_dtype()).contiguous()
        self.register_buffer(name, tensor, persistent=False)

    def _init_seed(self) -> None:
        bins = np.arange(1, SEED_BINS + 1)
        self._keep_layout(np.hanning(SEED_WINDOW), bins, 0)
        self._buffer("dft_basis", _dft_basis(np.hanning(SEED_WINDOW), SEED_WINDOW, bins, 0))
        self._bands = SEED_BINS

    def _init_spectral(self) -> None:
        config = self.config
        all_bins = np.arange(self._n_fft // 2 + 1)
        if self.kind == "spectrogram":
            bins = all_bins
            self._bands = len(all_bins)
        else:
            weights = mel_filterbank(self.sample_rate, self._n_fft, config.n_mels,
                                     config.fmin, _fmax(config, self.sample_rate))
            used = np.flatnonzero(weights.max(axis=0) > 0)
            bins = all_bins[used[0]:used[-1] + 1]      # bins outside all filters: skip
            self._bands = config.n_mels
            if self.kind == "mfcc":
                self._buffer("dct_weights", dct_matrix(config.n_mfcc, config.n_mels))
                self._bands = config.n_mfcc
        self.spectrum = FramePower(centred_window(self._window_length, self._n_fft),
                                   self._hop_length, int(bins[-1]))
        if self.kind != "spectrogram":
            # The filterbank weighs the split-order spectrum as it comes (see fourier).
            self._buffer("mel_weights", self.spectrum.filterbank(
                torch.as_tensor(weights[:, bins]), bins).numpy())
        self._keep_layout(periodic_hann(self._window_length), bins, self._skip_left)

    def _keep_layout(self, window: np.ndarray, bins: np.ndarray, first_sample: int) -> None:
        """Remember how the tables were made, so export can write them as formulas."""
        self.dft_window = window
        self.dft_bins = bins
        self.dft_first_sample = first_sample

    # -- geometry ----------------------------------------------------------

    @property
    def window_length(self) -> int:
        """Samples under the analysis window."""
        return self._window_length

    @property
    def hop_length(self) -> int:
        """Samples between successive frames."""
        return self._hop_length

    @property
    def n_fft(self) -> int:
        """FFT length (samples per frame)."""
        return self._n_fft

    @property
    def channels(self) -> int:
        """Features plus their deltas: ``1 + config.deltas``."""
        return 1 + self.config.deltas

    @property
    def bands(self) -> int:
        """Frequency bands (or MFCC coefficients) per frame."""
        return self._bands

    @property
    def min_samples(self) -> int:
        """The shortest input, in samples, that gives one frame."""
        return _min_samples(self.kind, self.config.center, self._n_fft)

    def frames_for(self, samples: int) -> int:
        """Frames produced from ``samples`` samples of input.

        Raises
        ------
        ConfigError
            If ``samples`` is shorter than :attr:`min_samples`.
        """
        return _frames(self.kind, self.config.center, self._n_fft, self._hop_length,
                       int(samples))

    def output_shape(self, samples: int) -> tuple[int, int, int]:
        """``(channels, bands, frames)`` of one clip of ``samples`` samples."""
        return self.channels, self.bands, self.frames_for(samples)

    def extra_repr(self) -> str:
        return (f"kind={self.kind!r}, sample_rate={self.sample_rate}, "
                f"window_length={self._window_length}, hop_length={self._hop_length}, "
                f"n_fft={self._n_fft}, bands={self._bands}, channels={self.channels}")

    # -- computation -------------------------------------------------------

    def forward(self, waveform: torch.Tensor,
                frequency_scale: torch.Tensor | None = None) -> torch.Tensor:
        """Features of a batch of clips.

        Parameters
        ----------
        waveform : torch.Tensor, shape (batch, samples)
            Float samples in [-1, 1], same dtype as the module's buffers.
        frequency_scale : torch.Tensor, shape (batch,), optional
            Training only: stretch each clip's spectrum by this factor before
            the filterbank (vocal tract length perturbation, see
            :func:`scale_frequencies`). Exported graphs never take it.

        Returns
        -------
        torch.Tensor, shape (batch, channels, bands, frames)
            dB levels (spectrogram, logmel), MFCCs (mfcc) or the seed image
            in [-0.5, 0.5] (spectrogram128), then deltas per frame.
        """
        if waveform.dim() != 2:
            raise ValueError(f"FrontEnd expects (batch, samples), got shape "
                             f"{tuple(waveform.shape)}")
        samples = waveform.shape[-1]
        # Compare without int(): int() would pin a dynamic length when exported.
        if samples < self.min_samples:
            self.frames_for(samples)                 # raises ConfigError, says what is needed
        return self.finish(self.frames(waveform, frequency_scale))

    def frames(self, waveform: torch.Tensor,
               frequency_scale: torch.Tensor | None = None) -> torch.Tensor:
        """The per-frame part: ``(batch, rows, frames)``, each frame from its own samples.

        dB power (spectrogram), log-mel dB (logmel, mfcc) or magnitudes
        (spectrogram128), before anything that looks across frames. A stream
        computes only its new frames with this and keeps them in a ring buffer.
        """
        if self.kind == "spectrogram128":
            magnitudes = self._seed_magnitudes(waveform)
            if frequency_scale is not None:
                magnitudes = scale_frequencies(magnitudes, 1, frequency_scale)
            return magnitudes
        if self.config.center:
            half = self._n_fft // 2
            waveform = F.pad(waveform.unsqueeze(1), (half, half), mode="reflect").squeeze(1)
        return self.levels_of_frames(self.spectrum.cut(waveform), frequency_scale)

    def levels_of_frames(self, framed: torch.Tensor,
                         frequency_scale: torch.Tensor | None = None) -> torch.Tensor:
        """:meth:`frames` of frames already cut, ``(batch, frames, n_fft)`` (not for the
        ``spectrogram128`` kind): a stream that cuts its own frames skips the framing."""
        squared = self.spectrum.of_frames(framed)
        if self.kind != "spectrogram" and frequency_scale is None:
            mel = torch.matmul(squared.flatten(2), self.mel_weights)       # (batch, frames, mels)
            return self._decibels(mel.transpose(1, 2))
        power = self.spectrum.power(squared, self.dft_bins)               # (batch, bins, frames)
        if frequency_scale is not None:
            power = scale_frequencies(power, int(self.dft_bins[0]), frequency_scale)
        if self.kind == "spectrogram":
            return self._decibels(power)
        natural = self.mel_weights[self.spectrum.position_of(self.dft_bins)].t()
        return self._decibels(torch.matmul(natural, power))

    def finish(self, frames: torch.Tensor) -> torch.Tensor:
        """The across-frame part: levels relative to the window, DCT, deltas.

        Takes :meth:`frames` output for exactly one analysis window and returns
        ``(batch, channels, bands, frames)``, as :meth:`forward` does.
        """
        if self.kind == "spectrogram128":
            base = self._seed_image(frames)
        else:
            base = self._relative(frames)
            if self.config.mean_normalize:
                base = self._mean_normalized(base)
            if self.kind == "mfcc":
                base = torch.matmul(self.dct_weights, base)
        features = [base]
        for _ in range(self.config.deltas):
            features.append(self._delta(features[-1]))
        return torch.stack(features, dim=1)

    def _decibels(self, power: torch.Tensor) -> torch.Tensor:
        return _DB_PER_NEPER * torch.log(torch.clamp(power, min=self.config.log_floor))

    def _relative(self, decibels: torch.Tensor) -> torch.Tensor:
        if self.config.top_db <= 0:
            return decibels
        # Relative to the window's loudest bin, floored top_db below it: the
        # same features whatever the recording level (librosa's ref=np.max).
        loudest = decibels.amax(dim=(-2, -1), keepdim=True)
        return torch.clamp(decibels - loudest, min=-self.config.top_db)

    def _mean_normalized(self, decibels: torch.Tensor) -> torch.Tensor:
        """Each band less its mean over the window's active frames (cepstral mean
        normalization): a fixed colouring by the microphone or channel is a constant
        offset per band in dB, and goes. Frames more than ACTIVE_DB below the
        window's loudest frame (silence, padding) are left out of the mean and set
        to it, so how much silence a clip has does not move its features."""
        frame_peak = decibels.amax(dim=-2, keepdim=True)                 # (batch, 1, frames)
        active = (frame_peak >= frame_peak.amax(dim=-1, keepdim=True) - ACTIVE_DB)
        active = active.to(decibels.dtype)
        mean = (decibels * active).sum(dim=-1, keepdim=True) / active.sum(dim=-1, keepdim=True)
        return (decibels - mean) * active

    def _seed_magnitudes(self, waveform: torch.Tensor) -> torch.Tensor:
        # Pad then cut to exactly SEED_SAMPLES: a fixed size whatever the
        # input length, with no data-dependent branch for the tracer.
        signal = F.pad(waveform, (0, SEED_SAMPLES))[:, :SEED_SAMPLES].unsqueeze(1)
        spectrum = F.conv1d(signal, self.dft_basis, stride=SEED_HOP)
        real, imaginary = spectrum[:, :SEED_BINS], spectrum[:, SEED_BINS:]
        return torch.sqrt(real * real + imaginary * imaginary)

    def _seed_image(self, magnitudes: torch.Tensor) -> torch.Tensor:
        image = _min_max(magnitudes)
        image = torch.log10(image * 100.0 + 0.01)
        return _min_max(image) - 0.5

    def _delta(self, features: torch.Tensor) -> torch.Tensor:
        """Regression delta over ``delta_width`` frames, edges replicated."""
        half = self.config.delta_width // 2
        padded = F.pad(features, (half, half), mode="replicate")
        return F.conv2d(padded.unsqueeze(1), self.delta_kernel).squeeze(1)


def scale_frequencies(spectrum: torch.Tensor, first_bin: int,
                      factors: torch.Tensor) -> torch.Tensor:
    """Stretch each example's spectrum along frequency: bin ``b`` takes bin ``b / factor``.

    Vocal tract length perturbation (Jaitly & Hinton, 2013): a factor above 1
    moves formants and harmonics up, as a shorter vocal tract would, without
    changing timing. Linear interpolation between bins; beyond the edges the
    edge bin is repeated.

    Parameters
    ----------
    spectrum : torch.Tensor, shape (batch, bins, frames)
        Power or magnitude; row ``j`` is FFT bin ``first_bin + j``.
    first_bin : int
        The FFT bin of row 0 (front-ends skip bins no filter uses).
    factors : torch.Tensor, shape (batch,)
        Positive stretch factors, 1 = unchanged.
    """
    batch, bins, frames = spectrum.shape
    rows = torch.arange(bins, device=spectrum.device, dtype=spectrum.dtype)
    source = (rows[None, :] + first_bin) / factors[:, None].to(spectrum.dtype) - first_bin
    source = source.clamp(0, bins - 1)
    below = source.floor().long()
    above = (below + 1).clamp(max=bins - 1)
    weight = (source - below)[:, :, None]
    take = lambda index: spectrum.gather(1, index[:, :, None].expand(batch, bins, frames))
    return take(below) * (1 - weight) + take(above) * weight


def _min_max(image: torch.Tensor) -> torch.Tensor:
    """Scale each clip of (batch, bands, frames) to [0, 1]."""
    low = torch.amin(image, dim=(1, 2), keepdim=True)
    high = torch.amax(image, dim=(1, 2), keepdim=True)
    return (image - low) / (high - low + _SEED_EPSILON)


# --------------------------------------------------------------------------
# The numpy reference


def reference_features(waveform: np.ndarray, config: FeatureConfig,
                       sample_rate: int) -> np.ndarray:
    """The features of one clip in plain numpy (float64), for tests.

    Frames are cut one by one and transformed with ``np.fft.rfft``; nothing
    is shared with :class:`FrontEnd` except :func:`mel_filterbank` and
    :func:`dct_matrix`, which are tested against librosa separately.

    Parameters
    ----------
    waveform : np.ndarray, shape (samples,)
        One clip.
    config : FeatureConfig
    sample_rate : int
        Hz.

    Returns
    -------
    np.ndarray, shape (channels, bands, frames), float64
    """
    waveform = np.asarray(waveform, dtype=np.float64)
    if waveform.ndim != 1:
        raise ValueError(f"reference_features expects one clip (samples,), got shape "
                         f"{waveform.shape}")
    _validate(config, sample_rate)
    window_length, hop_length, n_fft = _geometry(config, sample_rate)
    frames = _frames(config.kind, config.center, n_fft, hop_length, len(waveform))
    if config.kind == "spectrogram128":
        base = _reference_seed_image(waveform)
    else:
        if config.center:
            waveform = np.pad(waveform, n_fft // 2, mode="reflect")
        window = centred_window(window_length, n_fft)
        spectra = [np.fft.rfft(waveform[t * hop_length:t * hop_length + n_fft] * window)
                   for t in range(frames)]
        base = _reference_from_power(np.abs(np.array(spectra).T) ** 2, config, sample_rate,
                                     n_fft)
    stack = [base]
    for _ in range(config.deltas):
        stack.append(_reference_delta(stack[-1], config.delta_width))
    return np.stack(stack)


def _reference_from_power(power: np.ndarray, config: FeatureConfig, sample_rate: int,
                          n_fft: int) -> np.ndarray:
    def decibels(values: np.ndarray) -> np.ndarray:
        levels = 10.0 * np.log10(np.maximum(values, config.log_floor))
        if config.top_db > 0:
            levels = np.maximum(levels - levels.max(), -config.top_db)
        if config.mean_normalize:
            frame_peak = levels.max(axis=0)
            active = frame_peak >= frame_peak.max() - ACTIVE_DB
            levels = (levels - levels[:, active].mean(axis=1, keepdims=True)) * active
        return levels

    if config.kind == "spectrogram":
        return decibels(power)
    weights = mel_filterbank(sample_rate, n_fft, config.n_mels, config.fmin,
                             _fmax(config, sample_rate))
    log_mel = decibels(weights @ power)
    if config.kind == "logmel":
        return log_mel
    return dct_matrix(config.n_mfcc, config.n_mels) @ log_mel


def _reference_seed_image(waveform: np.ndarray) -> np.ndarray:
    signal = np.zeros(SEED_SAMPLES)
    kept = min(len(waveform), SEED_SAMPLES)
    signal[:kept] = waveform[:kept]
    window = np.hanning(SEED_WINDOW)
    spectra = [np.fft.rfft(signal[t * SEED_HOP:t * SEED_HOP + SEED_WINDOW] * window)
               for t in range(SEED_FRAMES)]
    image = np.abs(np.array(spectra).T)[1:SEED_BINS + 1]

    def min_max(values: np.ndarray) -> np.ndarray:
        return (values - values.min()) / (values.max() - values.min() + _SEED_EPSILON)

    return min_max(np.log10(min_max(image) * 100.0 + 0.01)) - 0.5


def _reference_delta(features: np.ndarray, width: int) -> np.ndarray:
    half = width // 2
    padded = np.pad(features, ((0, 0), (half, half)), mode="edge")
    frames = features.shape[1]
    kernel = _delta_kernel(width)
    return sum(kernel[i] * padded[:, i:i + frames] for i in range(width))
