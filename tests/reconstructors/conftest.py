"""Small simulated scans for the reconstructor tests (N = 32, a few hundred positions: seconds on a CPU)."""

from __future__ import annotations

import pytest

from ptychodus_torch_plugin.data.scan import ScanData
from ptychodus_torch_plugin.data.simulate import SimulationConfig, simulate


@pytest.fixture(scope="session")
def spiral_scan() -> ScanData:
    """Fermat scan (sub-pixel positions), zone-plate probe, lines object, 1e5 photons per pattern."""
    return simulate(SimulationConfig(patch_size=32, n_positions=200, scan_kind="spiral", nphotons=1e5, seed=5))


@pytest.fixture(scope="session")
def noiseless_scan() -> ScanData:
    return simulate(SimulationConfig(patch_size=32, n_positions=120, scan_kind="spiral", nphotons=None, seed=6))
