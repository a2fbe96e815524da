"""Far-field forward model: exit wave -> centred orthonormal FFT -> incoherent amplitude."""

import torch
from torch import Tensor

from ..errors import DataError
from ._dtypes import as_complex
from .probe import as_probe_modes

_DIMS = (-2, -1)


def far_field(exit_waves: Tensor) -> Tensor:
    """Centred orthonormal 2-D FFT over the last two axes.

    The input's centre pixel (N//2, N//2) is the origin and the zero frequency lands on (N//2, N//2).
    ``norm="ortho"`` keeps total intensity unchanged (Parseval), so counts, probe power and object
    transmission share one scale without hidden factors of N.
    """
    x = torch.fft.ifftshift(as_complex(exit_waves), dim=_DIMS)
    return torch.fft.fftshift(torch.fft.fft2(x, norm="ortho"), dim=_DIMS)


def inverse_far_field(fields: Tensor) -> Tensor:
    """Exact inverse of :func:`far_field` (same centring and normalisation)."""
    x = torch.fft.ifftshift(as_complex(fields), dim=_DIMS)
    return torch.fft.fftshift(torch.fft.ifft2(x, norm="ortho"), dim=_DIMS)


def predicted_amplitude(probe: Tensor, patches: Tensor) -> Tensor:
    """Diffraction amplitude sqrt(sum_m |F(P_m * O)|^2) for object patches (..., N, N).

    The mode sum is taken with ``vector_norm``, whose gradient is defined as 0 where the amplitude is
    exactly 0, so dark pixels never produce NaN gradients and the amplitude carries no epsilon bias.
    """
    modes = as_probe_modes(probe)
    if patches.shape[-2:] != modes.shape[-2:]:
        raise DataError(
            f"patch size {tuple(patches.shape[-2:])} does not match probe size {tuple(modes.shape[-2:])}"
        )
    modes = modes.to(device=patches.device)
    exit_waves = as_complex(patches).unsqueeze(-3) * modes  # (..., modes, N, N)
    return torch.linalg.vector_norm(far_field(exit_waves), dim=-3)
