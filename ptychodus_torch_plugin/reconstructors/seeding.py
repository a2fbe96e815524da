"""Turning one reconstructor's object into another's starting guess, and reading a starting guess from a file.

A network's object is in its own units (the model's normalised probe and intensity scale) and is 0 where the
scan measured nothing; the iterative reconstructor works with the scan's probe in counts. The two differ by
one real gain, fitted here to the measured amplitudes in closed form, so the first iterative update starts
from a consistent exit wave instead of spending epochs on the scale.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..data.scan import ScanData
from ..errors import ConfigError, DataError
from ..physics.scan_model import place_windows, scan_amplitudes

#: Patterns per chunk when fitting the gain (bounded memory for long scans).
_CHUNK = 1024
#: The gain is one number: this many patterns, spread evenly over the scan, fix it. A forward pass over
#: all 1500 patterns of a scan took 0.25 s on 2 CPU threads, as long as a fifth of the bf16 network pass;
#: 256 take 0.03 s.
GAIN_PATTERNS = 256


def spread_indices(n_patterns: int, wanted: int) -> np.ndarray:
    """``min(n_patterns, wanted)`` distinct indices spread evenly from the first pattern to the last."""
    if n_patterns <= wanted:
        return np.arange(n_patterns)
    return np.unique(np.linspace(0, n_patterns - 1, wanted).round().astype(np.int64))


def fill_unmeasured(obj: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Pixels with no illumination (0 in a stitched object) set to the mean of the measured ones."""
    measured = weights > 0
    if not measured.any():
        raise DataError("the starting object covers no measured pixel")
    filled = np.array(obj, dtype=np.complex64)
    filled[~measured] = filled[measured].mean()
    return filled


def amplitude_gain(obj: np.ndarray, scan: ScanData, device: torch.device,
                   max_patterns: int = GAIN_PATTERNS) -> float:
    """The real gain g minimising sum (|F(P g O)| - A)^2 over (up to ``max_patterns`` evenly spread
    patterns of) the scan: g = sum A |F| / sum |F|^2."""
    obj_t = torch.as_tensor(obj, device=device)
    probe = torch.as_tensor(scan.probe, device=device)
    place_windows(scan.positions, scan.patch_size, scan.object_shape)  # validates once, clear error
    chosen = spread_indices(scan.n_patterns, max_patterns)
    cross = torch.zeros((), dtype=torch.float64, device=device)
    power = torch.zeros((), dtype=torch.float64, device=device)
    for start in range(0, len(chosen), _CHUNK):
        indices = chosen[start : start + _CHUNK]
        predicted = scan_amplitudes(obj_t, probe, scan.positions[indices]).double()
        measured = torch.as_tensor(scan.amplitudes[indices], device=device).double()
        cross += (predicted * measured).sum()
        power += predicted.square().sum()
    if not float(power) > 0:
        raise DataError("the starting object predicts no diffracted intensity; it cannot seed a reconstruction")
    return float(cross / power)


def seed_object(obj: np.ndarray, weights: np.ndarray, scan: ScanData, device: torch.device) -> np.ndarray:
    """A reconstructor's object made ready to start the iterative reconstructor on ``scan``."""
    filled = fill_unmeasured(obj, weights)
    return (filled * amplitude_gain(filled, scan, device)).astype(np.complex64)


def load_initial_object(path: Path, object_shape: tuple[int, int]) -> np.ndarray:
    """A starting guess from an NPZ (``object`` of a reconstruction, or ``objectGuess`` of a scan) or a
    ptychodus product HDF5 (``object``, first layer). Its shape must be the scan's object grid."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--initial_object {path}: no such file")
    if path.suffix.lower() == ".npz":
        from ..data.npz import read_npz_arrays

        arrays = read_npz_arrays(path)
        key = next((k for k in ("object", "objectGuess") if k in arrays), None)
        if key is None:
            raise DataError(f"{path}: no 'object' or 'objectGuess' array to start from")
        obj = arrays[key]
    else:
        from ..data.ptychodus_h5 import read_h5

        contents = read_h5(path, ("object",))
        if "object" not in contents.datasets:
            raise DataError(f"{path}: not a ptychodus product file (no 'object' dataset)")
        obj = contents.datasets["object"]
        obj = obj[0] if obj.ndim == 3 else obj
    obj = np.asarray(obj)
    if obj.ndim != 2 or not np.issubdtype(obj.dtype, np.number):
        raise DataError(f"{path}: the starting object must be a numeric (H, W) array, got {obj.dtype} {obj.shape}")
    if tuple(obj.shape) != tuple(object_shape):
        raise ConfigError(f"--initial_object {path} is {obj.shape[0]} x {obj.shape[1]} pixels but this scan's "
                          f"object is {object_shape[0]} x {object_shape[1]}; start from an object of the scan's size")
    if not np.all(np.isfinite(obj)):
        raise DataError(f"{path}: the starting object contains NaN or infinite values")
    return obj.astype(np.complex64)
