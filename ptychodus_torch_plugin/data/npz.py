"""The PtychoPINN NPZ layout: read it into a :class:`ScanData`, write one back.

Why lenient on input and strict on output: users arrive with files written by several generations of
PtychoPINN and by ptychodus's exporter (old ``diff3d`` key, (N, N, M) stacks, integer counts), while every
file we write uses the one current layout described in ``specs/data_contracts.md``.
"""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path

import numpy as np

from ..errors import DataError
from .checks import (
    DataWarning,
    build_scan,
    counts_to_amplitude,
    first_key,
    is_constant,
    require_finite,
    require_key,
    require_mask,
    require_numeric,
    require_rank,
)
from .scan import DEFAULT_MARGIN_PX, ScanData, patch_extent

#: Accepted spellings of the measured-amplitude stack, newest first.
AMPLITUDE_KEYS = ("diffraction", "diff3d")
#: Key of a stack of counts (intensities), always taken as counts.
COUNTS_KEY = "intensities"
_METADATA_KEYS = ("pixel_size_m", "photon_energy_eV", "detector_distance_m")


def read_npz_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every array in the archive, never unpickling; any corruption becomes a DataError."""
    where = str(path)
    arrays: dict[str, np.ndarray] = {}
    try:
        with np.load(path, allow_pickle=False) as archive:
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise DataError(f"{where}: not an NPZ archive (a bare .npy array was found)")
            for key in archive.files:
                value = archive[key]
                if isinstance(value, np.ndarray):  # other zip members come back as raw bytes: not ours
                    arrays[key] = value
    except DataError:
        raise
    except FileNotFoundError as exc:
        raise DataError(f"{where}: file not found") from exc
    except (zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"{where}: corrupt or truncated NPZ archive ({exc})") from exc
    except ValueError as exc:
        # numpy says 'Object arrays cannot be loaded when allow_pickle=False' for pickled entries.
        raise DataError(f"{where}: unreadable NPZ entry ({exc})") from exc
    except Exception as exc:
        raise DataError(f"{where}: cannot read NPZ archive ({type(exc).__name__}: {exc})") from exc
    if not arrays:
        raise DataError(f"{where}: the NPZ archive is empty (it holds no NumPy arrays)")
    return arrays


def read_npz(path: Path | str, *, counts: bool | None = None) -> ScanData:
    """Load a PtychoPINN-style NPZ file.

    ``counts``: None decides from the file (an ``intensities`` key, or integer-typed ``diffraction``/
    ``diff3d``, means counts, with a warning for the latter); True says the diffraction array holds counts;
    False says it holds amplitudes. ``intensities`` is always counts.
    """
    path = Path(path)
    arrays = read_npz_arrays(path)
    return scan_from_arrays(arrays, where=str(path), counts=counts)


def scan_from_arrays(arrays: dict[str, np.ndarray], *, where: str, counts: bool | None = None) -> ScanData:
    """Build and validate a ScanData from NPZ-layout arrays (split out so tests need no file)."""
    amplitudes = _amplitudes(arrays, where, counts)
    n_patterns, n = amplitudes.shape[0], amplitudes.shape[-1]

    probe = require_numeric(require_key(arrays, "probeGuess", where), "probeGuess", where, allow_complex=True)
    require_rank(probe, "probeGuess", where, (2, 3), "(N, N) or (modes, N, N)")
    if probe.shape[-2:] != (n, n):
        raise DataError(
            f"{where}: probe size {probe.shape[-2]} x {probe.shape[-1]} ('probeGuess') differs from "
            f"pattern size {n} x {n}"
        )
    require_finite(probe, "probeGuess", where)

    positions = _positions(arrays, where, n_patterns)

    object_truth, object_shape = _object(arrays, where)
    scan_index = arrays.get("scan_index")
    if scan_index is not None:
        scan_index = require_numeric(scan_index, "scan_index", where, allow_complex=False)
        if scan_index.shape != (n_patterns,):
            raise DataError(
                f"{where}: 'scan_index' has shape {scan_index.shape}; "
                f"expected ({n_patterns},), one per pattern"
            )
    bad_pixels = arrays.get("bad_pixels")
    if bad_pixels is not None:
        bad_pixels = require_mask(bad_pixels, "bad_pixels", where, (n, n))

    if object_shape is None:
        positions = shift_into_frame(positions, n)
    return build_scan(
        where,
        amplitudes=amplitudes,
        probe=probe,
        positions=positions,
        object_truth=object_truth,
        object_shape=object_shape,
        scan_index=scan_index,
        bad_pixels=bad_pixels,
        source=where,
        **{key: _scalar(arrays, key, where) for key in _METADATA_KEYS},
    )


def save_npz(scan: ScanData, path: Path | str, *, compressed: bool = True) -> Path:
    """Write ``scan`` in the current NPZ layout; the file reloads to the same arrays."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    probe = scan.probe[0] if scan.n_modes == 1 else scan.probe
    arrays: dict[str, np.ndarray] = {
        "diffraction": scan.amplitudes.astype(np.float32),
        "probeGuess": probe.astype(np.complex64),
        "xcoords": scan.positions[:, 1].astype(np.float64),
        "ycoords": scan.positions[:, 0].astype(np.float64),
        # PtychoPINN's RawData also reads the scan start coordinates; without position correction they agree.
        "xcoords_start": scan.positions[:, 1].astype(np.float64),
        "ycoords_start": scan.positions[:, 0].astype(np.float64),
        "object_shape": np.asarray(scan.object_shape, dtype=np.int64),
    }
    if scan.object_truth is not None:
        arrays["objectGuess"] = scan.object_truth.astype(np.complex64)
    if scan.scan_index is not None:
        arrays["scan_index"] = scan.scan_index.astype(np.int64)
    if scan.bad_pixels is not None:
        arrays["bad_pixels"] = scan.bad_pixels.astype(bool)
    for key in _METADATA_KEYS:
        value = getattr(scan, key)
        if value is not None:
            arrays[key] = np.asarray(value, dtype=np.float64)
    # np.savez appends '.npz' to other suffixes; write through a handle so the name is exactly `path`.
    with open(path, "wb") as handle:
        (np.savez_compressed if compressed else np.savez)(handle, **arrays)
    return path


def shift_into_frame(positions: np.ndarray, patch_size: int, margin: int = DEFAULT_MARGIN_PX) -> np.ndarray:
    """Translate positions by whole pixels so no patch starts left of/above the object's first pixel.

    Why: without an object array the object's origin is arbitrary, and files in the wild carry positions
    centred on zero. Whole-pixel shifts keep every sub-pixel offset, so the data are unchanged.
    """
    low, _ = patch_extent(positions, patch_size)
    if np.all(low >= 0):
        return positions
    shift = np.where(low < 0, margin - np.floor(low), 0.0)
    warnings.warn(
        f"no object array: positions shifted by (row {shift[0]:+.0f}, col {shift[1]:+.0f}) pixels so every "
        "patch lies inside the object",
        DataWarning,
        stacklevel=3,
    )
    return positions + shift


def _amplitudes(arrays: dict[str, np.ndarray], where: str, counts: bool | None) -> np.ndarray:
    if any(k in arrays for k in AMPLITUDE_KEYS):
        key = first_key(arrays, AMPLITUDE_KEYS, where)
        is_counts = counts
    else:
        key = first_key(arrays, (*AMPLITUDE_KEYS, COUNTS_KEY), where)
        is_counts = True
    raw = require_numeric(arrays[key], key, where, allow_complex=False)
    if raw.ndim != 3:
        raise DataError(
            f"{where}: '{key}' must have shape (M, N, N); got rank {raw.ndim} with shape {raw.shape}"
        )
    raw = _standard_layout(raw, key, where)
    if is_counts is None:
        is_counts = bool(np.issubdtype(raw.dtype, np.integer))
        if is_counts:
            warnings.warn(
                f"{where}: '{key}' holds integers ({raw.dtype}); taking them as photon counts "
                "(pass counts=False if they are amplitudes)",
                DataWarning,
                stacklevel=4,
            )
    if is_counts:
        return counts_to_amplitude(raw, key, where)
    amp = raw.astype(np.float32)
    require_finite(amp, key, where)
    if np.any(amp < 0):
        raise DataError(
            f"{where}: '{key}' holds amplitudes, which must be >= 0; found {int(np.sum(amp < 0))} negative"
        )
    return amp


def _standard_layout(raw: np.ndarray, key: str, where: str) -> np.ndarray:
    """(M, N, N) as is; legacy (N, N, M) transposed with a warning; anything else is not square."""
    m, h, w = raw.shape
    if h == w:
        if m == 0:
            raise DataError(f"{where}: '{key}' holds no patterns (shape {raw.shape})")
        return raw
    if m == h and w > 0:
        warnings.warn(
            f"{where}: '{key}' has the legacy (N, N, M) layout {raw.shape}; transposing to (M, N, N)",
            DataWarning,
            stacklevel=5,
        )
        return np.ascontiguousarray(np.moveaxis(raw, -1, 0))
    raise DataError(
        f"{where}: diffraction patterns in '{key}' must be square (M, N, N); got shape {raw.shape}"
    )


def _positions(arrays: dict[str, np.ndarray], where: str, n_patterns: int) -> np.ndarray:
    coords = []
    for key in ("ycoords", "xcoords"):
        arr = require_numeric(require_key(arrays, key, where), key, where, allow_complex=False)
        require_rank(arr, key, where, (1,), "(M,)")
        if arr.shape[0] != n_patterns:
            raise DataError(
                f"{where}: '{key}' has {arr.shape[0]} entries for {n_patterns} diffraction patterns"
            )
        require_finite(arr.astype(np.float64), key, where)
        coords.append(arr.astype(np.float64))
    return np.stack(coords, axis=1)


def _object(arrays: dict[str, np.ndarray], where: str) -> tuple[np.ndarray | None, tuple[int, int] | None]:
    """The true object (None when absent or a constant placeholder) and the object shape if known."""
    shape: tuple[int, int] | None = None
    if "object_shape" in arrays:
        raw = require_numeric(arrays["object_shape"], "object_shape", where, allow_complex=False)
        if raw.shape != (2,) or not np.all(raw > 0) or not np.all(raw == np.round(raw)):
            raise DataError(f"{where}: 'object_shape' must be two positive integers; got {raw!r}")
        shape = (int(raw[0]), int(raw[1]))
    obj = arrays.get("objectGuess")
    if obj is None:
        return None, shape
    obj = require_numeric(obj, "objectGuess", where, allow_complex=True)
    if obj.ndim == 3 and obj.shape[0] == 1:
        obj = obj[0]
    require_rank(obj, "objectGuess", where, (2,), "(H, W)")
    require_finite(obj, "objectGuess", where)
    if shape is not None and shape != obj.shape:
        raise DataError(f"{where}: 'object_shape' {shape} differs from 'objectGuess' shape {obj.shape}")
    if obj.size == 0:
        raise DataError(f"{where}: 'objectGuess' is empty (shape {obj.shape})")
    if is_constant(obj):
        return None, (int(obj.shape[0]), int(obj.shape[1]))
    return obj, (int(obj.shape[0]), int(obj.shape[1]))


def _scalar(arrays: dict[str, np.ndarray], key: str, where: str) -> float | None:
    if key not in arrays:
        return None
    raw = require_numeric(arrays[key], key, where, allow_complex=False)
    if raw.size != 1:
        raise DataError(f"{where}: '{key}' must be a single number; got shape {raw.shape}")
    return float(raw.reshape(()))
