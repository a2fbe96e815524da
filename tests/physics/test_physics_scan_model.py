"""The scan forward model: object on its own grid, probe shifted by the sub-pixel remainder."""

import numpy as np
import pytest
import torch
from physics_helpers import numpy_centred_dft, random_object

from ptychodus_torch_plugin.errors import DataError
from ptychodus_torch_plugin.physics import extract_patches, predicted_amplitude
from ptychodus_torch_plugin.physics.scan_model import place_windows, scan_amplitudes, shifted_probes

N = 16


def gaussian(n: int, sigma: float, centre: tuple[float, float]) -> np.ndarray:
    """A complex Gaussian probe evaluated analytically around ``centre`` (row, col) pixels."""
    r = np.arange(n, dtype=np.float64)
    g = np.exp(-((r[:, None] - centre[0]) ** 2 + (r[None, :] - centre[1]) ** 2) / (2 * sigma**2))
    return g * np.exp(0.2j * ((r[:, None] - centre[0]) ** 2 - (r[None, :] - centre[1]) ** 2) / sigma**2)


def test_integer_positions_equal_extract_then_predict() -> None:
    obj = random_object((40, 48), seed=3, dtype=torch.complex128)
    probe = torch.as_tensor(gaussian(N, 3.0, (N // 2, N // 2)))[None]
    positions = torch.tensor([[12.0, 20.0], [20.0, 11.0], [30.0, 38.0]], dtype=torch.float64)
    expected = predicted_amplitude(probe, extract_patches(obj, positions, N))
    torch.testing.assert_close(scan_amplitudes(obj, probe, positions), expected, rtol=1e-12, atol=1e-12)


def test_subpixel_position_moves_the_probe_over_the_object_grid() -> None:
    """Independent NumPy model: the analytic probe centred on p, times the object's own pixels, DFT."""
    obj = random_object((40, 40), seed=4, dtype=torch.complex128)
    probe = torch.as_tensor(gaussian(N, 1.8, (N // 2, N // 2)))[None]
    position = (17.3, 21.75)
    origin = (int(np.floor(position[0] - N // 2)), int(np.floor(position[1] - N // 2)))
    # object pixel origin + i sits at probe coordinate (origin + i) - position + N//2
    centre = (position[0] - origin[0], position[1] - origin[1])
    window = obj.numpy()[origin[0]:origin[0] + N, origin[1]:origin[1] + N]
    expected = np.abs(numpy_centred_dft(gaussian(N, 1.8, centre) * window))
    got = scan_amplitudes(obj, probe, torch.tensor([position], dtype=torch.float64))[0].numpy()
    # Fourier vs analytic shift of a truncated Gaussian: 6e-5 of the peak; the sign flipped gives 0.6
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-3 * expected.max())


def test_positive_remainder_moves_the_probe_toward_larger_row_and_col() -> None:
    probe = torch.zeros(1, N, N, dtype=torch.complex128)
    probe[0, N // 2, N // 2] = 1
    moved = shifted_probes(probe, torch.tensor([[0.0, 3.0], [2.0, 0.0]], dtype=torch.float64))
    assert moved.shape == (2, 1, N, N)
    assert torch.argmax(moved[0, 0].abs()).item() == N // 2 * N + N // 2 + 3
    assert torch.argmax(moved[1, 0].abs()).item() == (N // 2 + 2) * N + N // 2


def test_windows_outside_the_object_raise() -> None:
    with pytest.raises(DataError, match="leave"):
        place_windows(torch.tensor([[4.0, 30.0]]), N, (40, 40))
    windows = place_windows(torch.tensor([[8.0, 8.5]]), N, (40, 40))
    assert windows.flat.shape == (1, N * N) and windows.frac.tolist() == [[0.0, 0.5]]
