"""Group canvas (gridsize > 1): canvas centre = group centre, offsets in (row, col) with the position sign."""

import numpy as np
import pytest
import torch
from physics_helpers import random_object

from ptychodus_torch_plugin.errors import DataError
from ptychodus_torch_plugin.physics import (
    canvas_to_patches,
    extract_patches,
    group_canvas_size,
    group_neighbours,
    group_offsets,
    patches_to_canvas,
    stitch_patches,
)

N = 8


def test_group_canvas_size_covers_the_largest_offset() -> None:
    offsets = np.array([[[0.0, 0.0], [-5.3, 2.0]], [[1.0, 4.9], [0.0, -0.2]]])
    assert group_canvas_size(offsets, N) == N + 12
    assert group_canvas_size(torch.as_tensor(offsets), N, margin=1) == N + 14
    assert group_canvas_size(np.zeros((1, 1, 2)), N) == N
    with pytest.raises(DataError):
        group_canvas_size(np.zeros((1, 1, 3)), N)


def test_offset_sign_and_axis_order_on_canvas() -> None:
    patch = torch.zeros(1, 1, N, N, dtype=torch.complex64)
    patch[0, 0, N // 2, N // 2] = 1.0
    offsets = torch.tensor([[[3.0, -5.0]]])
    size = group_canvas_size(offsets, N)
    canvas = patches_to_canvas(patch, offsets, size)
    assert canvas.shape == (1, size, size)
    assert divmod(int(canvas[0].abs().argmax()), size) == (size // 2 + 3, size // 2 - 5)


def test_canvas_equals_object_around_integer_group_centre() -> None:
    """Patches cut from the object at centre + offsets land on the canvas exactly where the object is."""
    obj = random_object((48, 64), seed=20)
    centre = torch.tensor([24.0, 30.0], dtype=torch.float64)
    offsets = torch.tensor([[-2.5, -3.25], [-2.5, 3.75], [2.5, -3.25], [2.5, 2.75]], dtype=torch.float64)
    patches = extract_patches(obj, centre + offsets, N)
    size = group_canvas_size(offsets, N)
    canvas = patches_to_canvas(patches[None], offsets[None], size)[0]
    top, left = 24 - size // 2, 30 - size // 2
    region = obj[top : top + size, left : left + size]
    covered = canvas != 0
    assert covered.double().mean() > 0.5
    torch.testing.assert_close(canvas[covered], region[covered], atol=1e-5, rtol=0)


@pytest.mark.parametrize("weighted", [False, True])
def test_canvas_round_trip_with_subpixel_offsets(weighted: bool) -> None:
    gen = torch.Generator().manual_seed(1)
    offsets = torch.rand(3, 4, 2, generator=gen, dtype=torch.float64) * 8 - 4
    size = group_canvas_size(offsets, N)
    truth = torch.stack([random_object((size, size), seed=s) for s in range(3)])
    weights = torch.rand(N, N, generator=gen) + 0.05 if weighted else None
    patches = canvas_to_patches(truth, offsets, N)
    assert patches.shape == (3, 4, N, N)
    canvas = patches_to_canvas(patches, offsets, size, weights=weights)
    covered = canvas != 0
    torch.testing.assert_close(canvas[covered], truth[covered], atol=1e-5, rtol=0)
    torch.testing.assert_close(canvas_to_patches(canvas, offsets, N), patches, atol=1e-5, rtol=0)


def test_overlapping_patches_are_averaged() -> None:
    patches = torch.stack([torch.full((N, N), 1.0 + 0j), torch.full((N, N), 3.0 + 0j)])[None]
    offsets = torch.tensor([[[0.0, -2.0], [0.0, 2.0]]])
    size = group_canvas_size(offsets, N, margin=1)
    row = patches_to_canvas(patches, offsets, size)[0, size // 2].real
    c = size // 2
    left_only = c - 2 - N // 2
    assert row[left_only] == 1.0 and row[c] == 2.0 and row[c + 2 + N // 2 - 1] == 3.0
    assert left_only == 1 and row[0] == 0.0 and row[-1] == 0.0


def test_stitching_group_patches_by_offsets_reproduces_object() -> None:
    obj = random_object((40, 48), seed=21)
    rng = np.random.default_rng(0)
    grid = np.stack(np.meshgrid(np.arange(8, 33, 3.0), np.arange(8, 41, 3.0), indexing="ij"), -1)
    positions = grid.reshape(-1, 2) + rng.uniform(-0.5, 0.5, (grid.size // 2, 2))
    groups = group_neighbours(positions, gridsize=2, n_groups=30, seed=3)
    offsets = group_offsets(positions, groups)
    centres = positions[groups].mean(axis=1)
    flat_positions = torch.as_tensor((centres[:, None, :] + offsets).reshape(-1, 2))
    patches = extract_patches(obj, torch.as_tensor(positions[groups].reshape(-1, 2)), N)
    stitched, weight = stitch_patches(patches, flat_positions, (40, 48))
    covered = weight > 0
    assert covered.double().mean() > 0.3
    torch.testing.assert_close(stitched[covered], obj[covered], atol=1e-5, rtol=0)


def test_patches_outside_a_small_canvas_are_dropped_not_crashing() -> None:
    patches = torch.ones(1, 2, N, N, dtype=torch.complex64)
    offsets = torch.tensor([[[0.0, 0.0], [0.0, 6.0]]])
    canvas = patches_to_canvas(patches, offsets, N)
    torch.testing.assert_close(canvas, torch.ones(1, N, N, dtype=torch.complex64))
    cut = canvas_to_patches(canvas, offsets, N)
    assert (cut[0, 1, :, : N - 6] == 1).all() and (cut[0, 1, :, N - 6 :] == 0).all()


def test_canvas_functions_gradcheck() -> None:
    gen = torch.Generator().manual_seed(2)
    n = 4
    offsets = torch.tensor([[[0.0, 0.0], [0.5, -1.25]], [[-1.0, 0.25], [1.0, 1.0]]], dtype=torch.float64)
    size = group_canvas_size(offsets, n)
    patches = torch.randn(2, 2, n, n, dtype=torch.complex128, generator=gen, requires_grad=True)
    canvas = torch.randn(2, size, size, dtype=torch.complex128, generator=gen, requires_grad=True)
    weights = torch.rand(n, n, dtype=torch.float64, generator=gen) + 0.1
    place = lambda p: patches_to_canvas(p, offsets, size, weights=weights)  # noqa: E731
    assert torch.autograd.gradcheck(place, (patches,))
    assert torch.autograd.gradcheck(lambda c: canvas_to_patches(c, offsets, n), (canvas,))


def test_canvas_shape_errors() -> None:
    with pytest.raises(DataError):
        patches_to_canvas(torch.ones(2, N, N), torch.zeros(2, 1, 2), N)
    with pytest.raises(DataError):
        patches_to_canvas(torch.ones(2, 1, N, N), torch.zeros(3, 1, 2), N)
    with pytest.raises(DataError):
        canvas_to_patches(torch.ones(2, N, N + 1), torch.zeros(2, 1, 2), N)
