"""ptychodus 1.7's own HDF5 files: the assembled diffraction file and the product file (read and write).

Layouts follow ``ptychodus.api.io`` (``DiffractionFileKeys``, ``ProductFileKeys``, ``load_product``,
``save_product``, ``load_diffraction_data``, ``save_diffraction_data``, ``save_training_data``); the
metre <-> pixel mapping is in :mod:`.geometry`. Why our own code instead of importing ptychodus: the
backend must load these files in a child process or on a cluster node where ptychodus is not installed.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..errors import DataError
from .checks import (
    DataWarning,
    amplitude_to_counts,
    build_scan,
    is_constant,
    require_finite,
    require_key,
    require_mask,
    require_numeric,
    require_rank,
)
from .geometry import ObjectFrame, metres_to_positions, positions_to_metres, ptychodus_pixels_to_positions
from .patterns import PatternStack
from .scan import ScanData

#: File names of ptychodus's batch layout (``ptychodus.api.io.StandardFileLayout``).
DIFFRACTION_FILE_NAME = "diffraction.h5"
PRODUCT_FILE_NAME = "product.h5"

#: Patterns above this many bytes (as float32 amplitudes) stay in their file and are read block by block
#: when a reader is not told otherwise (``stream=None``); smaller scans are read whole, as before.
STREAM_ABOVE_BYTES = 1024**3

#: Target bytes of one HDF5 chunk of ``patterns``.
PATTERN_CHUNK_BYTES = 1 << 20

#: Planck constant times the speed of light, in eV·m: wavelength_m = HC_EV_M / photon_energy_eV.
HC_EV_M = 1.239841984e-6

# Keys exactly as ptychodus 1.7 spells them.
_DIFF_KEYS = ("indexes", "patterns", "bad_pixels", "probe_photon_counts")
_PRODUCT_KEYS = (
    "probe",
    "object",
    "opr_weights",
    "object_layer_spacing_m",
    "probe_position_indexes",
    "probe_position_x_m",
    "probe_position_y_m",
)
_TRAINING_KEYS = (
    "patterns",
    "bad_pixels",
    "probe",
    "object",
    "probe_position_x_px",
    "probe_position_y_px",
    "object_pixel_width_m",
    "object_pixel_height_m",
    "photon_energy_eV",
    "detector_object_distance_m",
)


@dataclass(frozen=True)
class PtychodusGeometry:
    """Acquisition values ptychodus needs in a product but a ScanData may lack; used only when writing."""

    pixel_size_m: float = 10e-9
    photon_energy_eV: float = 8000.0
    detector_distance_m: float = 2.0
    name: str = "ptychodus-torch simulation"


@dataclass
class H5Contents:
    """Top-level datasets (as numpy arrays) and attributes of one HDF5 file, read eagerly then closed."""

    path: Path
    datasets: dict[str, np.ndarray] = field(default_factory=dict)
    dataset_attrs: dict[str, dict[str, Any]] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)


def read_h5(path: Path, keys: tuple[str, ...], *, skip: tuple[str, ...] = ()) -> H5Contents:
    """Read the named top-level datasets and all attributes; any HDF5 failure becomes a DataError.

    Datasets named in ``skip`` are listed in ``names`` but not read (the patterns, which a
    :class:`~.patterns.PatternStack` reads in blocks)."""
    contents = H5Contents(path=path)
    try:
        with h5py.File(path, "r") as h5:
            contents.names = list(h5.keys())
            contents.attrs = {str(k): v for k, v in h5.attrs.items()}
            for key in keys:
                if key in skip:
                    continue
                item = h5.get(key)
                if item is None:
                    continue
                if not isinstance(item, h5py.Dataset):
                    raise DataError(f"{path}: '{key}' is a {type(item).__name__}, not a dataset")
                contents.datasets[key] = np.asarray(item[()])
                contents.dataset_attrs[key] = {str(k): v for k, v in item.attrs.items()}
    except DataError:
        raise
    except FileNotFoundError as exc:
        raise DataError(f"{path}: file not found") from exc
    except Exception as exc:
        raise DataError(f"{path}: cannot read HDF5 file ({type(exc).__name__}: {exc})") from exc
    if not contents.names:
        raise DataError(f"{path}: the HDF5 file is empty (no datasets)")
    return contents


def h5_top_level_names(path: Path) -> list[str]:
    """Names at the root of an HDF5 file, used to tell diffraction, product and training files apart."""
    return read_h5(path, ()).names


def read_ptychodus(
    diffraction_path: Path | str,
    product_path: Path | str,
    *,
    counts: bool | None = None,
    stream: bool | None = None,
    stream_above: int = STREAM_ABOVE_BYTES,
) -> ScanData:
    """Load ptychodus's assembled diffraction file together with its product file.

    Patterns are paired with positions by scan index (``indexes`` vs ``probe_position_indexes``), as
    ``ptychodus.api.reconstruct.prepare_reconstruct_input`` does; patterns without a position are dropped
    with a warning. ``counts=False`` takes ``patterns`` as amplitudes instead of ptychodus's counts.
    ``stream`` True leaves the patterns in the file (a :class:`~.patterns.PatternStack`, read in blocks),
    False reads them whole; None streams them when they take more than ``stream_above`` bytes as float32.
    """
    diff = read_h5(Path(diffraction_path), _DIFF_KEYS, skip=("patterns",))
    prod = read_h5(Path(product_path), _PRODUCT_KEYS)
    dwhere, pwhere = str(diff.path), str(prod.path)
    if "patterns" not in diff.names:
        require_key(diff.datasets, "patterns", dwhere)
    stack = PatternStack(diff.path, "patterns", counts=counts, where=dwhere)
    m, n = stack.file_shape[0], stack.file_shape[-1]
    indexes = _integers(require_key(diff.datasets, "indexes", dwhere), "indexes", dwhere)
    if indexes.shape != (m,):
        raise DataError(f"{dwhere}: 'indexes' has shape {indexes.shape}; expected ({m},), one per pattern")
    bad_pixels = None
    if "bad_pixels" in diff.datasets:
        bad_pixels = require_mask(diff.datasets["bad_pixels"], "bad_pixels", dwhere, (n, n))

    probe, probe_attrs = _probe(prod, n)
    obj, obj_attrs = _object(prod)
    frame = ObjectFrame(
        height_px=obj.shape[0],
        width_px=obj.shape[1],
        pixel_height_m=_positive_attr(obj_attrs, "pixel_height_m", pwhere, "object"),
        pixel_width_m=_positive_attr(obj_attrs, "pixel_width_m", pwhere, "object"),
        center_y_m=_finite_attr(obj_attrs, "center_y_m", pwhere, "object"),
        center_x_m=_finite_attr(obj_attrs, "center_x_m", pwhere, "object"),
    )
    _check_probe_pixels(probe_attrs, frame, pwhere)

    pos_index = _integers(
        require_key(prod.datasets, "probe_position_indexes", pwhere), "probe_position_indexes", pwhere
    )
    x_m = _reals(require_key(prod.datasets, "probe_position_x_m", pwhere), "probe_position_x_m", pwhere)
    y_m = _reals(require_key(prod.datasets, "probe_position_y_m", pwhere), "probe_position_y_m", pwhere)
    if not (pos_index.shape == x_m.shape == y_m.shape) or pos_index.ndim != 1:
        raise DataError(
            f"{pwhere}: 'probe_position_indexes' {pos_index.shape}, 'probe_position_x_m' {x_m.shape} and "
            f"'probe_position_y_m' {y_m.shape} must be 1-D arrays of one length"
        )
    keep, y_paired, x_paired = _pair_by_index(indexes, pos_index, y_m, x_m, dwhere, pwhere)
    positions = metres_to_positions(y_paired, x_paired, frame, n)
    amplitudes = _open_patterns(stack, None if keep.all() else np.flatnonzero(keep), stream, stream_above)
    pixel_size = (
        frame.pixel_width_m
        if np.isclose(frame.pixel_width_m, frame.pixel_height_m, rtol=1e-9, atol=0.0)
        else None
    )
    return build_scan(
        f"{dwhere} + {pwhere}",
        amplitudes=amplitudes,
        probe=probe,
        positions=positions,
        object_truth=None if is_constant(obj) else obj,
        object_shape=obj.shape,
        bad_pixels=bad_pixels,
        pixel_size_m=pixel_size,
        photon_energy_eV=_optional_attr(prod.attrs, ("photon_energy_eV", "probe_energy_eV")),
        detector_distance_m=_optional_attr(prod.attrs, ("detector_object_distance_m",)),
        source=f"{dwhere} + {pwhere}",
    )


def read_ptychodus_training(
    path: Path | str, *, counts: bool | None = None, stream: bool | None = None,
    stream_above: int = STREAM_ABOVE_BYTES,
) -> ScanData:
    """Load the training-data HDF5 that ``ptychodus.api.io.save_training_data`` writes (pixel positions);
    ``stream`` and ``stream_above`` as in :func:`read_ptychodus`."""
    contents = read_h5(Path(path), _TRAINING_KEYS, skip=("patterns",))
    where = str(contents.path)
    if "patterns" not in contents.names:
        require_key(contents.datasets, "patterns", where)
    stack = PatternStack(contents.path, "patterns", counts=counts, where=where)
    m, n = stack.file_shape[0], stack.file_shape[-1]
    probe = require_numeric(
        require_key(contents.datasets, "probe", where), "probe", where, allow_complex=True
    )
    require_rank(probe, "probe", where, (2, 3), "(N, N) or (modes, N, N)")
    obj = require_numeric(
        require_key(contents.datasets, "object", where), "object", where, allow_complex=True
    )
    require_rank(obj, "object", where, (2,), "(H, W)")
    require_finite(obj, "object", where)
    x_px = _reals(require_key(contents.datasets, "probe_position_x_px", where), "probe_position_x_px", where)
    y_px = _reals(require_key(contents.datasets, "probe_position_y_px", where), "probe_position_y_px", where)
    if not (x_px.shape == y_px.shape == (m,)):
        raise DataError(
            f"{where}: 'probe_position_x_px' {x_px.shape} and 'probe_position_y_px' {y_px.shape} "
            f"must each have one entry per pattern ({m})"
        )
    bad_pixels = None
    if "bad_pixels" in contents.datasets:
        bad_pixels = require_mask(contents.datasets["bad_pixels"], "bad_pixels", where, (n, n))
    width = contents.datasets.get("object_pixel_width_m")
    return build_scan(
        where,
        amplitudes=_open_patterns(stack, None, stream, stream_above),
        probe=probe,
        positions=ptychodus_pixels_to_positions(y_px, x_px, n),
        object_truth=None if is_constant(obj) else obj,
        object_shape=obj.shape,
        bad_pixels=bad_pixels,
        pixel_size_m=None
        if width is None or np.size(width) != 1
        else float(np.asarray(width, np.float64).reshape(())),
        source=where,
    )


def pattern_chunk_rows(n_patterns: int, patch_size: int, dtype: np.dtype | type) -> int:
    """Patterns per HDF5 chunk of ``patterns``: about :data:`PATTERN_CHUNK_BYTES`, at least one, at most
    the scan (a reader decompresses whole chunks)."""
    row_bytes = patch_size * patch_size * np.dtype(dtype).itemsize
    return int(min(max(1, PATTERN_CHUNK_BYTES // row_bytes), n_patterns))


def save_ptychodus(
    scan: ScanData,
    diffraction_path: Path | str,
    product_path: Path | str,
    *,
    geometry: PtychodusGeometry | None = None,
) -> tuple[Path, Path]:
    """Write ``scan`` as ptychodus's assembled diffraction file and product file (readable by ptychodus 1.7).

    Acquisition values missing from ``scan`` come from ``geometry``; the detector pixel pitch is derived
    from them (far field: detector pitch = wavelength * distance / (N * object pitch)) so ptychodus's own
    geometry reproduces the object pixel size. An absent true object is written as ones, ptychodus's blank
    initial guess, which reads back as 'no truth'.
    """
    geometry = geometry or PtychodusGeometry()
    pixel = scan.pixel_size_m or geometry.pixel_size_m
    energy = scan.photon_energy_eV or geometry.photon_energy_eV
    distance = scan.detector_distance_m or geometry.detector_distance_m
    n = scan.patch_size
    detector_pixel = HC_EV_M / energy * distance / (n * pixel)

    diffraction_path, product_path = Path(diffraction_path), Path(product_path)
    for p in (diffraction_path, product_path):
        p.parent.mkdir(parents=True, exist_ok=True)

    indexes = np.arange(scan.n_patterns, dtype=np.int64)
    with h5py.File(diffraction_path, "w") as h5:
        h5.create_dataset("indexes", data=indexes, compression="lzf")
        counts = _counts_for_file(scan.amplitudes)
        # chunked along the pattern axis (whole patterns), so a reader of some patterns decompresses only those
        patterns = h5.create_dataset("patterns", data=counts, compression="lzf",
                                     chunks=(pattern_chunk_rows(*counts.shape[:2], counts.dtype), n, n))
        patterns.attrs["detector_pixel_width_m"] = detector_pixel
        patterns.attrs["detector_pixel_height_m"] = detector_pixel
        bad = scan.bad_pixels if scan.bad_pixels is not None else np.zeros((n, n), dtype=bool)
        h5.create_dataset("bad_pixels", data=bad, compression="lzf")

    height, width = scan.object_shape
    frame = ObjectFrame(height_px=height, width_px=width, pixel_height_m=pixel, pixel_width_m=pixel)
    y_m, x_m = positions_to_metres(scan.positions, frame, n)
    obj = (
        scan.object_truth if scan.object_truth is not None else np.ones(scan.object_shape, dtype=np.complex64)
    )
    with h5py.File(product_path, "w") as h5:
        h5.attrs["name"] = geometry.name
        h5.attrs["comments"] = scan.source
        h5.attrs["detector_object_distance_m"] = distance
        h5.attrs["photon_energy_eV"] = energy
        h5.attrs["probe_photon_count"] = float(
            np.mean(np.sum(amplitude_to_counts(scan.amplitudes), axis=(-2, -1)))
        )
        h5.attrs["exposure_time_s"] = 0.0
        h5.attrs["mass_attenuation_m2_per_kg"] = 0.0
        h5.attrs["tomography_angle_deg"] = 0.0
        h5.attrs["focus_object_distance_m"] = 0.0
        h5.attrs["tilt_angle_deg"] = 0.0
        h5.attrs["far_field"] = True
        h5.create_dataset("probe_position_indexes", data=indexes)
        h5.create_dataset("probe_position_x_m", data=x_m)
        h5.create_dataset("probe_position_y_m", data=y_m)
        probe = h5.create_dataset("probe", data=scan.probe[np.newaxis].astype(np.complex64))
        probe.attrs["pixel_width_m"] = pixel
        probe.attrs["pixel_height_m"] = pixel
        dset = h5.create_dataset("object", data=obj[np.newaxis].astype(np.complex64))
        dset.attrs["center_x_m"] = frame.center_x_m
        dset.attrs["center_y_m"] = frame.center_y_m
        dset.attrs["pixel_width_m"] = pixel
        dset.attrs["pixel_height_m"] = pixel
        h5.create_dataset("object_layer_spacing_m", data=np.zeros(0, dtype=np.float64))
        h5.create_dataset("loss_epochs", data=np.zeros(0, dtype=np.int64))
        h5.create_dataset("loss_values", data=np.zeros(0, dtype=np.float64))
    return diffraction_path, product_path


def save_reconstruction_product(
    scan: ScanData, obj: np.ndarray, diffraction_path: Path | str, product_path: Path | str
) -> tuple[Path, Path]:
    """Write a reconstruction as ptychodus's file pair: ``scan``'s patterns and positions with ``obj`` as the
    product's object. A scan left in its file (a PatternStack) is copied block by block, never whole."""
    from dataclasses import replace

    obj = np.asarray(obj, dtype=np.complex64)
    if scan.in_memory:
        return save_ptychodus(replace(scan, object_truth=obj, source="ptychodus-torch reconstruct"),
                              diffraction_path, product_path)
    from .ptychodus_write import PtychodusWriter

    stack = scan.amplitudes
    assert isinstance(stack, PatternStack)
    dtype = stack.file_dtype if stack.counts and stack.file_dtype.kind in "ui" else np.dtype(np.float32)
    with PtychodusWriter(diffraction_path, product_path, n_patterns=scan.n_patterns, dtype=dtype,
                         probe=scan.probe, positions=scan.positions, object_shape=scan.object_shape,
                         object_truth=obj, pixel_size_m=scan.pixel_size_m, photon_energy_eV=scan.photon_energy_eV,
                         detector_distance_m=scan.detector_distance_m, bad_pixels=scan.bad_pixels,
                         source="ptychodus-torch reconstruct") as writer:
        block = max(1, (64 * 1024**2) // stack.pattern_bytes)
        for _, amplitudes in stack.blocks(block):
            writer.write(amplitudes)
    return writer.diffraction_path, writer.product_path


def _counts_for_file(amplitudes: np.ndarray) -> np.ndarray:
    """Counts as a detector would store them: unsigned integers when whole (Poisson data), else float32."""
    counts = amplitude_to_counts(amplitudes)
    rounded = np.rint(counts)
    # float32 amplitudes carry ~6e-8 relative error, i.e. ~1.2e-7 * counts after squaring.
    if np.all(np.abs(counts - rounded) <= 1e-3 + 2.5e-7 * counts):
        dtype = np.uint16 if rounded.max(initial=0) < 2**16 else np.uint32
        if rounded.max(initial=0) < 2**32:
            return rounded.astype(dtype)
    return counts.astype(np.float32)


def _open_patterns(stack: PatternStack, rows: np.ndarray | None, stream: bool | None,
                   stream_above: int) -> np.ndarray | PatternStack:
    """The patterns of the rows that have a position: left in the file (streamed) or read whole, the
    same way either way (block by block through the stack, so both give the same bits)."""
    if rows is not None:
        stack.close()
        stack = PatternStack(stack.path, stack.name, rows=rows, counts=stack.counts, where=stack.where)
    if stream is None:
        stream = stack.nbytes > stream_above
    if stream:
        return stack
    try:
        return np.asarray(stack)
    finally:
        stack.close()


def _probe(prod: H5Contents, n: int) -> tuple[np.ndarray, dict[str, Any]]:
    where = str(prod.path)
    probe = require_numeric(require_key(prod.datasets, "probe", where), "probe", where, allow_complex=True)
    require_rank(probe, "probe", where, (2, 3, 4), "(H, W), (modes, H, W) or (OPR modes, modes, H, W)")
    if probe.ndim == 4:
        if probe.shape[0] > 1:
            warnings.warn(
                f"{where}: the probe has {probe.shape[0]} OPR modes; using the first, as "
                "ptychodus's get_probe_no_opr does",
                DataWarning,
                stacklevel=4,
            )
        if probe.shape[0] == 0:
            raise DataError(f"{where}: 'probe' has no OPR modes (shape {probe.shape})")
        probe = probe[0]
    if probe.shape[-2:] != (n, n):
        raise DataError(
            f"{where}: probe size {probe.shape[-2]} x {probe.shape[-1]} differs from pattern size {n} x {n}"
        )
    require_finite(probe, "probe", where)
    return probe, prod.dataset_attrs.get("probe", {})


def _object(prod: H5Contents) -> tuple[np.ndarray, dict[str, Any]]:
    where = str(prod.path)
    obj = require_numeric(require_key(prod.datasets, "object", where), "object", where, allow_complex=True)
    require_rank(obj, "object", where, (2, 3), "(H, W) or (layers, H, W)")
    if obj.ndim == 3:
        if obj.shape[0] == 0:
            raise DataError(f"{where}: 'object' has no layers (shape {obj.shape})")
        if obj.shape[0] > 1:
            warnings.warn(
                f"{where}: the object has {obj.shape[0]} layers; "
                "using their product (projection approximation)",
                DataWarning,
                stacklevel=4,
            )
        obj = np.prod(obj, axis=0)
    if obj.size == 0:
        raise DataError(f"{where}: 'object' is empty (shape {obj.shape})")
    require_finite(obj, "object", where)
    return obj, prod.dataset_attrs.get("object", {})


def _check_probe_pixels(attrs: dict[str, Any], frame: ObjectFrame, where: str) -> None:
    """ptychodus defaults a missing probe pitch to the object's; a different pitch needs resampling."""
    for key, obj_pitch in (("pixel_width_m", frame.pixel_width_m), ("pixel_height_m", frame.pixel_height_m)):
        if key in attrs:
            pitch = _positive_attr(attrs, key, where, "probe")
            if not np.isclose(pitch, obj_pitch, rtol=1e-6, atol=0.0):
                raise DataError(
                    f"{where}: probe pixel {key} = {pitch:.6g} differs from the object's {obj_pitch:.6g}; "
                    "resample one of them in ptychodus first"
                )


def _pair_by_index(
    pattern_index: np.ndarray,
    pos_index: np.ndarray,
    y_m: np.ndarray,
    x_m: np.ndarray,
    dwhere: str,
    pwhere: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which patterns have a position, and that position; duplicate position indexes are averaged."""
    if pos_index.size == 0:
        raise DataError(f"{pwhere}: the product holds no probe positions")
    unique, inverse = np.unique(pos_index, return_inverse=True)
    count = np.bincount(inverse)
    mean_y = np.bincount(inverse, weights=y_m) / count
    mean_x = np.bincount(inverse, weights=x_m) / count
    slot = np.searchsorted(unique, pattern_index)
    slot = np.clip(slot, 0, unique.size - 1)
    keep = unique[slot] == pattern_index
    if not np.any(keep):
        raise DataError(f"{dwhere}: no pattern index matches a probe position index in {pwhere}")
    if not np.all(keep):
        warnings.warn(
            f"{dwhere}: {int(np.sum(~keep))} of {keep.size} patterns have no probe position "
            f"in {pwhere}; dropped",
            DataWarning,
            stacklevel=4,
        )
    return keep, mean_y[slot[keep]], mean_x[slot[keep]]


def _integers(array: np.ndarray, name: str, where: str) -> np.ndarray:
    arr = require_numeric(array, name, where, allow_complex=False)
    require_rank(arr, name, where, (1,), "(M,)")
    require_finite(arr.astype(np.float64), name, where)
    if not np.all(arr == np.round(arr)):
        raise DataError(f"{where}: '{name}' must hold whole numbers")
    return arr.astype(np.int64)


def _reals(array: np.ndarray, name: str, where: str) -> np.ndarray:
    arr = require_numeric(array, name, where, allow_complex=False).astype(np.float64)
    require_rank(arr, name, where, (1,), "(M,)")
    require_finite(arr, name, where)
    return arr


def _finite_attr(attrs: dict[str, Any], key: str, where: str, owner: str) -> float:
    if key not in attrs:
        raise DataError(
            f"{where}: '{owner}' lacks the attribute '{key}'; present: {', '.join(sorted(attrs)) or '(none)'}"
        )
    try:
        value = float(np.asarray(attrs[key], dtype=np.float64).reshape(()))
    except (TypeError, ValueError) as exc:
        raise DataError(f"{where}: attribute '{owner}.{key}' is not a number ({attrs[key]!r})") from exc
    if not np.isfinite(value):
        raise DataError(f"{where}: attribute '{owner}.{key}' is not finite ({value})")
    return value


def _positive_attr(attrs: dict[str, Any], key: str, where: str, owner: str) -> float:
    value = _finite_attr(attrs, key, where, owner)
    if value <= 0:
        raise DataError(f"{where}: attribute '{owner}.{key}' must be > 0; got {value}")
    return value


def _optional_attr(attrs: dict[str, Any], keys: tuple[str, ...]) -> float | None:
    """A positive metadata value if present and sensible; None otherwise (metadata never blocks loading)."""
    for key in keys:
        if key in attrs:
            try:
                value = float(np.asarray(attrs[key], dtype=np.float64).reshape(()))
            except (TypeError, ValueError):
                return None
            return value if np.isfinite(value) and value > 0 else None
    return None
