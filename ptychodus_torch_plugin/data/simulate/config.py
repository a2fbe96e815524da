"""Settings of one simulated dataset, checked once so the generators can trust them."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ...errors import ConfigError
from .objects import BUNDLED_IMAGES, DEFAULT_IMAGES, OBJECT_KINDS
from .probes import PROBE_KINDS
from .scans import SCAN_KINDS


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate. Lengths are in object pixels; ``None`` sizes are derived from the others.

    ``nphotons`` is the mean total count per diffraction pattern; ``None`` gives noiseless data scaled to
    :data:`NOISELESS_PHOTONS`. The same ``seed`` always gives the same dataset.
    """

    object_kind: str = "lines"
    #: Side of the square object; None = just large enough for the scan (see ``scans.required_object_size``).
    object_size: int | None = None
    patch_size: int = 64
    probe_kind: str = "zoneplate"
    #: Probe radius (disk radius, or the zone plate's defocused beam radius); None = patch_size / 5.
    probe_radius_px: float | None = None
    probe_edge_px: float = 1.5
    probe_focus_radius_px: float = 2.0
    probe_central_stop: float = 0.25
    scan_kind: str = "raster"
    n_positions: int = 64
    #: Raster (rows, cols); None = as square as possible.
    grid: tuple[int, int] | None = None
    #: Distance between neighbouring positions; None = patch_size / 8.
    step_px: float | None = None
    jitter_px: float = 0.0
    nphotons: float | None = 1e6
    seed: int = 0
    lines_per_kpx: float = 2.5
    grf_correlation_px: float = 4.0
    #: Pictures (amplitude, phase) of the ``image`` object, from ``objects.BUNDLED_IMAGES``.
    images: tuple[str, str] = DEFAULT_IMAGES
    pixel_size_m: float | None = None

    def __post_init__(self) -> None:
        _choice("object kind", self.object_kind, OBJECT_KINDS)
        _choice("probe kind", self.probe_kind, PROBE_KINDS)
        _choice("scan kind", self.scan_kind, SCAN_KINDS)
        if len(self.images) != 2:
            raise ConfigError(f"images must name two pictures (amplitude, phase); got {self.images!r}")
        for name in self.images:
            _choice("image", name, BUNDLED_IMAGES)
        if not isinstance(self.patch_size, int) or self.patch_size < 8:
            raise ConfigError(f"patch size must be an integer >= 8; got {self.patch_size!r}")
        if not isinstance(self.n_positions, int) or self.n_positions < 1:
            raise ConfigError(f"the number of positions must be a positive integer; got {self.n_positions!r}")
        if self.object_size is not None and (
            not isinstance(self.object_size, int) or self.object_size < self.patch_size
        ):
            raise ConfigError(
                f"object size must be an integer >= the patch size {self.patch_size}; "
                f"got {self.object_size!r}"
            )
        if self.grid is not None and (len(self.grid) != 2 or min(self.grid) < 1):
            raise ConfigError(f"grid must be two positive integers (rows, cols); got {self.grid!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"seed must be a non-negative integer; got {self.seed!r}")
        _positive("step", self.step, allow_zero=False)
        _positive("jitter", self.jitter_px, allow_zero=True)
        _positive("probe radius", self.probe_radius, allow_zero=False)
        _positive("probe edge width", self.probe_edge_px, allow_zero=True)
        _positive("probe focus radius", self.probe_focus_radius_px, allow_zero=False)
        _positive("line density", self.lines_per_kpx, allow_zero=False)
        _positive("correlation length", self.grf_correlation_px, allow_zero=False)
        if not 0 <= self.probe_central_stop < 1:
            raise ConfigError(
                f"the central stop must be a fraction in [0, 1); got {self.probe_central_stop!r}"
            )
        if self.probe_radius >= self.patch_size / 2:
            raise ConfigError(
                f"probe radius {self.probe_radius:g} px does not fit in a {self.patch_size} px patch "
                f"(must be < {self.patch_size / 2:g})"
            )
        if self.nphotons is not None:
            _positive("nphotons", self.nphotons, allow_zero=False)
        if self.pixel_size_m is not None:
            _positive("pixel size", self.pixel_size_m, allow_zero=False)

    @property
    def step(self) -> float:
        """Scan step in pixels, with the default filled in."""
        return self.patch_size / 8 if self.step_px is None else float(self.step_px)

    @property
    def probe_radius(self) -> float:
        """Probe radius in pixels, with the default filled in."""
        return self.patch_size / 5 if self.probe_radius_px is None else float(self.probe_radius_px)


#: Mean total counts per pattern of a noiseless simulation (only sets the amplitude scale).
NOISELESS_PHOTONS = 1e6


def _choice(what: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"unknown {what} {value!r}; choose one of {', '.join(allowed)}")


def _positive(what: str, value: float, *, allow_zero: bool) -> None:
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{what} must be a number; got {value!r}") from exc
    if not math.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{what} must be finite and {bound}; got {value!r}")
