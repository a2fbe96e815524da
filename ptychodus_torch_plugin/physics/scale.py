"""Intensity scale: the factor between network amplitudes and sqrt-counts, derived from the data."""

import math

import numpy as np
import torch
from torch import Tensor

from ..errors import DataError

#: Patterns summed per step when measuring the data set, so a 100k-pattern file is never copied whole.
_CHUNK = 1024


def amplitude_from_counts(counts: Tensor) -> Tensor:
    """Diffraction amplitudes sqrt(counts), computed in floating point (uint16 counts never overflow)."""
    counts = torch.as_tensor(counts)
    values = counts if counts.is_floating_point() else counts.to(torch.float32)
    return torch.sqrt(values.clamp_min(0))


def _chunk_array(chunk: object) -> np.ndarray:
    if isinstance(chunk, Tensor):
        return chunk.detach().cpu().to(torch.float64).numpy()
    return np.asarray(chunk, dtype=np.float64)


def mean_total_intensity(observed_amplitudes: Tensor | np.ndarray) -> float:
    """Mean over patterns of sum_pixels A^2 (counts per pattern), accumulated in float64 chunk by chunk."""
    count = len(observed_amplitudes)
    if count == 0:
        raise DataError("cannot derive an intensity scale from an empty data set")
    if isinstance(observed_amplitudes, Tensor) and observed_amplitudes.device.type != "cpu":
        return _mean_total_on_device(observed_amplitudes)
    total = 0.0
    for start in range(0, count, _CHUNK):
        chunk = _chunk_array(observed_amplitudes[start : start + _CHUNK])
        if chunk.ndim < 3:
            raise DataError(f"amplitudes must have shape (M, H, W), got a chunk of shape {chunk.shape}")
        if not np.isfinite(chunk).all() or (chunk < 0).any():
            raise DataError("amplitudes must be finite and non-negative (sqrt of counts)")
        total += float(np.square(chunk).sum())
    return total / count


def _mean_total_on_device(amplitudes: Tensor) -> float:
    """:func:`mean_total_intensity` of a tensor already on an accelerator, without copying it to the host:
    float64 sums and the validity check stay on the device and are read back once."""
    if amplitudes.ndim < 3:
        raise DataError(f"amplitudes must have shape (M, H, W), got {tuple(amplitudes.shape)}")
    total = torch.zeros((), dtype=torch.float64, device=amplitudes.device)
    valid = torch.ones((), dtype=torch.bool, device=amplitudes.device)
    for chunk in amplitudes.split(_CHUNK):  # float64 copies of one chunk at a time, not of the scan
        values = chunk.to(torch.float64)
        valid &= torch.isfinite(values).all() & (values >= 0).all()
        total += values.square().sum()
    if not bool(valid):
        raise DataError("amplitudes must be finite and non-negative (sqrt of counts)")
    return float(total) / len(amplitudes)


def intensity_scale(
    observed_amplitudes: Tensor | np.ndarray, target_total_intensity: float | None = None
) -> float:
    """Scale s with amplitudes_in_sqrt_counts = s * network_amplitudes.

    s = sqrt(mean_m sum_pixels A_m^2 / T): dividing the observed amplitudes by s makes the mean total
    intensity per pattern equal to T, and a predicted amplitude times s is again in sqrt-counts (it is the
    ``scale`` of :func:`poisson_nll`). T defaults to (N/2)^2 = H*W/4, the total intensity of a unit-
    amplitude probe filling the central half of the window on a unit-amplitude object, so the network's
    object amplitude is O(1) whatever the dose. This is PtychoPINN's s = sqrt(nphotons / mean sum |X|^2)
    with nphotons = mean counts per pattern and X the normalised amplitudes.
    """
    height, width = observed_amplitudes.shape[-2], observed_amplitudes.shape[-1]
    return scale_from_mean_total(mean_total_intensity(observed_amplitudes), height, width, target_total_intensity)


def scale_from_mean_total(mean_total: float, height: int, width: int,
                          target_total_intensity: float | None = None) -> float:
    """:func:`intensity_scale` from the mean total counts per pattern, however they were summed (in one
    array, or block by block over a file and over ranks)."""
    if target_total_intensity is None:
        target_total_intensity = height * width / 4.0
    if not target_total_intensity > 0:
        raise DataError(f"the target total intensity must be positive, got {target_total_intensity}")
    if mean_total <= 0:
        raise DataError("every diffraction pattern is zero; no intensity scale can be derived")
    return math.sqrt(mean_total / target_total_intensity)
