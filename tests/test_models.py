"""The generator and the built-in model types: shapes, bounds, and what is (and is not) trainable."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ptychodus_torch_plugin.config import ModelConfig
from ptychodus_torch_plugin.models.generator import PatchGenerator, max_pool2x, upsample2x
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


@pytest.mark.parametrize(("size", "widths"), [(8, (16,)), (16, (16, 32)), (32, (16, 32, 64)),
                                               (48, (16, 32, 64)), (64, (16, 32, 64, 128)),
                                               (128, (16, 32, 64, 128, 256))])
def test_default_encoder_reaches_a_4x4_map_whatever_n(size, widths):
    """Without --channels the encoder's depth follows N (QUALITY-003: three stages fail at N = 64), and the
    stored configuration names the widths, so a model file does not depend on this rule later."""
    config = ModelConfig(patch_size=size)
    assert config.channels == widths
    config.validate()
    assert size // 2 ** len(widths) >= 4 or size < 16
    assert ModelConfig.from_dict(dict(ModelConfig(patch_size=size).__dict__)).channels == widths


def test_default_widths_are_derived_from_the_probe_when_n_is_not_given():
    model = PtychoModel(ModelConfig(), _probe(64), 1.0)
    assert model.config.patch_size == 64 and model.config.channels == (16, 32, 64, 128)
    assert len(model.generator.encoder.stages) == 4
    with pytest.raises(Exception, match="not known yet"):
        ModelConfig().widths  # noqa: B018 (the property raises)


def test_upsample_matches_nearest_interpolation():
    x = torch.randn(2, 3, 4, 5)
    assert torch.equal(upsample2x(x), torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest"))


def test_strided_maximum_pools_like_max_pool2d_nan_included():
    x = torch.randn(3, 4, 8, 6)
    x[0, 1, 2, 3] = float("nan")
    expected = torch.nn.functional.max_pool2d(x, 2)
    torch.testing.assert_close(max_pool2x(x), expected, equal_nan=True)
    assert torch.isnan(max_pool2x(x)[0, 1, 1, 1])


def test_encoder_gives_the_same_patches_with_and_without_gradients():
    """Inference pools with the strided maximum, training with max_pool2d: the patches must not differ."""
    torch.manual_seed(0)
    generator = PatchGenerator(1, [4, 8, 16], support="central", shared=True, normalization="group").eval()
    amplitudes = torch.rand(5, 1, 32, 32)
    with torch.no_grad():
        pooled_fast = generator(amplitudes)
    with_grad = generator(amplitudes.requires_grad_())
    assert with_grad.requires_grad
    torch.testing.assert_close(pooled_fast, with_grad.detach(), rtol=0, atol=0)


def test_probe_normalisation_is_idempotent_and_targets_a_quarter_of_the_window():
    probe = normalise_probe(_probe(32)[None] * 7.0)
    assert float(probe.abs().square().sum()) == pytest.approx(32 * 32 / 4, rel=1e-5)
    torch.testing.assert_close(normalise_probe(probe), probe)


def test_trainable_scale_and_probe_are_registered_parameters_that_learn():
    config = ModelConfig(patch_size=32, gridsize=2, channels=(4, 8, 16), probe_trainable=True, scale_trainable=True)
    model = PtychoModel(config, _probe(32), intensity_scale=3.0, canvas_size=48)
    names = {name for name, _ in model.named_parameters()}
    assert {"probe_real", "log_gain"} <= names and "log_scale" not in names  # the input normaliser stays fixed
    batch = {"amplitudes": torch.rand(2, 4, 32, 32) * 5, "offsets": torch.tensor([[[-2.0, -2], [-2, 2], [2, -2], [2, 2]]] * 2)}
    model.training_loss(batch).backward()
    assert model.log_gain.grad is not None and model.probe_real.grad is not None
    assert float(model.scale.detach()) == pytest.approx(3.0) and float(model.gain.detach()) == 1.0


def test_fixed_probe_and_scale_are_buffers_saved_with_the_weights():
    model = PtychoModel(ModelConfig(patch_size=32, channels=(4, 8, 16)), _probe(32), intensity_scale=2.0)
    assert "probe_real" not in dict(model.named_parameters())
    assert {"probe_real", "log_scale", "canvas_size"} <= set(model.state_dict())


def test_supervised_loss_is_zero_for_the_true_patches_and_positive_otherwise():
    model = SupervisedModel(ModelConfig(patch_size=32, channels=(4, 8, 16)), _probe(32), intensity_scale=1.0)
    amplitudes = torch.rand(3, 1, 32, 32)
    with torch.no_grad():
        predicted = model(amplitudes)
    assert model.training_loss({"amplitudes": amplitudes, "truth": predicted}).item() == pytest.approx(0, abs=1e-6)
    assert model.training_loss({"amplitudes": amplitudes, "truth": predicted * 0.5}).item() > 0


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


@pytest.mark.parametrize("gridsize", [1, 2])
def test_central_support_decodes_only_the_central_half(gridsize):
    size, channels = 32, gridsize**2
    generator = PatchGenerator(channels, (4, 8, 16), support="central", amplitude_max=1.0)
    patches = generator(torch.rand(2, channels, size, size) * 10)
    assert patches.shape == (2, channels, size, size)
    inside = torch.zeros(size, size, dtype=torch.bool)
    inside[8:24, 8:24] = True
    assert (patches[..., ~inside] == 0).all()
    assert 0 < patches[..., inside].abs().min() and patches.abs().max() < 1.0
    # one fewer up-sampling stage than the full decoder
    assert len(generator.amplitude_decoder.stages) == 2
    assert len(PatchGenerator(channels, (4, 8, 16)).amplitude_decoder.stages) == 3


@pytest.mark.parametrize("support", ["central", "full"])
def test_an_unpooled_last_stage_decodes_from_a_map_twice_as_wide(support):
    """``pool_last_stage`` False: the encoder's last stage keeps its resolution (8 x 8 at N = 32 with three
    stages, as PtychoPINN's encoder ends), and the decoders need one up-sampling stage fewer to give the same
    patch."""
    size = 32
    pooled = PatchGenerator(1, (4, 8, 16), support=support)
    unpooled = PatchGenerator(1, (4, 8, 16), support=support, pool_last_stage=False)
    amplitudes = torch.rand(2, 1, size, size) * 10
    assert pooled.encoder(amplitudes).shape[-2:] == (4, 4)
    assert unpooled.encoder(amplitudes).shape[-2:] == (8, 8)
    assert len(unpooled.amplitude_decoder.stages) == len(pooled.amplitude_decoder.stages) - 1
    patches = unpooled(amplitudes)
    assert patches.shape == (2, 1, size, size)
    decoded = patches.abs() > 0
    assert decoded.sum() == 2 * (size // 2 if support == "central" else size) ** 2
    model = PtychoModel(ModelConfig(patch_size=size, channels=(4, 8, 16), pool_last_stage=False,
                                    object_support=support), _probe(size), 1.0)
    assert model(amplitudes).shape == (2, 1, size, size)
    assert ModelConfig.from_dict(dict(model.config.__dict__)).pool_last_stage is False
    stored = {k: v for k, v in model.config.__dict__.items() if k != "pool_last_stage"}
    assert ModelConfig.from_dict(stored).pool_last_stage is True  # files made before the setting pooled


def test_support_and_canvas_weights_follow_the_configuration():
    probe = _probe(32)
    central = PtychoModel(ModelConfig(patch_size=32, gridsize=2, channels=(4, 8, 16), object_support="central",
                                      canvas_weights="uniform"), probe, intensity_scale=1.0, canvas_size=48)
    full = PtychoModel(ModelConfig(patch_size=32, gridsize=2, channels=(4, 8, 16), object_support="full"), probe,
                       intensity_scale=1.0, canvas_size=48)
    assert central.support.sum() == 16 * 16 and full.support.sum() == 32 * 32
    # stitching weights (used by inference) vanish outside the decoded square
    assert (central.illumination()[:8] == 0).all()
    torch.testing.assert_close(full.illumination(), normalise_probe(probe).abs() ** 2)
    assert torch.equal(central.canvas_weights(), central.support)
    assert torch.equal(full.canvas_weights(), full.illumination())
    assert "support" not in central.state_dict()  # derived from the configuration, not stored


def test_shared_group_encoder_treats_each_pattern_alone():
    generator = PatchGenerator(4, (4, 8, 16), shared=True)
    amplitudes = torch.rand(3, 4, 32, 32)
    together = generator(amplitudes)
    alone = generator(amplitudes[:, 2:3].repeat(1, 4, 1, 1))
    torch.testing.assert_close(together[:, 2], alone[:, 0])
    assert generator.encoder.stages[0][0].in_channels == 1


@pytest.mark.parametrize("normalization", ["none", "group"])
def test_each_pattern_decodes_the_same_whatever_else_is_in_the_batch(normalization):
    """Inference cuts a scan into chunks of any size: a normalisation that pooled over the batch (BatchNorm)
    would make a patch depend on its neighbours in the chunk. GroupNorm normalises each sample alone."""
    torch.manual_seed(0)
    generator = PatchGenerator(1, (4, 8, 16), support="central", shared=True, normalization=normalization)
    norms = [m for m in generator.modules() if isinstance(m, torch.nn.GroupNorm)]
    assert len(norms) == (0 if normalization == "none" else 2 * (3 + 2 + 2))  # two per stage: encoder, decoders
    if normalization == "none":  # the parameter names of model files written before normalisation existed
        assert {"encoder.stages.0.0.weight", "encoder.stages.0.2.weight"} <= set(generator.state_dict())
    amplitudes = torch.rand(5, 1, 32, 32) * 10
    with torch.no_grad():  # in training mode, where a batch-pooling norm would use the batch's statistics
        together = generator(amplitudes)
        alone = torch.cat([generator(amplitudes[i:i + 1]) for i in range(5)])
    torch.testing.assert_close(together, alone, rtol=1e-4, atol=1e-5)


def test_new_model_settings_are_validated():
    from ptychodus_torch_plugin.errors import ConfigError

    for bad in (dict(object_support="middle"), dict(amplitude_max=0.0), dict(canvas_weights="flat"),
                dict(group_encoder="both"), dict(normalization="batch"),
                dict(object_support="central", patch_size=34, channels=(4,)),
                dict(pool_last_stage=False, channels=(8,))):
        with pytest.raises(ConfigError):
            ModelConfig(**bad).validate()


def test_model_files_without_the_new_settings_rebuild_as_they_were_made():
    """A stored configuration lacking a setting gets the value its file was made with, not today's default;
    a file trained with the old trainable scale (``log_scale`` a parameter, no gain) loads with gain 1."""
    from ptychodus_torch_plugin.config import LEGACY_MODEL_VALUES

    config = ModelConfig.from_dict({"patch_size": 32, "gridsize": 2, "channels": [4, 8, 16], "scale_trainable": True})
    assert {k: getattr(config, k) for k in LEGACY_MODEL_VALUES} == LEGACY_MODEL_VALUES
    old_state = PtychoModel(ModelConfig(patch_size=32, gridsize=2, channels=(4, 8, 16), **LEGACY_MODEL_VALUES),
                            _probe(32), 2.5).state_dict()
    model = PtychoModel(config, _probe(32), intensity_scale=1.0, canvas_size=48)
    model.load_state_dict(old_state, strict=False)
    assert model.scale.item() == pytest.approx(2.5) and model.gain.item() == 1.0
    model.load_state_dict({**old_state, "canvas_size": torch.tensor(48)})  # strict: log_gain filled in
    assert float(model.gain) == 1.0


@pytest.mark.parametrize("encoder", ["shared", "joint"])
def test_inference_passes_each_pattern_once_when_patterns_are_independent(encoder):
    """A shared-encoder network maps each pattern to its patch alone, so inference passes every pattern
    through it once and stitches each position once, with equal weight: exactly what the same weights do
    as a gridsize-1 model. (Passing it group by group would do four times the work and weight each
    position by how many groups happened to pick it.) A joint encoder's patches depend on the group, and
    it keeps the group pass."""
    from ptychodus_torch_plugin import inference
    from ptychodus_torch_plugin.data.simulate import SimulationConfig, simulate

    scan = simulate(SimulationConfig(patch_size=32, n_positions=40, nphotons=1e5, seed=4))
    probe = torch.from_numpy(scan.probe)
    torch.manual_seed(0)
    model = PtychoModel(ModelConfig(patch_size=32, gridsize=2, channels=(4, 8, 16), group_encoder=encoder), probe,
                        30.0, canvas_size=48)
    passes: list[int] = []
    result = inference.reconstruct_scan(model, scan, batch_size=16, progress=lambda done, total: passes.append(total))
    assert inference.patterns_are_independent(model) == (encoder == "shared")
    assert passes[-1] == (scan.n_patterns if encoder == "shared" else 4 * scan.n_patterns)
    if encoder == "shared":
        single = PtychoModel(ModelConfig(patch_size=32, gridsize=1, channels=(4, 8, 16)), probe, 30.0)
        single.load_state_dict(model.state_dict())
        alone = inference.reconstruct_scan(single, scan, batch_size=16)
        np.testing.assert_allclose(result.object, alone.object, rtol=1e-5, atol=1e-6)


def test_inference_stitches_decoded_patches_without_ringing_at_half_pixel_positions():
    """A network's patch stops at the edge of its central support. At half-pixel positions inference must
    place it without the Fourier ringing that edge causes (QUALITY-006): a network that decodes the same
    constant patch everywhere gives that constant back over the covered object."""
    from dataclasses import replace

    from ptychodus_torch_plugin import inference
    from ptychodus_torch_plugin.data.simulate import SimulationConfig, simulate

    scan = simulate(SimulationConfig(patch_size=32, n_positions=40, nphotons=1e5, seed=4, scan_kind="raster"))
    scan = replace(scan, positions=np.floor(scan.positions) + 0.5)
    model = PtychoModel(ModelConfig(patch_size=32, gridsize=1, channels=(4, 8, 16)), torch.from_numpy(scan.probe), 30.0)
    support = model.generator.support == "central"
    border = 8 if support else 0

    class Constant(torch.nn.Module):
        def forward(self, amplitudes: torch.Tensor) -> torch.Tensor:
            patch = torch.zeros(amplitudes.shape, dtype=torch.complex64)
            patch[..., border:32 - border, border:32 - border] = 0.9 * np.exp(0.4j)
            return patch

    model.generator = Constant()
    result = inference.reconstruct_scan(model, scan, batch_size=16, device=torch.device("cpu"))
    inside = result.weights > 0.5 * result.weights.max()
    assert np.abs(result.object[inside] - 0.9 * np.exp(0.4j)).max() < 1e-5


def test_log_input_transform_is_a_stored_setting_the_network_sees():
    """``input_transform`` log: the generator receives log(1 + a/s); linear (the default, and what model
    files without the key were trained with) a/s."""
    seen = []
    for transform in ("linear", "log"):
        model = PtychoModel(ModelConfig(patch_size=32, channels=(8, 16, 32), input_transform=transform), _probe(32), 2.0)
        model.generator.register_forward_pre_hook(lambda module, args: seen.append(args[0].clone()))
        model(torch.full((1, 1, 32, 32), 6.0))
    assert torch.allclose(seen[0], torch.full((1, 1, 32, 32), 3.0))
    assert torch.allclose(seen[1], torch.log1p(torch.full((1, 1, 32, 32), 3.0)))
    assert ModelConfig.from_dict({"patch_size": 32}).input_transform == "linear"
