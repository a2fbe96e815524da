"""Losses: Poisson NLL on intensities (counts) without log k!, and amplitude MAE."""

import numpy as np
import pytest
import torch

from ptychodus_torch_plugin.errors import ConfigError
from ptychodus_torch_plugin.physics import amplitude_mae, poisson_nll


def test_poisson_nll_matches_formula_on_counts() -> None:
    rng = np.random.default_rng(0)
    pred = rng.uniform(0.1, 2.0, (3, 4, 4))
    obs = rng.uniform(0.0, 2.0, (3, 4, 4))
    s = 3.0
    lam, k = (s * pred) ** 2, (s * obs) ** 2
    expected = lam - k * np.log(lam + 1e-8)
    got = poisson_nll(torch.as_tensor(pred), torch.as_tensor(obs), scale=s, reduction="none")
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12)
    torch.testing.assert_close(
        poisson_nll(torch.as_tensor(pred), torch.as_tensor(obs), scale=s), torch.as_tensor(expected.mean())
    )
    torch.testing.assert_close(
        poisson_nll(torch.as_tensor(pred), torch.as_tensor(obs), scale=s, reduction="sum"),
        torch.as_tensor(expected.sum()),
    )


def test_poisson_nll_is_minimal_where_prediction_equals_observation() -> None:
    obs = torch.tensor([0.5, 1.0, 4.0], dtype=torch.float64)
    pred = obs.clone().requires_grad_(True)
    poisson_nll(pred, obs, scale=10.0, reduction="sum").backward()
    torch.testing.assert_close(pred.grad, torch.zeros(3, dtype=torch.float64), atol=1e-6, rtol=0)
    worse = [poisson_nll(obs * f, obs, scale=10.0, reduction="sum") for f in (0.9, 1.1)]
    best = poisson_nll(obs, obs, scale=10.0, reduction="sum")
    assert all(w > best for w in worse)


def test_integer_counts_do_not_overflow() -> None:
    obs = torch.tensor([300, 1000], dtype=torch.int16)  # 300**2 overflows 16-bit integers
    pred = torch.tensor([300.0, 1000.0])
    expected = pred**2 - pred**2 * torch.log(pred**2 + 1e-8)
    torch.testing.assert_close(poisson_nll(pred, obs, reduction="none"), expected)


def test_losses_gradcheck() -> None:
    gen = torch.Generator().manual_seed(0)
    pred = (torch.rand(2, 3, 3, dtype=torch.float64, generator=gen) + 0.1).requires_grad_(True)
    obs = torch.rand(2, 3, 3, dtype=torch.float64, generator=gen) + 0.5
    scale = torch.tensor(2.5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda p, s: poisson_nll(p, obs, s), (pred, scale))
    assert torch.autograd.gradcheck(lambda p: amplitude_mae(p, obs + 2.0), (pred,))


def test_amplitude_mae_and_reduction_errors() -> None:
    pred = torch.tensor([1.0, 2.0, 3.0])
    obs = torch.tensor([1.5, 2.0, 1.0])
    torch.testing.assert_close(amplitude_mae(pred, obs), torch.tensor(2.5 / 3))
    torch.testing.assert_close(amplitude_mae(pred, obs, reduction="none"), torch.tensor([0.5, 0.0, 2.0]))
    with pytest.raises(ConfigError):
        amplitude_mae(pred, obs, reduction="median")
    with pytest.raises(ConfigError):
        poisson_nll(pred, obs, reduction="max")
