"""The update rules of the iterative reconstructor: small tensors-in, tensors-out functions.

Far-field arrays here are plain ``fft2(exit_wave, norm="ortho")`` without the centring shifts of
:func:`~ptychodus_torch_plugin.physics.far_field`: a circular shift of the exit wave only multiplies its
transform by a phase ramp, so the modulus (all that is measured) is the same, and the measured amplitudes
are ``ifftshift``-ed once per scan instead of shifting every exit wave twice per update. The LSQ-ML
formulation (Odstrcil et al., Opt. Express 26, 3108, 2018) is followed: a target exit wave from the noise
model, an update direction from the exit-wave difference, and a least-squares step length along it.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

_DIMS = (-2, -1)
_EPS = 1e-12


def intensity(far: Tensor) -> Tensor:
    """Incoherent sum over modes: (B, K, N, N) complex -> (B, 1, N, N) real."""
    power = far.real.square() + far.imag.square()
    return power if power.shape[1] == 1 else power.sum(dim=1, keepdim=True)


def far_field_correction(far: Tensor, measured: Tensor, noise_model: str,
                         valid: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Exit-wave change in the far field (B, K, N, N), each pattern's loss (B,) under the noise model, and
    each pattern's squared amplitude error sum (|F| - A)^2 (B,), the model-independent convergence measure.

    ``measured`` (B, N, N) are amplitudes (sqrt counts) in ``fft2`` layout. Gaussian: replace the modulus
    by the measured one (the minimiser of sum (|F| - A)^2 along the current phase). Poisson: one Newton
    step per pixel on the counts' negative log-likelihood I - k log I, taken in the amplitude a = sqrt(I):
    a' = 2 k a / (a^2 + k), i.e. the far field scaled by 1 + (k - I) / (k + I). That factor is bounded in
    [0, 2], so dark pixels (I -> 0), where the likelihood's gradient k / I - 1 explodes, stay stable.
    Pixels where ``valid`` (N, N) is False are left unconstrained and do not count in the loss.
    """
    predicted = intensity(far)
    target = measured.unsqueeze(1)
    amplitude = predicted.sqrt()
    error = (amplitude - target).square()
    if noise_model == "gaussian":
        factor = target / (amplitude + _EPS) - 1.0
    else:
        counts = target.square()
        factor = (counts - predicted) / (counts + predicted + _EPS)
    if valid is not None:
        factor = factor * valid
        error = error * valid
    dims = (-3, -2, -1)
    error_sum = error.sum(dim=dims)
    if noise_model == "gaussian":
        return far * factor, error_sum, error_sum
    nll = predicted - counts * torch.log(predicted + _EPS)
    if valid is not None:
        nll = nll * valid
    return far * factor, nll.sum(dim=dims), error_sum


def exit_wave_change(far_change: Tensor) -> Tensor:
    """Back to real space (the ``fft2`` layout's exact inverse)."""
    return torch.fft.ifft2(far_change, norm="ortho")


def project(far_waves: Tensor) -> Tensor:
    return torch.fft.fft2(far_waves, norm="ortho")


def object_gradient(chi: Tensor, probes: Tensor) -> Tensor:
    """sum_k conj(P_k) chi_k: the object-window update direction (B, N, N) before normalisation."""
    product = probes.conj() * chi
    return product[:, 0] if product.shape[1] == 1 else product.sum(dim=1)


def probe_gradient(chi: Tensor, windows: Tensor) -> Tensor:
    """conj(O) chi_k per pattern and mode (B, K, N, N), in each pattern's shifted probe frame."""
    return windows.conj().unsqueeze(1) * chi


def lsq_step(direction_waves: Tensor, chi: Tensor) -> Tensor:
    """The step a >= 0 that best explains ``chi`` by ``a * direction_waves`` (a 0-d tensor, no host sync)."""
    direction, target = direction_waves.reshape(-1), chi.reshape(-1)
    numerator = torch.vdot(direction, target).real  # one fused reduction, no product array
    denominator = torch.vdot(direction, direction).real
    return (numerator / (denominator + _EPS)).clamp_min(0.0)


def fourier_derivatives(probes: Tensor) -> tuple[Tensor, Tensor]:
    """d/drow and d/dcol of probes (..., N, N), spectrally (exact for a band-limited probe)."""
    rows, cols = probes.shape[-2:]
    spectrum = torch.fft.fft2(probes)
    real = probes.real.dtype
    k_row = torch.fft.fftfreq(rows, device=probes.device, dtype=real).mul(2j * math.pi)[:, None]
    k_col = torch.fft.fftfreq(cols, device=probes.device, dtype=real).mul(2j * math.pi)[None, :]
    return torch.fft.ifft2(spectrum * k_row), torch.fft.ifft2(spectrum * k_col)


def position_steps(chi: Tensor, probes: Tensor, windows: Tensor, limit: float) -> Tensor:
    """Least-squares position change (B, 2) = (row, col) that best explains ``chi``, clamped to +-limit.

    Exit wave i of position p is P(i - p) O(i), so d(exit)/dp = -P'(i - p) O(i); each axis is solved on
    its own, per pattern, by projecting ``chi`` on that derivative.
    """
    d_row, d_col = fourier_derivatives(probes)
    steps = []
    for derivative in (d_row, d_col):
        direction = -derivative * windows.unsqueeze(1)
        numerator = (direction.conj() * chi).real.sum(dim=(-3, -2, -1))
        denominator = (direction.real.square() + direction.imag.square()).sum(dim=(-3, -2, -1))
        steps.append(numerator / (denominator + _EPS))
    return torch.stack(steps, dim=-1).clamp(-limit, limit)
