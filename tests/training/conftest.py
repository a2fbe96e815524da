"""Small simulated scans shared by the training tests (made once per test session, never downloaded)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ptychodus_torch_plugin.data import save_npz
from ptychodus_torch_plugin.data.simulate.config import SimulationConfig
from ptychodus_torch_plugin.data.simulate.simulate import simulate


@pytest.fixture(scope="session")
def tiny_scans(tmp_path_factory) -> tuple[Path, Path]:
    """(train, test) NPZ files: 36 positions of 32x32 patterns, disk probe, Poisson noise."""
    folder = tmp_path_factory.mktemp("tiny_scans")
    paths = []
    for name, seed in (("train", 1), ("test", 2)):
        scan = simulate(SimulationConfig(patch_size=32, n_positions=36, nphotons=1e5, seed=seed, probe_kind="disk"))
        paths.append(save_npz(scan, folder / f"{name}.npz"))
    return paths[0], paths[1]
