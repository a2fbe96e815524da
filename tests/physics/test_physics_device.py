"""Device agnosticism: the same results on CUDA, and no host syncs in the training-step functions."""

import pytest
import torch
from physics_helpers import random_object

from ptychodus_torch_plugin.physics import (
    canvas_to_patches,
    extract_patches,
    group_canvas_size,
    patches_to_canvas,
    poisson_nll,
    predicted_amplitude,
    stitch_patches,
)

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@cuda
def test_round_trip_on_cuda_matches_cpu() -> None:
    obj = random_object((40, 48), seed=30)
    positions = torch.tensor([[10.25, 12.5], [14.0, 15.75], [20.5, 30.0], [25.1, 22.9]], dtype=torch.float64)
    cpu = stitch_patches(extract_patches(obj, positions, 8), positions, (40, 48))
    gpu = stitch_patches(extract_patches(obj.cuda(), positions.cuda(), 8), positions.cuda(), (40, 48))
    assert gpu[0].device.type == "cuda"
    torch.testing.assert_close(gpu[0].cpu(), cpu[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(gpu[1].cpu(), cpu[1])


@cuda
def test_training_step_functions_do_not_sync_with_the_host() -> None:
    device = torch.device("cuda")
    corners = [[-2.5, -2.5], [-2.5, 2.5], [2.5, -2.5], [2.5, 2.5]]
    offsets = torch.tensor([corners], device=device).repeat(4, 1, 1)
    size = group_canvas_size(offsets, 8)
    probe = torch.randn(2, 8, 8, dtype=torch.complex64, device=device)
    patches = torch.randn(4, 4, 8, 8, dtype=torch.complex64, device=device, requires_grad=True)
    observed = torch.rand(4, 4, 8, 8, device=device)
    scale = torch.tensor(3.0, device=device)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        canvas = patches_to_canvas(patches, offsets, size)
        recut = canvas_to_patches(canvas, offsets, 8)
        loss = poisson_nll(predicted_amplitude(probe, recut), observed, scale=scale)
        loss.backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert patches.grad is not None and torch.isfinite(torch.view_as_real(patches.grad)).all()
