"""A model meets a scan it was not trained for: ``reconstruct`` refuses it up front (exit 2, one line)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from reliability_helpers import make_scan, python

from ptychodus_torch_plugin.config import ExecutionConfig, ModelConfig, TrainingConfig
from ptychodus_torch_plugin.training.trainer import train


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("compat")
    scans = {"train32": make_scan(folder, "train32"), "n64": make_scan(folder, "n64", patch_size=64, n_positions=9),
             "four32": make_scan(folder, "four32", n_positions=4, seed=3),
             "three32": make_scan(folder, "three32", n_positions=3, seed=4)}
    config = TrainingConfig(train_data_file=scans["train32"], test_data_file=None, output_dir=folder / "out",
                            max_epochs=1, batch_size=8, quiet=True, image_every_n_epochs=0,
                            model=ModelConfig(gridsize=2, channels=(8, 16, 32)))
    model = train(config, ExecutionConfig(accelerator="cpu", logger="none")).model_path
    return {**scans, "model": model, "folder": folder}


def _reconstruct(setup, scan: str, out: str):
    return python(["-m", "ptychodus_torch_plugin.reconstruct", "--model", str(setup["model"]), "--data_file",
                   str(setup[scan]), "--output_dir", out, "--accelerator", "cpu"], cwd=setup["folder"])


def test_model_for_another_pattern_size_is_refused_naming_both_sizes(setup):
    result = _reconstruct(setup, "n64", "recon64")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert "32x32" in lines[0] and "64x64" in lines[0]
    assert not (setup["folder"] / "recon64").exists()  # refused before anything was written


def test_gridsize_2_model_reconstructs_a_scan_of_four_positions(setup):
    # A scan has no gridsize: any scan with at least gridsize² positions can be grouped for the model.
    result = _reconstruct(setup, "four32", "recon4")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["patterns"] == 4
    assert (setup["folder"] / "recon4" / "reconstruction.npz").is_file()


def test_scan_with_fewer_positions_than_a_group_is_refused(setup):
    result = _reconstruct(setup, "three32", "recon3")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert "groups of 4 positions" in lines[0] and "has 3" in lines[0]
