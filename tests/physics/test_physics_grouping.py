"""Grouping: deterministic by seed, members are near neighbours, offsets are relative to the group mean."""

import numpy as np
import pytest
import torch

from ptychodus_torch_plugin.errors import ConfigError, DataError
from ptychodus_torch_plugin.physics import group_neighbours, group_offsets


def scan(seed: int = 0, count: int = 120) -> np.ndarray:
    rng = np.random.default_rng(seed)
    side = int(np.ceil(np.sqrt(count)))
    grid = np.stack(np.meshgrid(np.arange(side) * 5.0, np.arange(side) * 7.0, indexing="ij"), -1)
    return grid.reshape(-1, 2)[:count] + rng.uniform(-1, 1, (count, 2))


def test_gridsize_one_makes_each_position_its_own_group() -> None:
    pos = scan()
    groups = group_neighbours(pos, gridsize=1, n_groups=None, seed=0)
    np.testing.assert_array_equal(groups, np.arange(len(pos))[:, None])
    sampled = group_neighbours(pos, gridsize=1, n_groups=50, seed=3)
    assert sampled.shape == (50, 1) and len(np.unique(sampled)) == 50
    np.testing.assert_array_equal(sampled, group_neighbours(pos, gridsize=1, n_groups=50, seed=3))
    assert not np.array_equal(sampled, group_neighbours(pos, gridsize=1, n_groups=50, seed=4))


def test_groups_are_deterministic_by_seed() -> None:
    pos = scan()
    a = group_neighbours(pos, gridsize=2, n_groups=80, seed=7)
    b = group_neighbours(pos, gridsize=2, n_groups=80, seed=7)
    c = group_neighbours(pos, gridsize=2, n_groups=80, seed=8)
    assert a.shape == (80, 4) and a.dtype == np.int64
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("gridsize,k", [(2, 7), (2, 4), (3, 7)])
def test_members_are_among_the_k_nearest_neighbours_of_the_seed(gridsize: int, k: int) -> None:
    pos = scan(1)
    groups = group_neighbours(pos, gridsize=gridsize, n_groups=None, seed=0, k_neighbours=k)
    assert groups.shape == (len(pos), gridsize**2)
    np.testing.assert_array_equal(groups[:, 0], np.arange(len(pos)))
    k_eff = max(k, gridsize**2 - 1)
    dist = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
    kth = np.sort(dist, axis=1)[:, k_eff]  # column 0 is the point itself
    for group in groups:
        assert len(set(group.tolist())) == gridsize**2
        assert (dist[group[0], group[1:]] <= kth[group[0]] + 1e-12).all()
        assert (np.diff(dist[group[0], group[1:]]) >= 0).all()  # nearest first


def test_offsets_are_relative_to_the_group_mean() -> None:
    pos = scan(2)
    groups = group_neighbours(pos, gridsize=2, n_groups=40, seed=1)
    offsets = group_offsets(pos, groups)
    assert offsets.shape == (40, 4, 2)
    np.testing.assert_allclose(offsets.sum(axis=1), 0.0, atol=1e-9)
    centres = pos[groups].mean(axis=1)
    np.testing.assert_allclose(centres[:, None, :] + offsets, pos[groups])
    assert np.abs(offsets).max() < 15.0  # neighbours, not far-away positions
    torch_offsets = group_offsets(torch.as_tensor(pos), torch.as_tensor(groups))
    np.testing.assert_allclose(torch_offsets.numpy(), offsets)


def test_more_groups_than_positions_and_duplicate_positions() -> None:
    pos = np.array([[0.0, 0.0], [0.0, 0.0], [0.0, 5.0], [5.0, 0.0], [5.0, 5.0]])
    groups = group_neighbours(pos, gridsize=2, n_groups=12, seed=0)
    assert groups.shape == (12, 4)
    for group in groups:
        assert group[0] not in group[1:]
        assert len(set(group.tolist())) == 4


def test_bad_arguments_raise() -> None:
    with pytest.raises(DataError):
        group_neighbours(scan(count=3), gridsize=2, n_groups=None, seed=0)
    with pytest.raises(ConfigError):
        group_neighbours(scan(), gridsize=0, n_groups=None, seed=0)
    with pytest.raises(ConfigError):
        group_neighbours(scan(), gridsize=2, n_groups=0, seed=0)
    with pytest.raises(DataError):
        group_neighbours(np.zeros((5, 3)), gridsize=1, n_groups=None, seed=0)
    with pytest.raises(DataError):
        group_offsets(scan(count=4), np.array([[0, 4]]))


def test_order_by_angle_gives_each_channel_a_fixed_direction():
    from ptychodus_torch_plugin.physics.grouping import order_by_angle

    grid = np.array([(r, c) for r in range(6) for c in range(6)], dtype=float) * 4.0
    groups = order_by_angle(grid, group_neighbours(grid, 2, None, seed=0, k_neighbours=3))
    offsets = group_offsets(grid, groups)
    angles = np.arctan2(offsets[..., 0], offsets[..., 1])
    assert (np.diff(angles, axis=1) >= 0).all()
    assert sorted(groups[0].tolist()) == sorted(group_neighbours(grid, 2, None, seed=0, k_neighbours=3)[0].tolist())
