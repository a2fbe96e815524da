"""Diffraction patterns read from an HDF5 dataset in blocks, never whole.

A :class:`PatternStack` stands where a :class:`~.scan.ScanData` would hold its ``amplitudes`` array: it has
the array's shape and dtype (float32 amplitudes, sqrt of counts) and answers slices and index arrays by
reading only those rows from the file, converting and validating each block as it is read. Consumers that
stream (the iterative solver, network inference, the scale of the data) never hold more than the blocks
they ask for; anything else may still call ``np.asarray(stack)`` and get the whole array, read block by
block into one buffer (no second copy).

Why HDF5 only: an NPZ member is one zip entry, compressed as a whole, so it cannot be read in parts; a
large scan belongs in ptychodus's ``diffraction.h5`` (chunked along the pattern axis).

Compressed beamline files (bitshuffle/LZ4, Blosc, Zstandard...) open when the optional package
``hdf5plugin`` is installed (extra ``hdf5``); it is imported here, before any file is opened, because it
registers the filters with HDF5 on import.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..errors import DataError

try:  # registers the compression filters used by detector software (bitshuffle, LZ4, Blosc, Zstd...)
    import hdf5plugin  # noqa: F401

    HAVE_HDF5PLUGIN = True
except ImportError:  # pragma: no cover - depends on the installation
    HAVE_HDF5PLUGIN = False

#: Largest accepted amplitude: 1e8 = sqrt(1e16 counts in one pixel), far beyond any detector, and small enough
#: that per-pattern intensity sums stay finite in float32 during training.
MAX_AMPLITUDE = 1e8

#: Bytes of decompressed HDF5 chunks kept per open file, so neighbouring reads do not decompress a chunk
#: twice (h5py's default is 1 MiB, less than one chunk of 128 x 128 patterns at a useful chunk length).
#: Counted in the iterative solver's memory plan.
CHUNK_CACHE_BYTES = 16 * 1024**2

#: Rows read per step when a whole range is read (np.asarray, a block iterator without a size).
READ_ROWS_BYTES = 64 * 1024**2

#: Rows between two wanted rows that are read and dropped rather than starting a second read.
_GAP_ROWS = 16

# HDF5 filter ids of the compressions detector software writes, for the 'cannot read' message.
_FILTER_NAMES = {32008: "bitshuffle", 32004: "LZ4", 32001: "Blosc", 32026: "Blosc2", 32015: "Zstandard",
                 32017: "SZ", 307: "bzip2"}


class PatternStack:
    """Read-only (M, N, N) float32 amplitudes backed by the dataset ``name`` of the HDF5 file ``path``.

    ``rows`` maps pattern i to file row ``rows[i]`` (patterns without a position are left out by the reader);
    None = every row in order. ``counts`` False takes the stored values as amplitudes; otherwise they are
    counts (ptychodus's convention) and their square root is returned. ``where`` names the file in errors.
    """

    def __init__(self, path: Path | str, name: str = "patterns", *, rows: np.ndarray | None = None,
                 counts: bool | None = None, where: str | None = None) -> None:
        self.path = Path(path)
        self.name = name
        self.counts = counts is not False
        self.where = where or str(self.path)
        self._lock = threading.Lock()
        self._file: h5py.File | None = None
        self._pid = -1
        dataset = self._dataset()
        _check_dataset(dataset, name, self.where)
        self.file_shape: tuple[int, int, int] = tuple(int(v) for v in dataset.shape)  # type: ignore[assignment]
        self.file_dtype = dataset.dtype
        self.chunk_rows = int(dataset.chunks[0]) if dataset.chunks else 1
        if rows is not None:
            rows = np.asarray(rows, dtype=np.int64)
            if rows.ndim != 1 or (rows.size and (rows.min() < 0 or rows.max() >= self.file_shape[0])):
                raise DataError(f"{self.where}: pattern rows outside the file's {self.file_shape[0]} patterns")
        self.rows = rows

    # -- the array-like surface --------------------------------------------------------------------------

    @property
    def shape(self) -> tuple[int, int, int]:
        count = self.file_shape[0] if self.rows is None else int(self.rows.size)
        return (count, self.file_shape[1], self.file_shape[2])

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.float32)

    ndim = 3

    @property
    def nbytes(self) -> int:
        """Bytes of the whole stack as float32 amplitudes (what holding it in memory would take)."""
        m, h, w = self.shape
        return m * h * w * 4

    @property
    def pattern_bytes(self) -> int:
        return self.shape[1] * self.shape[2] * 4

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"PatternStack({self.where!r}, shape={self.shape}, stored as {self.file_dtype})"

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            index = int(key) + (len(self) if key < 0 else 0)
            return self.read(np.array([index]))[0]
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            return self.read(np.arange(start, stop, step))
        index = np.asarray(key)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        if index.ndim != 1 or not np.issubdtype(index.dtype, np.integer):
            raise TypeError(f"a PatternStack is indexed by an int, a slice or a 1-D index array, not {key!r}")
        return self.read(index)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        whole = self.read(np.arange(len(self)))
        return whole if dtype is None else whole.astype(dtype, copy=False)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_file"], state["_pid"], state["_lock"] = None, -1, None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # -- reading -----------------------------------------------------------------------------------------

    def read(self, indices: np.ndarray, out: np.ndarray | None = None, *, fft_layout: bool = False) -> np.ndarray:
        """Amplitudes (k, N, N) float32 of patterns ``indices`` (any order, repeats allowed), validated.

        Rows are read in file order, in as few contiguous reads as the gaps between them allow, and at most
        :data:`READ_ROWS_BYTES` of them at a time, each step converted straight into ``out`` (so reading a
        whole share never holds a second copy of it in the file's dtype). ``fft_layout`` returns each
        pattern ``ifftshift``-ed (zero frequency at pixel 0, the layout of a plain ``fft2``), done in the
        same pass as the conversion."""
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        count = len(self)
        if indices.size and (indices.min() < -count or indices.max() >= count):
            raise IndexError(f"pattern index out of range for {count} patterns")
        indices = np.where(indices < 0, indices + count, indices)
        _, height, width = self.file_shape
        if out is None:
            out = np.empty((indices.size, height, width), dtype=np.float32)
        step = max(1, READ_ROWS_BYTES // (height * width * 4))
        for start in range(0, indices.size, step):
            part = indices[start : start + step]
            self._read_part(part, out[start : start + part.size], fft_layout)
        return out

    def _read_part(self, indices: np.ndarray, out: np.ndarray, fft_layout: bool) -> None:
        file_rows = indices if self.rows is None else self.rows[indices]
        unique, inverse = np.unique(file_rows, return_inverse=True)
        raw = self._read_rows(unique)
        where = f"{self.where} (patterns {int(unique[0])}..{int(unique[-1])} of '{self.name}')"
        if unique.size == indices.size and np.array_equal(unique, file_rows):
            convert_patterns(raw, out, self.counts, where, fft_layout)
        else:
            distinct = np.empty(raw.shape, dtype=np.float32)
            convert_patterns(raw, distinct, self.counts, where, fft_layout)
            np.take(distinct, inverse, axis=0, out=out)

    def blocks(self, block_rows: int, indices: np.ndarray | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(indices, amplitudes) of consecutive blocks of at most ``block_rows`` patterns of ``indices``
        (default: all, in order)."""
        indices = np.arange(len(self)) if indices is None else np.asarray(indices, dtype=np.int64)
        for start in range(0, indices.size, max(int(block_rows), 1)):
            part = indices[start : start + block_rows]
            yield part, self.read(part)

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                try:
                    self._file.close()
                finally:
                    self._file = None

    # -- internals ---------------------------------------------------------------------------------------

    def _dataset(self) -> h5py.Dataset:
        """The dataset, from a handle opened once per process (a forked worker opens its own)."""
        if self._file is None or self._pid != os.getpid():
            try:
                self._file = h5py.File(self.path, "r", rdcc_nbytes=CHUNK_CACHE_BYTES, rdcc_nslots=10007)
            except FileNotFoundError as exc:
                raise DataError(f"{self.where}: file not found") from exc
            except Exception as exc:
                raise DataError(f"{self.where}: cannot read HDF5 file ({type(exc).__name__}: {exc})") from exc
            self._pid = os.getpid()
        item = self._file.get(self.name)
        if item is None:
            raise DataError(f"{self.where}: missing required dataset '{self.name}'")
        if not isinstance(item, h5py.Dataset):
            raise DataError(f"{self.where}: '{self.name}' is a {type(item).__name__}, not a dataset")
        return item

    def _read_rows(self, rows: np.ndarray) -> np.ndarray:
        """Raw values of the sorted, distinct file ``rows``, from runs of nearby rows."""
        _, height, width = self.file_shape
        out = np.empty((rows.size, height, width), dtype=self.file_dtype)
        if rows.size == 0:
            return out
        gap = max(_GAP_ROWS, self.chunk_rows)
        starts = np.concatenate([[0], np.flatnonzero(np.diff(rows) > gap) + 1, [rows.size]])
        with self._lock:
            dataset = self._dataset()
            for first, last in itertools.pairwise(starts):
                low, high = int(rows[first]), int(rows[last - 1]) + 1
                try:
                    if high - low == last - first:
                        dataset.read_direct(out, np.s_[low:high], np.s_[first:last])
                    else:
                        out[first:last] = dataset[low:high][rows[first:last] - low]
                except Exception as exc:
                    raise DataError(_read_failure(self.where, self.name, low, high, dataset, exc)) from exc
        return out


def patterns_to_amplitudes(raw: np.ndarray, counts: bool, where: str) -> np.ndarray:
    """float32 amplitudes of stored patterns (see :func:`convert_patterns`), in a new array."""
    out = np.empty(raw.shape, dtype=np.float32)
    convert_patterns(raw, out, counts, where)
    return out


def convert_patterns(raw: np.ndarray, out: np.ndarray, counts: bool, where: str, fft_layout: bool = False) -> None:
    """Write float32 amplitudes of stored patterns ``raw`` (k, N, N) into ``out``: sqrt(counts), or the
    values themselves when ``counts`` is False; NaN, Inf, negative and absurd values end in a DataError
    naming ``where``. ``fft_layout`` moves each pattern's centre (N//2, N//2) to pixel 0 in the same copy.

    Whole counts below 2^24 are exact in float32, and a float32 square root of them equals the float64 one
    rounded to float32 (a correctly rounded square root survives that double rounding), so unsigned counts
    take the float32 path: half the memory traffic of float64, the same bits."""
    kind = raw.dtype.kind
    if kind not in "uif" or raw.dtype == bool:
        raise DataError(f"{where}: patterns must be numeric; got dtype {raw.dtype}")
    if kind == "f":
        values = raw.astype(np.float64, copy=False) if raw.dtype.itemsize > 4 else raw
        bad = ~np.isfinite(values)
        if bad.any():
            raise DataError(f"{where}: 'patterns' contains {int(bad.sum())} NaN or Inf values")
    if kind in "if" and raw.size and raw.min() < 0:
        what = "counts, which must be >= 0" if counts else "amplitudes, which must be >= 0"
        raise DataError(f"{where}: 'patterns' holds {what}; found {int(np.sum(raw < 0))} negative")
    fast = not counts or (kind == "u" and raw.dtype.itemsize <= 2)
    source = raw if fast else np.sqrt(raw.astype(np.float64))
    if fft_layout:
        _ifftshift_into(source, out)
    else:
        np.copyto(out, source, casting="unsafe")
    if fast and counts:
        np.sqrt(out, out=out)
    check_largest_amplitude(float(out.max()) if out.size else 0.0, where)


def _ifftshift_into(source: np.ndarray, out: np.ndarray) -> None:
    """``out[...] = ifftshift(source)`` over the last two axes, cast to ``out``'s dtype, as four block copies
    (numpy's ifftshift makes two whole copies, one per axis)."""
    rows, cols = source.shape[-2:]
    r, c = rows // 2, cols // 2  # the centre pixel goes to 0
    for (out_r, src_r) in ((slice(0, rows - r), slice(r, rows)), (slice(rows - r, rows), slice(0, r))):
        for (out_c, src_c) in ((slice(0, cols - c), slice(c, cols)), (slice(cols - c, cols), slice(0, c))):
            np.copyto(out[..., out_r, out_c], source[..., src_r, src_c], casting="unsafe")


def check_largest_amplitude(largest: float, where: str = "") -> None:
    """Refuse amplitudes above :data:`MAX_AMPLITUDE`: such a file was scaled or stored as something else."""
    if not np.isfinite(largest) or largest > MAX_AMPLITUDE:
        raise DataError(
            f"{where + ': ' if where else ''}diffraction amplitude {largest:.3g} (= {largest ** 2:.3g} counts in "
            f"one pixel) is implausible; amplitudes are sqrt(counts) and must not exceed {MAX_AMPLITUDE:.0e}: "
            "was the file scaled or stored as something else?"
        )


def _check_dataset(dataset: h5py.Dataset, name: str, where: str) -> None:
    """Rank, shape and readability of a pattern dataset, from its metadata alone (nothing is read)."""
    if dataset.dtype.kind not in "uif" or dataset.dtype == bool:
        raise DataError(f"{where}: '{name}' must be numeric; got dtype {dataset.dtype}")
    if dataset.ndim != 3:
        raise DataError(f"{where}: '{name}' must have shape (M, H, W); got rank {dataset.ndim} with shape "
                        f"{dataset.shape}")
    m, h, w = dataset.shape
    if m == 0:
        raise DataError(f"{where}: '{name}' holds no patterns (shape {dataset.shape})")
    if h != w:
        raise DataError(f"{where}: diffraction patterns must be square; got {h} x {w}")
    missing = [fid for fid in _filter_ids(dataset) if not h5py.h5z.filter_avail(fid)]
    if missing:
        names = ", ".join(f"{_FILTER_NAMES.get(fid, 'filter')} (HDF5 filter {fid})" for fid in missing)
        raise DataError(f"{where}: '{name}' is compressed with {names}, which this installation cannot "
                        "decompress; install the filters with: pip install 'ptychodus-torch-plugin[hdf5]'")


def _filter_ids(dataset: h5py.Dataset) -> list[int]:
    try:
        plist = dataset.id.get_create_plist()
        return [int(plist.get_filter(i)[0]) for i in range(plist.get_nfilters())]
    except Exception:
        return []


def _read_failure(where: str, name: str, low: int, high: int, dataset: h5py.Dataset, exc: Exception) -> str:
    first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    hint = "the file is truncated or corrupt"
    if any(not h5py.h5z.filter_avail(fid) for fid in _filter_ids(dataset)):
        hint = "a compression filter is missing: pip install 'ptychodus-torch-plugin[hdf5]'"
    return f"{where}: cannot read patterns {low}..{high - 1} of '{name}' ({first_line}); {hint}"
