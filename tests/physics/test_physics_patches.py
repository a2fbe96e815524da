"""Position convention: patch pixel (N//2, N//2) lies on object pixel p = (row, col); sub-pixel by Fourier."""

import numpy as np
import pytest
import torch
from physics_helpers import random_object

from ptychodus_torch_plugin.errors import DataError
from ptychodus_torch_plugin.physics import extract_patches, split_positions


@pytest.mark.parametrize("n", [8, 7])
def test_patch_centre_pixel_sits_on_position_row_col(n: int) -> None:
    h, w = 30, 50  # non-square, so a row/col swap would index differently (or fail)
    obj = torch.arange(h * w, dtype=torch.float64).reshape(h, w).to(torch.complex128)
    positions = torch.tensor([[10.0, 20.0], [20.0, 40.0]])
    patches = extract_patches(obj, positions, n)
    assert patches.shape == (2, n, n)
    for patch, (pr, pc) in zip(patches, [(10, 20), (20, 40)], strict=True):
        assert patch[n // 2, n // 2] == obj[pr, pc]
        torch.testing.assert_close(patch, obj[pr - n // 2 : pr - n // 2 + n, pc - n // 2 : pc - n // 2 + n])


def test_subpixel_extraction_samples_object_at_fractional_position() -> None:
    n = 8
    rows = torch.arange(40, dtype=torch.float64)[:, None]
    cols = torch.arange(60, dtype=torch.float64)[None, :]

    def wave(r: torch.Tensor, c: torch.Tensor) -> torch.Tensor:  # periodic over N, so the shift is exact
        return torch.exp(2j * np.pi * (2 * r - 3 * c) / n)

    obj = wave(rows, cols).to(torch.complex64)
    positions = torch.tensor([[10.3, 20.7], [25.5, 30.25]], dtype=torch.float64)
    patches = extract_patches(obj, positions, n)
    i = torch.arange(n, dtype=torch.float64)
    for patch, (pr, pc) in zip(patches, positions.tolist(), strict=True):
        expected = wave(pr - n // 2 + i[:, None], pc - n // 2 + i[None, :]).to(torch.complex64)
        torch.testing.assert_close(patch, expected, atol=1e-5, rtol=0)


def test_split_positions_floor_and_fraction() -> None:
    origins, frac = split_positions(torch.tensor([[10.25, 5.75], [3.0, -0.5]], dtype=torch.float64), 4)
    assert origins.tolist() == [[8, 3], [1, -3]]
    torch.testing.assert_close(frac, torch.tensor([[0.25, 0.75], [0.0, 0.5]], dtype=torch.float64))


def test_float_noise_near_integer_snaps_to_the_integer_crop() -> None:
    obj = random_object((20, 20), seed=4)
    exact = extract_patches(obj, torch.tensor([[10.0, 11.0]]), 6)
    noisy = extract_patches(obj, torch.tensor([[9.99999999, 11.00000001]], dtype=torch.float64), 6)
    assert torch.equal(exact, noisy)


def test_patch_leaving_object_raises_data_error_and_edges_are_allowed() -> None:
    obj = random_object((20, 30), seed=5)
    n = 8
    extract_patches(obj, torch.tensor([[4.0, 4.0], [16.0, 26.0]]), n)  # touches every edge exactly
    # the check is on the pixels the crop reads: floor(p - N//2) .. floor(p - N//2) + N - 1
    extract_patches(obj, torch.tensor([[16.5, 26.5]]), n)
    for bad in ([3.0, 10.0], [10.0, 3.0], [17.0, 10.0], [10.0, 27.0], [3.5, 10.0], [10.0, 3.99]):
        with pytest.raises(DataError):
            extract_patches(obj, torch.tensor([bad]), n)
    with pytest.raises(DataError):
        extract_patches(obj, torch.tensor([1.0, 2.0]), n)
