"""Detector files given beside a scan: a mask (beamstop, module gaps, known bad pixels), joined to the scan's
own, and a per-pixel background (counts every pattern holds on top of the diffracted light).

Why a file of its own: beamline software writes masks apart from the patterns (as ``.npy``, or a dataset in
an HDF5 file), and the same mask serves every scan of a detector; the scan file's ``bad_pixels`` may be
missing or out of date.
"""

from __future__ import annotations

import zipfile
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np

from ..errors import DataError
from .checks import require_mask, require_numeric
from .scan import ScanData

#: Names under which an NPZ or HDF5 file is searched for the mask, in this order.
MASK_KEYS = ("mask", "bad_pixels", "pixel_mask")
#: ... and for the background.
BACKGROUND_KEYS = ("background", "dark")


def _read_array(path: Path, where: str, keys: tuple[str, ...]) -> np.ndarray:
    """An ``.npy`` array, or the first of ``keys`` in an NPZ or HDF5 file; never unpickles."""
    try:
        if h5py.is_hdf5(path):
            with h5py.File(path, "r") as h5:
                key = next((k for k in keys if k in h5), None)
                if key is None:
                    raise DataError(f"{where}: no dataset named {', '.join(keys)}")
                array = h5[key][()]
        else:
            loaded = np.load(path, allow_pickle=False)
            if isinstance(loaded, np.lib.npyio.NpzFile):
                with loaded:
                    key = next((k for k in keys if k in loaded.files), None)
                    if key is None:
                        raise DataError(f"{where}: no array named {', '.join(keys)} "
                                        f"(it holds {', '.join(loaded.files) or 'nothing'})")
                    array = loaded[key]
            else:
                array = loaded
    except DataError:
        raise
    except FileNotFoundError as error:
        raise DataError(f"{where}: file not found") from error
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        if "pickle" in str(error):  # numpy takes any other file for a pickle; nothing is unpickled here
            raise DataError(f"{where}: not a readable array (not an .npy, NPZ or HDF5 file; a pickle is "
                            "never loaded)") from error
        raise DataError(f"{where}: not a readable array ({error})") from error
    return np.asarray(array)


def read_mask(path: Path | str, shape: tuple[int, int]) -> np.ndarray:
    """The (N, N) bool mask in ``path`` (True = leave the pixel out): an ``.npy`` array, or the first of
    :data:`MASK_KEYS` in an NPZ or HDF5 file. Every failure is a DataError naming the file."""
    where = f"detector mask {path}"
    mask = require_mask(_read_array(Path(path), where, MASK_KEYS), "mask", where, shape)
    if mask.all():
        raise DataError(f"{where}: every pixel is masked")
    return mask


def read_background(path: Path | str, shape: tuple[int, int]) -> np.ndarray:
    """The (N, N) background counts in ``path`` (an ``.npy``, or ``background``/``dark`` in an NPZ or
    HDF5 file): finite, >= 0, the pattern shape."""
    where = f"detector background {path}"
    array = require_numeric(_read_array(Path(path), where, BACKGROUND_KEYS), "background", where, allow_complex=False)
    if array.shape != shape:
        raise DataError(f"{where}: has shape {array.shape}; expected the pattern shape {shape}")
    if not np.all(np.isfinite(array)) or array.min() < 0:
        raise DataError(f"{where}: the background must be finite counts >= 0 in every pixel")
    return array.astype(np.float32)


def with_background(scan: ScanData, path: Path | str) -> ScanData:
    """``scan`` with the file's per-pixel background."""
    return replace(scan, background=read_background(path, (scan.patch_size, scan.patch_size)))


def with_detector_mask(scan: ScanData, path: Path | str) -> ScanData:
    """``scan`` with the file's mask joined (logical or) to its own ``bad_pixels``."""
    size = scan.patch_size
    mask = read_mask(path, (size, size))
    combined = mask if scan.bad_pixels is None else (mask | scan.bad_pixels)
    return replace(scan, bad_pixels=combined)
