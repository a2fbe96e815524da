"""Far-field convention: centred orthonormal FFT, zero frequency at (N//2, N//2), incoherent mode sum."""

import numpy as np
import pytest
import torch
from physics_helpers import numpy_centred_dft, random_object

from ptychodus_torch_plugin.errors import DataError
from ptychodus_torch_plugin.physics import (
    as_probe_modes,
    far_field,
    inverse_far_field,
    predicted_amplitude,
    probe_intensity,
)


def gaussian_probe(n: int, sigma: float, dtype: torch.dtype = torch.complex128) -> torch.Tensor:
    r = torch.arange(n, dtype=torch.float64) - n // 2
    g = torch.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * sigma**2))
    return g.to(dtype)


def test_far_field_conserves_total_intensity_parseval() -> None:
    x = random_object((16, 16), seed=1, dtype=torch.complex128).expand(3, 16, 16) * torch.tensor(
        [1.0, 2.0, 0.5], dtype=torch.float64
    ).view(3, 1, 1)
    f = far_field(x)
    torch.testing.assert_close(f.abs().square().sum(dim=(-2, -1)), x.abs().square().sum(dim=(-2, -1)))
    torch.testing.assert_close(inverse_far_field(f), x)


@pytest.mark.parametrize("shape", [(16, 16), (15, 15), (12, 20)])
def test_plane_wave_focuses_on_centre_pixel(shape: tuple[int, int]) -> None:
    h, w = shape
    f = far_field(torch.ones(h, w, dtype=torch.complex128))
    expected = torch.zeros(h, w, dtype=torch.complex128)
    expected[h // 2, w // 2] = np.sqrt(h * w)  # orthonormal: all energy h*w in one pixel
    torch.testing.assert_close(f, expected, atol=1e-12, rtol=0)


def test_centred_probe_gives_pattern_centred_at_n_half() -> None:
    n = 32
    amp = far_field(gaussian_probe(n, sigma=3.0)).abs()
    peak = divmod(int(torch.argmax(amp)), n)
    assert peak == (n // 2, n // 2)
    # symmetric about (N//2, N//2): index N//2 + k mirrors N//2 - k
    k = torch.arange(1, n // 2)
    torch.testing.assert_close(amp[n // 2 + k, n // 2], amp[n // 2 - k, n // 2])
    torch.testing.assert_close(amp[n // 2, n // 2 + k], amp[n // 2, n // 2 - k])


def test_tilted_wave_lands_on_its_frequency_row_and_col() -> None:
    h, w, kr, kc = 12, 20, 2, -3
    r = torch.arange(h, dtype=torch.float64)[:, None]
    c = torch.arange(w, dtype=torch.float64)[None, :]
    wave = torch.exp(2j * np.pi * (kr * r / h + kc * c / w))
    amp = far_field(wave).abs()
    assert divmod(int(torch.argmax(amp)), w) == (h // 2 + kr, w // 2 + kc)


@pytest.mark.parametrize("shape", [(8, 8), (7, 7), (6, 10)])
def test_far_field_matches_numpy_matrix_dft_including_phase(shape: tuple[int, int]) -> None:
    x = random_object(shape, seed=3, dtype=torch.complex128)
    np.testing.assert_allclose(far_field(x).numpy(), numpy_centred_dft(x.numpy()), atol=1e-12)


def _numpy_amplitude(probe: np.ndarray, patches: np.ndarray) -> np.ndarray:
    """Independent float64 forward model: sqrt(sum over modes |DFT(P_m * O)|^2)."""
    out = np.zeros(patches.shape, dtype=np.float64)
    for idx in np.ndindex(patches.shape[:-2]):
        intensity = sum(np.abs(numpy_centred_dft(mode * patches[idx])) ** 2 for mode in probe)
        out[idx] = np.sqrt(intensity)
    return out


@pytest.mark.parametrize("dtype,tol", [(torch.complex128, 1e-10), (torch.complex64, 2e-5)])
def test_predicted_amplitude_matches_independent_numpy_forward_model(dtype: torch.dtype, tol: float) -> None:
    rng = np.random.default_rng(7)
    probe = rng.normal(size=(2, 8, 8)) + 1j * rng.normal(size=(2, 8, 8))
    patches = np.stack([random_object((8, 8), seed=s, dtype=torch.complex128).numpy() for s in range(6)])
    patches = patches.reshape(2, 3, 8, 8)
    got = predicted_amplitude(torch.as_tensor(probe).to(dtype), torch.as_tensor(patches).to(dtype))
    assert got.shape == (2, 3, 8, 8) and not got.is_complex()
    expected = _numpy_amplitude(probe, patches)
    np.testing.assert_allclose(got.double().numpy(), expected, rtol=tol, atol=tol * expected.max())


def test_single_mode_probe_without_mode_axis_is_accepted() -> None:
    probe = gaussian_probe(8, 2.0)
    patches = random_object((8, 8), seed=5, dtype=torch.complex128)[None]
    torch.testing.assert_close(
        predicted_amplitude(probe, patches), predicted_amplitude(probe[None], patches)
    )
    torch.testing.assert_close(predicted_amplitude(probe, patches), far_field(probe * patches).abs())


def test_as_probe_modes_shapes_and_errors() -> None:
    assert as_probe_modes(torch.ones(4, 4)).shape == (1, 4, 4)
    assert as_probe_modes(torch.ones(4, 4)).dtype == torch.complex64
    assert as_probe_modes(torch.ones(3, 4, 4, dtype=torch.complex128)).shape == (3, 4, 4)
    with pytest.raises(DataError):
        as_probe_modes(torch.ones(4, 5))
    with pytest.raises(DataError):
        as_probe_modes(torch.ones(2, 2, 4, 4))
    with pytest.raises(DataError):
        predicted_amplitude(torch.ones(4, 4), torch.ones(2, 5, 5))


def test_probe_intensity_sums_modes() -> None:
    probe = torch.stack([torch.full((3, 3), 1 + 1j), torch.full((3, 3), 2.0 + 0j)])
    torch.testing.assert_close(probe_intensity(probe), torch.full((3, 3), 6.0))


def test_predicted_amplitude_gradcheck() -> None:
    gen = torch.Generator().manual_seed(0)
    probe = torch.randn(2, 5, 5, dtype=torch.complex128, generator=gen, requires_grad=True)
    patches = torch.randn(3, 5, 5, dtype=torch.complex128, generator=gen, requires_grad=True)
    assert torch.autograd.gradcheck(predicted_amplitude, (probe, patches))


def test_gradient_is_finite_where_amplitude_is_zero() -> None:
    probe = gaussian_probe(8, 2.0, torch.complex64)
    patches = torch.zeros(2, 8, 8, dtype=torch.complex64, requires_grad=True)
    predicted_amplitude(probe, patches).sum().backward()
    assert patches.grad is not None and torch.isfinite(torch.view_as_real(patches.grad)).all()
