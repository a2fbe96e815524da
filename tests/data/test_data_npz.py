"""NPZ layout: round trips, legacy layouts, counts, and one DataError message per malformed file."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
from datahelpers import make_scan, npz_arrays

from ptychodus_torch_plugin.data import DataWarning, ScanData, load_scan, read_npz, save_npz
from ptychodus_torch_plugin.errors import DataError


def _write(path: Path, **arrays: np.ndarray) -> Path:
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)
    return path


def _assert_same(a: ScanData, b: ScanData) -> None:
    np.testing.assert_array_equal(a.amplitudes, b.amplitudes)
    np.testing.assert_array_equal(a.probe, b.probe)
    np.testing.assert_array_equal(a.positions, b.positions)
    assert a.object_shape == b.object_shape
    if a.object_truth is None:
        assert b.object_truth is None
    else:
        np.testing.assert_array_equal(a.object_truth, b.object_truth)


# --- round trips -------------------------------------------------------------------------------------


def test_round_trip_keeps_every_array(tmp_path: Path, scan: ScanData) -> None:
    path = save_npz(scan, tmp_path / "scan.npz")
    back = load_scan(path)
    _assert_same(scan, back)
    np.testing.assert_array_equal(back.scan_index, scan.scan_index)
    assert back.pixel_size_m == scan.pixel_size_m


def test_round_trip_without_object_keeps_the_object_shape(tmp_path: Path) -> None:
    scan = make_scan(with_object=False)
    back = read_npz(save_npz(scan, tmp_path / "scan.npz"))
    _assert_same(scan, back)


def test_round_trip_of_a_multimode_probe(tmp_path: Path) -> None:
    scan = make_scan(modes=3)
    back = read_npz(save_npz(scan, tmp_path / "scan.npz"))
    assert back.probe.shape == (3, 16, 16)
    _assert_same(scan, back)


def test_written_keys_follow_the_ptychopinn_layout(tmp_path: Path, scan: ScanData) -> None:
    with np.load(save_npz(scan, tmp_path / "scan.npz")) as z:
        assert z["diffraction"].dtype == np.float32 and z["diffraction"].shape == (9, 16, 16)
        assert z["probeGuess"].dtype == np.complex64 and z["probeGuess"].shape == (16, 16)
        np.testing.assert_array_equal(z["xcoords"], scan.positions[:, 1])
        np.testing.assert_array_equal(z["ycoords"], scan.positions[:, 0])
        assert z["objectGuess"].shape == (32, 32)


def test_save_writes_exactly_the_given_name(tmp_path: Path, scan: ScanData) -> None:
    path = save_npz(scan, tmp_path / "sub" / "data.bin")
    assert path.exists() and not (tmp_path / "sub" / "data.bin.npz").exists()
    _assert_same(scan, load_scan(path))


# --- legacy layouts and counts ------------------------------------------------------------------------


def test_old_diff3d_key_is_accepted(tmp_path: Path, scan: ScanData) -> None:
    arrays = npz_arrays(scan)
    arrays["diff3d"] = arrays.pop("diffraction")
    _assert_same(scan, read_npz(_write(tmp_path / "old.npz", **arrays)))


def test_legacy_nnm_layout_is_transposed_with_a_warning(tmp_path: Path, scan: ScanData) -> None:
    arrays = npz_arrays(scan)
    arrays["diff3d"] = np.moveaxis(arrays.pop("diffraction"), 0, -1)  # (N, N, M)
    with pytest.warns(DataWarning, match="legacy"):
        back = read_npz(_write(tmp_path / "old.npz", **arrays))
    _assert_same(scan, back)


def test_intensities_key_is_taken_as_counts(tmp_path: Path, scan: ScanData) -> None:
    arrays = npz_arrays(scan)
    arrays["intensities"] = arrays.pop("diffraction").astype(np.float64) ** 2
    back = read_npz(_write(tmp_path / "counts.npz", **arrays))
    np.testing.assert_allclose(back.amplitudes, scan.amplitudes, rtol=1e-6)


def test_counts_option_takes_the_diffraction_array_as_counts(tmp_path: Path, scan: ScanData) -> None:
    arrays = npz_arrays(scan)
    arrays["diffraction"] = arrays["diffraction"].astype(np.float64) ** 2
    path = _write(tmp_path / "counts.npz", **arrays)
    np.testing.assert_allclose(load_scan(path, counts=True).amplitudes, scan.amplitudes, rtol=1e-6)
    np.testing.assert_allclose(load_scan(path, counts=False).amplitudes, arrays["diffraction"], rtol=1e-6)


def test_integer_patterns_are_counts_with_a_warning_unless_told_otherwise(
    tmp_path: Path, scan: ScanData
) -> None:
    arrays = npz_arrays(scan)
    counts = np.rint(arrays["diffraction"].astype(np.float64) ** 2).astype(np.int32)
    arrays["diffraction"] = counts
    path = _write(tmp_path / "int.npz", **arrays)
    with pytest.warns(DataWarning, match="photon counts"):
        auto = load_scan(path)
    np.testing.assert_allclose(auto.amplitudes, np.sqrt(counts), rtol=1e-6)
    np.testing.assert_array_equal(load_scan(path, counts=False).amplitudes, counts.astype(np.float32))


def test_uint16_counts_do_not_overflow(tmp_path: Path, scan: ScanData) -> None:
    arrays = npz_arrays(scan)
    arrays["intensities"] = np.full(arrays.pop("diffraction").shape, 65535, dtype=np.uint16)
    back = read_npz(_write(tmp_path / "u16.npz", **arrays))
    np.testing.assert_allclose(back.amplitudes.astype(np.float64) ** 2, 65535.0, rtol=1e-6)


def test_a_constant_object_is_an_initial_guess_not_a_truth(tmp_path: Path, scan: ScanData) -> None:
    arrays = npz_arrays(scan)
    arrays["objectGuess"] = np.ones((32, 32), np.complex64)
    back = read_npz(_write(tmp_path / "guess.npz", **arrays))
    assert back.object_truth is None and back.object_shape == (32, 32)


def test_positions_around_zero_without_object_are_shifted_into_the_frame(
    tmp_path: Path, scan: ScanData
) -> None:
    arrays = npz_arrays(scan)
    del arrays["objectGuess"]
    arrays["xcoords"] = arrays["xcoords"] - 16.0
    arrays["ycoords"] = arrays["ycoords"] - 16.0
    with pytest.warns(DataWarning, match="shifted"):
        back = read_npz(_write(tmp_path / "centred.npz", **arrays))
    offset = back.positions - scan.positions
    np.testing.assert_allclose(offset, np.broadcast_to(offset[0], offset.shape))  # a pure translation
    np.testing.assert_allclose(offset[0], np.round(offset[0]))  # by whole pixels
    assert (back.positions - 8).min() >= 0


# --- malformed files: one message each ---------------------------------------------------------------


def _expect(path: Path, message: str) -> None:
    with pytest.raises(DataError, match=message):
        load_scan(path)


@pytest.mark.parametrize("key", ["diffraction", "probeGuess", "xcoords", "ycoords"])
def test_missing_key_is_named_and_present_keys_listed(tmp_path: Path, scan: ScanData, key: str) -> None:
    arrays = npz_arrays(scan)
    del arrays[key]
    with pytest.raises(DataError, match=f"missing required key.*'{key}'") as info:
        load_scan(_write(tmp_path / "x.npz", **arrays))
    assert "present keys:" in str(info.value) and "objectGuess" in str(info.value)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("diffraction", np.ones((9, 16)), "must have shape \\(M, N, N\\); got rank 2"),
        ("diffraction", np.ones((9, 16, 12)), "must be square"),
        ("diffraction", np.full((9, 16, 16), np.nan), "NaN or Inf"),
        ("diffraction", -np.ones((9, 16, 16)), "must be >= 0"),
        ("diffraction", np.ones((9, 16, 16), complex), "must be real"),
        ("diffraction", np.full((9, 16, 16), "a"), "must be numeric"),
        ("probeGuess", np.ones((8, 8), complex), "probe size 8 x 8 .* differs from pattern size 16 x 16"),
        ("probeGuess", np.ones((16,), complex), "'probeGuess' must have shape"),
        ("probeGuess", np.full((16, 16), np.nan), "'probeGuess' contains"),
        ("xcoords", np.ones(8) * 16, "'xcoords' has 8 entries for 9 diffraction patterns"),
        ("ycoords", np.ones((9, 2)) * 16, "'ycoords' must have shape \\(M,\\)"),
        ("xcoords", np.full(9, np.nan), "'xcoords' contains"),
        ("xcoords", np.full(9, 30.0), "outside the 32 x 32 object"),
        ("objectGuess", np.ones((2, 32, 32), complex), "'objectGuess' must have shape \\(H, W\\)"),
        ("scan_index", np.zeros(3), "'scan_index' has shape"),
        ("bad_pixels", np.zeros((3, 3), bool), "'bad_pixels' has shape"),
        ("pixel_size_m", np.array([1.0, 2.0]), "'pixel_size_m' must be a single number"),
    ],
)
def test_malformed_arrays_have_clear_messages(
    tmp_path: Path, scan: ScanData, key: str, value, message: str
) -> None:
    arrays = npz_arrays(scan)
    arrays[key] = value
    _expect(_write(tmp_path / "bad.npz", **arrays), message)


def test_file_not_found(tmp_path: Path) -> None:
    _expect(tmp_path / "nope.npz", "file not found")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.npz"
    path.write_bytes(b"")
    _expect(path, "empty")


def test_npz_without_arrays(tmp_path: Path) -> None:
    _expect(_write(tmp_path / "none.npz"), "archive is empty")


def test_neither_npz_nor_hdf5(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello, these are not diffraction patterns\n")
    _expect(path, "unrecognised data file format")


def test_truncated_npz(tmp_path: Path, scan: ScanData) -> None:
    path = save_npz(scan, tmp_path / "scan.npz")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    _expect(path, "corrupt or truncated NPZ archive")


def test_corrupt_zip_member(tmp_path: Path, scan: ScanData) -> None:
    path = save_npz(scan, tmp_path / "scan.npz", compressed=False)
    raw = bytearray(path.read_bytes())
    middle = len(raw) // 3
    raw[middle : middle + 64] = bytes(64)
    path.write_bytes(bytes(raw))
    _expect(path, "corrupt or truncated NPZ archive")


def test_pickled_object_arrays_are_refused(tmp_path: Path, scan: ScanData) -> None:
    arrays = npz_arrays(scan)
    arrays["probeGuess"] = np.array([{"not": "an array"}], dtype=object)
    with open(tmp_path / "pickle.npz", "wb") as handle:
        np.savez(handle, **arrays)
    _expect(tmp_path / "pickle.npz", "unreadable NPZ entry")


def test_a_zip_that_is_not_npz(tmp_path: Path) -> None:
    path = tmp_path / "other.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "not an array")
    _expect(path, "archive is empty")
