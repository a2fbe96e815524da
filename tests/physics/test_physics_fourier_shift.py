"""Shift convention: positive (row, col) shifts move content toward larger row/col; sub-pixel is exact."""

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from physics_helpers import random_object

from ptychodus_torch_plugin.physics import fourier_shift


def test_integer_shift_equals_roll_on_non_square_image() -> None:
    img = random_object((12, 20), seed=2, dtype=torch.complex128)
    got = fourier_shift(img, torch.tensor([2.0, -3.0]))
    torch.testing.assert_close(got, torch.roll(img, shifts=(2, -3), dims=(-2, -1)), atol=1e-12, rtol=0)


def test_positive_col_shift_moves_delta_right_and_row_shift_moves_it_down() -> None:
    img = torch.zeros(10, 16, dtype=torch.complex64)
    img[3, 4] = 1.0
    moved_x = fourier_shift(img, torch.tensor([0.0, 5.0])).abs()
    moved_y = fourier_shift(img, torch.tensor([5.0, 0.0])).abs()
    assert divmod(int(torch.argmax(moved_x)), 16) == (3, 9)
    assert divmod(int(torch.argmax(moved_y)), 16) == (8, 4)


def test_subpixel_shift_of_periodic_wave_matches_analytic_translation() -> None:
    h, w = 16, 24
    r = torch.arange(h, dtype=torch.float64)[:, None]
    c = torch.arange(w, dtype=torch.float64)[None, :]

    def wave(dr: float, dc: float) -> torch.Tensor:
        return torch.exp(2j * np.pi * (3 * (r - dr) / h - 2 * (c - dc) / w))

    torch.testing.assert_close(fourier_shift(wave(0, 0), torch.tensor([0.3, 0.7])), wave(0.3, 0.7))


def test_batched_shifts_apply_per_image() -> None:
    imgs = torch.stack([random_object((8, 8), seed=s, dtype=torch.complex128) for s in range(3)])
    shifts = torch.tensor([[1.0, 0.0], [0.0, 2.0], [-1.0, -1.0]])
    got = fourier_shift(imgs, shifts)
    for img, out, s in zip(imgs, got, shifts.long().tolist(), strict=True):
        torch.testing.assert_close(out, torch.roll(img, shifts=tuple(s), dims=(-2, -1)), atol=1e-12, rtol=0)


@settings(max_examples=25, deadline=None)
@given(
    st.floats(-3.0, 3.0, allow_nan=False),
    st.floats(-3.0, 3.0, allow_nan=False),
    st.integers(5, 12),
    st.integers(5, 12),
)
def test_shift_then_unshift_is_identity(dr: float, dc: float, h: int, w: int) -> None:
    img = random_object((h, w), seed=h * 13 + w)
    s = torch.tensor([dr, dc])
    back = fourier_shift(fourier_shift(img, s), -s)
    torch.testing.assert_close(back, img, atol=1e-5, rtol=0)
