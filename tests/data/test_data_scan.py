"""ScanData: canonical dtypes, derived fields, and one clear DataError per inconsistency."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from datahelpers import make_scan

from ptychodus_torch_plugin.data import ScanData
from ptychodus_torch_plugin.data.scan import DEFAULT_MARGIN_PX
from ptychodus_torch_plugin.errors import DataError


def _replace(scan: ScanData, **changes: object) -> ScanData:
    return dataclasses.replace(scan, **changes)


def test_dtypes_and_properties_are_canonical(scan: ScanData) -> None:
    assert scan.amplitudes.dtype == np.float32
    assert scan.probe.dtype == np.complex64 and scan.probe.shape == (1, 16, 16)
    assert scan.positions.dtype == np.float64 and scan.positions.shape == (9, 2)
    assert scan.object_truth is not None and scan.object_truth.dtype == np.complex64
    assert scan.n_patterns == 9 and scan.patch_size == 16 and scan.n_modes == 1
    assert scan.object_shape == (32, 32)


def test_a_2d_probe_gets_a_mode_axis(scan: ScanData) -> None:
    assert _replace(scan, probe=scan.probe[0]).probe.shape == (1, 16, 16)


def test_object_shape_comes_from_the_object_when_not_given(scan: ScanData) -> None:
    assert _replace(scan, object_shape=None).object_shape == (32, 32)


def test_object_shape_without_object_is_the_patch_bounding_box_plus_margin() -> None:
    scan = make_scan(with_object=False)
    bare = _replace(scan, object_shape=None)
    last = np.ceil(scan.positions.max(axis=0) - 8 + 15).astype(int)
    assert bare.object_shape == (last[0] + 1 + DEFAULT_MARGIN_PX, last[1] + 1 + DEFAULT_MARGIN_PX)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"amplitudes": np.ones((9, 16))}, "shape (M, N, N)"),
        ({"amplitudes": np.ones((9, 16, 12))}, "must be square"),
        ({"amplitudes": np.ones((0, 16, 16))}, "no diffraction patterns"),
        ({"amplitudes": np.full((9, 16, 16), np.nan)}, "NaN or Inf"),
        ({"amplitudes": -np.ones((9, 16, 16))}, "must be >= 0"),
        ({"amplitudes": np.ones((9, 16, 16), dtype=complex)}, "must be real"),
        ({"amplitudes": np.full((9, 16, 16), "x")}, "must be numeric"),
        ({"probe": np.ones((1, 8, 8), complex)}, "probe size 8 x 8 differs from pattern size 16 x 16"),
        ({"probe": np.ones((1, 1, 16, 16), complex)}, "probe must have shape"),
        ({"probe": np.zeros((1, 16, 16), complex)}, "zero everywhere"),
        ({"positions": np.ones((8, 2)) * 16}, "8 positions for 9 diffraction patterns"),
        ({"positions": np.ones((9, 3)) * 16}, "shape (M, 2)"),
        ({"positions": np.full((9, 2), np.inf)}, "positions contain NaN"),
        ({"positions": np.full((9, 2), 7.5)}, "outside the 32 x 32 object"),
        ({"positions": np.full((9, 2), 24.5)}, "outside the 32 x 32 object"),
        ({"object_truth": np.ones((1, 32, 32), complex)}, "2-D (H, W)"),
        ({"object_shape": (40, 40)}, "does not match the object array's shape"),
        ({"scan_index": np.zeros(4)}, "scan_index must have shape (9,)"),
        ({"scan_index": np.full(9, 0.5)}, "whole numbers"),
        ({"bad_pixels": np.zeros((4, 4), bool)}, "bad_pixels must have the pattern shape"),
        ({"pixel_size_m": -1.0}, "pixel_size_m must be a positive"),
    ],
)
def test_each_inconsistency_has_its_own_message(scan: ScanData, changes: dict, message: str) -> None:
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _replace(scan, **changes)


def test_positions_on_the_edges_are_inside(scan: ScanData) -> None:
    edges = np.array([[8.0, 8.0], [24.0, 24.0]] + [[16.0, 16.0]] * 7)
    assert _replace(scan, positions=edges).n_patterns == 9
