"""The iterative reconstructor on a GPU: no host sync inside an epoch's batches, and the same object as on
the CPU. Skipped without a CUDA device (this project's CI has none); ``benchmarks/gpu_session.sh`` runs it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ptychodus_torch_plugin.data.simulate import SimulationConfig, simulate
from ptychodus_torch_plugin.reconstructors.iterative.config import IterativeConfig
from ptychodus_torch_plugin.reconstructors.iterative.solver import IterativeSolver

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
CUDA = torch.device("cuda")


@pytest.mark.parametrize("settings", [{}, {"refine_probe_from": 1, "refine_positions_from": 1},
                                      {"noise_model": "poisson"}])
def test_batches_never_wait_for_the_host(settings) -> None:
    scan = simulate(SimulationConfig(patch_size=32, n_positions=100, scan_kind="spiral", nphotons=1e5, seed=2))
    solver = IterativeSolver(scan, IterativeConfig(epochs=1, **settings), CUDA)
    solver._cache_probes(not settings)
    index, measured = next(iter(solver.feed.epoch(solver.generator)))
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        solver._batch(index, measured, "refine_probe_from" in settings, "refine_positions_from" in settings)
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_gpu_and_cpu_give_the_same_object() -> None:
    scan = simulate(SimulationConfig(patch_size=32, n_positions=100, scan_kind="spiral", nphotons=1e5, seed=2))
    config = IterativeConfig(epochs=5)
    cpu = IterativeSolver(scan, config, torch.device("cpu")).run()
    gpu = IterativeSolver(scan, config, CUDA).run()
    np.testing.assert_allclose(gpu.object, cpu.object, atol=2e-3)


def test_patterns_streamed_from_the_host_give_the_resident_object() -> None:
    """Patterns that stay in host memory and come to the GPU block by block through pinned memory: with one
    block the batches are the resident feed's, so the object is the same."""
    from ptychodus_torch_plugin.memory import MemoryBudget
    from ptychodus_torch_plugin.reconstructors.iterative.feed import StreamedFeed
    from ptychodus_torch_plugin.reconstructors.iterative.memory_plan import MemoryPlan

    scan = simulate(SimulationConfig(patch_size=32, n_positions=100, scan_kind="spiral", nphotons=1e5, seed=2))
    config = IterativeConfig(epochs=5)
    plan = MemoryPlan(resident=False, block_size=128, cache_probes=True, object_bytes=0, working_bytes=0,
                      pattern_bytes=0, cache_bytes=0, budget=MemoryBudget(1 << 30))
    streamed = IterativeSolver(scan, config, CUDA, plan=plan)
    assert isinstance(streamed.feed, StreamedFeed)
    resident = IterativeSolver(scan, config, CUDA).run()
    np.testing.assert_allclose(streamed.run().object, resident.object, atol=1e-5)
