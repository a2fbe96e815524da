"""``GuardedLogger``: a broken logger must not stop training, except when it cannot even start."""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ptychodus_torch_plugin.errors import MissingExtraError
from ptychodus_torch_plugin.loggers.base import MetricsLogger, RunStatus
from ptychodus_torch_plugin.loggers.csv_logger import CsvLogger
from ptychodus_torch_plugin.loggers.guard import GuardedLogger


class Broken(MetricsLogger):
    """Starts fine, then fails in every call -- like a disk that fills up right after start-up."""

    def __init__(self, fail_start: bool = False) -> None:
        self.fail_start = fail_start
        self.calls: list[str] = []

    def _fail(self, method: str) -> None:
        self.calls.append(method)
        raise OSError(28, f"No space left on device ({method})")

    def start(self) -> None:
        self.calls.append("start")
        if self.fail_start:
            raise ConnectionError("tracking server unreachable")

    def log_hyperparams(self, params: Mapping[str, Any]) -> None:
        self._fail("log_hyperparams")

    def log_metrics(self, metrics: Mapping[str, float], *, epoch: int, step: int) -> None:
        self._fail("log_metrics")

    def log_step_metrics(self, metrics: Mapping[str, float], *, epoch: int, step: int) -> None:
        self._fail("log_step_metrics")

    def log_image(self, name: str, image: np.ndarray, *, epoch: int, step: int) -> None:
        self._fail("log_image")

    def log_artifact(self, path: Path) -> None:
        self._fail("log_artifact")

    def finish(self, status: RunStatus) -> None:
        self._fail("finish")


def drive(logger: MetricsLogger, epochs: int = 3) -> None:
    """The calls a trainer makes over a short run."""
    logger.start()
    logger.log_hyperparams({"lr": 0.1})
    for epoch in range(epochs):
        logger.log_step_metrics({"loss": 1.0}, epoch=epoch, step=epoch + 1)
        logger.log_metrics({"loss": 1.0}, epoch=epoch, step=epoch + 1)
        logger.log_image("amp", np.zeros((2, 2)), epoch=epoch, step=epoch + 1)
    logger.log_artifact(Path("model.pt"))
    logger.finish("FINISHED")


def test_errors_after_start_warn_once_and_are_counted() -> None:
    inner = Broken()
    guarded = GuardedLogger(inner, "broken-backend")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        drive(guarded)
    runtime = [w for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(runtime) == 1
    message = str(runtime[0].message)
    assert "broken-backend" in message and "No space left on device" in message
    assert guarded.failures == 1 + 3 * 3 + 1 + 1  # hparams, 3 x (step, epoch, image), artifact, finish
    assert isinstance(guarded.first_error, OSError) and "log_hyperparams" in str(guarded.first_error)
    assert inner.calls[-1] == "finish"  # attempted despite all the earlier failures


def test_start_failure_warns_once_and_disables_the_logger() -> None:
    """A backend that cannot start (server unreachable, disk full, a bug) costs the log, not the run."""
    inner = Broken(fail_start=True)
    guarded = GuardedLogger(inner, "remote")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        drive(guarded)
    runtime = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(runtime) == 1
    assert "'remote' failed in start" in runtime[0] and "unreachable" in runtime[0]
    assert "continues without this logger" in runtime[0]
    assert guarded.disabled and guarded.failures == 1
    assert isinstance(guarded.first_error, ConnectionError)
    assert inner.calls == ["start"]  # never called again, not even finish


def test_deliberate_start_error_still_stops_the_run() -> None:
    """A PtychodusTorchError from start (missing extra, bad setting) is the user's to fix: it propagates."""

    class NeedsExtra(Broken):
        def start(self) -> None:
            raise MissingExtraError("Remote logging", "remotelib", "remote")

    guarded = GuardedLogger(NeedsExtra(), "remote")
    with pytest.raises(MissingExtraError, match=r"\[remote\]") as info:
        guarded.start()
    assert any("remote" in note for note in getattr(info.value, "__notes__", []))
    assert guarded.failures == 0 and not guarded.disabled


def test_warnings_as_errors_still_do_not_stop_training(caplog: pytest.LogCaptureFixture) -> None:
    guarded = GuardedLogger(Broken())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        drive(guarded, epochs=1)
    assert guarded.failures == 6
    assert "Broken" in caplog.text  # reported through logging instead


def test_working_logger_passes_through(make_settings) -> None:
    settings = make_settings()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        guarded = GuardedLogger(CsvLogger(settings), "csv")
        drive(guarded)
    assert guarded.failures == 0 and guarded.first_error is None
    assert (settings.run_dir / "metrics.csv").read_text().count("\n") == 4


def test_real_backend_losing_its_folder_keeps_training_alive(make_settings) -> None:
    settings = make_settings()
    guarded = GuardedLogger(CsvLogger(settings), "csv")
    guarded.start()
    shutil.rmtree(settings.run_dir)  # e.g. a clean-up job deleting the output folder mid-run
    with pytest.warns(RuntimeWarning, match="'csv' failed in log_hyperparams"):
        guarded.log_hyperparams({"lr": 0.1})
    guarded.log_image("amp", np.zeros((2, 2)), epoch=0, step=1)  # images/ can be re-created: no error
    guarded.finish("FINISHED")
    assert guarded.failures == 1
