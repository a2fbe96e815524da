"""Suite-wide settings."""

from __future__ import annotations

import os

import torch

# pytest-xdist runs one worker per core; each worker using every core for torch's intra-op threads would
# oversubscribe the machine (spin-waiting OpenMP threads made a 45 s test take 11 minutes on 2 cores).
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)
