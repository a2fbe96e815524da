"""The logger interface that every backend (built-in or third-party) implements.

A trainer never names a backend: it asks the plugin host for one by name, gets a :class:`LoggerBackend`,
and calls :meth:`LoggerBackend.create` with :class:`LoggerSettings`. The returned :class:`MetricsLogger`
receives the run's events in this order: ``start``, ``log_hyperparams``, any number of ``log_metrics`` /
``log_image`` / ``log_artifact``, and exactly one ``finish``.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..run_folders import RUNS_FOLDER, allocate_run_dir, latest_run_dir  # noqa: F401 (re-exported)

RunStatus = Literal["FINISHED", "FAILED", "KILLED"]



@dataclass(frozen=True)
class LoggerSettings:
    """What a backend needs to know to start logging one run."""

    output_dir: Path
    """The run's output directory as the user gave it (``--output_dir``)."""
    run_dir: Path
    """This run's own folder, ``<output_dir>/lightning_logs/version_<N>``; it already exists."""
    run_name: str = "ptychodus-torch"
    experiment_name: str = "ptychodus-torch"
    per_step_metrics: bool = False
    """Also keep one row/point per optimiser step, not only one per epoch."""
    resume: bool = False
    """The run continues an earlier one in the same ``run_dir`` (``--resume``): append, do not restart."""
    options: Mapping[str, str] = field(default_factory=dict)
    """Free-form backend options (``--logger-option key=value``) for third-party backends."""


class MetricsLogger(abc.ABC):
    """One run's sink for metrics, hyperparameters, pictures and files."""

    @abc.abstractmethod
    def start(self) -> None:
        """Open files or remote runs. Raise here (not later) when the backend cannot work at all."""

    @abc.abstractmethod
    def log_hyperparams(self, params: Mapping[str, Any]) -> None:
        """Record the run's configuration once; values are plain str/int/float/bool/None."""

    @abc.abstractmethod
    def log_metrics(self, metrics: Mapping[str, float], *, epoch: int, step: int) -> None:
        """Record one epoch's metrics (``epoch``, ``step`` = optimiser steps so far)."""

    def log_step_metrics(self, metrics: Mapping[str, float], *, epoch: int, step: int) -> None:
        """Record metrics of a single optimiser step; only called when ``per_step_metrics`` is set."""

    def log_image(self, name: str, image: np.ndarray, *, epoch: int, step: int) -> None:
        """Record a 2-D float picture (e.g. amplitude or phase of the current reconstruction)."""

    def log_artifact(self, path: Path) -> None:
        """Attach a file produced by the run (model file, pictures)."""

    @abc.abstractmethod
    def finish(self, status: RunStatus) -> None:
        """Flush and close; ``status`` says how the run ended."""


@dataclass(frozen=True)
class LoggerBackend:
    """A named logger backend, as registered through the ``ptychodus_torch_register_loggers`` hook."""

    name: str
    create: Callable[[LoggerSettings], MetricsLogger]
    """Build the logger. Raise :class:`~ptychodus_torch_plugin.errors.MissingExtraError` when an optional
    package is missing, so the run fails at start-up with a message naming the extra."""
    description: str = ""
