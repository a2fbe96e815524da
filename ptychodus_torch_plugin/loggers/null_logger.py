"""The ``none`` backend: accepts every event and writes nothing, not even a folder.

Meant for smoke tests and CI runs (``--logger none --quiet``) where only the exit status matters.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .. import hookimpl
from .base import LoggerBackend, LoggerSettings, MetricsLogger, RunStatus


class NullLogger(MetricsLogger):
    """Discards everything."""

    def __init__(self, settings: LoggerSettings | None = None) -> None:
        self.settings = settings

    def start(self) -> None:
        pass

    def log_hyperparams(self, params: Mapping[str, Any]) -> None:
        pass

    def log_metrics(self, metrics: Mapping[str, float], *, epoch: int, step: int) -> None:
        pass

    def log_step_metrics(self, metrics: Mapping[str, float], *, epoch: int, step: int) -> None:
        pass

    def log_image(self, name: str, image: np.ndarray, *, epoch: int, step: int) -> None:
        pass

    def log_artifact(self, path: Path) -> None:
        pass

    def finish(self, status: RunStatus) -> None:
        pass


@hookimpl
def ptychodus_torch_register_loggers() -> list[LoggerBackend]:
    return [LoggerBackend(name="none", create=NullLogger, description="log nothing (smoke tests, CI)")]
