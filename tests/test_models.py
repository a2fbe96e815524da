"""The generator and the built-in model types: shapes, bounds, and what is (and is not) trainable."""

from __future__ import annotations

import math

import pytest
import torch

from ptychodus_torch_plugin.config import ModelConfig
from ptychodus_torch_plugin.models.generator import PatchGenerator, upsample2x
from ptychodus_torch_plugin.models.pinn import PtychoModel, SupervisedModel, normalise_probe
from ptychodus_torch_plugin.plugins import build_plugin_host


def _probe(n: int) -> torch.Tensor:
    rows, cols = torch.meshgrid(torch.arange(n, dtype=torch.float32), torch.arange(n, dtype=torch.float32), indexing="ij")
    radius = torch.hypot(rows - n // 2, cols - n // 2)
    return torch.polar((radius < n / 5).float(), 0.01 * radius**2)


@pytest.mark.parametrize("size", [32, 64, 128])
@pytest.mark.parametrize("gridsize", [1, 2])
def test_generator_gives_bounded_complex_patches(size, gridsize):
    channels = gridsize**2
    generator = PatchGenerator(channels, (4, 8, 16))
    patches = generator(torch.rand(2, channels, size, size) * 10)
    assert patches.shape == (2, channels, size, size) and patches.is_complex()
    assert 0 < patches.abs().min() and patches.abs().max() < 2
    assert patches.angle().abs().max() <= math.pi


def test_upsample_matches_nearest_interpolation():
    x = torch.randn(2, 3, 4, 5)
    assert torch.equal(upsample2x(x), torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest"))


def test_probe_normalisation_is_idempotent_and_targets_a_quarter_of_the_window():
    probe = normalise_probe(_probe(32)[None] * 7.0)
    assert float(probe.abs().square().sum()) == pytest.approx(32 * 32 / 4, rel=1e-5)
    torch.testing.assert_close(normalise_probe(probe), probe)


def test_trainable_scale_and_probe_are_registered_parameters_that_learn():
    config = ModelConfig(patch_size=32, gridsize=2, channels=(4, 8, 16), probe_trainable=True, scale_trainable=True)
    model = PtychoModel(config, _probe(32), intensity_scale=3.0, canvas_size=48)
    names = {name for name, _ in model.named_parameters()}
    assert {"probe_real", "log_scale"} <= names
    batch = {"amplitudes": torch.rand(2, 4, 32, 32) * 5, "offsets": torch.tensor([[[-2.0, -2], [-2, 2], [2, -2], [2, 2]]] * 2)}
    model.training_loss(batch).backward()
    assert model.log_scale.grad is not None and model.probe_real.grad is not None
    assert float(model.scale.detach()) == pytest.approx(3.0)


def test_fixed_probe_and_scale_are_buffers_saved_with_the_weights():
    model = PtychoModel(ModelConfig(patch_size=32, channels=(4, 8, 16)), _probe(32), intensity_scale=2.0)
    assert "probe_real" not in dict(model.named_parameters())
    assert {"probe_real", "log_scale", "canvas_size"} <= set(model.state_dict())


def test_supervised_loss_is_zero_for_the_true_patches_and_positive_otherwise():
    model = SupervisedModel(ModelConfig(patch_size=32, channels=(4, 8, 16)), _probe(32), intensity_scale=1.0)
    amplitudes = torch.rand(3, 1, 32, 32)
    with torch.no_grad():
        predicted = model(amplitudes)
    assert float(model.training_loss({"amplitudes": amplitudes, "truth": predicted})) == pytest.approx(0, abs=1e-6)
    assert float(model.training_loss({"amplitudes": amplitudes, "truth": predicted * 0.5})) > 0


def test_built_in_model_types_are_registered_through_the_hook():
    host = build_plugin_host(load_entry_points=False)
    assert set(host.model_types()) >= {"pinn", "supervised"}
    assert host.model_types()["pinn"].plugin == "ptychodus_torch_plugin.models.builtin"
    assert host.model_type("supervised").needs_ground_truth


def test_canvas_side_follows_loaded_weights_without_reading_the_buffer_each_step() -> None:
    """The overlap constraint reads the canvas side as a Python int (no GPU wait per step); loading weights
    made for another canvas must update it."""
    probe = torch.ones(32, 32, dtype=torch.complex64)
    config = ModelConfig(patch_size=32, gridsize=2, channels=(8, 16))
    trained = PtychoModel(config, probe, 10.0, canvas_size=48)
    fresh = PtychoModel(config, probe, 10.0, canvas_size=0)
    assert (trained.canvas_side, fresh.canvas_side) == (48, 0)
    fresh.load_state_dict(trained.state_dict())
    assert fresh.canvas_side == 48
