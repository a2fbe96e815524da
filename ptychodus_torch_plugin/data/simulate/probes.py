"""Synthetic probes, centred on pixel (N//2, N//2) and normalised to unit total power sum |P|^2 = 1.

Why unit power: the simulator then scales the probe once, by the photon budget, so the probe it returns
reproduces the simulated counts through the forward model with no hidden factor.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import erfc

from ...errors import ConfigError

PROBE_KINDS = ("disk", "zoneplate")

#: First zero of the Airy pattern, in units of wavelength / (2 NA): r0 = 0.61 * N / pupil_radius pixels.
_AIRY_FIRST_ZERO = 0.61
_PUPIL_EDGE_PX = 1.0


def centred_radius(n: int) -> np.ndarray:
    """Distance of every pixel of an (N, N) grid from pixel (N//2, N//2), the project's array centre."""
    axis = np.arange(n) - n // 2
    return np.hypot(axis[:, None], axis[None, :])


def unit_power(field: np.ndarray) -> np.ndarray:
    """Scale a field to sum |P|^2 = 1 (complex64)."""
    power = float(np.sum(np.abs(field) ** 2))
    if power <= 0:
        raise ConfigError("the probe parameters give a probe that is zero everywhere")
    return (field / math.sqrt(power)).astype(np.complex64)


def soft_disk(n: int, radius_px: float, edge_px: float = 1.5) -> np.ndarray:
    """Flat-phase disk of the given radius whose edge falls off smoothly over ``edge_px`` pixels.

    The soft edge keeps the diffraction pattern from ringing out to the detector's corners.
    """
    r = centred_radius(n)
    amplitude = 0.5 * erfc((r - radius_px) / max(edge_px, 1e-6))
    return unit_power(amplitude.astype(np.complex128))


def centred_fft(field: np.ndarray, inverse: bool = False) -> np.ndarray:
    """Orthonormal 2-D FFT with the origin at (N//2, N//2) on both sides (the project's convention)."""
    shifted = np.fft.ifftshift(field)
    out = np.fft.ifft2(shifted, norm="ortho") if inverse else np.fft.fft2(shifted, norm="ortho")
    return np.fft.fftshift(out)


def fresnel_propagate(field: np.ndarray, defocus_waves: float, reference_frequency_px: float) -> np.ndarray:
    """Propagate a field by a Fresnel (paraxial) transfer function, in dimensionless form.

    The transfer function exp(i pi lambda z |f|^2) is written as exp(2 pi i W (|f| / f_ref)^2): W is the
    defocus in waves at spatial frequency ``reference_frequency_px`` (cycles per N pixels), which is
    all that matters once the pixel pitch, wavelength and distance are folded together.
    """
    k = centred_radius(field.shape[-1])
    transfer = np.exp(2j * math.pi * defocus_waves * (k / reference_frequency_px) ** 2)
    return centred_fft(centred_fft(field) * transfer, inverse=True)


def zone_plate(
    n: int, radius_px: float, *, focus_radius_px: float = 2.0, central_stop: float = 0.25
) -> np.ndarray:
    """A zone-plate-like beam: the focus of a (centrally stopped) disk aperture, defocused to ``radius_px``.

    The aperture radius in the pupil is chosen so the in-focus Airy spot has its first zero at
    ``focus_radius_px``; the defocus is then chosen so the geometric beam radius is ``radius_px``
    (a ray at the pupil edge lands 2 N W / pupil_radius pixels from the axis).
    """
    pupil_radius = _AIRY_FIRST_ZERO * n / focus_radius_px
    if pupil_radius >= n / 2:
        raise ConfigError(
            f"probe focus radius {focus_radius_px} px is too small for N = {n}: "
            "the aperture would exceed the "
            f"detector (needs focus radius > {2 * _AIRY_FIRST_ZERO:.2f} px)"
        )
    k = centred_radius(n)
    # Edges softened over ~1 frequency pixel: a hard-edged pupil rings out to (and wraps around) the array.
    outer = 0.5 * erfc((k - pupil_radius) / _PUPIL_EDGE_PX)
    inner = 0.5 * erfc((central_stop * pupil_radius - k) / _PUPIL_EDGE_PX) if central_stop > 0 else 1.0
    pupil = (outer * inner).astype(np.complex128)
    focus = centred_fft(pupil, inverse=True)
    defocus_waves = max(radius_px - focus_radius_px, 0.0) * pupil_radius / (2 * n)
    return unit_power(fresnel_propagate(focus, defocus_waves, pupil_radius))


def make_probe(
    kind: str,
    n: int,
    radius_px: float,
    *,
    edge_px: float = 1.5,
    focus_radius_px: float = 2.0,
    central_stop: float = 0.25,
) -> np.ndarray:
    """(1, N, N) complex64 unit-power probe of the named kind."""
    if kind == "disk":
        probe = soft_disk(n, radius_px, edge_px)
    elif kind == "zoneplate":
        probe = zone_plate(n, radius_px, focus_radius_px=focus_radius_px, central_stop=central_stop)
    else:
        raise ConfigError(f"unknown probe kind {kind!r}; choose one of {', '.join(PROBE_KINDS)}")
    return probe[np.newaxis]
