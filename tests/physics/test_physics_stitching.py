"""Stitching: weighted average of placed patches; exact inverse of extraction; chunking is invisible."""

import numpy as np
import pytest
import torch
from physics_helpers import random_object

from ptychodus_torch_plugin.errors import DataError
from ptychodus_torch_plugin.physics import (
    ObjectAccumulator,
    extract_patches,
    probe_intensity,
    stitch_patches,
)

N = 8
SHAPE = (40, 56)


def raster_positions(step: float, jitter: float = 0.0, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    rows = np.arange(N // 2 + 1, SHAPE[0] - N // 2 - 1, step)
    cols = np.arange(N // 2 + 1, SHAPE[1] - N // 2 - 1, step)
    pos = np.stack(np.meshgrid(rows, cols, indexing="ij"), axis=-1).reshape(-1, 2)
    return torch.as_tensor(pos + rng.uniform(-jitter, jitter, pos.shape))


def numpy_weight_map(positions: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Independent reference: add the (N, N) weight at each integer crop origin floor(p - N//2)."""
    out = np.zeros(SHAPE)
    for r0, c0 in np.floor(positions - N // 2).astype(int):
        out[r0 : r0 + N, c0 : c0 + N] += weights
    return out


def test_integer_round_trip_reproduces_object_and_counts_coverage() -> None:
    obj = random_object(SHAPE, seed=10)
    positions = raster_positions(3.0)
    stitched, weight = stitch_patches(extract_patches(obj, positions, N), positions, SHAPE)
    expected_weight = numpy_weight_map(positions.numpy(), np.ones((N, N)))
    np.testing.assert_allclose(weight.numpy(), expected_weight)
    covered = torch.as_tensor(expected_weight > 0)
    assert covered.sum() > 0.8 * covered.numel() and not covered.all()
    torch.testing.assert_close(stitched[covered], obj[covered], atol=1e-6, rtol=0)
    assert (stitched[~covered] == 0).all()


def test_subpixel_round_trip_reproduces_object() -> None:
    obj = random_object(SHAPE, seed=11)
    positions = raster_positions(3.0, jitter=0.9, seed=1)
    assert ((positions - positions.floor()) > 1e-2).double().mean() > 0.9
    stitched, weight = stitch_patches(extract_patches(obj, positions, N), positions, SHAPE)
    covered = weight > 0
    torch.testing.assert_close(stitched[covered], obj[covered], atol=1e-5, rtol=0)


def test_probe_intensity_weighted_stitch_reproduces_object_and_weight_map() -> None:
    r = torch.arange(N, dtype=torch.float64) - N // 2
    probe = torch.exp(-(r[:, None] ** 2 + (r[None, :] - 1) ** 2) / 6.0).to(torch.complex64)
    weights = probe_intensity(probe)
    obj = random_object(SHAPE, seed=12)
    positions = raster_positions(2.5, jitter=0.7, seed=2)
    stitched, weight = stitch_patches(extract_patches(obj, positions, N), positions, SHAPE, weights=weights)
    expected_weight = numpy_weight_map(positions.numpy(), weights.double().numpy())
    np.testing.assert_allclose(weight.numpy(), expected_weight, rtol=1e-5, atol=1e-6)
    covered = weight > 1e-6 * weight.max()
    torch.testing.assert_close(stitched[covered], obj[covered], atol=1e-5, rtol=0)


def test_weights_are_applied_in_patch_frame_with_correct_orientation() -> None:
    """Two constant, inconsistent patches: each overlap pixel is sum(w * value) / sum(w)."""
    rng = np.random.default_rng(3)
    weights = rng.uniform(0.1, 2.0, (N, N))  # asymmetric, so a flipped or transposed weight would differ
    positions = np.array([[15.0, 20.0], [18.0, 23.0]])
    values = np.array([1.0 + 1j, 3.0 - 1j])
    patches = torch.as_tensor(values[:, None, None] * np.ones((2, N, N))).to(torch.complex128)
    stitched, _ = stitch_patches(patches, torch.as_tensor(positions), SHAPE, weights=torch.as_tensor(weights))
    num = np.zeros(SHAPE, complex)
    den = np.zeros(SHAPE)
    for (pr, pc), v in zip(positions.astype(int), values, strict=True):
        num[pr - N // 2 : pr + N // 2, pc - N // 2 : pc + N // 2] += weights * v
        den[pr - N // 2 : pr + N // 2, pc - N // 2 : pc + N // 2] += weights
    expected = np.where(den > 0, num / np.where(den > 0, den, 1), 0)
    np.testing.assert_allclose(stitched.numpy(), expected, atol=1e-12)


def test_chunked_stitch_equals_one_shot_stitch() -> None:
    positions = raster_positions(2.0, jitter=0.5, seed=4)
    gen = torch.Generator().manual_seed(0)
    patches = torch.randn(positions.shape[0], N, N, dtype=torch.complex64, generator=gen)
    weights = torch.rand(N, N, generator=gen) + 0.1
    one_obj, one_w = stitch_patches(patches, positions, SHAPE, weights=weights, chunk_size=100_000)
    chunk_obj, chunk_w = stitch_patches(patches, positions, SHAPE, weights=weights, chunk_size=7)
    torch.testing.assert_close(chunk_obj, one_obj, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(chunk_w, one_w, atol=1e-5, rtol=1e-5)

    acc = ObjectAccumulator(SHAPE, device=patches.device, dtype=torch.complex64)
    for part in torch.split(torch.arange(positions.shape[0]), 33):
        acc.add(patches[part], positions[part], weights)
    acc_obj, acc_w = acc.result()
    torch.testing.assert_close(acc_obj, one_obj, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(acc_w, one_w, atol=1e-5, rtol=1e-5)


def test_stitch_accepts_numpy_patches_and_complex128() -> None:
    obj = random_object(SHAPE, seed=13, dtype=torch.complex128)
    positions = raster_positions(4.0, jitter=0.4, seed=5)
    patches = extract_patches(obj, positions, N)
    stitched, weight = stitch_patches(patches.numpy(), positions.numpy(), SHAPE, chunk_size=5)
    assert stitched.dtype == torch.complex128
    covered = weight > 0
    torch.testing.assert_close(stitched[covered], obj[covered], atol=1e-12, rtol=0)


def test_stitch_rejects_bad_arguments() -> None:
    patches = torch.zeros(2, N, N, dtype=torch.complex64)
    with pytest.raises(DataError):
        stitch_patches(patches, torch.tensor([[3.0, 10.0], [10.0, 10.0]]), SHAPE)  # leaves the object
    with pytest.raises(DataError):
        stitch_patches(patches, torch.tensor([[10.0, 10.0]]), SHAPE)  # count mismatch
    with pytest.raises(DataError):
        stitch_patches(patches, torch.tensor([[10.0, 10.0]] * 2), SHAPE, weights=torch.ones(N, N + 1))
    with pytest.raises(DataError):
        stitch_patches(patches, torch.tensor([[10.0, 10.0]] * 2), SHAPE, weights=-torch.ones(N, N))


def test_bilinear_shift_follows_the_fourier_convention_and_interpolates_linearly() -> None:
    """out(r, c) = in(r - s_row, c - s_col), as ``fourier_shift``: on a slow periodic wave the two kernels
    agree; on a ramp a half-pixel bilinear shift is exactly the ramp half a pixel back; no shift, no change."""
    from ptychodus_torch_plugin.physics.shift import fourier_shift
    from ptychodus_torch_plugin.physics.windows import bilinear_shift_windows

    rows = torch.arange(32, dtype=torch.float64)
    wave = torch.exp(2j * torch.pi * (rows[:, None] * 1 + rows[None, :] * 2) / 32)[None]
    shift = torch.tensor([[0.3, 0.7]], dtype=torch.float64)
    torch.testing.assert_close(bilinear_shift_windows(wave, shift), fourier_shift(wave, shift), atol=0.05, rtol=0)
    ramp = (rows[:, None] + 10 * rows[None, :])[None]
    half = bilinear_shift_windows(ramp, torch.tensor([[0.5, 0.5]], dtype=torch.float64))
    torch.testing.assert_close(half[0, 1:, 1:], ramp[0, 1:, 1:] - 0.5 - 5.0)
    assert torch.equal(bilinear_shift_windows(wave, torch.zeros(1, 2, dtype=torch.float64)), wave)


@pytest.mark.parametrize("resampling", ["fourier", "bilinear"])
def test_hard_edged_patches_at_half_pixel_positions_ring_only_under_a_fourier_shift(resampling: str) -> None:
    """A decoded patch is zero outside its central support. Placed at half-pixel positions (every position
    of a raster can be), a Fourier shift rings from that edge across the patch; bilinear placement of
    w*patch and w returns the constant exactly, with a weight map that stays non-negative."""
    size = 16
    weights = torch.zeros(size, size)
    weights[4:12, 4:12] = 1.0
    grid = np.meshgrid(np.arange(9, 38, 2.0), np.arange(9, 54, 2.0), indexing="ij")
    positions = torch.as_tensor(np.stack(grid, -1).reshape(-1, 2) + 0.5)
    patches = torch.full((positions.shape[0], size, size), 0.8 + 0.3j, dtype=torch.complex64) * weights
    accumulator = ObjectAccumulator((48, 64), resampling=resampling)
    accumulator.add(patches, positions, weights)
    stitched, weight = accumulator.result()
    inside = weight > 0.5 * weight.max()
    error = (stitched[inside] - (0.8 + 0.3j)).abs().max().item()
    if resampling == "bilinear":
        assert error < 1e-5 and bool((weight >= 0).all())
    else:
        assert error > 1e-2  # the ringing the bilinear placement removes


def test_unknown_resampling_is_refused() -> None:
    with pytest.raises(DataError, match="resampling"):
        ObjectAccumulator(SHAPE, resampling="cubic")
