"""The ``tensorboard`` backend: event files in the run's version folder.

``tensorboard --logdir <output_dir>/lightning_logs`` then shows one run per ``version_<N>``.

Every event uses the optimiser step as x-axis (PyTorch Lightning's convention): epoch metrics under their
own names plus an ``epoch`` scalar, per-step metrics (``per_step_metrics``) under ``step/<key>``, pictures
under their name. One axis for everything is also what makes ``resume`` clean: TensorBoard purges
events by a single step number, and the first event after a resume writes such a purge marker
(``SessionLog.START``, as ``SummaryWriter(purge_step=...)`` does), so the earlier run's events at or
after that step are hidden and curves show each epoch once.

Hyperparameters are written for the HParams dashboard into the *same* folder
(``SummaryWriter.add_hparams`` would start a sub-folder, i.e. a second run), when the first epoch's
metrics arrive, so that the dashboard can list those metric names next to the hyperparameters.
"""

from __future__ import annotations

import numbers
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .. import hookimpl
from ..errors import MissingExtraError
from ._util import to_unit_range
from .base import LoggerBackend, LoggerSettings, MetricsLogger, RunStatus


def _hparam_value(value: Any) -> float | str | bool:
    """The hparams plugin takes only numbers, strings and bools; None and others become strings."""
    if isinstance(value, (bool, np.bool_, str)):
        return value if isinstance(value, str) else bool(value)
    if isinstance(value, numbers.Real):
        return float(value)
    return str(value)


class TensorBoardLogger(MetricsLogger):
    """Writes scalars, hyperparameters and pictures with ``torch.utils.tensorboard``."""

    def __init__(self, settings: LoggerSettings, writer_class: type) -> None:
        self.settings = settings
        self._writer_class = writer_class
        self._writer: Any = None
        self._hparams: dict[str, Any] | None = None
        self._hparams_written = False
        self._metric_names: list[str] = []
        self._purge_pending = settings.resume

    def start(self) -> None:
        Path(self.settings.run_dir).mkdir(parents=True, exist_ok=True)
        self._writer = self._writer_class(log_dir=str(self.settings.run_dir))

    def log_hyperparams(self, params: Mapping[str, Any]) -> None:
        self._hparams = {**(self._hparams or {}), **params}
        if self._hparams_written:  # a second call after the first epoch: write the merged set again
            self._write_hparams()

    def log_metrics(self, metrics: Mapping[str, float], *, epoch: int, step: int) -> None:
        self._purge_from(step)
        if self._hparams is not None and not self._hparams_written:
            self._metric_names = list(metrics)
            self._write_hparams()
        for key, value in metrics.items():
            self._writer.add_scalar(key, float(value), global_step=step)
        if "epoch" not in metrics:
            self._writer.add_scalar("epoch", epoch, global_step=step)
        self._writer.flush()

    def log_step_metrics(self, metrics: Mapping[str, float], *, epoch: int, step: int) -> None:
        if not self.settings.per_step_metrics:
            return
        self._purge_from(step)
        for key, value in metrics.items():
            self._writer.add_scalar(f"step/{key}", float(value), global_step=step)

    def log_image(self, name: str, image: np.ndarray, *, epoch: int, step: int) -> None:
        self._purge_from(step)
        self._writer.add_image(name, to_unit_range(image), global_step=step, dataformats="HW")

    def finish(self, status: RunStatus) -> None:
        if self._writer is None:
            return
        if self._hparams is not None and not self._hparams_written:
            self._write_hparams()
        self._writer.close()
        self._writer = None

    def _purge_from(self, step: int) -> None:
        """On resume, before the first new event: hide the earlier run's events at ``step`` or later."""
        if not self._purge_pending:
            return
        from tensorboard.compat.proto.event_pb2 import Event, SessionLog

        start = SessionLog(status=SessionLog.START)
        self._writer.file_writer.add_event(Event(step=int(step), wall_time=time.time(), session_log=start))
        self._purge_pending = False

    def _write_hparams(self) -> None:
        from torch.utils.tensorboard.summary import hparams

        values = {str(k): _hparam_value(v) for k, v in (self._hparams or {}).items()}
        summaries = hparams(values, {name: 0.0 for name in self._metric_names})
        file_writer = self._writer.file_writer
        for summary in summaries:
            file_writer.add_summary(summary)
        self._hparams_written = True


def create(settings: LoggerSettings) -> TensorBoardLogger:
    """Import TensorBoard only now, so that the package imports without it."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:
        raise MissingExtraError("TensorBoard logging", "tensorboard", "tensorboard") from exc
    return TensorBoardLogger(settings, SummaryWriter)


@hookimpl
def ptychodus_torch_register_loggers() -> list[LoggerBackend]:
    return [
        LoggerBackend(
            name="tensorboard",
            create=create,
            description="TensorBoard event files in lightning_logs/version_<N> (extra: tensorboard)",
        )
    ]
