"""Weighted placement of patches back into an object, chunk by chunk, in bounded memory."""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..errors import DataError
from ._dtypes import as_complex, complex_dtype, real_dtype
from .patches import as_positions, check_windows_inside
from .windows import bilinear_shift_windows, shift_windows, split_positions, window_indices

#: How patches are moved by their sub-pixel remainders before they are added (see :class:`ObjectAccumulator`).
RESAMPLINGS = ("fourier", "bilinear")

#: Positions placed per chunk by :func:`stitch_patches`; 4096 patches of 64x64 complex64 is 128 MiB.
DEFAULT_CHUNK_SIZE = 4096


def _check_weights(weights: Tensor | None, patch_size: int) -> None:
    if weights is None:
        return
    if weights.is_complex() or weights.shape != (patch_size, patch_size):
        raise DataError(
            f"stitching weights must be real with shape ({patch_size}, {patch_size}), "
            f"got {weights.dtype} {tuple(weights.shape)}"
        )
    if bool((weights < 0).any()) or not bool(torch.isfinite(weights).all()):
        raise DataError("stitching weights must be finite and non-negative")


@dataclass(frozen=True)
class Placement:
    """Validated window origins (M, 2) and sub-pixel remainders (M, 2) of a scan's positions; ``frac`` is
    None when every position is on the pixel grid (then no Fourier shift is needed)."""

    origins: Tensor
    frac: Tensor | None
    patch_size: int


class ObjectAccumulator:
    """Running sums sum_k w*patch_k and sum_k w on the object grid.

    Patches are added in chunks and never kept, so memory is the object (plus one chunk) however long the
    scan. The result is the weighted average; pixels whose total weight is at most ``eps`` times the
    largest weight are uncovered and returned as 0.

    ``resampling`` says how a patch at a sub-pixel position reaches the object grid. ``fourier`` (default):
    the patch is Fourier-shifted, the exact inverse of :func:`extract_patches`, and the weight is applied on
    the integer grid. ``bilinear``: the weighted patch w*patch and the weight w are both moved with bilinear
    taps, so nothing rings at a patch's hard edges; what a network decodes (zero outside its support) is
    stitched this way (inference), which measured higher SSIM on every benchmark case (QUALITY-006).
    """

    def __init__(
        self,
        object_shape: Sequence[int],
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.complex64,
        resampling: str = "fourier",
    ) -> None:
        if len(object_shape) != 2 or min(object_shape) < 1:
            raise DataError(f"object shape must be (H, W) with positive sizes, got {tuple(object_shape)}")
        if not dtype.is_complex:
            raise DataError(f"the object accumulator needs a complex dtype, got {dtype}")
        if resampling not in RESAMPLINGS:
            raise DataError(f"unknown resampling '{resampling}'; choose one of {', '.join(RESAMPLINGS)}")
        self.resampling = resampling
        self.object_shape = (int(object_shape[0]), int(object_shape[1]))
        self.dtype = dtype
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        size = self.object_shape[0] * self.object_shape[1]
        # Complex sums kept as (H*W, 2) real pairs: index_add_ on real rows is supported on every backend.
        self._sum = torch.zeros(size, 2, dtype=real_dtype(dtype), device=self.device)
        self._weight = torch.zeros(size, dtype=real_dtype(dtype), device=self.device)

    def add(
        self, patches: Tensor | np.ndarray, positions: Tensor | np.ndarray, weights: Tensor | None = None
    ) -> None:
        """Add patches (M, N, N) placed at positions (M, 2) = (row, col), optionally weighted by (N, N).

        With ``fourier`` resampling, placement is the exact inverse of :func:`extract_patches`: shift by
        +frac, then add at the floor origin. The weight is applied on that integer grid (it is not sub-pixel
        shifted), which keeps the average exact for consistent patches and costs at most a one-pixel offset
        of the weighting. With ``bilinear``, w*patch and w are both shifted by +frac (see the class).
        """
        patches = as_complex(torch.as_tensor(patches)).to(device=self.device, dtype=self.dtype)
        if patches.ndim != 3 or patches.shape[-1] != patches.shape[-2]:
            raise DataError(f"patches must have shape (M, N, N), got {tuple(patches.shape)}")
        count, patch_size = patches.shape[0], patches.shape[-1]
        pos = as_positions(positions, self.device)
        if pos.shape[0] != count:
            raise DataError(f"{count} patches but {pos.shape[0]} positions")
        if count == 0:
            return
        if weights is not None:
            weights = torch.as_tensor(weights, device=self.device)
        _check_weights(weights, patch_size)
        origins, frac = split_positions(pos, patch_size)
        check_windows_inside(origins, patch_size, self.object_shape)

        self._accumulate(patches, origins, frac if bool((frac != 0).any()) else None, weights)

    def place(self, positions: Tensor | np.ndarray, patch_size: int) -> Placement:
        """Validate every position of a scan once and keep its window origin and sub-pixel remainder.

        :meth:`add_placed` then stitches chunks without re-checking them, so a long reconstruction does not
        wait for the host once per chunk.
        """
        pos = as_positions(positions, self.device)
        origins, frac = split_positions(pos, patch_size)
        check_windows_inside(origins, patch_size, self.object_shape)
        return Placement(origins, frac if bool((frac != 0).any()) else None, patch_size)

    def add_placed(self, patches: Tensor, placement: Placement, members: Tensor,
                   weights: Tensor | None = None) -> None:
        """Add patches (M, N, N) at the placed positions ``members`` (M,) (indices into ``place``'s
        positions). Patches must already be complex on this device; ``weights`` (N, N) is trusted."""
        frac = None if placement.frac is None else placement.frac[members]
        self._accumulate(patches.to(self.dtype), placement.origins[members], frac, weights)

    def _accumulate(self, patches: Tensor, origins: Tensor, frac: Tensor | None, weights: Tensor | None) -> None:
        """Sum placed patches into the running totals with ``index_add_`` (no host sync)."""
        count, patch_size = patches.shape[0], patches.shape[-1]
        rows, cols = window_indices(origins, patch_size)
        flat = (rows[:, :, None] * self.object_shape[1] + cols[:, None, :]).reshape(-1)
        real = real_dtype(self.dtype)
        w = torch.ones(patch_size, patch_size, dtype=real, device=self.device) if weights is None \
            else weights.to(real)
        per_patch = w.expand(count, patch_size, patch_size)
        if frac is None:
            values, weight_values = patches * w, per_patch
        elif self.resampling == "bilinear":  # the weighted patch and its weight move together
            values, weight_values = bilinear_shift_windows(patches * w, frac), bilinear_shift_windows(per_patch, frac)
        else:  # the patch moves, its weight stays on the integer grid
            values, weight_values = shift_windows(patches, frac) * w, per_patch
        weight_values = weight_values.reshape(-1)
        self._sum.index_add_(0, flat, torch.view_as_real(values).reshape(-1, 2))
        self._weight.index_add_(0, flat, weight_values)

    def reduce(self, group: object | None = None) -> None:
        """Sum the running totals over all ranks of a ``torch.distributed`` job (each rank stitched its
        share of the positions); afterwards every rank holds the whole object's sums."""
        import torch.distributed as dist

        dist.all_reduce(self._sum, group=group)  # type: ignore[arg-type]
        dist.all_reduce(self._weight, group=group)  # type: ignore[arg-type]

    def result(self, eps: float = 1e-6) -> tuple[Tensor, Tensor]:
        """Return (object (H, W) complex, weight map (H, W) real); uncovered pixels are 0."""
        weight = self._weight.view(self.object_shape)
        total = torch.view_as_complex(self._sum).view(self.object_shape)
        covered = weight > eps * weight.amax()
        safe = torch.where(covered, weight, torch.ones_like(weight))
        obj = torch.where(covered, total / safe, torch.zeros_like(total))
        return obj, weight.clone()


def stitch_patches(
    patches: Tensor | np.ndarray,
    positions: Tensor | np.ndarray,
    object_shape: Sequence[int],
    weights: Tensor | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    eps: float = 1e-6,
) -> tuple[Tensor, Tensor]:
    """Weighted average of patches (M, N, N) placed at positions (M, 2) on an (H, W) object.

    ``weights`` (N, N) real is typically the probe intensity sum_m |P_m|^2, so each object pixel is
    normalised by how strongly it was illuminated. Returns (object, weight map); pixels with ~zero weight
    are 0. Works through :class:`ObjectAccumulator` ``chunk_size`` patches at a time, so ``patches`` may
    be any sliceable array (tensor, NumPy array, HDF5 dataset).
    """
    if chunk_size < 1:
        raise DataError(f"chunk size must be positive, got {chunk_size}")
    head = torch.as_tensor(patches[0:0])
    device, dtype = head.device, complex_dtype(head.dtype)
    total = len(patches)
    pos = as_positions(positions, device)
    if pos.shape[0] != total:
        raise DataError(f"{total} patches but {pos.shape[0]} positions")
    accumulator = ObjectAccumulator(object_shape, device=device, dtype=dtype)
    for start in range(0, total, chunk_size):
        stop = min(start + chunk_size, total)
        accumulator.add(torch.as_tensor(patches[start:stop]), pos[start:stop], weights)
    return accumulator.result(eps=eps)
