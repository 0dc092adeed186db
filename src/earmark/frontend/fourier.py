"""Power spectra of overlapping frames, as a few small matrix products (one FFT split).

A DFT of ``n_fft`` points as one dense matrix costs ``n_fft`` multiplies per
bin; splitting ``n_fft = rows x columns`` (Cooley-Tukey, once) costs about
``rows + columns``: for 40 log-mel bands of 30 ms frames at 16 kHz
(``n_fft = 512 = 16 x 32``) 51k multiply-adds a frame instead of 233k.
Every step is a plain tensor operation (reshape, matrix product,
element-wise maths), so the same code trains in torch and exports to ONNX,
where onnxruntime runs it about twice as fast as the dense DFT as a
strided convolution, for a whole window and for a stream's few new frames.

With sample ``n = columns * a + b`` of a frame (``a < rows``, ``b < columns``)
and bin ``k = c + rows * d`` (``c < rows``, ``d < columns``)::

    X[c + rows d] = sum_b  W_columns^(b d)  *  W_n_fft^(b c)  *  sum_a x[columns a + b] W_rows^(a c)
                           \\ stage two /     \\ twiddle /       \\ stage one: a DFT over a  /

with ``W_P = exp(-2 pi i / P)``. Only the ``d`` that reach the highest bin
wanted are computed. The result comes in that split order, ``(c, d)``;
:class:`FramePower` says where each bin lands (``position_of``), so a
filterbank can take it in that order as it is (``filterbank``).

When ``n_fft`` is prime the split is ``1 x n_fft``: one dense DFT.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def split(n_fft: int) -> tuple[int, int]:
    """``(rows, columns)`` with ``rows * columns == n_fft`` and ``rows`` the divisor
    nearest ``sqrt(n_fft)`` from below (the fewest multiplies)."""
    rows = max(d for d in range(1, math.isqrt(n_fft) + 1) if n_fft % d == 0)
    return rows, n_fft // rows


def phase_table(first: np.ndarray, second: np.ndarray, period: int) -> np.ndarray:
    """``2 pi (first x second mod period) / period``, exact in the integer product."""
    return 2.0 * np.pi * (np.outer(first, second) % period) / period


class FramePower(torch.nn.Module):
    """Signal ``(batch, samples)`` -> ``|X|^2`` of its frames, in split order.

    Parameters
    ----------
    window : np.ndarray, shape (n_fft,)
        The analysis window over a whole frame (zeros where it is shorter).
    hop_length : int
        Samples between frame starts; frame ``t`` starts at ``t * hop_length``.
    last_bin : int
        The highest bin needed (bins ``0..last_bin`` are computed, and a few
        above it where the split rounds up).

    ``forward`` returns ``(batch, frames, rows, 2 * depth)``: the real parts
    of the computed bins, then their imaginary parts, each ``(c, d)`` at
    ``[..., c, d]`` and ``[..., c, depth + d]``, *squared* (sum the two
    halves for the power, or let a filterbank weigh both, see
    :meth:`filterbank`).
    """

    def __init__(self, window: np.ndarray, hop_length: int, last_bin: int):
        super().__init__()
        self.n_fft = len(window)
        self.hop_length = int(hop_length)
        rows, columns = split(self.n_fft)
        self.rows, self.columns = rows, columns
        self.depth = min(columns, last_bin // rows + 1)      # the d that reach last_bin
        a, b = np.arange(rows), np.arange(columns)
        stage_one = phase_table(a, a, rows)                   # (c, a)
        twiddle = phase_table(a, b, self.n_fft)               # (c, b)
        stage_two = phase_table(b, np.arange(self.depth), columns)  # (b, d)
        cos, sin = np.cos(stage_two), np.sin(stage_two)
        self._buffer("frame_window", np.asarray(window).reshape(rows, columns))
        self._buffer("stage_one_real", np.cos(stage_one))
        self._buffer("stage_one_imaginary", -np.sin(stage_one))
        self._buffer("twiddle_real", np.cos(twiddle))
        self._buffer("twiddle_imaginary", -np.sin(twiddle))
        # [re | im] (2 columns) -> [re | im] (2 depth) of a product by exp(-i phase).
        self._buffer("stage_two", np.block([[cos, -sin], [sin, cos]]))

    def _buffer(self, name: str, values: np.ndarray) -> None:
        tensor = torch.as_tensor(values, dtype=torch.get_default_dtype()).contiguous()
        self.register_buffer(name, tensor, persistent=False)

    def position_of(self, bins: np.ndarray) -> np.ndarray:
        """Where each bin's real part lands in the flattened output."""
        bins = np.asarray(bins)
        return (bins % self.rows) * 2 * self.depth + bins // self.rows

    def frames_for(self, samples) -> int:
        return (samples - self.n_fft) // self.hop_length + 1

    def forward(self, signal: torch.Tensor) -> torch.Tensor:
        return self.of_frames(self.cut(signal))

    def of_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """The squared split spectrum of frames already cut, ``(batch, T, n_fft)``."""
        frames = frames.reshape(frames.shape[0], -1, self.rows, self.columns)
        frames = frames * self.frame_window
        real = torch.matmul(self.stage_one_real, frames)           # (batch, T, c, b)
        imaginary = torch.matmul(self.stage_one_imaginary, frames)
        twisted = torch.cat([real * self.twiddle_real - imaginary * self.twiddle_imaginary,
                             real * self.twiddle_imaginary + imaginary * self.twiddle_real],
                            dim=-1)
        spectrum = torch.matmul(twisted, self.stage_two)           # (batch, T, c, 2 depth)
        return spectrum * spectrum

    def power(self, squared: torch.Tensor, bins: np.ndarray) -> torch.Tensor:
        """``re^2 + im^2`` of ``bins`` (ascending), shape (batch, bins, frames)."""
        flat = squared.flatten(2)
        real = torch.as_tensor(self.position_of(bins), device=flat.device)
        return (flat[..., real] + flat[..., real + self.depth]).transpose(1, 2)

    def filterbank(self, weights: torch.Tensor, bins: np.ndarray) -> torch.Tensor:
        """Filterbank ``weights`` (filters, ``bins``) rearranged to weigh :meth:`forward`'s
        flattened output directly: each bin's weight at its real and imaginary place,
        zero where a bin is not among ``bins``. Shape (positions, filters)."""
        index = np.full(self.rows * 2 * self.depth, len(bins))  # -> an appended zero column
        real = self.position_of(bins)
        index[real] = np.arange(len(bins))
        index[real + self.depth] = np.arange(len(bins))
        padded = F.pad(weights, (0, 1))
        return padded[:, torch.as_tensor(index, device=weights.device)].t()

    def cut(self, signal: torch.Tensor) -> torch.Tensor:
        """``(batch, frames, n_fft)``: frame ``t`` is ``signal[t hop : t hop + n_fft]``.

        The signal is cut into rows of ``hop_length`` samples; a frame is
        ``pieces`` consecutive rows side by side, cut to ``n_fft``.
        """
        hop, n_fft = self.hop_length, self.n_fft
        count = self.frames_for(signal.shape[-1])
        pieces = -(-n_fft // hop)
        padded = F.pad(signal, (0, pieces * hop))[:, :(count + pieces - 1) * hop]
        rows = padded.reshape(signal.shape[0], -1, hop)
        return torch.cat([rows[:, j:j + count] for j in range(pieces)], dim=-1)[..., :n_fft]
