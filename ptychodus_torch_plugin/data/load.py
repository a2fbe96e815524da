"""One entry point, :func:`load_scan`, that recognises a data file by its content and reads it.

Why content first: users rename files freely (``.npz`` saved as ``.dat``, HDF5 as ``.hdf``), so the
first bytes decide the format; the suffix only improves the error message when neither format fits.
"""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path

import h5py

from ..errors import DataError
from ..memory import format_bytes
from .checks import DataWarning, describe_keys
from .npz import read_npz
from .ptychodus_h5 import (
    DIFFRACTION_FILE_NAME,
    PRODUCT_FILE_NAME,
    STREAM_ABOVE_BYTES,
    h5_top_level_names,
    read_ptychodus,
    read_ptychodus_training,
)
from .scan import ScanData

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip with entries; an empty zip
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def load_scan(path: Path | str, *, counts: bool | None = None, stream: bool | None = None,
              stream_above: int = STREAM_ABOVE_BYTES) -> ScanData:
    """Read a scan from an NPZ file, a ptychodus HDF5 file (or pair), or a ptychodus batch folder.

    - NPZ (PtychoPINN layout), see :func:`.npz.read_npz`.
    - ptychodus ``diffraction.h5`` or ``product.h5``: the other file of the pair is taken from the same
      folder under ptychodus's standard name; a folder holding both works too.
    - ptychodus training-data HDF5 (``patterns`` + ``probe_position_x_px``).

    ``counts`` overrides whether the diffraction array holds counts (True) or amplitudes (False).
    ``stream`` True leaves HDF5 patterns in their file, read block by block (a
    :class:`~.patterns.PatternStack`); False reads them whole; None streams them when they take more than
    ``stream_above`` bytes as float32 (default :data:`~.ptychodus_h5.STREAM_ABOVE_BYTES`). An NPZ is always read whole: a zip member cannot be read in
    parts, so a scan too large for memory belongs in ptychodus's ``diffraction.h5``.
    Every failure is a :class:`DataError` naming the file.
    """
    path = Path(path)
    if path.is_dir():
        return read_ptychodus(path / DIFFRACTION_FILE_NAME, path / PRODUCT_FILE_NAME, counts=counts, stream=stream,
                              stream_above=stream_above)
    kind = sniff_format(path)
    if kind == "npz":
        _warn_if_large_npz(path, stream_above)
        return read_npz(path, counts=counts)
    return _load_hdf5(path, counts, stream, stream_above)


class LargeScanWarning(DataWarning):
    """A scan large enough to stream was given as NPZ, which can only be read whole."""


#: Zip members that hold an NPZ scan's patterns (:mod:`.npz`'s accepted spellings).
_NPZ_PATTERN_MEMBERS = ("diffraction.npy", "diff3d.npy", "intensities.npy")


def _warn_if_large_npz(path: Path, stream_above: int) -> None:
    """Say before reading that an NPZ above the streaming threshold will be held whole in memory.

    The sizes come from the zip directory, so nothing is read to find out; a corrupt archive is left
    to the reader, which names the problem."""
    try:
        with zipfile.ZipFile(path) as archive:
            size = sum(info.file_size for info in archive.infolist() if info.filename in _NPZ_PATTERN_MEMBERS)
    except (OSError, zipfile.BadZipFile):
        return
    if size > stream_above:
        warnings.warn(
            f"{path}: the NPZ's patterns ({format_bytes(size)}) are read whole into memory (a zip member "
            "cannot be read in parts); write large scans as ptychodus HDF5 (diffraction.h5 + product.h5), "
            "which is read block by block",
            LargeScanWarning, stacklevel=3,
        )


def sniff_format(path: Path) -> str:
    """'npz' or 'hdf5' from the file's first bytes; a DataError for anything else."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
    except FileNotFoundError as exc:
        raise DataError(f"{path}: file not found") from exc
    except OSError as exc:
        raise DataError(f"{path}: cannot open ({exc})") from exc
    if not head:
        raise DataError(f"{path}: the file is empty (0 bytes)")
    if head[:4] in _ZIP_MAGIC:
        return "npz"
    if head == _HDF5_MAGIC or _is_hdf5(path):
        return "hdf5"
    suffix = path.suffix.lower()
    hint = {
        ".npz": "it is named .npz but is not a zip archive (truncated or corrupt?)",
        ".h5": "it is named .h5 but is not an HDF5 file (truncated or corrupt?)",
        ".hdf5": "it is named .hdf5 but is not an HDF5 file (truncated or corrupt?)",
    }.get(suffix, "expected an NPZ archive or an HDF5 file")
    raise DataError(f"{path}: unrecognised data file format; {hint}")


def _is_hdf5(path: Path) -> bool:
    """HDF5 also allows a user block before the signature; h5py knows where to look."""
    try:
        return bool(h5py.is_hdf5(path))
    except Exception:
        return False


def _load_hdf5(path: Path, counts: bool | None, stream: bool | None, stream_above: int) -> ScanData:
    names = set(h5_top_level_names(path))
    if {"patterns", "probe_position_x_px"} <= names:
        return read_ptychodus_training(path, counts=counts, stream=stream, stream_above=stream_above)
    if {"patterns", "indexes"} <= names:
        product = path.parent / PRODUCT_FILE_NAME
        if not product.exists():
            raise DataError(
                f"{path}: a ptychodus diffraction file needs its product file, expected at {product}; "
                "or call read_ptychodus(diffraction_path, product_path)"
            )
        return read_ptychodus(path, product, counts=counts, stream=stream, stream_above=stream_above)
    if {"probe", "object", "probe_position_x_m"} <= names:
        diffraction = path.parent / DIFFRACTION_FILE_NAME
        if not diffraction.exists():
            raise DataError(
                f"{path}: a ptychodus product file holds no diffraction patterns; "
                f"expected them at {diffraction}"
            )
        return read_ptychodus(diffraction, path, counts=counts, stream=stream, stream_above=stream_above)
    raise DataError(
        f"{path}: HDF5 file is neither a ptychodus diffraction, product nor training-data file "
        f"(needs 'patterns' + 'indexes', or 'probe' + 'object' + 'probe_position_x_m'); "
        f"present: {describe_keys(names)}"
    )
