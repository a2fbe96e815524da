"""The train and reconstruct command lines, run as a user runs them (subprocesses)."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "pytorch_integration" / "minimal_dataset_v2.npz"
TINY = ["--channels", "8,16,32", "--image_every_n_epochs", "0"]


def _python(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PTYCHODUS_TORCH_", "MLFLOW_"))}
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def test_issue_smoke_command_writes_metrics_csv(tmp_path):
    """The exact command from the issue: CPU, csv logger, metrics.csv in version_0."""
    result = _python(["-m", "ptychodus_torch_plugin.train", "--train_data_file", str(FIXTURE),
                      "--test_data_file", str(FIXTURE), "--output_dir", "tmp/logger_smoke", "--n_images", "64",
                      "--max_epochs", "1", "--gridsize", "2", "--batch_size", "4", "--accelerator", "cpu",
                      "--deterministic", "--num-workers", "0", "--logger", "csv"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run_dir = tmp_path / "tmp" / "logger_smoke" / "lightning_logs" / "version_0"
    with open(run_dir / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 1 and rows[0]["epoch"] == "0" and float(rows[0]["train_loss"]) < 0
    assert (run_dir / "model.pt").is_file() and (run_dir / "reconstruction.png").is_file()


def test_train_then_reconstruct_every_position(tiny_scans, tmp_path):
    train_file, test_file = tiny_scans
    trained = _python(["-m", "ptychodus_torch_plugin", "train", "--train_data_file", str(train_file),
                       "--output_dir", "out", "--max_epochs", "1", "--gridsize", "1", "--accelerator", "cpu",
                       "--logger", "none", "--quiet", *TINY], cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    assert not (tmp_path / "out" / "lightning_logs" / "version_0" / "metrics.csv").exists()  # logger none
    result = _python(["-m", "ptychodus_torch_plugin.reconstruct", "--model", "out", "--data_file", str(test_file),
                      "--output_dir", "recon", "--inference_batch_size", "5", "--accelerator", "cpu",
                      "--ptychodus-dir", "recon/ptychodus", "--precision", "fp32", "--no-channels-last"],
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["patterns"] == 36 and summary["quality"]["amplitude_ssim"] is not None
    with np.load(tmp_path / "recon" / "reconstruction.npz") as saved:
        weights, obj = saved["weights"], saved["object"]
        assert np.iscomplexobj(obj) and saved["amplitude"].shape == obj.shape == weights.shape
        # Every position contributed: the weight under each position's centre is positive.
        rows, cols = np.round(saved["positions"]).astype(int).T
        assert (weights[rows, cols] > 0).all()
    assert (tmp_path / "recon" / "reconstruction.png").stat().st_size > 1000
    from ptychodus_torch_plugin.data import load_scan

    product = load_scan(tmp_path / "recon" / "ptychodus")  # ptychodus's diffraction.h5 + product.h5 pair
    np.testing.assert_allclose(product.object_truth, obj, atol=1e-6)
    np.testing.assert_allclose(product.positions, load_scan(test_file).positions, atol=1e-9)


@pytest.mark.parametrize("args, message", [
    (["--logger", "nope"], "unknown logger 'nope'"),
    (["--accelerator", "tpu"], "unknown accelerator 'tpu'"),
    (["--max_epochs", "0"], "--max_epochs must be at least 1"),
    (["--train_data_file", "missing.npz"], "missing.npz"),
])
def test_bad_input_is_one_line_and_exit_2(tiny_scans, tmp_path, args, message):
    base = {"--train_data_file": str(tiny_scans[0]), "--output_dir": "out"}
    for flag, value in zip(args[::2], args[1::2]):
        base[flag] = value
    base.setdefault("--accelerator", "cpu")
    result = _python(["-m", "ptychodus_torch_plugin.train", *[x for kv in base.items() for x in kv], "--quiet"],
                     cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("command", ["train", "reconstruct"])
def test_cuda_graphs_without_cuda_is_one_line_and_exit_2(tiny_scans, tmp_path, command):
    if command == "train":
        args = ["--train_data_file", str(tiny_scans[0]), "--output_dir", "out"]
    else:
        args = ["--model", "no_model_needed.pt", "--data_file", str(tiny_scans[1]), "--output_dir", "recon"]
    result = _python(["-m", f"ptychodus_torch_plugin.{command}", *args, "--accelerator", "cpu", "--cuda-graphs",
                      "--quiet"], cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "--cuda-graphs needs a CUDA device" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_disable_mlflow_is_deprecated_and_means_no_logger(tiny_scans, tmp_path):
    """A plain run, no -W flag: the warning is on stderr all the same."""
    result = _python(["-m", "ptychodus_torch_plugin.train",
                      "--train_data_file", str(tiny_scans[0]), "--output_dir", "out", "--max_epochs", "1",
                      "--accelerator", "cpu", "--disable_mlflow", *TINY], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "DeprecationWarning" in result.stderr and "--logger none --quiet" in result.stderr
    assert result.stdout == ""  # quiet
    assert not (tmp_path / "out" / "lightning_logs" / "version_0" / "metrics.csv").exists()


def test_a_user_filter_still_decides_about_the_deprecation_warning(tiny_scans, tmp_path):
    result = _python(["-W", "ignore::DeprecationWarning", "-m", "ptychodus_torch_plugin.train",
                      "--train_data_file", str(tiny_scans[0]), "--output_dir", "out", "--max_epochs", "1",
                      "--accelerator", "cpu", "--disable_mlflow", *TINY], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "DeprecationWarning" not in result.stderr


def test_ctrl_c_stops_after_a_checkpoint_and_keeps_finished_epochs(tiny_scans, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PTYCHODUS_TORCH_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "ptychodus_torch_plugin.train", "--train_data_file", str(tiny_scans[0]),
         "--output_dir", "out", "--max_epochs", "500", "--accelerator", "cpu", "--batch_size", "4", "--quiet", *TINY],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run_dir = tmp_path / "out" / "lightning_logs" / "version_0"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        metrics = run_dir / "metrics.csv"
        if metrics.is_file() and len(metrics.read_text().splitlines()) >= 3:  # header + 2 epochs
            break
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    with open(run_dir / "metrics.csv", newline="") as handle:
        epochs = [int(r["epoch"]) for r in csv.DictReader(handle)]
    assert epochs == list(range(len(epochs))) and 2 <= len(epochs) < 500
    assert (run_dir / "checkpoints" / "last.pt").is_file() and (run_dir / "model.pt").is_file()
    resumed = _python(["-m", "ptychodus_torch_plugin.train", "--train_data_file", str(tiny_scans[0]),
                       "--output_dir", "out", "--max_epochs", str(len(epochs) + 1), "--accelerator", "cpu",
                       "--batch_size", "4", "--quiet", "--resume", *TINY], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    with open(run_dir / "metrics.csv", newline="") as handle:
        assert [int(r["epoch"]) for r in csv.DictReader(handle)] == list(range(len(epochs) + 1))


def test_command_line_defaults_are_the_config_defaults(tmp_path):
    """One source of truth: a bare `train` command builds exactly the dataclasses' defaults."""
    import argparse

    from ptychodus_torch_plugin.cli.train import add_arguments, build_configs
    from ptychodus_torch_plugin.config import ExecutionConfig, ModelConfig, TrainingConfig

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    training, execution = build_configs(parser.parse_args(["--train_data_file", "a.npz", "--output_dir", "out"]))[:2]
    assert training == TrainingConfig(train_data_file=Path("a.npz"), output_dir=Path("out"), model=ModelConfig())
    assert execution.accelerator == ExecutionConfig().accelerator


def test_normalization_reaches_the_model_and_an_unknown_one_is_refused(tmp_path):
    import argparse

    from ptychodus_torch_plugin.cli.train import add_arguments, build_configs

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    training = build_configs(parser.parse_args(["--train_data_file", "a.npz", "--output_dir", "out",
                                                "--normalization", "none"]))[0]
    assert training.model.normalization == "none"
    refused = _python(["-m", "ptychodus_torch_plugin", "train", "--train_data_file", "a.npz", "--output_dir", "out",
                       "--normalization", "batch"], cwd=tmp_path)
    assert refused.returncode == 2 and "invalid choice: 'batch'" in refused.stderr


def test_pool_last_stage_reaches_the_model_both_ways():
    import argparse

    from ptychodus_torch_plugin.cli.train import add_arguments, build_configs

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    common = ["--train_data_file", "a.npz", "--output_dir", "out"]
    for flag, expected in (("--no-pool_last_stage", False), ("--pool_last_stage", True)):
        assert build_configs(parser.parse_args([*common, flag]))[0].model.pool_last_stage is expected


def test_resume_with_another_learning_rate_says_the_checkpoint_s_rate_is_kept(tmp_path, tiny_scans):
    """The optimizer's state carries its rate, so ``--resume --learning_rate X`` goes on at the old one. A user
    who asked for X must read that in the plain command's output, not find it later in metrics.csv."""
    common = ["-m", "ptychodus_torch_plugin", "train", "--train_data_file", str(tiny_scans[0]), "--output_dir", "out",
              "--accelerator", "cpu", "--batch_size", "4", "--quiet", *TINY]
    first = _python([*common, "--max_epochs", "1"], cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    resumed = _python([*common, "--max_epochs", "2", "--resume", "--learning_rate", "1e-4"], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "the run goes on at the checkpoint's learning rate 0.001" in resumed.stderr
    assert "--learning_rate 0.0001 is not applied" in resumed.stderr
    with open(tmp_path / "out" / "lightning_logs" / "version_0" / "metrics.csv", newline="") as handle:
        assert [float(r["lr"]) for r in csv.DictReader(handle)][-1] == 1e-3
    same = _python([*common, "--max_epochs", "3", "--resume"], cwd=tmp_path)
    assert same.returncode == 0 and "learning rate" not in same.stderr
