"""Compact group selection (``group_selection`` compact): the same 2x2 shape for every group of a raster,
members still among the K nearest neighbours, deterministic by seed."""

from __future__ import annotations

import numpy as np
import pytest

from ptychodus_torch_plugin.errors import ConfigError
from ptychodus_torch_plugin.physics.grouping import group_neighbours, group_offsets, order_by_angle


def _raster(side: int = 8, step: float = 4.0) -> np.ndarray:
    return np.array([(r, c) for r in range(side) for c in range(side)], dtype=float) * step


def test_compact_groups_of_a_raster_are_squares_with_a_fixed_channel_order():
    grid = _raster()
    groups = order_by_angle(grid, group_neighbours(grid, 2, None, seed=0, k_neighbours=7, selection="compact"))
    offsets = group_offsets(grid, groups)
    # every group is a 2x2 square of side one step, channel k always the same corner
    np.testing.assert_allclose(offsets, np.broadcast_to([[-2, -2], [-2, 2], [2, 2], [2, -2]], offsets.shape))


def test_compact_groups_are_near_neighbours_and_deterministic():
    rng = np.random.default_rng(1)
    positions = _raster(10) + rng.uniform(-1, 1, (100, 2))
    a = group_neighbours(positions, 2, None, seed=3, k_neighbours=7, selection="compact")
    np.testing.assert_array_equal(a, group_neighbours(positions, 2, None, seed=3, k_neighbours=7, selection="compact"))
    np.testing.assert_array_equal(a[:, 0], np.arange(100))
    dist = np.linalg.norm(positions[:, None] - positions[None], axis=-1)
    kth = np.sort(dist, axis=1)[:, 7]
    for group in a:
        assert len(set(group.tolist())) == 4
        assert (dist[group[0], group[1:]] <= kth[group[0]] + 1e-12).all()
    # the chosen group is never less compact than a random one from the same neighbours
    random = group_neighbours(positions, 2, None, seed=3, k_neighbours=7)
    spread = lambda g: np.square(group_offsets(positions, g)).sum(axis=(1, 2))  # noqa: E731
    assert (spread(a) <= spread(random) + 1e-9).all()


def test_raster_ties_are_broken_by_the_seed():
    grid = _raster()
    groups = [group_neighbours(grid, 2, None, seed=s, selection="compact") for s in range(3)]
    assert not np.array_equal(groups[0], groups[1]) or not np.array_equal(groups[1], groups[2])


def test_unknown_selection_is_refused():
    with pytest.raises(ConfigError, match="group selection"):
        group_neighbours(_raster(), 2, None, seed=0, selection="square")
