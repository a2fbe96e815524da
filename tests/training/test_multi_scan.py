"""Training on several scans at once: grouping within each scan, per-scan intensity normalisation, the
checks that refuse incompatible scans, and the single-path forms that must keep working."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from training_helpers import CPU, TINY_CHANNELS, tiny_config

from ptychodus_torch_plugin.cli.train import add_arguments, build_configs
from ptychodus_torch_plugin.config import ModelConfig, TrainingConfig
from ptychodus_torch_plugin.data import load_scan, save_npz
from ptychodus_torch_plugin.data.scan import ScanData
from ptychodus_torch_plugin.data.simulate.config import SimulationConfig
from ptychodus_torch_plugin.data.simulate.simulate import simulate
from ptychodus_torch_plugin.errors import ConfigError
from ptychodus_torch_plugin.models.pinn import PtychoModel
from ptychodus_torch_plugin.physics import poisson_nll, predicted_amplitude
from ptychodus_torch_plugin.physics.scale import intensity_scale
from ptychodus_torch_plugin.training.data import group_scan, group_scans, probe_difference, split_groups
from ptychodus_torch_plugin.training.trainer import Trainer, train


@pytest.fixture(scope="module")
def three_scans(tmp_path_factory) -> list[Path]:
    """Three disk-probe scans of different objects and doses (36, 25 and 30 positions)."""
    folder = tmp_path_factory.mktemp("three_scans")
    paths = []
    for index, (seed, positions, photons) in enumerate(((1, 36, 1e5), (3, 25, 4e5), (4, 30, 2e4))):
        scan = simulate(SimulationConfig(patch_size=32, n_positions=positions, nphotons=photons, seed=seed,
                                         probe_kind="disk"))
        paths.append(save_npz(scan, folder / f"scan{index}.npz"))
    return paths


def test_groups_never_cross_scans_and_every_scan_is_normalised_by_its_own_scale(three_scans):
    scans = [load_scan(p) for p in three_scans]
    reference = intensity_scale(scans[0].amplitudes)
    data = group_scans(scans, 2, seed=0, reference_scale=reference)
    bounds = np.cumsum([0] + [s.n_patterns for s in scans])
    assert data.n_groups == sum(s.n_patterns for s in scans)  # one group per position of every scan
    owner = np.searchsorted(bounds, data.groups.numpy(), side="right") - 1
    assert (owner == owner[:, :1]).all(), "a group mixes positions of two scans"
    for index, scan in enumerate(scans):
        own = intensity_scale(scan.amplitudes)
        rows = owner[:, 0] == index
        assert torch.allclose(data.scales[torch.from_numpy(rows)], torch.tensor(own, dtype=torch.float32))
        # Divided by the reference (as the model does), each scan's amplitudes are its own over its own scale.
        stored = data.amplitudes[bounds[index]:bounds[index + 1]] / reference
        torch.testing.assert_close(stored, torch.from_numpy(scan.amplitudes) / own, rtol=1e-5, atol=1e-6)
        # Offsets are those of grouping the scan alone.
        alone = group_scan(scan, 2, seed=0 + 7919 * index)
        torch.testing.assert_close(data.offsets[torch.from_numpy(rows)], alone.offsets)


def test_one_scan_is_grouped_exactly_as_before():
    scan = simulate(SimulationConfig(patch_size=32, n_positions=25, nphotons=1e5, seed=5, probe_kind="disk"))
    plain = group_scan(scan, 2, seed=3)
    several = group_scans([scan], 2, seed=3)
    assert torch.equal(plain.groups, several.groups) and torch.equal(plain.amplitudes, several.amplitudes)
    assert torch.equal(several.scales, torch.full((25,), intensity_scale(scan.amplitudes), dtype=torch.float32))


def test_group_budget_is_shared_in_proportion_to_pattern_counts():
    assert split_groups(None, [10, 20]) == [None, None]
    assert split_groups(30, [10, 20]) == [10, 20]
    assert sum(split_groups(101, [36, 25, 30])) == 101
    assert split_groups(2, [1000, 1, 1]) == [2, 1, 1]  # every scan keeps at least one group


def test_loss_uses_each_groups_own_counts(three_scans):
    """A batch mixing two scans of different doses: the loss equals the Poisson NLL of each scan's own counts
    against the prediction scaled by that scan's own intensity scale."""
    scans = [load_scan(p) for p in three_scans[:2]]
    reference = intensity_scale(scans[0].amplitudes)
    data = group_scans(scans, 1, reference_scale=reference)
    model = PtychoModel(ModelConfig(patch_size=32, channels=TINY_CHANNELS), torch.from_numpy(scans[0].probe),
                        reference)
    index = torch.tensor([0, 1, 36, 37])  # two groups from each scan
    batch = data.batch(index)
    with torch.no_grad():
        patches = model(batch["amplitudes"])
        loss = model.loss_from_patches(patches, batch)
        counts = torch.cat([torch.from_numpy(scans[0].amplitudes[:2]), torch.from_numpy(scans[1].amplitudes[:2])])
        own = torch.tensor([intensity_scale(s.amplitudes) for s in scans]).repeat_interleave(2).view(4, 1, 1, 1)
        expected = poisson_nll(predicted_amplitude(model.probe, patches), counts[:, None] / own, scale=own)
    torch.testing.assert_close(loss, expected.float(), rtol=1e-5, atol=1e-3)
    # Inputs: every scan over its own scale, as inference feeds a scan.
    torch.testing.assert_close(batch["amplitudes"] / model.scale, counts[:, None] / own.float(), rtol=1e-5, atol=1e-6)


def test_training_on_several_scans_records_them_and_reconstructs(three_scans, tmp_path):
    config = tiny_config(list(three_scans), three_scans[0], tmp_path / "out", max_epochs=1)
    assert config.train_data_file == tuple(three_scans)
    result = train(config, CPU)
    assert result.status == "FINISHED" and result.model_path.is_file()
    recorded = json.loads((result.run_dir / "config.json").read_text())
    assert recorded["train_data_file"] == [str(p) for p in three_scans]
    # --resume with the same list continues the run.
    resumed = train(tiny_config(list(three_scans), three_scans[0], tmp_path / "out", max_epochs=2, resume=True), CPU)
    assert resumed.epochs_completed == 2 and resumed.run_dir == result.run_dir


def test_a_single_path_stays_a_single_path(tiny_scans, tmp_path):
    train_file, test_file = tiny_scans
    for given in (train_file, str(train_file), [train_file], (train_file,)):
        config = tiny_config(given, test_file, tmp_path / "out")
        assert config.train_data_file == Path(train_file) and config.train_data_files == (Path(train_file),)
        assert config.flat()["train_data_file"] == str(train_file)


def test_command_line_takes_several_training_files(tmp_path):
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--train_data_file", "a.npz", "b.npz", "c.npz", "--output_dir", str(tmp_path)])
    training, _ = build_configs(args)
    assert training.train_data_files == (Path("a.npz"), Path("b.npz"), Path("c.npz"))
    args = parser.parse_args(["--train_data_file", "a.npz", "--output_dir", str(tmp_path)])
    training, _ = build_configs(args)
    assert training.train_data_file == Path("a.npz")


def _rescaled_probe_scan(path: Path, factor: complex, out: Path) -> Path:
    scan = load_scan(path)
    moved = ScanData(amplitudes=scan.amplitudes, probe=scan.probe * factor, positions=scan.positions,
                     object_truth=scan.object_truth)
    return save_npz(moved, out)


def test_a_probe_at_another_dose_or_global_phase_is_the_same_probe(three_scans, tmp_path):
    scan = load_scan(three_scans[0])
    assert probe_difference(scan.probe, scan.probe * 3.0 * np.exp(0.7j)) < 1e-6
    same = _rescaled_probe_scan(three_scans[1], 0.5 * np.exp(1j), tmp_path / "same.npz")
    Trainer(tiny_config([three_scans[0], same], None, tmp_path / "out", max_epochs=1), CPU)


def test_scans_with_different_probes_or_sizes_are_refused_in_one_line(three_scans, tmp_path):
    other = simulate(SimulationConfig(patch_size=32, n_positions=25, nphotons=1e5, seed=6, probe_kind="zoneplate"))
    other_path = save_npz(other, tmp_path / "other_probe.npz")
    with pytest.raises(ConfigError, match="probe of training scan .*other_probe.npz differs") as error:
        Trainer(tiny_config([three_scans[0], other_path], None, tmp_path / "out"), CPU)
    assert "\n" not in str(error.value)
    bigger = simulate(SimulationConfig(patch_size=64, n_positions=16, nphotons=1e5, seed=6, probe_kind="disk"))
    bigger_path = save_npz(bigger, tmp_path / "n64.npz")
    with pytest.raises(ConfigError, match=r"training \(.*n64.npz\) data has 64x64 patterns .* same N"):
        Trainer(tiny_config([three_scans[0], bigger_path], None, tmp_path / "out"), CPU)


def test_n_images_counts_groups_over_all_scans(three_scans, tmp_path):
    trainer = Trainer(tiny_config(list(three_scans), None, tmp_path / "out", n_images=20), CPU)
    assert trainer.train_data.n_groups == 20


def test_training_config_accepts_a_tuple_of_paths_in_code():
    config = TrainingConfig(train_data_file=("a.npz", "b.npz"), output_dir=Path("out"))
    assert config.train_data_files == (Path("a.npz"), Path("b.npz"))
