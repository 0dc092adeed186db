"""The front-end as a torch module: waveform -> (log-)spectrogram, log-mel or MFCC (+ deltas).

:class:`FrontEnd` is a ``torch.nn.Module`` so that it can sit inside the
exported ONNX graph (raw waveform in, class probabilities out): a deployed
model then needs no feature code of its own. Every step is a fixed tensor
operation (convolution, matrix product, element-wise maths) with no Python
control flow that depends on the data, so ``torch.onnx.export(...,
dynamo=True)`` traces it with a dynamic batch dimension.

Sizes, validation and the spectral layout come from
:mod:`~earmark.frontend.geometry` (numpy), which states the conventions
(librosa's); :func:`~earmark.frontend.reference.reference_features` computes
the same features in plain numpy, and tests hold the two against each other
and against librosa.

Levels are ``10 * log10(max(power, log_floor))`` in dB relative to a
full-scale (amplitude 1) power of 1, like ``librosa.power_to_db(ref=1.0,
amin=log_floor, top_db=None)``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from earmark.config import FeatureConfig
from earmark.frontend.filters import dct_matrix, mel_filterbank
from earmark.frontend.fourier import FramePower
from earmark.frontend.geometry import (ACTIVE_DB, SEED_BINS, SEED_EPSILON, SEED_HOP,
                                       SEED_SAMPLES, SpectralLayout, delta_kernel, dft_basis,
                                       filterbank_fmax, frame_count, frame_geometry,
                                       min_samples, spectral_layout, validate)

# 10 * log10(x) == _DB_PER_NEPER * ln(x); ONNX has Log but no Log10.
_DB_PER_NEPER = 10.0 / math.log(10.0)


class FrontEnd(torch.nn.Module):
    """Waveform -> features, as a traceable torch module.

    Parameters
    ----------
    config : FeatureConfig
        What to compute (kind, window and hop in ms, mel/MFCC sizes, deltas).
    sample_rate : int
        Sampling rate of the input in Hz.

    Attributes
    ----------
    layout : SpectralLayout
        The window and DFT bins computed (:func:`~earmark.frontend.geometry.spectral_layout`):
        the tables are built from it, and the ONNX exporter writes them back from it.
    spectrum : FramePower
        The STFT power (not for ``spectrogram128``, which uses a dense DFT, ``dft_basis``).

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
    :data:`~earmark.frontend.geometry.SEED_SAMPLES` = 15879 samples, longer
    input is cut), magnitude of rfft bins 1..128, then per clip
    ``s = (s - min) / (max - min)``, ``s = log10(100 s + 0.01)``,
    ``s = (s - min) / (max - min) - 0.5``. It is
    meant for 1 s at 16 kHz (bins 1..128 = 31 Hz .. 4 kHz) and is not
    rescaled for other rates.
    """

    def __init__(self, config: FeatureConfig, sample_rate: int):
        super().__init__()
        validate(config, sample_rate)
        self.config = config
        self.sample_rate = int(sample_rate)
        self.kind = config.kind
        self._window_length, self._hop_length, self._n_fft = frame_geometry(config, sample_rate)
        #: The window and DFT bins computed: what the tables below are made from.
        self.layout: SpectralLayout = spectral_layout(config, sample_rate)
        if self.kind == "spectrogram128":
            self._init_seed()
        else:
            self._init_spectral()
        if config.deltas:
            kernel = delta_kernel(config.delta_width).reshape(1, 1, 1, -1)
            self._buffer("delta_kernel", kernel)

    def _buffer(self, name: str, values: np.ndarray) -> None:
        tensor = torch.as_tensor(values, dtype=torch.get_default_dtype()).contiguous()
        self.register_buffer(name, tensor, persistent=False)

    def _init_seed(self) -> None:
        layout = self.layout
        self._buffer("dft_basis", dft_basis(layout.window, layout.n_fft, layout.bins,
                                            layout.first_sample))
        self._bands = SEED_BINS

    def _init_spectral(self) -> None:
        config, layout = self.config, self.layout
        if self.kind == "spectrogram":
            self._bands = len(layout.bins)
        else:
            self._bands = config.n_mels
            if self.kind == "mfcc":
                self._buffer("dct_weights", dct_matrix(config.n_mfcc, config.n_mels))
                self._bands = config.n_mfcc
        self.spectrum = FramePower(layout.frame_window, self._hop_length, layout.last_bin)
        if self.kind != "spectrogram":
            weights = mel_filterbank(self.sample_rate, self._n_fft, config.n_mels,
                                     config.fmin, filterbank_fmax(config, self.sample_rate))
            # The filterbank weighs the split-order spectrum as it comes (see fourier).
            self._buffer("mel_weights", self.spectrum.filterbank(
                torch.as_tensor(weights[:, layout.bins]), layout.bins).numpy())

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
        return min_samples(self.kind, self.config.center, self._n_fft)

    def frames_for(self, samples: int) -> int:
        """Frames produced from ``samples`` samples of input.

        Raises
        ------
        ConfigError
            If ``samples`` is shorter than :attr:`min_samples`.
        """
        return frame_count(self.kind, self.config.center, self._n_fft, self._hop_length,
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
        power = self.spectrum.power(squared, self.layout.bins)          # (batch, bins, frames)
        if frequency_scale is not None:
            power = scale_frequencies(power, self.layout.first_bin, frequency_scale)
        if self.kind == "spectrogram":
            return self._decibels(power)
        natural = self.mel_weights[self.spectrum.position_of(self.layout.bins)].t()
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
    return (image - low) / (high - low + SEED_EPSILON)
