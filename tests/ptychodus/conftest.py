"""Shared fixtures for the tests against a real ptychodus 1.7: a small simulated scan in ptychodus's
batch layout, a tiny trained model, and a fake distribution whose reconstructor libraries are broken.

Sizes are chosen for 2 CPU cores: N = 32, 64 positions, channels 8,16,32, one or two epochs.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from ptychodus_helpers import settings_text

#: A fake installed distribution: three broken libraries and one that works, all in the entry-point group.
_BROKEN_MODULE = '''
from ptychodus_torch_plugin.ptychodus.library import TorchReconstructorLibrary


class RaisingLibrary:
    def __init__(self, settings_registry, developer_mode):
        raise RuntimeError("this library is broken on purpose")


class UnderscoreLibrary:
    def __init__(self, settings_registry, developer_mode):
        self.name = "bad_name"

    def __iter__(self):
        return iter(())


class SecondLibrary(TorchReconstructorLibrary):
    """Sorted after ours; its settings group clashes with ours, so it must fail in isolation."""

    @property
    def name(self):
        return "second"
'''

_ENTRY_POINTS = """\
[ptychodus.reconstructor_libraries]
aaa-missing = no_such_module_for_ptychodus_tests:Library
bbb-raising = broken_ptychodus_libraries:RaisingLibrary
ccc-underscore = broken_ptychodus_libraries:UnderscoreLibrary
zzz-second = broken_ptychodus_libraries:SecondLibrary
"""


@pytest.fixture(scope="session")
def scan():
    """Simulated scan with ground truth (N = 32, 64 positions)."""
    from ptychodus_torch_plugin.data.simulate.config import SimulationConfig
    from ptychodus_torch_plugin.data.simulate.simulate import simulate

    return simulate(SimulationConfig(patch_size=32, n_positions=64, probe_kind="disk", nphotons=1e5, seed=3,
                                     pixel_size_m=20e-9))


@pytest.fixture(scope="session")
def batch_dir(tmp_path_factory, scan) -> Path:
    """ptychodus batch input: settings.ini, diffraction.h5, product.h5 whose object is ptychodus's blank
    (all ones) initial guess, so a non-constant output object must come from our reconstruction."""
    from ptychodus_torch_plugin.data.ptychodus_h5 import save_ptychodus

    folder = tmp_path_factory.mktemp("batch_in")
    blank = dataclasses.replace(scan, object_truth=None)
    save_ptychodus(blank, folder / "diffraction.h5", folder / "product.h5")
    (folder / "settings.ini").write_text(settings_text())
    return folder


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory, batch_dir) -> Path:
    """A tiny pinn model trained (2 epochs) directly with our trainer on the batch folder."""
    from ptychodus_torch_plugin.config import ExecutionConfig, ModelConfig, TrainingConfig
    from ptychodus_torch_plugin.training.trainer import train

    out = tmp_path_factory.mktemp("trained")
    config = TrainingConfig(train_data_file=batch_dir, output_dir=out, max_epochs=2, batch_size=16,
                            image_every_n_epochs=0, quiet=True, model=ModelConfig(channels=(8, 16, 32)))
    result = train(config, ExecutionConfig(accelerator="cpu", logger="none"))
    assert result.model_path is not None
    return result.model_path


@pytest.fixture(scope="session")
def broken_site(tmp_path_factory) -> Path:
    """A folder to put on sys.path / PYTHONPATH: a fake distribution registering broken libraries."""
    site = tmp_path_factory.mktemp("broken_site")
    (site / "broken_ptychodus_libraries.py").write_text(_BROKEN_MODULE)
    info = site / "broken_ptychodus_libraries-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-ptychodus-libraries\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(_ENTRY_POINTS)
    return site
