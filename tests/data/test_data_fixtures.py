"""The committed minimal_dataset_v2.npz is exactly what scripts/make_fixtures.py generates.

Arrays are compared, not zip bytes. Object, probe and positions must match to float precision; the noisy
amplitudes may differ in a handful of pixels, because a last-bit change in the forward model (another
FFT backend or torch version) can move a Poisson draw by one count.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from ptychodus_torch_plugin.data import ScanData, load_scan

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "make_fixtures.py"


def _generator():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("make_fixtures", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def pair() -> tuple[ScanData, ScanData]:
    generator = _generator()
    return load_scan(generator.MINIMAL_DATASET), generator.minimal_dataset()


def test_fixture_has_the_documented_shape(pair: tuple[ScanData, ScanData]) -> None:
    committed, _ = pair
    assert committed.amplitudes.shape == (64, 64, 64)
    assert committed.probe.shape == (1, 64, 64)
    assert committed.object_truth is not None
    assert committed.positions.shape == (64, 2)
    counts = committed.amplitudes.astype(np.float64) ** 2
    assert counts.sum(axis=(-2, -1)).mean() == pytest.approx(1000, rel=0.05)
    assert (
        ROOT / "tests" / "fixtures" / "pytorch_integration" / "minimal_dataset_v2.npz"
    ).stat().st_size < 100_000


def test_committed_fixture_matches_the_generator(pair: tuple[ScanData, ScanData]) -> None:
    committed, fresh = pair
    np.testing.assert_allclose(committed.positions, fresh.positions, atol=1e-9)
    np.testing.assert_allclose(committed.object_truth, fresh.object_truth, atol=1e-6)
    np.testing.assert_allclose(committed.probe, fresh.probe, rtol=1e-5, atol=1e-6)
    assert committed.object_shape == fresh.object_shape
    differs = np.abs(committed.amplitudes - fresh.amplitudes) > 1e-4
    assert differs.mean() < 1e-4, (
        f"{int(differs.sum())} amplitude pixels differ; rerun scripts/make_fixtures.py"
    )
