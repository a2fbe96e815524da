"""Cutting object patches at scan positions (integer crop + Fourier sub-pixel shift)."""

import numpy as np
import torch
from torch import Tensor

from ..errors import DataError
from ._dtypes import as_complex
from .windows import gather_windows, shift_windows, split_positions


def as_positions(positions: Tensor | np.ndarray, device: torch.device) -> Tensor:
    """Positions as a float64 (M, 2) tensor on ``device``; float64 keeps sub-pixel fractions exact."""
    pos = torch.as_tensor(positions, device=device).to(torch.float64)
    if pos.ndim != 2 or pos.shape[-1] != 2:
        raise DataError(f"positions must have shape (M, 2) as (row, col), got {tuple(pos.shape)}")
    return pos


def check_windows_inside(origins: Tensor, patch_size: int, shape: tuple[int, int]) -> None:
    """Raise DataError if any window leaves an object of ``shape`` (host sync: not for the training step)."""
    if origins.numel() == 0:
        return
    height, width = shape
    low = origins.amin(dim=0)
    high = origins.amax(dim=0) + patch_size
    lo_r, lo_c, hi_r, hi_c = (int(v) for v in torch.cat([low, high]).tolist())
    if lo_r < 0 or lo_c < 0 or hi_r > height or hi_c > width:
        raise DataError(
            f"patches of size {patch_size} leave the {height}x{width} object: they span rows "
            f"[{lo_r}, {hi_r}) and cols [{lo_c}, {hi_c}); enlarge the object or drop edge positions"
        )


def extract_patches(obj: Tensor, positions: Tensor | np.ndarray, patch_size: int) -> Tensor:
    """Cut (M, N, N) patches from a complex object (H, W) at positions (M, 2) = (row, col) pixels.

    Patch pixel (i, j) samples the object at (p_row - N//2 + i, p_col - N//2 + j); fractional positions
    are served by a Fourier shift of the integer crop. Raises DataError if a patch leaves the object.
    """
    if obj.ndim != 2:
        raise DataError(f"object must have shape (H, W), got {tuple(obj.shape)}")
    if patch_size < 1:
        raise DataError(f"patch size must be positive, got {patch_size}")
    obj = as_complex(obj)
    origins, frac = split_positions(as_positions(positions, obj.device), patch_size)
    check_windows_inside(origins, patch_size, (obj.shape[0], obj.shape[1]))
    windows = gather_windows(obj.unsqueeze(0), origins.unsqueeze(0), patch_size)[0]
    if not bool((frac != 0).any()):
        return windows
    return shift_windows(windows, -frac)
