"""Write ptychodus's ``diffraction.h5`` + ``product.h5`` pair a block of patterns at a time.

Why not :func:`.ptychodus_h5.save_ptychodus`: it needs the whole stack in memory (and a float64 copy of it
to decide the dtype), which a 200,000-pattern scan does not fit. :class:`PtychodusWriter` writes the same
datasets and attributes, takes the patterns block by block, and keeps only per-pattern totals (for the
product's ``probe_photon_count``). ``patterns`` is chunked along the pattern axis by the same rule
(:func:`.ptychodus_h5.pattern_chunk_rows`, about :data:`PATTERN_CHUNK_BYTES` per chunk, lzf). One difference:
its dtype is chosen before the first pattern is written, from a bound on the counts the caller knows
(:func:`counts_dtype`), so Poisson data whose largest count is just under 2^16 may be stored as uint32
where ``save_ptychodus`` would pick uint16 (same values); a count that would not fit raises, never wraps.

Both files are written under temporary names in their own folder and renamed into place only when
complete, so an error, Ctrl-C or a killed process never leaves a half-written file under the final name.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from types import TracebackType
from typing import Self

import h5py
import numpy as np

from ..errors import DataError
from .checks import amplitude_to_counts
from .geometry import ObjectFrame, positions_to_metres
from .ptychodus_h5 import (  # noqa: F401 (PATTERN_CHUNK_BYTES re-exported: one chunk rule for both writers)
    HC_EV_M,
    PATTERN_CHUNK_BYTES,
    PtychodusGeometry,
    pattern_chunk_rows,
)

#: Tolerance of "whole counts" for float32 amplitudes, as ``save_ptychodus`` uses: float32 carries ~6e-8
#: relative error, i.e. ~1.2e-7 * counts after squaring.
_WHOLE_ABS, _WHOLE_REL = 1e-3, 2.5e-7


def counts_dtype(largest_count: float | None) -> np.dtype:
    """Stored dtype of ``patterns``, by ``save_ptychodus``'s rule: whole counts as uint16 when they fit,
    else uint32, else float32; ``None`` (counts that are not whole, noiseless data) is float32.

    ``largest_count`` must bound every count that will be written (for Poisson data, a bound on the draw).
    """
    if largest_count is None or not np.isfinite(largest_count):
        return np.dtype(np.float32)
    if largest_count < 2**16:
        return np.dtype(np.uint16)
    if largest_count < 2**32:
        return np.dtype(np.uint32)
    return np.dtype(np.float32)


class PtychodusWriter:
    """Streams one scan into ptychodus's diffraction + product files.

    Give everything but the patterns up front, then :meth:`write` the amplitudes (sqrt of counts, float32)
    in order, a block of rows at a time, then :meth:`close`. As a context manager it closes on success and
    :meth:`abort` s on any exception (KeyboardInterrupt included), removing the temporary files.
    """

    def __init__(
        self,
        diffraction_path: Path | str,
        product_path: Path | str,
        *,
        n_patterns: int,
        dtype: np.dtype | type,
        probe: np.ndarray,
        positions: np.ndarray,
        object_shape: tuple[int, int],
        object_truth: np.ndarray | None = None,
        pixel_size_m: float | None = None,
        photon_energy_eV: float | None = None,
        detector_distance_m: float | None = None,
        bad_pixels: np.ndarray | None = None,
        source: str = "",
        geometry: PtychodusGeometry | None = None,
    ) -> None:
        geometry = geometry or PtychodusGeometry()
        self.diffraction_path, self.product_path = Path(diffraction_path), Path(product_path)
        self.n_patterns = int(n_patterns)
        self.probe = np.asarray(probe)
        self.patch_size = int(self.probe.shape[-1])
        self.dtype = np.dtype(dtype)
        self.positions = np.asarray(positions, dtype=np.float64)
        self.object_shape = (int(object_shape[0]), int(object_shape[1]))
        self.object_truth = object_truth
        self.pixel = pixel_size_m or geometry.pixel_size_m
        self.energy = photon_energy_eV or geometry.photon_energy_eV
        self.distance = detector_distance_m or geometry.detector_distance_m
        self.name, self.source = geometry.name, source
        self.chunk_rows = pattern_chunk_rows(self.n_patterns, self.patch_size, self.dtype)
        self._totals = np.zeros(self.n_patterns, dtype=np.float64)
        self._written = 0
        self._check_shapes()
        self._temporary: list[Path] = []
        self._finished = False
        self._diffraction: h5py.File | None = None
        self._diffraction = self._create_diffraction(bad_pixels)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()

    @property
    def written(self) -> int:
        """Patterns written so far."""
        return self._written

    def write(self, amplitudes: np.ndarray) -> None:
        """Append the next rows: amplitudes (k, N, N), stored as counts of this writer's dtype."""
        amplitudes = np.asarray(amplitudes)
        n = self.patch_size
        if amplitudes.ndim != 3 or amplitudes.shape[1:] != (n, n):
            raise ValueError(f"expected amplitudes of shape (k, {n}, {n}); got {amplitudes.shape}")
        start, stop = self._written, self._written + amplitudes.shape[0]
        if stop > self.n_patterns:
            raise ValueError(f"{stop} patterns written to a file made for {self.n_patterns}")
        counts = amplitude_to_counts(amplitudes)
        self._totals[start:stop] = np.sum(counts, axis=(-2, -1))
        if self._diffraction is None or not self._diffraction:
            raise ValueError("the writer is closed")
        self._diffraction["patterns"][start:stop] = self._stored(counts, start)
        self._written = stop

    def close(self) -> tuple[Path, Path]:
        """Finish both files and rename them into place; every pattern must have been written."""
        if self._finished:
            return self.diffraction_path, self.product_path
        if self._written != self.n_patterns:
            self.abort()
            raise ValueError(f"only {self._written} of {self.n_patterns} patterns were written")
        try:
            assert self._diffraction is not None
            self._diffraction.close()
            self._write_product(self._temporary_path(self.product_path))
            for path in self._temporary:
                _flush_to_disk(path)
        except BaseException:
            self.abort()
            raise
        os.replace(self._temporary[0], self.diffraction_path)
        os.replace(self._temporary[1], self.product_path)
        self._temporary.clear()
        self._finished = True
        return self.diffraction_path, self.product_path

    def abort(self) -> None:
        """Close and delete the temporary files; the final names are left as they were."""
        try:
            if self._diffraction is not None:
                self._diffraction.close()
        finally:
            for path in self._temporary:
                path.unlink(missing_ok=True)
            self._temporary.clear()

    def _check_shapes(self) -> None:
        n = self.patch_size
        if self.n_patterns < 1:
            raise ValueError("a scan needs at least one pattern")
        if self.probe.ndim != 3 or self.probe.shape[1:] != (n, n):
            raise ValueError(f"the probe must have shape (modes, N, N); got {self.probe.shape}")
        if self.positions.shape != (self.n_patterns, 2):
            raise ValueError(f"positions must have shape ({self.n_patterns}, 2); got {self.positions.shape}")
        if self.object_truth is not None and tuple(self.object_truth.shape) != self.object_shape:
            raise ValueError(f"object {self.object_truth.shape} differs from object_shape {self.object_shape}")

    def _temporary_path(self, final: Path) -> Path:
        """A new, unused name next to ``final`` (the rename then stays on one file system). Not mkstemp: its
        files are private (0600), while the finished pair must get the usual permissions, as h5py gives."""
        final.parent.mkdir(parents=True, exist_ok=True)
        path = final.with_name(f".{final.name}.{os.getpid()}.{secrets.token_hex(4)}.part")
        self._temporary.append(path)
        return path

    def _create_diffraction(self, bad_pixels: np.ndarray | None) -> h5py.File:
        n = self.patch_size
        chunk_bytes = self.chunk_rows * n * n * self.dtype.itemsize
        h5 = h5py.File(self._temporary_path(self.diffraction_path), "w-", rdcc_nbytes=max(4 * chunk_bytes, 1 << 20))
        try:
            h5.create_dataset("indexes", data=np.arange(self.n_patterns, dtype=np.int64), compression="lzf")
            patterns = h5.create_dataset(
                "patterns", shape=(self.n_patterns, n, n), dtype=self.dtype, chunks=(self.chunk_rows, n, n),
                compression="lzf",
            )
            detector_pixel = HC_EV_M / self.energy * self.distance / (n * self.pixel)
            patterns.attrs["detector_pixel_width_m"] = detector_pixel
            patterns.attrs["detector_pixel_height_m"] = detector_pixel
            bad = bad_pixels if bad_pixels is not None else np.zeros((n, n), dtype=bool)
            h5.create_dataset("bad_pixels", data=np.asarray(bad, dtype=bool), compression="lzf")
        except BaseException:
            h5.close()
            self.abort()
            raise
        return h5

    def _stored(self, counts: np.ndarray, start: int) -> np.ndarray:
        """Counts in the file's dtype; whole-count dtypes refuse fractions and counts that would wrap."""
        if self.dtype.kind == "f":
            return counts.astype(self.dtype)
        rounded = np.rint(counts)
        if not np.all(np.abs(counts - rounded) <= _WHOLE_ABS + _WHOLE_REL * counts):
            raise DataError(f"{self.diffraction_path}: patterns from row {start} are not whole counts, "
                            f"which a {self.dtype} file needs")
        largest = float(rounded.max(initial=0))
        if largest > np.iinfo(self.dtype).max:
            raise DataError(f"{self.diffraction_path}: a count of {largest:.0f} (from row {start}) does not fit "
                            f"the file's {self.dtype} (at most {np.iinfo(self.dtype).max})")
        return rounded.astype(self.dtype)

    def _write_product(self, path: Path) -> None:
        """The product file as ``save_ptychodus`` writes it (same keys, attributes, order and dtypes)."""
        height, width = self.object_shape
        frame = ObjectFrame(height_px=height, width_px=width, pixel_height_m=self.pixel, pixel_width_m=self.pixel)
        y_m, x_m = positions_to_metres(self.positions, frame, self.patch_size)
        indexes = np.arange(self.n_patterns, dtype=np.int64)
        with h5py.File(path, "w-") as h5:
            h5.attrs["name"] = self.name
            h5.attrs["comments"] = self.source
            h5.attrs["detector_object_distance_m"] = self.distance
            h5.attrs["photon_energy_eV"] = self.energy
            h5.attrs["probe_photon_count"] = float(np.mean(self._totals))
            for key in ("exposure_time_s", "mass_attenuation_m2_per_kg", "tomography_angle_deg",
                        "focus_object_distance_m", "tilt_angle_deg"):
                h5.attrs[key] = 0.0
            h5.attrs["far_field"] = True
            h5.create_dataset("probe_position_indexes", data=indexes)
            h5.create_dataset("probe_position_x_m", data=x_m)
            h5.create_dataset("probe_position_y_m", data=y_m)
            probe = h5.create_dataset("probe", data=self.probe[np.newaxis].astype(np.complex64))
            probe.attrs["pixel_width_m"] = self.pixel
            probe.attrs["pixel_height_m"] = self.pixel
            obj = h5.create_dataset("object", shape=(1, height, width), dtype=np.complex64)
            if self.object_truth is None:
                obj[0] = np.ones(self.object_shape, dtype=np.complex64)
            else:  # no copy of a complex64 object: it is written straight from the caller's array
                obj[0] = np.asarray(self.object_truth, dtype=np.complex64)
            obj.attrs["center_x_m"] = frame.center_x_m
            obj.attrs["center_y_m"] = frame.center_y_m
            obj.attrs["pixel_width_m"] = self.pixel
            obj.attrs["pixel_height_m"] = self.pixel
            h5.create_dataset("object_layer_spacing_m", data=np.zeros(0, dtype=np.float64))
            h5.create_dataset("loss_epochs", data=np.zeros(0, dtype=np.int64))
            h5.create_dataset("loss_values", data=np.zeros(0, dtype=np.float64))


def _flush_to_disk(path: Path) -> None:
    """fsync a finished file before its rename, so a machine crash cannot leave an empty file in place."""
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())
