"""Every hook a plugin can implement. Implement one with ``@ptychodus_torch_plugin.hookimpl``.

Two kinds of hook:

* *Registration hooks* (``ptychodus_torch_register_*``) are called once when the plugin host is built.
  Each returns a list of named backends. The host indexes them by name; choosing a backend is always a
  lookup by that name (``--logger csv``), never a matter of which plugin happened to answer first. Two
  plugins registering the same name is an error that names both.
* *Trainer events* (``ptychodus_torch_train_*``, ``..._epoch_end``, ``..._checkpoint_saved``) are called by
  the training loop on every registered plugin, in no guaranteed order. Their return values are ignored,
  and an exception raised in one is reported and does not stop training.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pluggy

from . import PROJECT_NAME

if TYPE_CHECKING:  # only for annotations: importing the package must stay light
    from .accelerators import Accelerator
    from .loggers.base import LoggerBackend, RunStatus
    from .models.base import ModelType
    from .plugin_types import RunContext
    from .reconstructors.base import Reconstructor

hookspec = pluggy.HookspecMarker(PROJECT_NAME)


# --- registration hooks --------------------------------------------------------------------------------


@hookspec
def ptychodus_torch_register_loggers() -> list[LoggerBackend]:
    """Called once while the plugin host is built.

    Return the logger backends this plugin provides (for ``--logger NAME``). Creating a backend must not
    import its optional packages; :meth:`LoggerBackend.create` does that, and raises
    :class:`~ptychodus_torch_plugin.errors.MissingExtraError` when they are missing.
    """


@hookspec
def ptychodus_torch_register_accelerators() -> list[Accelerator]:
    """Called once while the plugin host is built.

    Return the accelerators this plugin provides (for ``--accelerator NAME[:INDEX]``). An accelerator
    with an ``auto_priority`` takes part in ``--accelerator auto``: the available one with the highest
    priority wins.
    """


@hookspec
def ptychodus_torch_register_model_types() -> list[ModelType]:
    """Called once while the plugin host is built.

    Return the model types (generator architecture + training loss, e.g. ``pinn``, ``supervised``) this
    plugin provides. The trainer, the ``reconstruct`` command and the ptychodus reconstructor library
    offer every registered model type by name.
    """


@hookspec
def ptychodus_torch_register_reconstructors() -> list[Reconstructor]:
    """Called once while the plugin host is built.

    Return the reconstructors this plugin provides (for ``reconstruct --reconstructor NAME``, the
    ``plugins`` listing and ptychodus's algorithm list): named functions from a
    :class:`~ptychodus_torch_plugin.reconstructors.base.ReconstructRequest` (scan, device, optional trained
    model and starting object, settings, progress callback) to a
    :class:`~ptychodus_torch_plugin.reconstructors.base.Reconstruction`. Declare ``needs_model=True`` when
    it cannot work without a trained model; the host then refuses to run it without one.
    """


# --- trainer events ------------------------------------------------------------------------------------


@hookspec
def ptychodus_torch_train_start(run: RunContext) -> None:
    """Called once after the model, data and logger are ready and before the first epoch."""


@hookspec
def ptychodus_torch_epoch_end(run: RunContext, epoch: int, metrics: Mapping[str, float]) -> None:
    """Called after every finished epoch (validation included) with that epoch's metrics."""


@hookspec
def ptychodus_torch_checkpoint_saved(run: RunContext, path: Path, kind: str) -> None:
    """Called after a checkpoint file is completely written; ``kind`` is ``"last"``, ``"best"`` or
    ``"model"`` (the final model file)."""


@hookspec
def ptychodus_torch_train_end(run: RunContext, status: RunStatus, metrics: Mapping[str, float]) -> None:
    """Called once when training stops without an exception: ``status`` is ``"FINISHED"`` or
    ``"KILLED"`` (stopped by Ctrl-C or SIGTERM after saving a checkpoint); ``metrics`` are the last
    epoch's."""


@hookspec
def ptychodus_torch_train_failed(run: RunContext, error: BaseException) -> None:
    """Called once when training stops because of an exception, before the exception propagates."""
