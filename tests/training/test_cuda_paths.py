"""The GPU-only speed paths: no host sync in the training step, CUDA graphs and bf16 agree with eager fp32.

Skipped without a CUDA device (this project's CI has none); ``benchmarks/gpu_session.sh`` runs them on a
lent GPU.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ptychodus_torch_plugin.config import ModelConfig, PerformanceConfig
from ptychodus_torch_plugin.data.simulate.config import SimulationConfig
from ptychodus_torch_plugin.data.simulate.simulate import simulate
from ptychodus_torch_plugin.evaluation import evaluate, region_mask
from ptychodus_torch_plugin.inference import reconstruct_scan
from ptychodus_torch_plugin.models.pinn import PtychoModel
from ptychodus_torch_plugin.performance import resolve
from ptychodus_torch_plugin.physics.canvas import group_canvas_size
from ptychodus_torch_plugin.physics.scale import intensity_scale
from ptychodus_torch_plugin.training.data import group_scan
from ptychodus_torch_plugin.training.step import TrainStep

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
CUDA = torch.device("cuda")


def _setup(gridsize: int):  # type: ignore[no-untyped-def]
    scan = simulate(SimulationConfig(patch_size=32, n_positions=64, nphotons=1e6, seed=4, probe_kind="disk"))
    data = group_scan(scan, gridsize).to(CUDA)
    torch.manual_seed(0)
    model = PtychoModel(ModelConfig(patch_size=32, gridsize=gridsize, channels=(16, 32, 64)),
                        torch.from_numpy(scan.probe), intensity_scale(scan.amplitudes),
                        group_canvas_size(data.offsets, 32)).to(CUDA)
    return scan, data, model


def test_auto_picks_bf16_and_channels_last_for_cuda_inference_only() -> None:
    inference = resolve(PerformanceConfig(), CUDA, "inference")
    training = resolve(PerformanceConfig(), CUDA, "training")
    assert inference.channels_last and training.channels_last
    assert inference.bf16 == torch.cuda.is_bf16_supported() and not training.bf16


@pytest.mark.parametrize("gridsize", [1, 2])
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_the_training_step_never_waits_for_the_host(gridsize, precision) -> None:
    _, data, model = _setup(gridsize)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    options = resolve(PerformanceConfig(precision=precision), CUDA, "training")
    step = TrainStep(model, optimizer, CUDA, options)
    batch = data.batch(torch.arange(16, device=CUDA))
    step(batch)  # first call: allocations, cuDNN autotuning
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        losses = [step(batch) for _ in range(3)]
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert all(bool(torch.isfinite(loss)) for loss in losses)


def test_cuda_graph_and_bf16_reconstructions_match_eager_fp32() -> None:
    scan, _, model = _setup(1)
    fp32 = reconstruct_scan(model, scan, batch_size=24, device=CUDA, performance=PerformanceConfig(precision="fp32"))
    graphed = reconstruct_scan(model, scan, batch_size=24, device=CUDA,
                               performance=PerformanceConfig(precision="fp32", cuda_graphs=True))
    np.testing.assert_allclose(graphed.object, fp32.object, rtol=1e-4, atol=1e-5)  # 64 = 24 + 24 + 16 (padded)
    bf16 = reconstruct_scan(model, scan, batch_size=24, device=CUDA,
                            performance=PerformanceConfig(precision="bf16", cuda_graphs=True))
    similarity = evaluate(bf16.object, fp32.object, region_mask(fp32.weights))
    assert similarity.phase_ssim > 0.95 and similarity.amplitude_ssim > 0.95
