"""One DDP optimiser step on a global batch of 7 groups (split 4 + 3 over 2 ranks); rank 0 saves the update
(weights after minus weights before), which is what the comparison must match: a relative error on the
weights themselves hides in large weights and blows up in small ones (a bias near zero).

Run by ``tests/training/test_distributed.py`` under ``torchrun`` and, for comparison, in one process.
"""

from __future__ import annotations

import sys

import torch

from ptychodus_torch_plugin.config import ModelConfig, PerformanceConfig
from ptychodus_torch_plugin.data.simulate.config import SimulationConfig
from ptychodus_torch_plugin.data.simulate.simulate import simulate
from ptychodus_torch_plugin.distributed import DistributedContext, distributed_session
from ptychodus_torch_plugin.models.pinn import PtychoModel
from ptychodus_torch_plugin.performance import resolve
from ptychodus_torch_plugin.physics.canvas import group_canvas_size
from ptychodus_torch_plugin.physics.scale import intensity_scale
from ptychodus_torch_plugin.training.data import group_scan, shard_batches
from ptychodus_torch_plugin.training.step import TrainStep

GLOBAL_BATCH = torch.tensor([3, 0, 17, 8, 25, 11, 30])


def one_step(distributed: DistributedContext, weighted: bool = True) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    scan = simulate(SimulationConfig(patch_size=32, n_positions=36, nphotons=1e5, seed=1, probe_kind="disk"))
    data = group_scan(scan, 2, seed=0)
    model = PtychoModel(ModelConfig(patch_size=32, gridsize=2, channels=(8, 16, 32)), torch.from_numpy(scan.probe),
                        intensity_scale(scan.amplitudes), group_canvas_size(data.offsets, 32))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    cpu = torch.device("cpu")
    step = TrainStep(model, optimizer, cpu, resolve(PerformanceConfig(precision="fp32"), cpu, "training"), distributed)
    share = shard_batches([GLOBAL_BATCH], distributed.rank, distributed.world_size)[0]
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    step(data.batch(share.indices), share.weight if weighted else 1.0)
    return {k: v.detach() - before[k] for k, v in model.state_dict().items() if v.is_floating_point()}


if __name__ == "__main__":
    torch.set_num_threads(1)
    with distributed_session(torch.device("cpu")) as context:
        state = one_step(context, weighted=sys.argv[2] == "weighted")
        if context.is_main:
            torch.save(state, sys.argv[1])
