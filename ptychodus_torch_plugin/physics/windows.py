"""Integer/fractional decomposition of patch positions and the window gather/shift primitives.

Extraction and placement (object stitching and the group canvas) are both built from these pieces, so the
two directions cannot drift apart: extraction crops at the integer origin then shifts by -frac, placement
shifts by +frac then adds at the same origin.
"""

import torch
from torch import Tensor

from .shift import fourier_shift

#: Fractions closer than this (pixels) to 0 or 1 snap to the integer grid, so float noise such as
#: 10.99999997 crops at 11 instead of shifting a crop at 10 by almost a full (circular) pixel.
SNAP_TOLERANCE = 1e-4


def split_positions(positions: Tensor, patch_size: int) -> tuple[Tensor, Tensor]:
    """Split positions (..., 2) into the window's integer top-left origin and fractional remainder.

    A position p puts patch pixel (N//2, N//2) on object pixel p, so the window's top-left is
    p - N//2 = origin + frac with origin = floor and 0 <= frac < 1.
    """
    top_left = positions - (patch_size // 2)
    origin = torch.floor(top_left)
    frac = top_left - origin
    round_up = frac > 1.0 - SNAP_TOLERANCE
    origin = origin + round_up.to(origin.dtype)
    frac = torch.where(round_up | (frac < SNAP_TOLERANCE), torch.zeros_like(frac), frac)
    return origin.long(), frac


def window_indices(origins: Tensor, patch_size: int) -> tuple[Tensor, Tensor]:
    """Row and column indices (..., N) of each window given its integer top-left origins (..., 2)."""
    span = torch.arange(patch_size, device=origins.device)
    return origins[..., 0, None] + span, origins[..., 1, None] + span


def gather_windows(images: Tensor, origins: Tensor, patch_size: int, clamp: bool = False) -> Tensor:
    """Crop (B, C, N, N) windows from images (B, H, W) at integer origins (B, C, 2).

    With ``clamp`` the indices are clamped and out-of-range samples are zeroed instead of raising, which
    avoids a host sync inside the training step.
    """
    height, width = images.shape[-2:]
    rows, cols = window_indices(origins, patch_size)
    batch = torch.arange(images.shape[0], device=images.device)[:, None, None, None]
    if not clamp:
        return images[batch, rows[..., :, None], cols[..., None, :]]
    valid = ((rows >= 0) & (rows < height))[..., :, None] & ((cols >= 0) & (cols < width))[..., None, :]
    rows = rows.clamp(0, height - 1)
    cols = cols.clamp(0, width - 1)
    out = images[batch, rows[..., :, None], cols[..., None, :]]
    return out * valid.to(out.real.dtype)


def shift_windows(windows: Tensor, shifts: Tensor) -> Tensor:
    """Fourier-shift windows (..., N, N) by shifts (..., 2); rows with a zero shift are copied exactly."""
    shifted = fourier_shift(windows, shifts)
    is_integer = (shifts == 0).all(dim=-1)[..., None, None]
    return torch.where(is_integer, windows.to(shifted.dtype), shifted)


def bilinear_shift_windows(windows: Tensor, shifts: Tensor) -> Tensor:
    """Shift windows (..., N, N) by sub-pixel shifts (..., 2) = (row, col) in [0, 1) with bilinear
    interpolation, circularly (the remainders of :func:`split_positions`).

    Same convention as :func:`fourier_shift`: out(r, c) = in(r - s_row, c - s_col). Why a second kernel:
    a Fourier shift is exact for band-limited, periodic windows (object crops), but a decoded patch that
    stops at the edge of its support is neither, and its Fourier shift rings across the whole window
    (a 2-pixel ripple; docs/findings.md QUALITY-006). Bilinear taps are local and non-negative, so a weight
    map shifted with them stays a weight map. A zero shift returns the window unchanged.
    """
    real = windows.real.dtype if windows.is_complex() else windows.dtype
    shifts = torch.as_tensor(shifts, device=windows.device).to(real)
    fr, fc = shifts[..., 0, None, None], shifts[..., 1, None, None]
    # Separable, rows then columns, in place on the rolled copies: one pass with four taps took 3x as long
    # on the CPU, and out-of-place temporaries made inference's whole pass 0.1 s slower (QUALITY-006).
    # Differentiable in ``windows``, not in ``shifts`` (the in-place products overwrite what that needs).
    rows = torch.roll(windows, 1, dims=-2).sub_(windows).mul_(fr).add_(windows)
    return torch.roll(rows, 1, dims=-1).sub_(rows).mul_(fc).add_(rows)
