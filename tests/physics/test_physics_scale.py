"""Intensity scale: s = sqrt(mean_m sum A_m^2 / T), T = (N/2)^2 by default."""

import numpy as np
import pytest
import torch

from ptychodus_torch_plugin.errors import DataError
from ptychodus_torch_plugin.physics import (
    amplitude_from_counts,
    intensity_scale,
    mean_total_intensity,
    poisson_nll,
)


def test_scale_normalises_mean_total_intensity_to_target() -> None:
    rng = np.random.default_rng(0)
    amplitudes = rng.gamma(2.0, 3.0, (50, 16, 16))
    s = intensity_scale(amplitudes)
    assert isinstance(s, float)
    assert s == pytest.approx(np.sqrt((amplitudes**2).sum(axis=(1, 2)).mean() / 64.0), rel=1e-12)
    normalised = amplitudes / s
    assert (normalised**2).sum(axis=(1, 2)).mean() == pytest.approx((16 / 2) ** 2, rel=1e-12)
    assert intensity_scale(amplitudes, target_total_intensity=1.0) == pytest.approx(8.0 * s, rel=1e-12)


def test_scale_is_proportional_to_amplitude_and_torch_numpy_agree() -> None:
    rng = np.random.default_rng(1)
    amplitudes = rng.uniform(0, 5, (2500, 4, 4))  # more than one internal chunk
    s = intensity_scale(amplitudes)
    assert intensity_scale(3.0 * amplitudes) == pytest.approx(3.0 * s, rel=1e-12)
    assert intensity_scale(torch.as_tensor(amplitudes, dtype=torch.float32)) == pytest.approx(s, rel=1e-6)
    assert mean_total_intensity(amplitudes) == pytest.approx((amplitudes**2).sum() / 2500, rel=1e-12)


def test_scaled_network_amplitudes_are_sqrt_counts_for_the_poisson_loss() -> None:
    rng = np.random.default_rng(2)
    counts = rng.poisson(50.0, (20, 8, 8)).astype(np.uint16)
    observed = amplitude_from_counts(torch.as_tensor(counts.astype(np.int32)))
    s = intensity_scale(observed)
    network = observed / s  # what the network sees and predicts
    loss = poisson_nll(network, network, scale=s, reduction="none")
    lam = torch.as_tensor(counts, dtype=torch.float32)
    torch.testing.assert_close(loss, lam - lam * torch.log(lam + 1e-8), rtol=1e-5, atol=1e-3)


def test_amplitude_from_uint8_and_int_counts() -> None:
    counts = torch.tensor([[0, 255], [4, 9]], dtype=torch.uint8)
    torch.testing.assert_close(amplitude_from_counts(counts), torch.tensor([[0.0, 255**0.5], [2.0, 3.0]]))


def test_scale_errors() -> None:
    with pytest.raises(DataError):
        intensity_scale(np.zeros((0, 4, 4)))
    with pytest.raises(DataError):
        intensity_scale(np.zeros((3, 4, 4)))
    with pytest.raises(DataError):
        intensity_scale(-np.ones((3, 4, 4)))
    with pytest.raises(DataError):
        intensity_scale(np.full((3, 4, 4), np.nan))
    with pytest.raises(DataError):
        intensity_scale(np.ones((3, 4)))
