"""Group overlap constraint: the C patches of a group share one canvas, averaged where they overlap.

Canvas frame: canvas pixel (S//2, S//2) is the group centre (the mean of the members' positions), and a
member with offset o (row, col) has its patch pixel (N//2, N//2) on canvas pixel S//2 + o, the same
meaning a scan position has on the object. Placement and re-cutting therefore reuse the object's
window primitives; here indices are clamped rather than checked so the training step never syncs.
"""

import math

import numpy as np
import torch
from torch import Tensor

from ..errors import DataError
from ._dtypes import as_complex, real_dtype
from .windows import gather_windows, shift_windows, split_positions, window_indices


def group_canvas_size(offsets: Tensor | np.ndarray, patch_size: int, margin: int = 0) -> int:
    """Smallest canvas side S = N + 2 * (ceil(max |offset|) + margin) that holds every patch of every group.

    Called once per data set (it reads the offsets on the host), not in the training step.
    """
    off = offsets.detach().cpu().numpy() if isinstance(offsets, Tensor) else np.asarray(offsets, dtype=float)
    if off.shape[-1:] != (2,):
        raise DataError(f"offsets must end in a (row, col) axis of size 2, got {off.shape}")
    if patch_size < 1 or margin < 0:
        raise DataError(f"patch size must be positive and margin non-negative, got {patch_size}, {margin}")
    if off.size and not np.isfinite(off).all():
        raise DataError("offsets contain NaN or infinite values")
    reach = int(math.ceil(float(np.abs(off).max()))) if off.size else 0
    return patch_size + 2 * (reach + margin)


def _canvas_positions(offsets: Tensor, canvas_size: int, device: torch.device) -> Tensor:
    return torch.as_tensor(offsets, device=device).to(torch.float64) + (canvas_size // 2)


def _check_batch(patches_or_canvas: Tensor, offsets: Tensor, what: str) -> None:
    if offsets.ndim != 3 or offsets.shape[-1] != 2 or offsets.shape[0] != patches_or_canvas.shape[0]:
        raise DataError(
            f"offsets must have shape (B, C, 2) matching the {what} batch, got {tuple(offsets.shape)} "
            f"for {what} {tuple(patches_or_canvas.shape)}"
        )


def patches_to_canvas(
    patches: Tensor,
    offsets: Tensor,
    canvas_size: int,
    weights: Tensor | None = None,
    eps: float = 1e-6,
) -> Tensor:
    """Place patches (B, C, N, N) at offsets (B, C, 2) on (B, S, S) canvases, averaging overlaps.

    With ``weights`` (N, N) the average is weighted (e.g. by probe intensity). Pixels whose weight is at
    most ``eps`` times the canvas's largest weight are 0; parts of patches falling outside the canvas are
    dropped. Differentiable in ``patches``; no host sync.
    """
    if patches.ndim != 4 or patches.shape[-1] != patches.shape[-2]:
        raise DataError(f"patches must have shape (B, C, N, N), got {tuple(patches.shape)}")
    offsets = torch.as_tensor(offsets, device=patches.device)
    _check_batch(patches, offsets, "patches")
    patches = as_complex(patches)
    batch, _, patch_size, _ = patches.shape
    size = int(canvas_size)
    real = real_dtype(patches.dtype)

    origins, frac = split_positions(_canvas_positions(offsets, size, patches.device), patch_size)
    windows = shift_windows(patches, frac)
    rows, cols = window_indices(origins, patch_size)  # (B, C, N)
    inside = ((rows >= 0) & (rows < size))[..., :, None] & ((cols >= 0) & (cols < size))[..., None, :]
    weight = inside.to(real)
    if weights is not None:
        weight = weight * torch.as_tensor(weights, device=patches.device).to(real)
    base = torch.arange(batch, device=patches.device)[:, None, None, None] * (size * size)
    flat = (base + rows.clamp(0, size - 1)[..., :, None] * size + cols.clamp(0, size - 1)[..., None, :])
    flat = flat.reshape(-1)

    total = torch.zeros(batch * size * size, 2, dtype=real, device=patches.device)
    total = total.index_add(0, flat, torch.view_as_real(windows * weight).reshape(-1, 2))
    weight_sum = torch.zeros(batch * size * size, dtype=real, device=patches.device)
    weight_sum = weight_sum.index_add(0, flat, weight.expand_as(windows.real).reshape(-1))

    total = torch.view_as_complex(total).view(batch, size, size)
    weight_sum = weight_sum.view(batch, size, size)
    covered = weight_sum > eps * weight_sum.amax(dim=(-2, -1), keepdim=True)
    safe = torch.where(covered, weight_sum, torch.ones_like(weight_sum))
    return torch.where(covered, total / safe, torch.zeros_like(total))


def canvas_to_patches(canvas: Tensor, offsets: Tensor, patch_size: int) -> Tensor:
    """Re-cut (B, C, N, N) patches from canvases (B, S, S) at offsets (B, C, 2); exact inverse placement.

    Samples outside the canvas read as 0. Differentiable in ``canvas``; no host sync.
    """
    if canvas.ndim != 3:
        raise DataError(f"canvas must have shape (B, S, S), got {tuple(canvas.shape)}")
    offsets = torch.as_tensor(offsets, device=canvas.device)
    _check_batch(canvas, offsets, "canvas")
    canvas = as_complex(canvas)
    size = canvas.shape[-1]
    if canvas.shape[-2] != size:
        raise DataError(f"canvas must be square, got {tuple(canvas.shape[-2:])}")
    origins, frac = split_positions(_canvas_positions(offsets, size, canvas.device), patch_size)
    windows = gather_windows(canvas, origins, patch_size, clamp=True)
    return shift_windows(windows, -frac)
