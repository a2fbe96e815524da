"""Rank 1 alone sees a stop request at step 3; every rank must agree to stop at the same step (4).

Run under ``torchrun`` by ``tests/training/test_distributed.py``; each rank writes ``rank <r> stops at <k> ...``
to ``rank_<r>.txt`` in the working folder (two ranks printing at once can share one stdout line).
"""

from __future__ import annotations

from pathlib import Path

import torch

from ptychodus_torch_plugin.distributed import StopConsensus, distributed_session

if __name__ == "__main__":
    with distributed_session(torch.device("cpu")) as context:
        consensus = StopConsensus(context)
        stopped_at = None
        for step in range(10):
            requested = context.rank == 1 and step >= 3
            if consensus.step(requested):
                stopped_at = step
                consensus.settle(True)
                break
        settled = consensus.settle(False) if stopped_at is None else None
        Path(f"rank_{context.rank}.txt").write_text(f"rank {context.rank} stops at {stopped_at} settled {settled}")
