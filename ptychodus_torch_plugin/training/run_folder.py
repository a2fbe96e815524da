"""A training run's folder: chosen once (a new ``version_<N>``, or with ``--resume`` the newest one), agreed
on by every rank, holding ``config.json``; and what a resumed run must match in its checkpoint.

Why apart from the loop: which folder, whether it may be resumed and what is written into it first are
decisions about files, taken before the first epoch, and tested on their own.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..atomic import atomic_write
from ..config import ModelConfig
from ..distributed import DistributedContext
from ..errors import ConfigError
from ..models.model_file import plain
from ..run_folders import allocate_run_dir, latest_run_dir
from .checkpoints import checkpoint_path

#: The settings file a run leaves in its folder (``train --config`` replays it).
CONFIG_FILE = "config.json"


class ResumeWarning(UserWarning):
    """A setting given to ``--resume`` that the checkpoint overrides."""


def choose_run_dir(output_dir: Path, resume: bool) -> Path:
    """A new run folder, or with ``resume`` the newest one, which must hold a ``last`` checkpoint."""
    if not resume:
        return allocate_run_dir(output_dir)
    run_dir = latest_run_dir(output_dir)
    last = checkpoint_path(run_dir, "last") if run_dir else None
    if run_dir is None or last is None or not last.is_file():
        raise ConfigError(f"--resume: no checkpoint to resume from in {output_dir} "
                          "(expected lightning_logs/version_<N>/checkpoints/last.pt)")
    return run_dir


def agree_on_run_dir(distributed: DistributedContext, output_dir: Path, resume: bool) -> Path:
    """Rank 0 chooses the folder and tells the other ranks; an error on rank 0 is raised on every rank, so
    none is left waiting."""
    choice: tuple[str, str] = ("error", "")
    if distributed.is_main:
        try:
            choice = ("ok", str(choose_run_dir(Path(output_dir), resume)))
        except ConfigError as exc:
            choice = ("error", str(exc))
    kind, value = distributed.broadcast(choice)
    if kind == "error":
        raise ConfigError(value)
    return Path(value)


def check_resumable(state: Mapping[str, Any], model_config: ModelConfig, learning_rate: float) -> None:
    """Refuse a checkpoint of another model configuration; warn that a changed learning rate is not applied
    (the optimizer's state carries the checkpoint's)."""
    stored = state.get("model_config")
    try:  # a checkpoint written before a model setting existed holds that setting's legacy value
        stored = plain(ModelConfig.from_dict(dict(stored)).__dict__)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        pass
    if stored != plain(model_config.__dict__):
        raise ConfigError("--resume: the checkpoint was made with a different model configuration "
                          f"({state.get('model_config')}); use the same N, gridsize, model and loss")
    resumed_rates = state["scheduler"].get("base_lrs") or []
    if resumed_rates and not math.isclose(float(resumed_rates[0]), learning_rate, rel_tol=1e-9):
        warnings.warn(f"--resume: the run goes on at the checkpoint's learning rate {float(resumed_rates[0]):g}; "
                      f"--learning_rate {learning_rate:g} is not applied to a resumed run "
                      "(a new run, without --resume, takes it)",
                      ResumeWarning, stacklevel=3)


def write_run_config(run_dir: Path, record: Mapping[str, Any]) -> Path:
    """``config.json``: the run's settings as :func:`~..config.run_record` gives them, and what the run
    measured at its start (device, intensity scale...)."""
    path = Path(run_dir) / CONFIG_FILE
    atomic_write(path, lambda f: f.write(json.dumps(dict(record), indent=2).encode()))
    return path
