"""Sub-pixel translation by a Fourier phase ramp."""

import math

import torch
from torch import Tensor

from ._dtypes import as_complex


def _ramp(n: int, shifts: Tensor) -> Tensor:
    """exp(-2 pi i k s / n) for every frequency k of an n-point FFT, shape (..., n).

    Built in float64 from a separable 1-D ramp per axis, so large shifts keep an accurate phase at the
    cost of H + W (not H * W) exponentials.
    """
    freq = torch.fft.fftfreq(n, device=shifts.device, dtype=torch.float64)
    phase = (-2.0 * math.pi) * shifts.to(torch.float64).unsqueeze(-1) * freq
    return torch.complex(torch.cos(phase), torch.sin(phase))


def fourier_shift(images: Tensor, shifts: Tensor) -> Tensor:
    """Translate images (..., H, W) by shifts (..., 2) = (row, col) pixels, circularly.

    A positive shift moves content toward larger row/col: out(r, c) = in(r - s_row, c - s_col).
    Integer shifts equal ``torch.roll`` (up to rounding); shifting by +s then -s is the identity to float
    precision because the two ramps are exact conjugates. Differentiable in images and shifts.
    """
    images = as_complex(images)
    shifts = torch.as_tensor(shifts, device=images.device)
    height, width = images.shape[-2:]
    ramp_rows = _ramp(height, shifts[..., 0]).unsqueeze(-1)  # (..., H, 1)
    ramp_cols = _ramp(width, shifts[..., 1]).unsqueeze(-2)  # (..., 1, W)
    ramp = (ramp_rows * ramp_cols).to(images.dtype)
    return torch.fft.ifft2(torch.fft.fft2(images) * ramp)
