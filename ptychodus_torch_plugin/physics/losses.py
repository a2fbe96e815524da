"""Data-fidelity losses between predicted and observed diffraction amplitudes (sqrt counts)."""

import torch
from torch import Tensor

from ..errors import ConfigError

_REDUCTIONS = ("mean", "sum", "none")


def _reduce(values: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return values.mean()
    if reduction == "sum":
        return values.sum()
    if reduction == "none":
        return values
    raise ConfigError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def poisson_nll(
    pred_amplitude: Tensor,
    observed_amplitude: Tensor,
    scale: float | Tensor = 1.0,
    reduction: str = "mean",
    eps: float = 1e-8,
) -> Tensor:
    """Poisson negative log-likelihood of the observed counts given the predicted intensities.

    lambda = (scale * pred)^2 and k = (scale * obs)^2 are counts; NLL = lambda - k * log(lambda + eps).
    The constant log(k!) is dropped: it does not depend on the prediction, so gradients are unchanged,
    but the value is not a normalised log-likelihood. Observations are cast to the prediction's floating
    dtype before squaring, so integer counts never overflow.
    """
    if reduction not in _REDUCTIONS:
        raise ConfigError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    observed = observed_amplitude.to(dtype=pred_amplitude.dtype)
    rate = (scale * pred_amplitude).square()
    counts = (scale * observed).square()
    return _reduce(rate - counts * torch.log(rate + eps), reduction)


def amplitude_mae(pred: Tensor, obs: Tensor, reduction: str = "mean") -> Tensor:
    """Mean absolute error between amplitudes: a scale-free alternative to the Poisson loss."""
    if reduction not in _REDUCTIONS:
        raise ConfigError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    return _reduce((pred - obs.to(dtype=pred.dtype)).abs(), reduction)
