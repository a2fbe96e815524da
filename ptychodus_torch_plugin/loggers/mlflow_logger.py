"""The ``mlflow`` backend, driven through ``MlflowClient`` only.

The fluent API (``mlflow.start_run``...) keeps one process-wide "active run"; using the client with an
explicit run id means this logger cannot collide with a user's own MLflow calls or a second run.

Where runs go: ``MLFLOW_TRACKING_URI`` when set (a server, a database, a folder); otherwise MLflow 3's
own default kind of store, a SQLite database, kept in the output folder: ``<output_dir>/mlflow.db``, with
the artifacts of experiments it creates in ``<output_dir>/mlartifacts`` (MLflow would put them under the
current directory). Nothing is set in the process environment; the database needs sqlalchemy and
alembic, which the ``mlflow`` extra brings (``mlflow-skinny`` alone lacks them).

An ``http(s)`` tracking server is probed with one short TCP connect (:data:`PROBE_TIMEOUT_S`) before the
client is made: MLflow's own HTTP client retries with a long back-off, so an unreachable server would
otherwise stall start-up for minutes. The probe raises :class:`ConnectionError`, which the trainer's
:class:`~.guard.GuardedLogger` reports once before training goes on without MLflow.

A resumed run (``resume``) starts a new MLflow run tagged with the run folder; MLflow would refuse to
change the value of a parameter inside the earlier run.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import hookimpl
from ..errors import ConfigError, MissingExtraError
from ._util import image_file_name, save_png
from .base import LoggerBackend, LoggerSettings, MetricsLogger, RunStatus

TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
LOCAL_STORE_FILE = "mlflow.db"
LOCAL_ARTIFACTS_FOLDER = "mlartifacts"

# MLflow's limits (mlflow.utils.validation); fixed here so that the limits hold for any server version.
MAX_PARAM_VALUE_LENGTH = 6000
MAX_KEY_LENGTH = 250
MAX_PARAMS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000

PROBE_TIMEOUT_S = 5.0
"""Seconds the start-up reachability probe of an ``http(s)`` tracking server may take."""

_BAD_KEY_CHARS = re.compile(r"[^\w./\- ]+")
TRUNCATION_MARK = "...[truncated]"


def mlflow_key(name: str) -> str:
    """A param/metric name MLflow accepts: allowed characters only, no empty/``.``/``..`` path parts."""
    parts = [_BAD_KEY_CHARS.sub("_", part) for part in str(name).split("/")]
    parts = [("_" if p in ("..", ".") else p) for p in parts if p]
    return ("/".join(parts) or "_")[:MAX_KEY_LENGTH]


def param_value(value: Any, limit: int = MAX_PARAM_VALUE_LENGTH) -> str:
    """``str(value)`` cut to MLflow's length limit, marked so a reader knows it was cut."""
    text = str(value)
    if len(text) <= limit:
        return text
    return text[: limit - len(TRUNCATION_MARK)] + TRUNCATION_MARK


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def local_store_uri(output_dir: Path) -> str:
    """The SQLite database in the output folder (``sqlite:////abs/path/mlflow.db``)."""
    return "sqlite:///" + str((Path(output_dir) / LOCAL_STORE_FILE).resolve())


def resolve_tracking_uri(output_dir: Path) -> str:
    """The user's ``MLFLOW_TRACKING_URI``, or the local SQLite store (see module doc)."""
    uri = os.environ.get(TRACKING_URI_ENV, "").strip()
    return uri or local_store_uri(output_dir)


def probe_tracking_server(uri: str, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Raise :class:`ConnectionError` when an ``http(s)`` tracking URI's host does not accept a TCP
    connection within ``timeout`` seconds; other URIs (folders, databases) are not probed."""
    from urllib.parse import urlsplit

    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise ConnectionError(f"MLflow tracking URI {uri!r} has an invalid port") from exc
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            pass
    except OSError as exc:
        raise ConnectionError(f"MLflow tracking server {uri} cannot be reached ({exc})") from exc


@contextlib.contextmanager
def _quiet_store_setup() -> Iterator[None]:
    """MLflow and alembic log each table they create at INFO, on stderr; a run's output keeps to its own
    lines. Their levels are restored afterwards."""
    loggers = [logging.getLogger(name) for name in ("alembic", "mlflow.store.db.utils")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


class MlflowLogger(MetricsLogger):
    """One MLflow run per training run; the run id is kept in ``run_dir/mlflow_run_id``."""

    RUN_ID_FILE = "mlflow_run_id"

    def __init__(self, settings: LoggerSettings) -> None:
        self.settings = settings
        self.tracking_uri: str | None = None
        self.run_id: str | None = None
        self._client: Any = None

    def start(self) -> None:
        from mlflow.tracking import MlflowClient

        self.tracking_uri = resolve_tracking_uri(self.settings.output_dir)
        probe_tracking_server(self.tracking_uri)
        if self.tracking_uri.startswith("sqlite:"):
            Path(self.settings.output_dir).mkdir(parents=True, exist_ok=True)
        with _quiet_store_setup():  # the first use of a SQLite store creates its tables
            self._client = MlflowClient(tracking_uri=self.tracking_uri)
            experiment_id = self._experiment_id(self.settings.experiment_name)
        tags = {"ptychodus_torch.run_dir": str(Path(self.settings.run_dir).resolve())}
        id_file = Path(self.settings.run_dir) / self.RUN_ID_FILE
        if self.settings.resume and id_file.is_file():
            tags["ptychodus_torch.resumed_from"] = id_file.read_text(encoding="utf-8").strip()
        run = self._client.create_run(experiment_id, run_name=self.settings.run_name, tags=tags)
        self.run_id = run.info.run_id
        Path(self.settings.run_dir).mkdir(parents=True, exist_ok=True)
        id_file.write_text(f"{self.run_id}\n", encoding="utf-8")

    def _experiment_id(self, name: str) -> str:
        from mlflow.exceptions import MlflowException

        experiment = self._client.get_experiment_by_name(name)
        if experiment is None:
            try:
                return self._client.create_experiment(name, artifact_location=self._artifact_location())
            except MlflowException:  # created meanwhile by a concurrent run
                experiment = self._client.get_experiment_by_name(name)
                if experiment is None:
                    raise
        if experiment.lifecycle_stage == "deleted":
            raise ConfigError(
                f"MLflow experiment {name!r} is deleted in {self.tracking_uri}; restore it "
                "(mlflow experiments restore) or choose another experiment name"
            )
        return experiment.experiment_id

    def _artifact_location(self) -> str | None:
        """Next to the local store; a store the user chose keeps its own artifact location."""
        if self.tracking_uri != local_store_uri(self.settings.output_dir):
            return None
        return (Path(self.settings.output_dir) / LOCAL_ARTIFACTS_FOLDER).resolve().as_uri()

    def log_hyperparams(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        merged = {mlflow_key(k): param_value(v) for k, v in params.items()}  # later duplicates win
        batch = [Param(k, v) for k, v in merged.items()]
        for chunk in _chunks(batch, MAX_PARAMS_PER_BATCH):
            self._client.log_batch(self.run_id, params=list(chunk))

    def log_metrics(self, metrics: Mapping[str, float], *, epoch: int, step: int) -> None:
        self._log_metrics(metrics, step=epoch, prefix="")

    def log_step_metrics(self, metrics: Mapping[str, float], *, epoch: int, step: int) -> None:
        if self.settings.per_step_metrics:
            self._log_metrics(metrics, step=step, prefix="step/")

    def _log_metrics(self, metrics: Mapping[str, float], *, step: int, prefix: str) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        merged = {mlflow_key(prefix + k): float(v) for k, v in metrics.items()}
        batch = [Metric(k, v, now, int(step)) for k, v in merged.items()]
        for chunk in _chunks(batch, MAX_METRICS_PER_BATCH):
            self._client.log_batch(self.run_id, metrics=list(chunk))

    def log_image(self, name: str, image: np.ndarray, *, epoch: int, step: int) -> None:
        with tempfile.TemporaryDirectory(prefix="ptychodus-torch-img-") as tmp:
            path = save_png(Path(tmp) / image_file_name(name, epoch), image)
            self._client.log_artifact(self.run_id, str(path), artifact_path="images")

    def log_artifact(self, path: Path) -> None:
        path = Path(path)
        if path.is_dir():
            self._client.log_artifacts(self.run_id, str(path), artifact_path=path.name)
        else:
            self._client.log_artifact(self.run_id, str(path))

    def finish(self, status: RunStatus) -> None:
        if self._client is not None and self.run_id is not None:
            self._client.set_terminated(self.run_id, status)


def _require_database_packages() -> None:
    """A SQLite store needs sqlalchemy and alembic; without them MLflow fails deep inside its store."""
    try:
        import alembic  # noqa: F401
        import sqlalchemy  # noqa: F401
    except ImportError as exc:
        raise MissingExtraError("MLflow's SQLite store", exc.name or "sqlalchemy", "mlflow") from exc


def create(settings: LoggerSettings) -> MlflowLogger:
    """Check for MLflow only now, so that the package imports without it."""
    try:
        import mlflow  # noqa: F401
    except ImportError as exc:
        raise MissingExtraError("MLflow logging", "mlflow", "mlflow") from exc
    if resolve_tracking_uri(settings.output_dir).startswith("sqlite:"):
        _require_database_packages()
    return MlflowLogger(settings)


@hookimpl
def ptychodus_torch_register_loggers() -> list[LoggerBackend]:
    return [
        LoggerBackend(
            name="mlflow",
            create=create,
            description="MLflow run (MLFLOW_TRACKING_URI, default <output_dir>/mlflow.db; extra: mlflow)",
        )
    ]
