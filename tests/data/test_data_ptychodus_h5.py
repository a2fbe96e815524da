"""ptychodus HDF5 pair: round trips, the metre -> pixel mapping, index pairing, and malformed files."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from datahelpers import make_scan

from ptychodus_torch_plugin.data import (
    DataWarning,
    PtychodusGeometry,
    ScanData,
    load_scan,
    read_ptychodus,
    save_ptychodus,
)
from ptychodus_torch_plugin.data.geometry import ObjectFrame, metres_to_positions, probe_centre_offset
from ptychodus_torch_plugin.errors import DataError


def _pair(tmp_path: Path, scan: ScanData, **kwargs: object) -> tuple[Path, Path]:
    return save_ptychodus(scan, tmp_path / "diffraction.h5", tmp_path / "product.h5", **kwargs)


def _integer_counts_scan(**kwargs: object) -> ScanData:
    return make_scan(**kwargs)  # Poisson counts: written as uint16, read back bit-exact


def test_round_trip_through_the_folder_and_either_file(tmp_path: Path) -> None:
    scan = _integer_counts_scan()
    diffraction, product = _pair(tmp_path, scan)
    for path in (tmp_path, diffraction, product):
        back = load_scan(path)
        np.testing.assert_array_equal(back.amplitudes, scan.amplitudes)
        np.testing.assert_array_equal(back.probe, scan.probe)
        np.testing.assert_allclose(back.positions, scan.positions, atol=1e-9)
        np.testing.assert_array_equal(back.object_truth, scan.object_truth)
        assert back.object_shape == scan.object_shape
        assert back.pixel_size_m == pytest.approx(scan.pixel_size_m)


def test_written_layout_matches_ptychodus(tmp_path: Path) -> None:
    scan = _integer_counts_scan(modes=2)
    diffraction, product = _pair(tmp_path, scan, geometry=PtychodusGeometry(photon_energy_eV=10_000.0))
    with h5py.File(diffraction) as h5:
        assert h5["patterns"].dtype == np.uint16 and h5["patterns"].shape == (9, 16, 16)
        assert h5["indexes"].shape == (9,) and h5["bad_pixels"].dtype == bool
        assert h5["patterns"].attrs["detector_pixel_width_m"] > 0
    with h5py.File(product) as h5:
        assert h5["probe"].shape == (1, 2, 16, 16)  # (OPR modes, incoherent modes, H, W)
        assert h5["object"].shape == (1, 32, 32)  # (layers, H, W)
        assert set(h5["object"].attrs) >= {"center_x_m", "center_y_m", "pixel_width_m", "pixel_height_m"}
        assert h5.attrs["photon_energy_eV"] == 10_000.0
        assert h5["probe_position_x_m"].shape == (9,)


def test_non_integer_counts_are_written_as_float(tmp_path: Path) -> None:
    scan = make_scan()
    noiseless = ScanData(
        amplitudes=scan.amplitudes * 1.1,
        probe=scan.probe,
        positions=scan.positions,
        object_truth=scan.object_truth,
    )
    diffraction, _ = _pair(tmp_path, noiseless)
    with h5py.File(diffraction) as h5:
        assert h5["patterns"].dtype == np.float32
    np.testing.assert_allclose(load_scan(tmp_path).amplitudes, noiseless.amplitudes, rtol=1e-6)


def test_scan_without_object_writes_ones_and_reads_back_no_truth(tmp_path: Path) -> None:
    scan = make_scan(with_object=False)
    _pair(tmp_path, scan)
    back = load_scan(tmp_path)
    assert back.object_truth is None and back.object_shape == scan.object_shape


# --- metre <-> pixel ---------------------------------------------------------------------------------


def test_probe_centre_offset_is_half_a_pixel_for_even_patches() -> None:
    assert probe_centre_offset(64) == 0.5 and probe_centre_offset(33) == 0.0


def _product(
    path: Path,
    *,
    n: int = 16,
    shape: tuple[int, int] = (40, 50),
    pixel: tuple[float, float] = (20e-9, 10e-9),  # (height, width)
    centre: tuple[float, float] = (-2e-6, 1e-6),  # (y, x)
    y_m: np.ndarray,
    x_m: np.ndarray,
    indexes: np.ndarray | None = None,
    probe: np.ndarray | None = None,
    obj: np.ndarray | None = None,
    drop_attr: str | None = None,
) -> Path:
    indexes = np.arange(len(x_m)) if indexes is None else indexes
    with h5py.File(path, "w") as h5:
        h5.attrs["detector_object_distance_m"] = 2.0
        h5.attrs["photon_energy_eV"] = 8000.0
        h5.create_dataset("probe_position_indexes", data=indexes)
        h5.create_dataset("probe_position_x_m", data=x_m)
        h5.create_dataset("probe_position_y_m", data=y_m)
        h5.create_dataset("probe", data=np.ones((1, 1, n, n), np.complex64) if probe is None else probe)
        dset = h5.create_dataset("object", data=np.ones((1, *shape), np.complex64) if obj is None else obj)
        attrs = {
            "center_x_m": centre[1],
            "center_y_m": centre[0],
            "pixel_width_m": pixel[1],
            "pixel_height_m": pixel[0],
        }
        for key, value in attrs.items():
            if key != drop_attr:
                dset.attrs[key] = value
    return path


def _diffraction(path: Path, m: int, *, n: int = 16, indexes: np.ndarray | None = None) -> Path:
    with h5py.File(path, "w") as h5:
        h5.create_dataset("indexes", data=np.arange(m) if indexes is None else indexes)
        patterns = h5.create_dataset(
            "patterns", data=np.arange(m)[:, None, None] + np.ones((m, n, n), np.uint16)
        )
        patterns.attrs["detector_pixel_width_m"] = 75e-6
        patterns.attrs["detector_pixel_height_m"] = 75e-6
        h5.create_dataset("bad_pixels", data=np.zeros((n, n), bool))
    return path


def test_metres_map_to_the_expected_object_pixels(tmp_path: Path) -> None:
    # Object 40 x 50 px of 20 nm x 10 nm centred on (y, x) = (-2 um, +1 um); patch N = 16.
    y_m = np.array([-2e-6, -2e-6 + 5 * 20e-9, -2e-6 - 3.5 * 20e-9])
    x_m = np.array([1e-6, 1e-6 - 7 * 10e-9, 1e-6 + 12.25 * 10e-9])
    _product(tmp_path / "product.h5", y_m=y_m, x_m=x_m)
    _diffraction(tmp_path / "diffraction.h5", 3)
    scan = load_scan(tmp_path)
    # ptychodus: world centre -> pixel ((H-1)/2, (W-1)/2) = (19.5, 24.5) under the probe pixel (N-1)/2;
    # ours puts probe pixel N//2 there, i.e. +0.5: the centre position is (20, 25) = (H/2, W/2).
    expected = np.array([[20.0, 25.0], [25.0, 18.0], [16.5, 37.25]])
    np.testing.assert_allclose(scan.positions, expected, atol=1e-9)
    assert scan.object_shape == (40, 50) and scan.object_truth is None  # a flat object is not a truth
    assert scan.pixel_size_m is None  # non-square pixels: no single pitch
    assert scan.photon_energy_eV == 8000.0 and scan.detector_distance_m == 2.0


def test_a_probe_at_the_object_centre_covers_the_central_crop() -> None:
    frame = ObjectFrame(height_px=64, width_px=64, pixel_height_m=1e-8, pixel_width_m=1e-8)
    row, col = metres_to_positions(np.zeros(1), np.zeros(1), frame, 16)[0]
    assert (row - 16 // 2, col - 16 // 2) == (24.0, 24.0)  # patch spans [24, 40): symmetric in [0, 64)


def test_patterns_pair_with_positions_by_index(tmp_path: Path) -> None:
    # Positions stored in another order, with one extra; pattern 3 has no position and is dropped.
    pos_index = np.array([2, 0, 1, 9])
    x_m = 1e-6 + np.array([2.0, 0.0, 1.0, 5.0]) * 10e-9
    y_m = -2e-6 + np.zeros(4)
    _product(tmp_path / "product.h5", y_m=y_m, x_m=x_m, indexes=pos_index)
    _diffraction(tmp_path / "diffraction.h5", 4, indexes=np.array([0, 1, 2, 3]))
    with pytest.warns(DataWarning, match="1 of 4 patterns have no probe position"):
        scan = load_scan(tmp_path / "diffraction.h5")
    np.testing.assert_allclose(scan.positions[:, 1], [25.0, 26.0, 27.0])
    np.testing.assert_allclose(scan.amplitudes[:, 0, 0] ** 2, [1.0, 2.0, 3.0])


def test_opr_and_multislice_products_are_reduced_with_warnings(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    probe = (rng.standard_normal((2, 1, 16, 16)) + 1j).astype(np.complex64)
    obj = np.exp(1j * rng.uniform(-1, 1, (2, 40, 50))).astype(np.complex64)
    _product(tmp_path / "product.h5", y_m=np.array([-2e-6]), x_m=np.array([1e-6]), probe=probe, obj=obj)
    _diffraction(tmp_path / "diffraction.h5", 1)
    with pytest.warns(DataWarning) as record:
        scan = load_scan(tmp_path)
    assert {"OPR" in str(w.message) or "layers" in str(w.message) for w in record} == {True}
    np.testing.assert_array_equal(scan.probe, probe[0])
    np.testing.assert_allclose(scan.object_truth, obj[0] * obj[1], rtol=1e-6)


def test_ptychodus_training_file_is_read_with_pixel_positions(tmp_path: Path) -> None:
    path = tmp_path / "training.h5"
    with h5py.File(path, "w") as h5:
        h5.create_dataset("patterns", data=np.ones((2, 16, 16), np.uint32) * 4)
        h5.create_dataset("bad_pixels", data=np.zeros((16, 16), bool))
        h5.create_dataset("probe", data=np.ones((1, 16, 16), np.complex64))
        h5.create_dataset("object", data=np.ones((40, 40), np.complex64))
        h5.create_dataset("probe_position_x_px", data=[19.5, 20.5])
        h5.create_dataset("probe_position_y_px", data=[19.5, 15.0])
        h5.create_dataset("object_pixel_width_m", data=1e-8)
    scan = load_scan(path)
    np.testing.assert_allclose(scan.positions, [[20.0, 20.0], [15.5, 21.0]])
    np.testing.assert_allclose(scan.amplitudes, 2.0)
    assert scan.pixel_size_m == 1e-8


# --- malformed pairs ---------------------------------------------------------------------------------


def test_diffraction_file_without_its_product(tmp_path: Path) -> None:
    _diffraction(tmp_path / "diffraction.h5", 2)
    with pytest.raises(DataError, match="needs its product file"):
        load_scan(tmp_path / "diffraction.h5")


def test_product_file_without_its_diffraction(tmp_path: Path) -> None:
    _product(tmp_path / "product.h5", y_m=np.array([-2e-6]), x_m=np.array([1e-6]))
    with pytest.raises(DataError, match="holds no diffraction patterns"):
        load_scan(tmp_path / "product.h5")


def test_unknown_hdf5_lists_its_keys(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "other.h5", "w") as h5:
        h5.create_dataset("entry", data=np.ones(3))
    with pytest.raises(DataError, match=r"neither a ptychodus.*present: entry"):
        load_scan(tmp_path / "other.h5")


def test_empty_hdf5(tmp_path: Path) -> None:
    h5py.File(tmp_path / "empty.h5", "w").close()
    with pytest.raises(DataError, match="empty"):
        load_scan(tmp_path / "empty.h5")


def test_truncated_hdf5(tmp_path: Path) -> None:
    diffraction, _ = _pair(tmp_path, make_scan())
    diffraction.write_bytes(diffraction.read_bytes()[:3000])
    with pytest.raises(DataError, match="cannot read HDF5"):
        load_scan(tmp_path)


def test_missing_object_attribute(tmp_path: Path) -> None:
    _product(tmp_path / "product.h5", y_m=np.array([-2e-6]), x_m=np.array([1e-6]), drop_attr="center_x_m")
    _diffraction(tmp_path / "diffraction.h5", 1)
    with pytest.raises(DataError, match="'object' lacks the attribute 'center_x_m'"):
        load_scan(tmp_path)


def test_probe_and_pattern_sizes_must_agree(tmp_path: Path) -> None:
    _product(tmp_path / "product.h5", y_m=np.array([-2e-6]), x_m=np.array([1e-6]), n=8)
    _diffraction(tmp_path / "diffraction.h5", 1)
    with pytest.raises(DataError, match="probe size 8 x 8 differs from pattern size 16 x 16"):
        load_scan(tmp_path)


def test_no_matching_indexes(tmp_path: Path) -> None:
    _product(tmp_path / "product.h5", y_m=np.array([-2e-6]), x_m=np.array([1e-6]), indexes=np.array([7]))
    _diffraction(tmp_path / "diffraction.h5", 1)
    with pytest.raises(DataError, match="no pattern index matches"):
        load_scan(tmp_path)


def test_positions_outside_the_object(tmp_path: Path) -> None:
    _product(tmp_path / "product.h5", y_m=np.array([-2e-6]), x_m=np.array([1e-6 + 20 * 10e-9]))
    _diffraction(tmp_path / "diffraction.h5", 1)
    with pytest.raises(DataError, match="outside the 40 x 50 object"):
        load_scan(tmp_path)


def test_read_ptychodus_names_both_files_in_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file not found"):
        read_ptychodus(tmp_path / "a.h5", tmp_path / "b.h5")


def test_probe_pitch_must_equal_object_pitch(tmp_path: Path) -> None:
    path = _product(tmp_path / "product.h5", y_m=np.array([-2e-6]), x_m=np.array([1e-6]))
    with h5py.File(path, "a") as h5:
        h5["probe"].attrs["pixel_width_m"] = 12e-9
    _diffraction(tmp_path / "diffraction.h5", 1)
    with pytest.raises(
        DataError, match=r"probe pixel pixel_width_m = 1\.2e-08 differs from the object's 1e-08"
    ):
        load_scan(tmp_path)
