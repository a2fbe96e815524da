"""Grouping as one thing: gridsize, neighbours, selection and seed live in the model's configuration, are
stored in the model file, and inference groups a scan exactly as training did."""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import numpy as np
import torch

from ptychodus_torch_plugin.config import Grouping, ModelConfig, TrainingConfig
from ptychodus_torch_plugin.data.simulate import SimulationConfig, simulate
from ptychodus_torch_plugin.inference import model_grouping, reconstruct_scan
from ptychodus_torch_plugin.models.model_file import load_model, save_model
from ptychodus_torch_plugin.models.pinn import PtychoModel
from ptychodus_torch_plugin.physics import grouping as grouping_module
from ptychodus_torch_plugin.plugins import build_plugin_host


def test_the_training_seed_draws_the_groups_unless_a_group_seed_is_given():
    assert TrainingConfig(train_data_file=Path("a"), output_dir=Path("o"), seed=5).model.grouping == Grouping(1, 7, "random", 5)
    model = ModelConfig(gridsize=2, k_neighbours=4, group_selection="compact", group_seed=9)
    assert TrainingConfig(train_data_file=Path("a"), output_dir=Path("o"), seed=5, model=model).model.grouping == \
        Grouping(2, 4, "compact", 9)


def test_a_model_file_without_grouping_keys_groups_as_inference_did_before():
    legacy = {"model_type": "pinn", "patch_size": 32, "gridsize": 2, "channels": [8, 16, 32]}
    assert ModelConfig.from_dict(legacy).grouping == Grouping(2, 7, "random", 0)


def test_inference_groups_with_the_stored_grouping(tmp_path):
    """A compact, K = 4, seed 3 model: saved, loaded, and the reconstruction's groups are drawn with exactly
    those settings (not with inference defaults)."""
    scan = simulate(SimulationConfig(patch_size=32, n_positions=64, seed=2))
    config = ModelConfig(patch_size=32, gridsize=2, channels=(8, 16, 32), k_neighbours=4, group_selection="compact",
                         group_encoder="joint", group_seed=3)
    model = PtychoModel(config, torch.from_numpy(scan.probe), 1.0)
    path = save_model(model, config, tmp_path / "model.pt")
    loaded, stored, _ = load_model(path, build_plugin_host(load_entry_points=False))
    assert stored.grouping == Grouping(2, 4, "compact", 3) and model_grouping(loaded) == stored.grouping
    calls = []
    original = grouping_module.group_neighbours

    def spy(*args, **kwargs):
        calls.append((args[1:4], kwargs))
        return original(*args, **kwargs)

    with mock.patch.object(grouping_module, "group_neighbours", spy):
        reconstruct_scan(loaded, scan, batch_size=16, device=torch.device("cpu"))
    assert calls == [((2, None, 3), {"k_neighbours": 4, "selection": "compact"})]
    assert np.isfinite(reconstruct_scan(loaded, scan, batch_size=16, device=torch.device("cpu")).object).all()
