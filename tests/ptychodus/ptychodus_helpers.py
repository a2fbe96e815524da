"""Constants and helpers shared by the ptychodus tests (imported by name; pytest puts this folder on
sys.path)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ALGORITHM = "ptychodus-torch_pinn"
PYTHON = sys.executable

SETTINGS_INI = """\
[Processing]
Algorithm = {algorithm}

[PtychodusTorch]
channels = 8,16,32
max_epochs = 1
batch_size = 16
accelerator = cpu
logger = none
inference_batch_size = 64
"""


def settings_text(algorithm: str = ALGORITHM) -> str:
    return SETTINGS_INI.format(algorithm=algorithm)


def subprocess_env(*extra_paths: Path) -> dict[str, str]:
    """Environment for child interpreters: quiet, CPU only, extra folders on PYTHONPATH."""
    env = dict(os.environ)
    parts = [str(p) for p in extra_paths] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    if parts:
        env["PYTHONPATH"] = os.pathsep.join(parts)
    env.update(OMP_NUM_THREADS="2", CUDA_VISIBLE_DEVICES="", PYTHONUNBUFFERED="1")
    return env

