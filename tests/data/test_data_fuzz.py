"""Property-based: whatever bytes or arrays a file holds, loading ends in a valid ScanData or a DataError.

Examples are kept few and small so the whole module runs in a few seconds; set FUZZ_EXAMPLES=2000 for a
deeper run.
"""

from __future__ import annotations

import io
import os
import tempfile
import warnings
from pathlib import Path

import h5py
import numpy as np
from datahelpers import make_scan, npz_arrays
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ptychodus_torch_plugin.data import ScanData, load_scan, save_npz, save_ptychodus
from ptychodus_torch_plugin.errors import DataError

_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "40"))
FUZZ = settings(max_examples=_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
H5_FUZZ = settings(
    max_examples=max(_EXAMPLES // 2, 10), deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

_NPZ_KEYS = [
    "diffraction",
    "diff3d",
    "intensities",
    "probeGuess",
    "xcoords",
    "ycoords",
    "objectGuess",
    "scan_index",
    "bad_pixels",
    "object_shape",
    "pixel_size_m",
    "other",
]
_H5_KEYS = [
    "patterns",
    "indexes",
    "bad_pixels",
    "probe",
    "object",
    "probe_position_indexes",
    "probe_position_x_m",
    "probe_position_y_m",
    "probe_position_x_px",
    "probe_position_y_px",
]
_DTYPES = st.sampled_from(
    [
        np.float32,
        np.float64,
        np.float16,
        np.int8,
        np.uint16,
        np.int64,
        np.complex64,
        np.bool_,
        "U3",
        "S2",
        "M8[s]",
    ]
)


def _arrays(max_side: int = 6) -> st.SearchStrategy[np.ndarray]:
    shapes = hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=max_side)
    return _DTYPES.flatmap(lambda dtype: hnp.arrays(dtype, shapes))


def _outcome(path: Path, **kwargs: object) -> None:
    """The property: a ScanData or a DataError, nothing else."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            result = load_scan(path, **kwargs)
        except DataError:
            return
    assert isinstance(result, ScanData)
    assert result.amplitudes.dtype == np.float32 and np.all(np.isfinite(result.amplitudes))


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _valid_npz() -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **npz_arrays(make_scan()))
    return buffer.getvalue()


_VALID_NPZ = _valid_npz()


@FUZZ
@given(data=st.binary(max_size=2048), suffix=st.sampled_from([".npz", ".h5", ".dat", ""]))
def test_random_bytes(data: bytes, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"file{suffix}"
        path.write_bytes(data)
        _outcome(path)


@FUZZ
@given(cut=st.integers(min_value=0, max_value=len(_VALID_NPZ) - 1))
def test_truncated_npz(cut: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "cut.npz"
        path.write_bytes(_VALID_NPZ[:cut])
        _outcome(path)


@FUZZ
@given(
    flips=st.lists(
        st.tuples(st.integers(0, len(_VALID_NPZ) - 1), st.integers(0, 255)), min_size=1, max_size=8
    )
)
def test_corrupted_npz_bytes(flips: list[tuple[int, int]]) -> None:
    raw = bytearray(_VALID_NPZ)
    for position, value in flips:
        raw[position] = value
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "flipped.npz"
        path.write_bytes(bytes(raw))
        _outcome(path)


@FUZZ
@given(
    arrays=st.dictionaries(st.sampled_from(_NPZ_KEYS), _arrays(), max_size=8),
    counts=st.sampled_from([None, True, False]),
)
def test_random_dict_of_arrays(arrays: dict[str, np.ndarray], counts: bool | None) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "random.npz"
        path.write_bytes(_npz_bytes(arrays))
        _outcome(path, counts=counts)


@FUZZ
@given(
    key=st.sampled_from(["diffraction", "probeGuess", "xcoords", "ycoords", "objectGuess"]),
    action=st.sampled_from(["delete", "nan", "dtype", "shape", "negative", "huge"]),
    replacement=_arrays(max_side=20),
)
def test_one_key_broken_at_a_time(key: str, action: str, replacement: np.ndarray) -> None:
    arrays = npz_arrays(make_scan())
    value = arrays[key]
    if action == "delete":
        del arrays[key]
    elif action == "nan":
        value = value.astype(np.complex128 if np.iscomplexobj(value) else np.float64)
        value.flat[0] = np.nan
        arrays[key] = value
    elif action == "dtype":
        arrays[key] = replacement.astype(replacement.dtype)
    elif action == "shape":
        arrays[key] = np.resize(value, replacement.shape) if replacement.size else replacement
    elif action == "negative":
        arrays[key] = -np.abs(value)
    else:
        with np.errstate(over="ignore"):
            arrays[key] = value * 1e300
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "broken.npz"
        path.write_bytes(_npz_bytes(arrays))
        _outcome(path)


@H5_FUZZ
@given(
    datasets=st.dictionaries(
        st.sampled_from(_H5_KEYS), _arrays().filter(lambda a: a.dtype.kind != "M"), max_size=8
    )
)
def test_random_hdf5_datasets(datasets: dict[str, np.ndarray]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "diffraction.h5"
        with h5py.File(path, "w") as h5:
            for key, value in datasets.items():
                h5.create_dataset(
                    key, data=np.char.encode(value, "utf-8") if value.dtype.kind == "U" else value
                )
        save_product = {"probe", "object", "probe_position_x_m"} <= set(datasets)
        if not save_product:
            # give diffraction files a real product to pair with, and vice versa
            scan = make_scan()
            save_ptychodus(scan, Path(folder) / "spare_diffraction.h5", Path(folder) / "product.h5")
        _outcome(path)
        _outcome(Path(folder))


_VALID_PAIR: dict[str, bytes] = {}


def _valid_pair() -> dict[str, bytes]:
    if not _VALID_PAIR:
        with tempfile.TemporaryDirectory() as folder:
            save_ptychodus(make_scan(), Path(folder) / "diffraction.h5", Path(folder) / "product.h5")
            for name in ("diffraction.h5", "product.h5"):
                _VALID_PAIR[name] = (Path(folder) / name).read_bytes()
    return _VALID_PAIR


@H5_FUZZ
@given(which=st.sampled_from(["diffraction.h5", "product.h5"]), fraction=st.floats(0.0, 0.999))
def test_truncated_hdf5(which: str, fraction: float) -> None:
    pair = _valid_pair()
    with tempfile.TemporaryDirectory() as folder:
        for name, raw in pair.items():
            cut = int(len(raw) * fraction) if name == which else len(raw)
            (Path(folder) / name).write_bytes(raw[:cut])
        _outcome(Path(folder))


def test_the_valid_inputs_used_above_do_load() -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "valid.npz"
        path.write_bytes(_VALID_NPZ)
        assert load_scan(path).n_patterns == 9
        save_npz(load_scan(path), Path(folder) / "again.npz")
        for name, raw in _valid_pair().items():
            (Path(folder) / name).write_bytes(raw)
        assert load_scan(Path(folder)).n_patterns == 9
