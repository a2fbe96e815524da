"""The one in-memory form of a ptychography scan that every loader produces and every consumer reads.

Conventions (fixed project-wide, see ``specs/data_contracts.md``):

- ``positions`` are (row, col) = (y, x) in object pixels; position p puts patch pixel (N//2, N//2) on
  object pixel p, so patch pixel (i, j) samples object pixel (p_row - N//2 + i, p_col - N//2 + j).
- ``amplitudes`` are sqrt(counts), with the zero frequency at pixel (N//2, N//2).
- ``probe`` always carries a leading incoherent-mode axis.

Validation lives here, not in the loaders, so a scan built in memory (by the simulator or a test) is held
to the same rules as one read from a file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import DataError
from .patterns import PatternStack, check_largest_amplitude

#: Extra object pixels around the patches' bounding box when no object array fixes the object's size.
DEFAULT_MARGIN_PX = 4

#: Largest object side accepted, in pixels: positions spanning more are almost surely in the wrong unit.
MAX_OBJECT_SIDE_PX = 1 << 17

#: Slack for sub-pixel positions that sit on the object's edge up to rounding.
_EDGE_TOLERANCE_PX = 1e-6


@dataclass(frozen=True, eq=False)
class ScanData:
    """Measured amplitudes with the probe, scan positions and (optionally) the true object.

    Arrays are converted to the canonical dtypes on construction and then validated; any inconsistency
    raises :class:`DataError`. ``object_shape`` may be left out: it then comes from ``object_truth``, or
    from the bounding box of the patches plus :data:`DEFAULT_MARGIN_PX`.
    """

    amplitudes: np.ndarray | PatternStack
    """(M, N, N) float32 amplitudes: an array in memory, or a :class:`~.patterns.PatternStack` that reads
    them from an HDF5 file block by block (large scans; see :attr:`in_memory`)."""
    probe: np.ndarray
    positions: np.ndarray
    object_truth: np.ndarray | None = None
    object_shape: tuple[int, int] | None = None
    scan_index: np.ndarray | None = None
    pixel_size_m: float | None = None
    #: (N, N) bool, True where the detector pixel is bad (ptychodus's convention); None = all good.
    bad_pixels: np.ndarray | None = None
    #: Optional acquisition metadata, kept so a ptychodus round trip does not lose it.
    photon_energy_eV: float | None = None
    detector_distance_m: float | None = None
    #: Free-form provenance (file name, simulator settings...); never used for computation.
    source: str = field(default="")
    #: (N, N) float32 counts every pattern holds on top of the diffracted light (dark current, stray light),
    #: detector layout like the patterns; None = none. The iterative solver fits sqrt(max(I - b, 0)).
    background: np.ndarray | None = None

    def __post_init__(self) -> None:
        _set = object.__setattr__
        if not isinstance(self.amplitudes, PatternStack):
            _set(self, "amplitudes", _as_real(self.amplitudes, "amplitudes", np.float32))
        _set(self, "probe", _as_probe(self.probe))
        _set(self, "positions", _as_real(self.positions, "positions", np.float64))
        if self.object_truth is not None:
            _set(self, "object_truth", _as_complex(self.object_truth, "object_truth"))
        if self.scan_index is not None:
            _set(self, "scan_index", _as_index(self.scan_index))
        if self.bad_pixels is not None:
            _set(self, "bad_pixels", np.asarray(self.bad_pixels).astype(bool))
        if self.background is not None:
            _set(self, "background", _as_real(self.background, "background", np.float32))
        validate_scan(self)
        shape = _default_object_shape(self) if self.object_shape is None else _as_shape(self.object_shape)
        _set(self, "object_shape", shape)
        _check_patches_inside(self.positions, self.patch_size, self.object_shape)
        if self.object_truth is not None and tuple(self.object_truth.shape) != self.object_shape:
            raise DataError(
                f"object_shape {self.object_shape} does not match the object array's shape "
                f"{tuple(self.object_truth.shape)}"
            )

    @property
    def n_patterns(self) -> int:
        """Number of diffraction patterns M."""
        return int(self.amplitudes.shape[0])

    @property
    def patch_size(self) -> int:
        """Side N of the (square) patterns, probe and object patches."""
        return int(self.amplitudes.shape[-1])

    @property
    def in_memory(self) -> bool:
        """False when the amplitudes stay in their file and are read in blocks (a :class:`PatternStack`)."""
        return not isinstance(self.amplitudes, PatternStack)

    @property
    def amplitude_bytes(self) -> int:
        """Bytes of the amplitudes as float32 (what holding them all in memory takes)."""
        return self.n_patterns * self.patch_size * self.patch_size * 4

    @property
    def n_modes(self) -> int:
        """Number of incoherent probe modes."""
        return int(self.probe.shape[0])


def validate_scan(scan: ScanData) -> None:
    """Check shapes, values and cross-array consistency; raise :class:`DataError` on the first problem."""
    amp, probe, pos = scan.amplitudes, scan.probe, scan.positions
    if amp.ndim != 3:
        raise DataError(f"diffraction patterns must have shape (M, N, N); got rank {amp.ndim} {amp.shape}")
    m, h, w = amp.shape
    if m == 0:
        raise DataError("the scan holds no diffraction patterns (M = 0)")
    if h != w:
        raise DataError(f"diffraction patterns must be square; got {h} x {w}")
    if h < 2:
        raise DataError(f"diffraction patterns must be at least 2 x 2 pixels; got {h} x {w}")
    if isinstance(amp, np.ndarray):  # a PatternStack validates each block as it is read
        _check_amplitude_values(amp)
    if probe.shape[-2:] != (h, w):
        raise DataError(
            f"probe size {probe.shape[-2]} x {probe.shape[-1]} differs from pattern size {h} x {w}"
        )
    if probe.shape[0] == 0:
        raise DataError("the probe has no modes")
    if not np.all(np.isfinite(probe)):
        raise DataError("the probe contains NaN or Inf values")
    if not np.any(np.abs(probe) > 0):
        raise DataError("the probe is zero everywhere")
    if pos.ndim != 2 or pos.shape[1] != 2:
        raise DataError(f"positions must have shape (M, 2) as (row, col); got {pos.shape}")
    if pos.shape[0] != m:
        raise DataError(f"{pos.shape[0]} positions for {m} diffraction patterns: the counts must match")
    if not np.all(np.isfinite(pos)):
        raise DataError("positions contain NaN or Inf values")
    if scan.object_truth is not None:
        obj = scan.object_truth
        if obj.ndim != 2:
            raise DataError(f"the object must be a 2-D (H, W) array; got shape {obj.shape}")
        if not np.all(np.isfinite(obj)):
            raise DataError("the object contains NaN or Inf values")
    if scan.scan_index is not None and scan.scan_index.shape != (m,):
        raise DataError(f"scan_index must have shape ({m},), one per pattern; got {scan.scan_index.shape}")
    if scan.bad_pixels is not None and scan.bad_pixels.shape != (h, w):
        raise DataError(f"bad_pixels must have the pattern shape ({h}, {w}); got {scan.bad_pixels.shape}")
    if scan.background is not None:
        if scan.background.shape != (h, w):
            raise DataError(f"background must have the pattern shape ({h}, {w}); got {scan.background.shape}")
        if not np.all(np.isfinite(scan.background)) or scan.background.min() < 0:
            raise DataError("background must be finite counts >= 0 in every pixel")
    for name in ("pixel_size_m", "photon_energy_eV", "detector_distance_m"):
        value = getattr(scan, name)
        if value is not None and not (math.isfinite(value) and value > 0):
            raise DataError(f"{name} must be a positive finite number; got {value!r}")


def _check_amplitude_values(amp: np.ndarray) -> None:
    """NaN, Inf, negative and absurd values of in-memory amplitudes (a PatternStack checks each block)."""
    if not np.all(np.isfinite(amp)):
        raise DataError(f"diffraction patterns contain {int(np.sum(~np.isfinite(amp)))} NaN or Inf values")
    if np.any(amp < 0):
        raise DataError(f"diffraction amplitudes must be >= 0; found {int(np.sum(amp < 0))} negative values")
    check_largest_amplitude(float(amp.max()))


def patch_extent(positions: np.ndarray, patch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Lowest and highest object pixel (row, col) any patch touches, as float arrays of length 2.

    Why: the same bound decides both 'does the patch leave the object' and the default object size.
    """
    half = patch_size // 2
    low = positions.min(axis=0) - half
    high = positions.max(axis=0) - half + patch_size - 1
    return low, high


def _check_patches_inside(positions: np.ndarray, patch_size: int, shape: tuple[int, int]) -> None:
    half = patch_size // 2
    height, width = shape
    first = positions - half
    last = first + patch_size - 1
    outside = (
        (first[:, 0] < -_EDGE_TOLERANCE_PX)
        | (first[:, 1] < -_EDGE_TOLERANCE_PX)
        | (last[:, 0] > height - 1 + _EDGE_TOLERANCE_PX)
        | (last[:, 1] > width - 1 + _EDGE_TOLERANCE_PX)
    )
    if np.any(outside):
        bad = np.flatnonzero(outside)
        row, col = positions[bad[0]]
        raise DataError(
            f"{bad.size} of {positions.shape[0]} positions put their {patch_size} x {patch_size} patch "
            f"outside the {height} x {width} object (first: index {bad[0]} at row {row:.2f}, col {col:.2f}; "
            f"allowed rows {half}..{height - patch_size + half}, cols {half}..{width - patch_size + half})"
        )


def _default_object_shape(scan: ScanData) -> tuple[int, int]:
    if scan.object_truth is not None:
        return (int(scan.object_truth.shape[0]), int(scan.object_truth.shape[1]))
    _, high = patch_extent(scan.positions, scan.patch_size)
    rows = math.ceil(high[0] - _EDGE_TOLERANCE_PX) + 1 + DEFAULT_MARGIN_PX
    cols = math.ceil(high[1] - _EDGE_TOLERANCE_PX) + 1 + DEFAULT_MARGIN_PX
    return _as_shape((max(rows, 1), max(cols, 1)))


def _as_shape(shape: object) -> tuple[int, int]:
    try:
        rows, cols = (int(v) for v in shape)  # type: ignore[union-attr]
    except (TypeError, ValueError, OverflowError) as exc:
        raise DataError(f"object_shape must be two integers (H, W); got {shape!r}") from exc
    if rows <= 0 or cols <= 0:
        raise DataError(f"object_shape must be positive; got {(rows, cols)}")
    if max(rows, cols) > MAX_OBJECT_SIDE_PX:
        raise DataError(
            f"the object would be {rows} x {cols} pixels (limit {MAX_OBJECT_SIDE_PX} per side): "
            "are the positions "
            "in object pixels?"
        )
    return (rows, cols)


def _as_real(array: object, name: str, dtype: type[np.floating]) -> np.ndarray:
    arr = np.asarray(array)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise DataError(f"{name} must be numeric; got dtype {arr.dtype}")
    if np.iscomplexobj(arr):
        raise DataError(f"{name} must be real; got complex dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=dtype)


def _as_complex(array: object, name: str) -> np.ndarray:
    arr = np.asarray(array)
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.number):
        raise DataError(f"{name} must be numeric (complex); got dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.complex64)


def _as_probe(array: object) -> np.ndarray:
    probe = _as_complex(array, "probe")
    if probe.ndim == 2:
        probe = probe[np.newaxis]
    if probe.ndim != 3:
        raise DataError(f"the probe must have shape (N, N) or (modes, N, N); got {probe.shape}")
    return probe


def _as_index(array: object) -> np.ndarray:
    arr = np.asarray(array)
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise DataError(f"scan_index must be integers; got dtype {arr.dtype}")
    if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)) or np.any(np.abs(arr) >= 2**62):
        raise DataError("scan_index must hold whole numbers (of a sane size)")
    return np.ascontiguousarray(arr, dtype=np.int64)
