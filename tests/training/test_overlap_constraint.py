"""Gridsize > 1 conventions end to end: the group canvas reproduces consistent patches, network channel k
is group member k, and the loss compares each re-cut patch with its own member's pattern."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ptychodus_torch_plugin.config import ModelConfig
from ptychodus_torch_plugin.data.simulate.config import SimulationConfig
from ptychodus_torch_plugin.data.simulate.simulate import simulate
from ptychodus_torch_plugin.models.generator import support_mask
from ptychodus_torch_plugin.models.pinn import PtychoModel
from ptychodus_torch_plugin.physics import (
    canvas_to_patches,
    extract_patches,
    group_canvas_size,
    patches_to_canvas,
)
from ptychodus_torch_plugin.physics.scale import intensity_scale
from ptychodus_torch_plugin.training.data import group_scan

N = 32


def _object(size: int, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.polar(torch.from_numpy(rng.uniform(0.5, 1.0, (size, size))).float(),
                       torch.from_numpy(rng.uniform(-1.0, 1.0, (size, size))).float())


@pytest.mark.parametrize("support", ["full", "central"])
@pytest.mark.parametrize("weighting", ["probe", "uniform"])
def test_truth_patches_survive_the_canvas_round_trip(support, weighting):
    """Patches cut from one object at a 2x2 group's positions -> canvas -> re-cut at the same offsets give
    the same patches back on every decoded pixel (integer offsets: exact)."""
    obj = _object(96)
    base = torch.tensor([40.0, 37.0])
    positions = base + torch.tensor([[0.0, 0.0], [0.0, 4.0], [4.0, 0.0], [4.0, 4.0]])
    patches = extract_patches(obj, positions, N)[None]  # (1, 4, N, N), member k at positions[k]
    offsets = (positions - positions.mean(dim=0))[None]
    mask = support_mask(N, support)
    probe = torch.exp(-((torch.arange(N) - N // 2) ** 2)[:, None] / 200.0 - ((torch.arange(N) - N // 2) ** 2) / 200.0)
    weights = mask if weighting == "uniform" else probe * mask
    size = group_canvas_size(offsets, N)
    recut = canvas_to_patches(patches_to_canvas(patches * mask, offsets, size, weights=weights), offsets, N)
    inside = mask.bool()
    torch.testing.assert_close(recut[..., inside], patches[..., inside], rtol=1e-5, atol=1e-5)
    # The canvas is the object itself, centred on the group's mean position.
    canvas = patches_to_canvas(patches, offsets, size, weights=weights)[0]
    centre = size // 2
    torch.testing.assert_close(canvas[centre, centre], obj[42, 39])


@pytest.mark.parametrize(("support", "limit"), [("full", 0.025), ("central", 0.05)])
def test_fractional_offsets_of_a_real_scan_round_trip_where_the_beam_is(support, limit):
    """Groups of a simulated scan (fractional offsets): the re-cut truth patches match the truth to 2.5 %
    (full support) or 5 % (central) relative, probe-weighted, wherever the probe is brighter than 1 % of its
    peak and the patch is decoded.

    Not exact: each patch is Fourier-shifted by its offset's fraction, and a crop is not periodic, so its
    edges ring into its neighbours' pixels on the canvas. Measured 1.7 % (full support, probe weights) and
    3.3 % with the central support, whose hard square edge rings more (QUALITY-002)."""
    scan = simulate(SimulationConfig(patch_size=N, n_positions=64, nphotons=None, seed=3, jitter_px=0.7))
    data = group_scan(scan, 2, seed=0)
    assert (data.offsets != data.offsets.round()).any(), "the test needs fractional offsets"
    truth = extract_patches(torch.from_numpy(scan.object_truth), torch.from_numpy(scan.positions), N)
    patches = truth[data.groups]  # (G, 4, N, N)
    model = PtychoModel(ModelConfig(patch_size=N, gridsize=2, channels=(4, 8, 16), object_support=support),
                        torch.from_numpy(scan.probe), 1.0, group_canvas_size(data.offsets, N))
    with torch.no_grad():
        recut = model.constrained_patches(patches, data.offsets)
    weight = model.illumination()
    lit = weight > 0.01 * weight.max()
    error = ((recut - patches).abs().square() * weight)[..., lit].sum() / (patches.abs().square() * weight)[..., lit].sum()
    assert float(error.sqrt()) < limit


@pytest.mark.parametrize("support", ["full", "central"])
def test_channel_k_is_member_k_and_the_loss_compares_it_with_its_own_pattern(support):
    """The true patches, given as the network's output, reach (nearly) the loss of the true object without
    the constraint; the same patches with their channels rotated among the members are far worse. So the
    re-cut patch k is placed at member k's offset and compared with member k's pattern."""
    scan = simulate(SimulationConfig(patch_size=N, n_positions=64, nphotons=1e6, seed=3))
    scale = intensity_scale(scan.amplitudes)
    data = group_scan(scan, 2, seed=0, reference_scale=scale)
    model = PtychoModel(ModelConfig(patch_size=N, gridsize=2, channels=(4, 8, 16), object_support=support),
                        torch.from_numpy(scan.probe), scale, group_canvas_size(data.offsets, N))
    truth = extract_patches(torch.from_numpy(scan.object_truth), torch.from_numpy(scan.positions), N)
    batch = data.batch(torch.arange(data.n_groups))
    patches = truth[data.groups] * model.support
    single = PtychoModel(ModelConfig(patch_size=N, gridsize=1, channels=(4, 8, 16), object_support=support),
                         torch.from_numpy(scan.probe), scale)
    with torch.no_grad():
        # the best global gain (the normalisation fixes the object's mean transmission only on average)
        gains = torch.linspace(0.9, 1.1, 21)
        unconstrained = min(float(single.loss_from_patches(patches.reshape(-1, 1, N, N) * g,
                                                           {k: v.reshape(-1, 1, *v.shape[2:]) if k != "scale"
                                                            else v.repeat_interleave(4) for k, v in batch.items()}))
                            for g in gains)
        constrained = min(float(model.loss_from_patches(patches * g, batch)) for g in gains)
        rotated = min(float(model.loss_from_patches(patches.roll(1, dims=1) * g, batch)) for g in gains)
    print(f"NLL unconstrained {unconstrained:.2f}, constrained {constrained:.2f}, rotated {rotated:.2f}")
    # Consistent patches lose nothing to the constraint (central support even gains: the re-cut patch's
    # margin is filled by the neighbours' decoded centres, where the beam's faint edge still reaches).
    assert constrained <= unconstrained + 0.1
    assert rotated > constrained + 100.0
