"""Probe layout: always (modes, N, N) complex, so the forward model never branches on the probe's rank."""

import torch
from torch import Tensor

from ..errors import DataError
from ._dtypes import as_complex


def as_probe_modes(probe: Tensor) -> Tensor:
    """Return the probe as (modes, N, N) complex; a single (N, N) probe becomes one mode.

    Real probes are promoted to complex of the same precision.
    """
    if not isinstance(probe, Tensor):
        probe = torch.as_tensor(probe)
    if probe.ndim == 2:
        probe = probe.unsqueeze(0)
    if probe.ndim != 3:
        raise DataError(f"probe must have shape (N, N) or (modes, N, N), got {tuple(probe.shape)}")
    if probe.shape[-1] != probe.shape[-2]:
        raise DataError(f"probe must be square, got {tuple(probe.shape[-2:])}")
    if probe.shape[0] < 1:
        raise DataError("probe has zero modes")
    return as_complex(probe)


def probe_intensity(probe: Tensor) -> Tensor:
    """Total illumination sum_m |P_m|^2 as a real (N, N) map: the natural stitching weight."""
    modes = as_probe_modes(probe)
    return (modes.real.square() + modes.imag.square()).sum(dim=0)
