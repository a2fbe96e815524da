"""Training killed from outside: SIGKILL mid-epoch then ``--resume``; SIGTERM/SIGINT with the MLflow logger."""

from __future__ import annotations

import csv
import os
import signal
import time
from pathlib import Path

import pytest
from reliability_helpers import TINY, make_scan, metric_epochs, python, start_train, wait_for_epochs

from ptychodus_torch_plugin.models.model_file import load_model
from ptychodus_torch_plugin.plugins import build_plugin_host
from ptychodus_torch_plugin.training.checkpoints import load_checkpoint


@pytest.fixture(scope="module")
def scan(tmp_path_factory) -> Path:
    return make_scan(tmp_path_factory.mktemp("kill_scan"), "train")


def _losses(run_dir: Path) -> dict[int, str]:
    with open(run_dir / "metrics.csv", newline="") as handle:
        return {int(row["epoch"]): row["train_loss"] for row in csv.DictReader(handle)}


def test_sigkill_mid_epoch_then_resume_gives_every_epoch_once_and_loadable_files(scan, tmp_path):
    max_epochs = 8
    args = ["--train_data_file", str(scan), "--output_dir", "out", "--accelerator", "cpu", "--batch_size", "2",
            "--logger", "csv", "--quiet", "--num-workers", "0", *TINY]
    process = start_train([*args, "--max_epochs", str(max_epochs)], tmp_path)
    run_dir = tmp_path / "out" / "lightning_logs" / "version_0"
    try:
        wait_for_epochs(run_dir, 2, process)
        os.kill(process.pid, signal.SIGKILL)  # no handler, no cleanup: the next epoch (or a save) is cut short
    finally:
        process.kill()
        process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL
    before = _losses(run_dir)
    assert 2 <= len(before) < max_epochs, "training finished before the kill; make the epochs longer"
    assert not (run_dir / "model.pt").exists()
    done = int(load_checkpoint(run_dir / "checkpoints" / "last.pt")["progress"]["epoch"])
    # The kill may land between an epoch's metrics row and its checkpoint: that epoch is then redone.
    assert len(before) - 1 <= done <= len(before) and done >= 1
    # A write cut short by a kill leaves at most a hidden temporary file; resume must never read one.
    garbage = run_dir / "checkpoints" / ".last.pt.killed.tmp"
    garbage.write_bytes(b"half a checkpoint")
    (run_dir / ".model.pt.killed.tmp").write_bytes(b"")
    resumed = python(["-m", "ptychodus_torch_plugin.train", *args, "--max_epochs", str(max_epochs), "--resume"],
                     cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert not (tmp_path / "out" / "lightning_logs" / "version_1").exists()  # continued in place
    after = _losses(run_dir)
    assert metric_epochs(run_dir) == list(range(max_epochs))  # every epoch exactly once, in order
    assert {e: after[e] for e in range(done)} == {e: before[e] for e in range(done)}  # resumed, not restarted
    final = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert final["progress"]["epoch"] == max_epochs
    host = build_plugin_host(load_entry_points=False)
    files = [p for p in run_dir.rglob("*.pt")]
    assert {p.relative_to(run_dir).as_posix() for p in files} >= {"model.pt", "checkpoints/last.pt",
                                                                   "checkpoints/best.pt"}
    for path in files:
        if path.name == "model.pt":
            load_model(path, host)
        else:
            load_checkpoint(path)


def _mlflow_run(output_dir: Path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri="sqlite:///" + str((output_dir / "mlflow.db").resolve()))
    runs = [run for experiment in client.search_experiments()
            for run in client.search_runs([experiment.experiment_id])]
    assert len(runs) == 1, runs
    return runs[0]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_with_mlflow_logger_exits_130_and_marks_the_run_killed(scan, tmp_path, sig, monkeypatch):
    pytest.importorskip("mlflow")
    process = start_train(["--train_data_file", str(scan), "--output_dir", "out", "--accelerator", "cpu",
                           "--batch_size", "4", "--logger", "mlflow", "--quiet", "--num-workers", "0",
                           "--max_epochs", "500", *TINY], tmp_path)
    last = tmp_path / "out" / "lightning_logs" / "version_0" / "checkpoints" / "last.pt"
    try:
        deadline = time.monotonic() + 120
        while not last.is_file() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert process.poll() is None, process.stderr.read()
        process.send_signal(sig)
        _, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert last.is_file()
    load_checkpoint(last)
    run = _mlflow_run(tmp_path / "out")
    assert run.info.status == "KILLED"
    assert run.data.metrics.get("train_loss") is not None
