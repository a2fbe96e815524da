"""Training checkpoints: ``last`` after every epoch and ``best`` by validation loss, written atomically.

A checkpoint holds what ``--resume`` needs to continue exactly: model, optimiser and scheduler state, the
number of finished epochs and optimiser steps, early-stopping state and RNG states. Everything is tensors
and plain Python values, so it loads with ``weights_only=True``.

Checkpoints carry ``format_version`` 2 and a ``manifest`` with SHA-256 checksums of the model weights and
the model configuration, verified on load: a corrupt or edited checkpoint is a :class:`ModelFileError`,
never a resume from wrong weights. Checkpoints without ``format_version`` (written before checksums
existed) still load, unverified. Temporary ``.*.tmp`` files left by a killed write are never read: only
``last.pt`` and ``best.pt`` are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import __version__
from ..atomic import atomic_torch_save, make_manifest, safe_torch_load, verify_manifest
from ..errors import ModelFileError

CHECKPOINT_FORMAT = "ptychodus-torch-checkpoint"
CHECKPOINT_FORMAT_VERSION = 2
CHECKPOINT_FOLDER = "checkpoints"


def checkpoint_path(run_dir: Path, kind: str) -> Path:
    return Path(run_dir) / CHECKPOINT_FOLDER / f"{kind}.pt"


def save_checkpoint(run_dir: Path, kind: str, state: dict[str, Any]) -> Path:
    payload = {"format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_FORMAT_VERSION,
               "package_version": __version__, **state}
    payload["model"] = {k: v.detach().cpu() for k, v in state["model"].items()}
    payload["manifest"] = make_manifest(payload["model"], payload.get("model_config"))
    return atomic_torch_save(payload, checkpoint_path(run_dir, kind))


def load_checkpoint(path: Path) -> dict[str, Any]:
    state = safe_torch_load(path, "checkpoint")
    if state.get("format") != CHECKPOINT_FORMAT:
        raise ModelFileError(f"{path} is not a ptychodus-torch checkpoint")
    version = state.get("format_version")
    if version is not None:
        if version != CHECKPOINT_FORMAT_VERSION:
            raise ModelFileError(f"{path} uses checkpoint format {version}, written by ptychodus-torch-plugin "
                                 f"{state.get('package_version')}; this version ({__version__}) reads format "
                                 f"{CHECKPOINT_FORMAT_VERSION}")
        verify_manifest(state.get("manifest"), state.get("model"), state.get("model_config"), path, "checkpoint")
    return state
