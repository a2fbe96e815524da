"""A detector mask given as a file (beamstop, module gaps, known bad pixels), joined to the scan's own.

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
from .checks import require_mask
from .scan import ScanData

#: Names under which an NPZ or HDF5 file is searched for the mask, in this order.
MASK_KEYS = ("mask", "bad_pixels", "pixel_mask")


def read_mask(path: Path | str, shape: tuple[int, int]) -> np.ndarray:
    """The (N, N) bool mask in ``path`` (True = leave the pixel out): an ``.npy`` array, or the first of
    :data:`MASK_KEYS` in an NPZ or HDF5 file. Never unpickles; every failure is a DataError naming the file."""
    path = Path(path)
    where = f"detector mask {path}"
    try:
        if h5py.is_hdf5(path):
            with h5py.File(path, "r") as h5:
                key = next((k for k in MASK_KEYS if k in h5), None)
                if key is None:
                    raise DataError(f"{where}: no dataset named {', '.join(MASK_KEYS)}")
                array = h5[key][()]
        else:
            loaded = np.load(path, allow_pickle=False)
            if isinstance(loaded, np.lib.npyio.NpzFile):
                with loaded:
                    key = next((k for k in MASK_KEYS if k in loaded.files), None)
                    if key is None:
                        raise DataError(f"{where}: no array named {', '.join(MASK_KEYS)} "
                                        f"(it holds {', '.join(loaded.files) or 'nothing'})")
                    array = loaded[key]
            else:
                array = loaded
    except DataError:
        raise
    except FileNotFoundError as error:
        raise DataError(f"{where}: file not found") from error
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise DataError(f"{where}: not a readable mask ({error})") from error
    mask = require_mask(array, "mask", where, shape)
    if mask.all():
        raise DataError(f"{where}: every pixel is masked")
    return mask


def with_detector_mask(scan: ScanData, path: Path | str) -> ScanData:
    """``scan`` with the file's mask joined (logical or) to its own ``bad_pixels``."""
    size = scan.patch_size
    mask = read_mask(path, (size, size))
    combined = mask if scan.bad_pixels is None else (mask | scan.bad_pixels)
    return replace(scan, bad_pixels=combined)
