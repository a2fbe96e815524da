"""Neighbour groups for the overlap constraint: which scan positions share one canvas.

Host-side NumPy, run once when a data set is prepared; the result is plain integer indices.
"""

from itertools import combinations

import numpy as np
import torch
from scipy.spatial import cKDTree

from ..config import GROUP_SELECTIONS as SELECTIONS
from ..errors import ConfigError, DataError

#: Seeds scored at once by the compact selection (bounds its memory: seeds x combinations x members).
_COMPACT_CHUNK = 2048


def _positions_array(positions: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(positions, torch.Tensor):
        positions = positions.detach().cpu().numpy()
    pos = np.asarray(positions, dtype=np.float64)
    if pos.ndim != 2 or pos.shape[1] != 2:
        raise DataError(f"positions must have shape (M, 2) as (row, col), got {pos.shape}")
    if not np.isfinite(pos).all():
        raise DataError("positions contain NaN or infinite values")
    return pos


def _sample_seeds(count: int, n_groups: int, rng: np.random.Generator) -> np.ndarray:
    """n_groups seed indices: without replacement while possible, then every position once per full pass."""
    full_passes, remainder = divmod(n_groups, count)
    parts = [np.arange(count)] * full_passes
    parts.append(rng.choice(count, size=remainder, replace=False))
    return np.sort(np.concatenate(parts)).astype(np.int64)


def _compact_picks(pos: np.ndarray, seeds: np.ndarray, neighbours: np.ndarray, chosen: int,
                   rng: np.random.Generator) -> np.ndarray:
    """Column indices (G, chosen) into ``neighbours`` of the most compact groups: the seed plus ``chosen``
    neighbours whose positions have the smallest spread (sum of squared distances from their mean).
    Ties (a raster's four equal 2x2 squares) are broken at random with ``rng``."""
    k = neighbours.shape[1]
    combos = np.array(list(combinations(range(k), chosen)), dtype=np.int64)  # (K choose c, c), sorted rows
    picks = np.empty((len(seeds), chosen), dtype=np.int64)
    for start in range(0, len(seeds), _COMPACT_CHUNK):
        rows = slice(start, start + _COMPACT_CHUNK)
        members = pos[neighbours[rows]][:, combos]  # (g, combos, c, 2)
        members = np.concatenate([np.broadcast_to(pos[seeds[rows]][:, None, None], members[:, :, :1].shape),
                                  members], axis=2)
        spread = np.square(members - members.mean(axis=2, keepdims=True)).sum(axis=(2, 3))
        scale = max(float(spread.min()), 1e-12)
        spread = spread + rng.random(spread.shape) * 1e-6 * scale  # random among equals, never across
        picks[rows] = combos[np.argmin(spread, axis=1)]
    return picks


def group_neighbours(
    positions: np.ndarray | torch.Tensor,
    gridsize: int,
    n_groups: int | None,
    seed: int,
    k_neighbours: int = 7,
    selection: str = "random",
) -> np.ndarray:
    """Index groups (G, gridsize**2) of nearby scan positions.

    Gridsize 1: every position is its own group (all of them, or ``n_groups`` sampled with ``seed``).
    Gridsize g > 1: each group is a seed position (column 0) plus g**2 - 1 positions from its
    K = max(k_neighbours, g**2 - 1) nearest neighbours, listed nearest first: drawn at random
    (``selection`` random), or the g**2 - 1 that make the most compact group, the smallest spread around
    its mean (``compact``; on a raster a g x g square, so every group has the same shape). ``n_groups``
    None means one group per position. The same inputs and seed always give the same groups.
    """
    if selection not in SELECTIONS:
        raise ConfigError(f"unknown group selection '{selection}'; choose one of {', '.join(SELECTIONS)}")
    pos = _positions_array(positions)
    if gridsize < 1:
        raise ConfigError(f"gridsize must be at least 1, got {gridsize}")
    if n_groups is not None and n_groups < 1:
        raise ConfigError(f"the number of groups must be positive, got {n_groups}")
    if k_neighbours < 1:
        raise ConfigError(f"k_neighbours must be positive, got {k_neighbours}")
    members = gridsize * gridsize
    count = pos.shape[0]
    if count < members:
        raise DataError(f"gridsize {gridsize} needs at least {members} scan positions, the scan has {count}")

    rng = np.random.default_rng(seed)
    if n_groups is None:
        seeds = np.arange(count, dtype=np.int64)
    else:
        seeds = _sample_seeds(count, n_groups, rng)
    if members == 1:
        return seeds[:, None]

    k = min(max(k_neighbours, members - 1), count - 1)
    _, nearest = cKDTree(pos).query(pos[seeds], k=k + 1)
    nearest = np.asarray(nearest, dtype=np.int64).reshape(len(seeds), k + 1)
    # Drop the seed itself (not always column 0 when positions repeat), keeping distance order.
    not_self = nearest != seeds[:, None]
    order = np.argsort(~not_self, axis=1, kind="stable")[:, :k]
    neighbours = np.take_along_axis(nearest, order, axis=1)
    if selection == "compact":
        picks = _compact_picks(pos, seeds, neighbours, members - 1, rng)
    else:
        picks = np.sort(np.argsort(rng.random((len(seeds), k)), axis=1)[:, : members - 1], axis=1)
    chosen = np.take_along_axis(neighbours, picks, axis=1)
    return np.concatenate([seeds[:, None], chosen], axis=1)


def group_offsets(
    positions: np.ndarray | torch.Tensor, groups: np.ndarray | torch.Tensor
) -> np.ndarray | torch.Tensor:
    """Offsets (G, C, 2) of each member from its group's mean position, in (row, col) pixels.

    Member k of group g sits at centre_g + offset_gk, the convention of :func:`patches_to_canvas`.
    Returns the same array type as ``positions``.
    """
    if isinstance(positions, torch.Tensor):
        index = torch.as_tensor(groups, device=positions.device, dtype=torch.long)
        chosen = positions[index]
        return chosen - chosen.mean(dim=1, keepdim=True)
    pos = _positions_array(positions)
    idx = np.asarray(groups, dtype=np.int64)
    if idx.ndim != 2:
        raise DataError(f"groups must have shape (G, C), got {idx.shape}")
    if idx.size and (idx.min() < 0 or idx.max() >= pos.shape[0]):
        raise DataError("group indices point outside the scan positions")
    members = pos[idx]
    return members - members.mean(axis=1, keepdims=True)


def order_by_angle(positions: np.ndarray | torch.Tensor, groups: np.ndarray) -> np.ndarray:
    """Reorder each group's members by the angle of their offset around the group centre.

    The joint generator sees a group as C input channels. With members in distance order, channel k is
    "some neighbour" in an arbitrary direction; ordered by angle (counter-clockwise from +col), each
    channel keeps a geometric role, so the convolution filters can use how neighbours overlap. Measured on
    a gridsize-2 run (N=32, 30 epochs): phase Pearson 0.64 -> 0.84, FRC cutoff 0.08 -> 0.45.
    """
    idx = np.asarray(groups, dtype=np.int64)
    if idx.ndim != 2 or idx.shape[1] == 1:
        return idx
    offsets = np.asarray(group_offsets(_positions_array(positions), idx))
    angle = np.arctan2(offsets[..., 0], offsets[..., 1])
    return np.take_along_axis(idx, np.argsort(angle, axis=1, kind="stable"), axis=1)
