"""A third-party logger backend for ptychodus-torch-plugin, packaged on its own.

Select it with ``--logger jsonl``. Every event becomes one JSON object on its own line in
``<run_dir>/events.jsonl``, flushed immediately, which suits tools that tail logs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ptychodus_torch_plugin import hookimpl
from ptychodus_torch_plugin.loggers.base import LoggerBackend, LoggerSettings, MetricsLogger, RunStatus


class JsonLinesLogger(MetricsLogger):
    def __init__(self, settings: LoggerSettings) -> None:
        self.path = Path(settings.run_dir) / "events.jsonl"
        self._file: Any = None

    def _write(self, event: str, **fields: Any) -> None:
        self._file.write(json.dumps({"event": event, **fields}) + "\n")
        self._file.flush()

    def start(self) -> None:
        self._file = self.path.open("a", encoding="utf-8")
        self._write("start")

    def log_hyperparams(self, params: Mapping[str, Any]) -> None:
        self._write("hyperparams", params=dict(params))

    def log_metrics(self, metrics: Mapping[str, float], *, epoch: int, step: int) -> None:
        self._write("metrics", epoch=epoch, step=step, metrics={k: float(v) for k, v in metrics.items()})

    def log_image(self, name: str, image: np.ndarray, *, epoch: int, step: int) -> None:
        self._write("image", name=name, epoch=epoch, shape=list(image.shape))

    def log_artifact(self, path: Path) -> None:
        self._write("artifact", path=str(path))

    def finish(self, status: RunStatus) -> None:
        self._write("finish", status=status)
        self._file.close()


@hookimpl
def ptychodus_torch_register_loggers() -> list[LoggerBackend]:
    return [LoggerBackend("jsonl", JsonLinesLogger, "one JSON object per line in events.jsonl")]
