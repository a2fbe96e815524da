"""Array checks shared by the file readers, each ending in one clear :class:`DataError`.

Why a module of its own: NPZ and HDF5 readers meet the same malformed inputs (wrong rank, non-numeric
dtype, negative counts...) and should word the problem the same way, naming the key and the file.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import numpy as np

from ..errors import DataError
from .scan import ScanData


class DataWarning(UserWarning):
    """A file was accepted, but only by guessing (legacy layout, integer patterns taken as counts...)."""


def describe_keys(keys: Collection[str]) -> str:
    """The keys a file does hold, for 'missing key' messages."""
    return ", ".join(sorted(keys)) if keys else "(none)"


def require_key(arrays: Mapping[str, np.ndarray], key: str, where: str) -> np.ndarray:
    """``arrays[key]``, or a DataError naming the key and listing what the file holds."""
    if key not in arrays:
        raise DataError(
            f"{where}: missing required key '{key}'; present keys: {describe_keys(arrays.keys())}"
        )
    return arrays[key]


def first_key(arrays: Mapping[str, np.ndarray], keys: tuple[str, ...], where: str) -> str:
    """The first of several accepted spellings that the file holds (e.g. ``diffraction`` or ``diff3d``)."""
    for key in keys:
        if key in arrays:
            return key
    wanted = " or ".join(f"'{k}'" for k in keys)
    raise DataError(f"{where}: missing required key {wanted}; present keys: {describe_keys(arrays.keys())}")


def require_numeric(array: np.ndarray, name: str, where: str, *, allow_complex: bool) -> np.ndarray:
    """Reject strings, objects, structured and (unless allowed) complex arrays before any arithmetic."""
    arr = np.asarray(array)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number):
        raise DataError(f"{where}: '{name}' must be numeric; got dtype {arr.dtype}")
    if not allow_complex and np.iscomplexobj(arr):
        raise DataError(f"{where}: '{name}' must be real; got complex dtype {arr.dtype}")
    return arr


def require_rank(array: np.ndarray, name: str, where: str, ranks: tuple[int, ...], layout: str) -> np.ndarray:
    """Reject an array whose number of axes is not one of ``ranks``; ``layout`` names the expected shape."""
    if array.ndim not in ranks:
        raise DataError(
            f"{where}: '{name}' must have shape {layout}; got rank {array.ndim} with shape {array.shape}"
        )
    return array


def require_finite(array: np.ndarray, name: str, where: str) -> None:
    """Reject NaN/Inf early, with the key's name, rather than deep inside training."""
    bad = ~np.isfinite(array)
    if np.any(bad):
        raise DataError(f"{where}: '{name}' contains {int(bad.sum())} NaN or Inf values")


def counts_to_amplitude(counts: np.ndarray, name: str, where: str) -> np.ndarray:
    """sqrt(counts) as float32, computed in float64 so integer (uint16...) counts cannot overflow or wrap."""
    arr = require_numeric(counts, name, where, allow_complex=False).astype(np.float64)
    require_finite(arr, name, where)
    if np.any(arr < 0):
        raise DataError(
            f"{where}: '{name}' holds counts, which must be >= 0; found {int(np.sum(arr < 0))} negative"
        )
    return np.sqrt(arr).astype(np.float32)


def amplitude_to_counts(amplitudes: np.ndarray) -> np.ndarray:
    """amplitude² in float64, so writing counts never loses precision to float32 squaring."""
    amp = np.asarray(amplitudes, dtype=np.float64)
    return amp * amp


def is_constant(array: np.ndarray) -> bool:
    """True when every element equals the first: such an 'object' is a blank initial guess, not a truth."""
    flat = np.asarray(array).ravel()
    return flat.size == 0 or bool(np.all(flat == flat[0]))


def require_mask(array: np.ndarray, name: str, where: str, shape: tuple[int, int]) -> np.ndarray:
    """A bool (or 0/1 numeric) mask of the given shape; True marks a bad detector pixel."""
    arr = np.asarray(array)
    if arr.dtype != bool:
        arr = require_numeric(arr, name, where, allow_complex=False)
        require_finite(arr.astype(np.float64), name, where)
    if arr.shape != shape:
        raise DataError(f"{where}: '{name}' has shape {arr.shape}; expected the pattern shape {shape}")
    return arr.astype(bool)


def build_scan(where: str, **fields: Any) -> ScanData:
    """ScanData(**fields), with the file named in any validation message."""
    try:
        return ScanData(**fields)
    except DataError as exc:
        raise DataError(f"{where}: {exc}") from exc
