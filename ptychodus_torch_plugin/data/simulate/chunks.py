"""The simulator's forward model, evaluated a block of positions at a time.

Why blocks: the whole scan at once needs about ten complex128 copies of every pattern (17 GB for 10,000
patterns of 128 x 128); a block needs them for a few hundred patterns only, whatever the scan's size.
Blocks give the same bits as the whole scan: every step treats each pattern on its own (batched FFTs,
elementwise products, a gather, a reduction over the probe modes), which the simulator's tests check
against the whole-array computation.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from ...physics.probe import as_probe_modes
from ...physics.propagation import far_field
from ...physics.scan_model import object_windows, place_windows, shifted_probes

#: Bytes one block's temporaries may take: about 200 patterns of 64 x 64, 50 of 128 x 128. Measured peak
#: RSS grows by this much plus ~100 MB that does not depend on the block (FFT plans, allocator pools).
CHUNK_BYTES = 128 * 1024**2

#: complex128 (N, N) arrays alive per pattern and probe mode while a block is computed (shifted probe and
#: its FFTs, object window, exit wave, far field and its shifts; the peak RSS grows by 8-10 per pattern).
_ARRAYS_PER_PATTERN = 10


def chunk_patterns(patch_size: int, n_modes: int = 1, chunk_bytes: int = CHUNK_BYTES) -> int:
    """Patterns per block, so that a block's temporaries stay near ``chunk_bytes`` whatever the scan."""
    per_pattern = _ARRAYS_PER_PATTERN * 16 * n_modes * patch_size * patch_size
    return max(1, chunk_bytes // per_pattern)


def blocks(n_patterns: int, rows: int) -> Iterator[tuple[int, int]]:
    """(start, stop) of consecutive blocks of ``rows`` patterns covering ``n_patterns``."""
    for start in range(0, n_patterns, rows):
        yield start, min(start + rows, n_patterns)


class ForwardModel:
    """Noiseless intensities sum_k |F(P_k(x - p) O(x))|^2 of one scan, in float64, block by block.

    Computes what ``physics.scan_model.scan_amplitudes`` computes in complex128, squared, with two savings
    that change no bit: the object stays complex64 (each window is widened to complex128 after the gather,
    an exact conversion, instead of keeping a complex128 copy of the whole object), and positions that
    share a sub-pixel remainder (a raster scan) share one shifted probe.
    """

    def __init__(self, obj: np.ndarray, probe: np.ndarray, positions: np.ndarray) -> None:
        self.obj = torch.from_numpy(np.ascontiguousarray(obj))
        self.modes = as_probe_modes(torch.from_numpy(np.asarray(probe).astype(np.complex128)))
        self.positions = np.asarray(positions, dtype=np.float64)
        self.patch_size = int(self.modes.shape[-1])

    @property
    def n_patterns(self) -> int:
        return int(self.positions.shape[0])

    def default_rows(self) -> int:
        """Patterns per block for this probe (see :func:`chunk_patterns`)."""
        return chunk_patterns(self.patch_size, int(self.modes.shape[0]))

    @torch.no_grad()
    def intensity(self, start: int, stop: int) -> np.ndarray:
        """Noiseless intensities (stop - start, N, N), float64, of positions ``start:stop``."""
        n = self.patch_size
        windows = place_windows(self.positions[start:stop], n, (self.obj.shape[0], self.obj.shape[1]))
        probes = _shared_shifted_probes(self.modes, windows.frac)
        patches = object_windows(self.obj, windows.flat, n).to(torch.complex128)
        amplitude = torch.linalg.vector_norm(far_field(probes * patches.unsqueeze(1)), dim=-3)
        intensity = amplitude.numpy()
        return np.square(intensity, out=intensity)


def _shared_shifted_probes(modes: torch.Tensor, frac: torch.Tensor) -> torch.Tensor:
    """``shifted_probes(modes, frac)``, shifting each distinct remainder once (raster scans have one)."""
    unique, inverse = torch.unique(frac, dim=0, return_inverse=True)
    if unique.shape[0] == frac.shape[0]:
        return shifted_probes(modes, frac)
    return shifted_probes(modes, unique).index_select(0, inverse)


@dataclass(frozen=True)
class IntensityTotals:
    """Pass 1 of a simulation: each pattern's total noiseless intensity and the brightest pixel."""

    totals: np.ndarray
    largest: float


def intensity_totals(model: ForwardModel, rows: int) -> IntensityTotals:
    """Per-pattern sums (M,) and the largest pixel, a block at a time (the scale needs their mean first)."""
    totals = np.empty(model.n_patterns, dtype=np.float64)
    largest = 0.0
    for start, stop in blocks(model.n_patterns, rows):
        intensity = model.intensity(start, stop)
        totals[start:stop] = np.sum(intensity, axis=(-2, -1))
        largest = max(largest, float(intensity.max()))
    return IntensityTotals(totals, largest)
