"""A logger that breaks -- unreachable tracking server, full disk, a third-party backend that
raises everywhere -- costs the log, never the run: training finishes, the fault is reported once, and
checkpoints, model file and reconstruction are intact."""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from ptychodus_torch_plugin import hookimpl
from ptychodus_torch_plugin.config import ExecutionConfig, ModelConfig, TrainingConfig
from ptychodus_torch_plugin.data import save_npz
from ptychodus_torch_plugin.data.simulate.config import SimulationConfig
from ptychodus_torch_plugin.data.simulate.simulate import simulate
from ptychodus_torch_plugin.loggers import csv_logger
from ptychodus_torch_plugin.loggers.base import LoggerBackend, MetricsLogger
from ptychodus_torch_plugin.models.model_file import load_model
from ptychodus_torch_plugin.plugins import build_plugin_host
from ptychodus_torch_plugin.training.checkpoints import load_checkpoint
from ptychodus_torch_plugin.training.trainer import train

TINY = ["--channels", "8,16,32", "--image_every_n_epochs", "0"]


@pytest.fixture(scope="module")
def scan_file(tmp_path_factory) -> Path:
    scan = simulate(SimulationConfig(patch_size=32, n_positions=36, nphotons=1e5, seed=1, probe_kind="disk"))
    return save_npz(scan, tmp_path_factory.mktemp("b_logger_scan") / "train.npz")


def _config(scan_file: Path, out: Path) -> TrainingConfig:
    return TrainingConfig(train_data_file=scan_file, output_dir=out, max_epochs=2, batch_size=8, quiet=True,
                          image_every_n_epochs=1, model=ModelConfig(gridsize=1, channels=(8, 16, 32)))


def _assert_outputs_intact(run_dir: Path, epochs: int = 2) -> None:
    """Checkpoints load, the model file loads and the reconstruction was written."""
    state = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert state["progress"]["epoch"] == epochs
    model, config, info = load_model(run_dir / "model.pt", build_plugin_host(load_entry_points=False))
    assert config.patch_size == 32 and info["status"] == "FINISHED"
    with np.load(run_dir / "reconstruction.npz") as saved:
        assert np.isfinite(saved["object"]).all() and saved["object"].shape[0] > 32


def _logger_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if "logger backend" in str(w.message)]


# --- (a) MLflow tracking server unreachable --------------------------------------------------------------


def _closed_port() -> int:
    """A local TCP port nobody listens on (port 9, 'discard', is normally closed too)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_mlflow_server_warns_once_and_training_finishes(scan_file, tmp_path):
    """Run as a user runs it: `--logger mlflow` against a URI where nothing listens."""
    pytest.importorskip("mlflow")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PTYCHODUS_TORCH_", "MLFLOW_"))}
    env["MLFLOW_TRACKING_URI"] = f"http://127.0.0.1:{_closed_port()}"
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "ptychodus_torch_plugin.train", "--train_data_file", str(scan_file),
         "--output_dir", "out", "--max_epochs", "2", "--batch_size", "8", "--accelerator", "cpu",
         "--logger", "mlflow", "--quiet", *TINY],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    reports = [line for line in result.stderr.splitlines() if "logger backend 'mlflow' failed" in line]
    assert len(reports) == 1, result.stderr
    assert "cannot be reached" in reports[0] and "Training continues without this logger" in reports[0]
    assert elapsed < 60, f"the unreachable server stalled the run for {elapsed:.0f} s"  # no MLflow back-off
    run_dir = tmp_path / "out" / "lightning_logs" / "version_0"
    _assert_outputs_intact(run_dir)
    assert not (run_dir / "mlflow_run_id").exists()


def test_mlflow_probe_is_bounded_in_time():
    from ptychodus_torch_plugin.loggers.mlflow_logger import probe_tracking_server

    started = time.monotonic()
    with pytest.raises(ConnectionError, match="cannot be reached"):
        probe_tracking_server(f"http://127.0.0.1:{_closed_port()}", timeout=2.0)
    assert time.monotonic() - started < 5
    probe_tracking_server("file:///nonexistent/mlruns")  # folders and databases are not probed


def test_missing_mlflow_package_still_fails_at_start_up(scan_file, tmp_path, monkeypatch):
    from ptychodus_torch_plugin.errors import MissingExtraError

    monkeypatch.setitem(sys.modules, "mlflow", None)
    with pytest.raises(MissingExtraError, match=r"ptychodus-torch-plugin\[mlflow\]"):
        train(_config(scan_file, tmp_path), ExecutionConfig(accelerator="cpu", logger="mlflow"))


# --- (b) disk full under the CSV logger -----------------------------------------------------------------


def _enospc(*_args: Any, **_kwargs: Any) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("when", ["at_start", "mid_run"])
def test_csv_logger_on_a_full_disk_warns_once_and_training_finishes(scan_file, tmp_path, monkeypatch, when):
    """Only the CSV logger's own writes fail (its module's ``atomic_write_text`` and ``os.fsync``):
    checkpoints and the model file, written by other modules, still go to disk."""
    monkeypatch.setattr(csv_logger, "os", SimpleNamespace(fsync=_enospc))  # every metrics row fails
    if when == "at_start":
        monkeypatch.setattr(csv_logger, "atomic_write_text", _enospc)  # metrics.csv cannot even be created
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = train(_config(scan_file, tmp_path), ExecutionConfig(accelerator="cpu", logger="csv"))
    assert result.status == "FINISHED" and result.epochs_completed == 2
    reports = _logger_warnings(caught)
    assert len(reports) == 1, reports
    assert "No space left on device" in reports[0]
    assert ("failed in start" in reports[0]) == (when == "at_start")
    _assert_outputs_intact(result.run_dir)


# --- (c) a third-party backend that raises everywhere ---------------------------------------------------


class Hostile(MetricsLogger):
    calls: list[str] = []

    def __init__(self, settings: Any) -> None:
        pass

    def _fail(self, method: str) -> None:
        Hostile.calls.append(method)
        raise RuntimeError(f"hostile backend fails in {method}")

    def start(self) -> None:
        self._fail("start")

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

    def finish(self, status: Any) -> None:
        self._fail("finish")


def _raise_in_create(settings: Any) -> MetricsLogger:
    raise RuntimeError("hostile backend fails in create")


class HostilePlugin:
    @hookimpl
    def ptychodus_torch_register_loggers(self) -> list[LoggerBackend]:
        return [LoggerBackend(name="hostile", create=Hostile),
                LoggerBackend(name="hostile-create", create=_raise_in_create)]


@pytest.mark.parametrize("backend", ["hostile", "hostile-create"])
def test_third_party_logger_raising_everywhere_warns_once_and_training_finishes(scan_file, tmp_path, backend):
    Hostile.calls.clear()
    host = build_plugin_host(load_entry_points=False, extra_plugins=[("hostile", HostilePlugin())])
    execution = ExecutionConfig(accelerator="cpu", logger=backend, per_step_metrics=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = train(_config(scan_file, tmp_path), execution, host)
    assert result.status == "FINISHED"
    reports = _logger_warnings(caught)
    assert len(reports) == 1, reports
    assert f"'{backend}' failed in start" in reports[0] and "hostile backend fails in" in reports[0]
    # A backend that never started gets no further calls: no half-open remote runs, no flood of errors.
    assert Hostile.calls == (["start"] if backend == "hostile" else [])
    _assert_outputs_intact(result.run_dir)
