"""Helpers shared by the data-layer tests: small valid scans built in memory (no torch, milliseconds)."""

from __future__ import annotations

import numpy as np

from ptychodus_torch_plugin.data import ScanData


def make_scan(
    n: int = 16, m: int = 9, object_size: int = 32, *, seed: int = 0, with_object: bool = True, modes: int = 1
) -> ScanData:
    """A valid random scan: M positions on a grid inside an object of the given size."""
    rng = np.random.default_rng(seed)
    side = int(np.ceil(np.sqrt(m)))
    low, high = n // 2, object_size - n + n // 2
    grid = np.linspace(low, high, side)
    rows, cols = np.meshgrid(grid, grid, indexing="ij")
    positions = np.stack([rows.ravel(), cols.ravel()], axis=1)[:m] + rng.uniform(-0.3, 0.3, (m, 2))
    positions = np.clip(positions, low, high)
    obj = None
    if with_object:
        obj = rng.uniform(0.5, 1, (object_size, object_size)) * np.exp(
            1j * rng.uniform(-1, 1, (object_size, object_size))
        )
    probe = rng.standard_normal((modes, n, n)) + 1j * rng.standard_normal((modes, n, n))
    counts = rng.poisson(50.0, (m, n, n))
    return ScanData(
        amplitudes=np.sqrt(counts),
        probe=probe,
        positions=positions,
        object_truth=obj,
        object_shape=(object_size, object_size),
        scan_index=np.zeros(m, dtype=np.int64),
        pixel_size_m=25e-9,
    )


def npz_arrays(scan: ScanData) -> dict[str, np.ndarray]:
    """The NPZ-layout dict for ``scan``, for tests that corrupt one key at a time."""
    arrays = {
        "diffraction": scan.amplitudes.copy(),
        "probeGuess": scan.probe[0].copy(),
        "xcoords": scan.positions[:, 1].copy(),
        "ycoords": scan.positions[:, 0].copy(),
    }
    if scan.object_truth is not None:
        arrays["objectGuess"] = scan.object_truth.copy()
    return arrays
