"""Metre <-> object-pixel mapping between ptychodus products and our (row, col) position convention.

ptychodus 1.7 (``ptychodus.api.object.ObjectGeometry.map_probe_positions_to_object_{x,y}_px``) puts the
world point ``center_{x,y}_m`` at object pixel ``(W-1)/2`` / ``(H-1)/2``, and
``ptychodus.api.probe.ProbeGeometry.resolve_patch_bounds`` puts the probe's centre, probe pixel
``(N-1)/2``, on that object pixel. We instead put probe pixel ``N//2`` on the position. For the same
physical sampling the two positions therefore differ by ``N//2 - (N-1)/2`` pixels: +0.5 for even N,
0 for odd N. Everything that crosses between the two conventions goes through this module.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def probe_centre_offset(patch_size: int) -> float:
    """Our position minus ptychodus's object-pixel position for the same patch (0.5 for even N)."""
    return patch_size // 2 - (patch_size - 1) / 2


@dataclass(frozen=True)
class ObjectFrame:
    """Where an object array sits in the world: shape, pixel pitch and centre, as ptychodus stores them."""

    height_px: int
    width_px: int
    pixel_height_m: float
    pixel_width_m: float
    center_y_m: float = 0.0
    center_x_m: float = 0.0


def metres_to_positions(y_m: np.ndarray, x_m: np.ndarray, frame: ObjectFrame, patch_size: int) -> np.ndarray:
    """(M, 2) (row, col) positions in our convention from ptychodus probe positions in metres."""
    offset = probe_centre_offset(patch_size)
    y_m = np.asarray(y_m, dtype=np.float64)
    x_m = np.asarray(x_m, dtype=np.float64)
    row = (y_m - frame.center_y_m) / frame.pixel_height_m + (frame.height_px - 1) / 2 + offset
    col = (x_m - frame.center_x_m) / frame.pixel_width_m + (frame.width_px - 1) / 2 + offset
    return np.stack([row, col], axis=1)


def positions_to_metres(
    positions: np.ndarray, frame: ObjectFrame, patch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`metres_to_positions`: (y_m, x_m) for ptychodus from our (row, col) positions."""
    offset = probe_centre_offset(patch_size)
    positions = np.asarray(positions, dtype=np.float64)
    y_m = frame.center_y_m + frame.pixel_height_m * (positions[:, 0] - offset - (frame.height_px - 1) / 2)
    x_m = frame.center_x_m + frame.pixel_width_m * (positions[:, 1] - offset - (frame.width_px - 1) / 2)
    return y_m, x_m


def ptychodus_pixels_to_positions(y_px: np.ndarray, x_px: np.ndarray, patch_size: int) -> np.ndarray:
    """Our (row, col) positions from ptychodus object-pixel coordinates (its training-data files)."""
    offset = probe_centre_offset(patch_size)
    return np.stack([np.asarray(y_px, np.float64) + offset, np.asarray(x_px, np.float64) + offset], axis=1)
