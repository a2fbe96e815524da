"""Rank 1 alone sees a stop request at step 3; every rank must agree to stop at the same step (4).

Run under ``torchrun`` by ``tests/training/test_distributed.py``; each rank prints ``rank <r> stops at <k>``.
"""

from __future__ import annotations

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
        print(f"rank {context.rank} stops at {stopped_at} settled {settled}", flush=True)
