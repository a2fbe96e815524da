"""Training checkpoints: ``last`` after every epoch and ``best`` by validation loss, written atomically.

A checkpoint holds what ``--resume`` needs to continue exactly: model, optimiser and scheduler state, the
number of finished epochs and optimiser steps, early-stopping state and RNG states. Everything is tensors
and plain Python values, so it loads with ``weights_only=True``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import __version__
from ..atomic import atomic_torch_save, safe_torch_load
from ..errors import ModelFileError

CHECKPOINT_FORMAT = "ptychodus-torch-checkpoint"
CHECKPOINT_FOLDER = "checkpoints"


def checkpoint_path(run_dir: Path, kind: str) -> Path:
    return Path(run_dir) / CHECKPOINT_FOLDER / f"{kind}.pt"


def save_checkpoint(run_dir: Path, kind: str, state: dict[str, Any]) -> Path:
    return atomic_torch_save({"format": CHECKPOINT_FORMAT, "package_version": __version__, **state},
                             checkpoint_path(run_dir, kind))


def load_checkpoint(path: Path) -> dict[str, Any]:
    state = safe_torch_load(path, "checkpoint")
    if state.get("format") != CHECKPOINT_FORMAT:
        raise ModelFileError(f"{path} is not a ptychodus-torch checkpoint")
    return state
