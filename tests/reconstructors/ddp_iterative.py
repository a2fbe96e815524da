"""Run under torchrun by test_iterative_distributed.py: every rank reconstructs a stored scan as one rank of
the job, records which patterns it read from the file, and saves what it returns."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from ptychodus_torch_plugin.data import load_scan
from ptychodus_torch_plugin.data.patterns import PatternStack
from ptychodus_torch_plugin.distributed import distributed_session
from ptychodus_torch_plugin.reconstructors import ReconstructRequest
from ptychodus_torch_plugin.reconstructors.iterative.config import IterativeConfig
from ptychodus_torch_plugin.reconstructors.iterative.solver import reconstruct_iterative

SETTINGS = {
    "plain": {"epochs": 30},
    "refined": {"epochs": 30, "refine_probe_from": 5, "refine_positions_from": 5},
}


def main(folder: Path, out: Path) -> None:
    read: list[np.ndarray] = []
    original = PatternStack.read

    def recording(self: PatternStack, indices: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        read.append(np.asarray(indices).copy())
        return original(self, indices, out)

    PatternStack.read = recording  # type: ignore[method-assign]
    with distributed_session(torch.device("cpu")) as context:
        scan = load_scan(folder, stream=True)
        for name, settings in SETTINGS.items():
            read.clear()
            request = ReconstructRequest(scan=scan, device=torch.device("cpu"), options=IterativeConfig(**settings),
                                         distributed=context)
            result = reconstruct_iterative(request)
            np.savez(out / f"{name}_rank{context.rank}.npz", object=result.object, weights=result.weights,
                     rows=np.unique(np.concatenate(read)),
                     positions=result.positions if result.positions is not None else np.zeros((0, 2)),
                     probe=result.probe if result.probe is not None else np.zeros(0))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
