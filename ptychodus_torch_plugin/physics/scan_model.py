"""The forward model of a measured scan: the object on its own pixel grid, the probe shifted by each
position's sub-pixel remainder.

Exit-wave sample i of position p is P(x_i - p) * O(x_i) with x_i on the object's pixel grid, so the object
is only ever read at its own pixels (an integer window) and the sub-pixel part of p moves the probe. Why
the probe and not the object: the probe is smooth and nearly zero at the edge of its window, so a Fourier
shift of it is accurate, while a Fourier shift of an object crop is not (the crop is not periodic, and the
shift rings across the whole patch: 4.8 % amplitude error on a noiseless simulated images scan, which is
more than the Poisson noise at 1e6 photons). ptychodus and pty-chi use this model too. At integer
positions it equals ``predicted_amplitude(probe, extract_patches(...))`` exactly.

Everything here is batched, runs on the inputs' device, and reads nothing back to the host except
:func:`place_windows`, which validates positions once per scan.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ._dtypes import as_complex
from .patches import as_positions, check_windows_inside
from .probe import as_probe_modes
from .propagation import far_field
from .windows import shift_windows, split_positions, window_indices


@dataclass(frozen=True)
class ScanWindows:
    """Where each position reads the object: flat indices (M, N*N) into the (H*W,) object, and the
    sub-pixel remainder (M, 2) by which that position's probe is shifted."""

    flat: Tensor
    frac: Tensor
    object_shape: tuple[int, int]
    patch_size: int

    def to(self, device: torch.device) -> ScanWindows:
        return ScanWindows(self.flat.to(device), self.frac.to(device), self.object_shape, self.patch_size)


def place_windows(positions: Tensor | np.ndarray, patch_size: int, object_shape: tuple[int, int],
                  device: torch.device | None = None) -> ScanWindows:
    """Integer windows and sub-pixel remainders of every position; raises DataError if a window leaves
    the object (host sync: call once per scan, not per batch)."""
    device = device or torch.device("cpu")
    pos = as_positions(positions, device)
    origins, frac = split_positions(pos, patch_size)
    check_windows_inside(origins, patch_size, object_shape)
    rows, cols = window_indices(origins, patch_size)
    flat = (rows[:, :, None] * object_shape[1] + cols[:, None, :]).reshape(len(pos), -1)
    return ScanWindows(flat, frac, (int(object_shape[0]), int(object_shape[1])), patch_size)


def shifted_probes(probe: Tensor, frac: Tensor) -> Tensor:
    """Probe modes (K, N, N) shifted by each remainder (M, 2): (M, K, N, N), P_m(i) = P(i - frac_m).

    Rows whose remainder is 0 are copied exactly, so integer scans involve no Fourier transform here.
    """
    modes = as_probe_modes(probe)
    count, n_modes = frac.shape[0], modes.shape[0]
    shifts = frac.to(modes.device)[:, None, :].expand(count, n_modes, 2)
    return shift_windows(modes.unsqueeze(0).expand(count, *modes.shape), shifts).to(modes.dtype)


def object_windows(obj: Tensor, flat: Tensor, patch_size: int) -> Tensor:
    """Windows (M, N, N) of the object (H, W) or its flat view (H*W,) at flat indices (M, N*N).

    ``index_select`` on the flat view, not advanced indexing: 3x faster on the CPU for the same gather."""
    return obj.reshape(-1).index_select(0, flat.reshape(-1)).view(flat.shape[0], patch_size, patch_size)


def exit_waves(obj: Tensor, probes: Tensor, flat: Tensor) -> Tensor:
    """Exit waves (M, K, N, N) from the object, per-position probes (M, K, N, N) and windows (M, N*N)."""
    return probes * object_windows(obj, flat, probes.shape[-1]).unsqueeze(1)


def scan_amplitudes(obj: Tensor, probe: Tensor, positions: Tensor | np.ndarray) -> Tensor:
    """Noiseless diffraction amplitudes (M, N, N), DC at (N//2, N//2), of ``obj`` (H, W) scanned by
    ``probe`` (K, N, N) at ``positions`` (M, 2): sqrt(sum_k |far_field(P_k(x - p) O(x))|^2)."""
    obj = as_complex(torch.as_tensor(obj))
    modes = as_probe_modes(torch.as_tensor(probe)).to(device=obj.device, dtype=obj.dtype)
    windows = place_windows(positions, modes.shape[-1], (obj.shape[0], obj.shape[1]), obj.device)
    probes = shifted_probes(modes, windows.frac)
    return torch.linalg.vector_norm(far_field(exit_waves(obj, probes, windows.flat)), dim=-3)
