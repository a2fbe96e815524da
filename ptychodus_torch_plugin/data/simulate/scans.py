"""Scan trajectories in object pixels, (row, col), and the object size that keeps every patch inside.

Trajectories are built around (0, 0) and then placed in the object, so the same pattern of points can be
reused for any object size; jitter is bounded (uniform in [-jitter, +jitter]) so the required object size
is known before drawing it.
"""

from __future__ import annotations

import math

import numpy as np

from ...errors import ConfigError

SCAN_KINDS = ("raster", "spiral")

#: Golden angle in radians: successive Fermat-spiral points are this far apart in azimuth.
GOLDEN_ANGLE = math.pi * (3.0 - math.sqrt(5.0))

#: Object pixels kept free between the outermost patch and the object edge (room for sub-pixel crops).
EDGE_MARGIN_PX = 2


def raster(n_positions: int, step_px: float, grid: tuple[int, int] | None = None) -> np.ndarray:
    """Row-major grid, centred on (0, 0); the first ``n_positions`` points of a ``grid`` (rows, cols).

    Without ``grid`` the grid is as square as possible: cols = ceil(sqrt(M)), rows = ceil(M / cols).
    """
    if grid is None:
        cols = math.ceil(math.sqrt(n_positions))
        rows = math.ceil(n_positions / cols)
    else:
        rows, cols = grid
        if rows * cols < n_positions:
            raise ConfigError(
                f"a {rows} x {cols} grid holds fewer than the {n_positions} requested positions"
            )
    r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    points = np.stack([r.ravel(), c.ravel()], axis=1)[:n_positions].astype(np.float64) * step_px
    return points - (points.max(axis=0) + points.min(axis=0)) / 2


def fermat_spiral(n_positions: int, step_px: float) -> np.ndarray:
    """Fermat spiral r = c sqrt(k), theta = k * golden angle, centred on (0, 0).

    c = step / sqrt(pi) gives each point an area step^2, the same density as a raster of that step.
    """
    k = np.arange(n_positions, dtype=np.float64)
    radius = step_px / math.sqrt(math.pi) * np.sqrt(k)
    theta = k * GOLDEN_ANGLE
    points = np.stack([radius * np.sin(theta), radius * np.cos(theta)], axis=1)
    return points - (points.max(axis=0) + points.min(axis=0)) / 2


def make_trajectory(
    kind: str, n_positions: int, step_px: float, grid: tuple[int, int] | None = None
) -> np.ndarray:
    """(M, 2) positions around (0, 0) of the named scan kind."""
    if kind == "raster":
        return raster(n_positions, step_px, grid)
    if kind == "spiral":
        if grid is not None:
            raise ConfigError("a grid applies to raster scans only")
        return fermat_spiral(n_positions, step_px)
    raise ConfigError(f"unknown scan kind {kind!r}; choose one of {', '.join(SCAN_KINDS)}")


def required_object_size(trajectory: np.ndarray, patch_size: int, jitter_px: float) -> tuple[int, int]:
    """Smallest (H, W) that holds every patch of the trajectory with any jitter, plus the edge margin."""
    span = trajectory.max(axis=0) - trajectory.min(axis=0) + 2 * jitter_px
    size = np.ceil(span).astype(int) + patch_size + 1 + 2 * EDGE_MARGIN_PX
    return int(size[0]), int(size[1])


def place_in_object(
    trajectory: np.ndarray,
    shape: tuple[int, int],
    patch_size: int,
    jitter_px: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Centre the trajectory in the object, add bounded jitter, and prove every patch stays inside."""
    need = required_object_size(trajectory, patch_size, jitter_px)
    if need[0] > shape[0] or need[1] > shape[1]:
        raise ConfigError(
            f"the scan needs an object of at least {need[0]} x {need[1]} pixels but the object is "
            f"{shape[0]} x {shape[1]}; enlarge the object or reduce the number of positions, step or jitter"
        )
    centre = (np.asarray(shape, dtype=np.float64) - 1) / 2
    centre += (patch_size // 2) - (patch_size - 1) / 2  # the patch centre is pixel N//2, not (N-1)/2
    positions = trajectory + centre
    if jitter_px > 0:
        positions = positions + rng.uniform(-jitter_px, jitter_px, size=positions.shape)
    half = patch_size // 2
    low = half + EDGE_MARGIN_PX
    high = np.asarray(shape) - patch_size + half - EDGE_MARGIN_PX
    return np.clip(positions, low, high)
