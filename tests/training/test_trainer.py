"""The training loop: hooks, checkpoints, resume, determinism, early stopping, model files."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from training_helpers import CPU, TINY_CHANNELS, tiny_config

from ptychodus_torch_plugin import hookimpl
from ptychodus_torch_plugin.config import ExecutionConfig, ModelConfig
from ptychodus_torch_plugin.errors import ConfigError, MissingExtraError, ModelFileError
from ptychodus_torch_plugin.models.model_file import load_model
from ptychodus_torch_plugin.plugins import build_plugin_host
from ptychodus_torch_plugin.training.trainer import train


def _rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "metrics.csv", newline="") as handle:
        return list(csv.DictReader(handle))


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple] = []

    @hookimpl
    def ptychodus_torch_train_start(self, run):
        self.events.append(("start", run.run_dir.name))

    @hookimpl
    def ptychodus_torch_epoch_end(self, epoch, metrics):
        self.events.append(("epoch", epoch, "train_loss" in metrics and "val_loss" in metrics))

    @hookimpl
    def ptychodus_torch_checkpoint_saved(self, path, kind):
        assert Path(path).is_file()
        self.events.append(("checkpoint", kind))

    @hookimpl
    def ptychodus_torch_train_end(self, status):
        self.events.append(("end", status))

    @hookimpl
    def ptychodus_torch_train_failed(self, error):
        self.events.append(("failed", type(error).__name__))


def test_training_fires_hooks_writes_metrics_checkpoints_model_and_pictures(tiny_scans, tmp_path):
    recorder = Recorder()
    host = build_plugin_host(load_entry_points=False, extra_plugins=[("recorder", recorder)])
    result = train(tiny_config(*tiny_scans, tmp_path, max_epochs=3), CPU, host)
    assert result.status == "FINISHED" and result.epochs_completed == 3
    assert result.run_dir == tmp_path / "lightning_logs" / "version_0"
    events = recorder.events
    assert events[0] == ("start", "version_0") and events[-1] == ("end", "FINISHED")
    assert [e for e in events if e[0] == "epoch"] == [("epoch", i, True) for i in range(3)]
    kinds = [e[1] for e in events if e[0] == "checkpoint"]
    assert kinds.count("last") == 3 and "best" in kinds and kinds[-1] == "model"
    rows = _rows(result.run_dir)
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    assert all(float(r["train_loss"]) == float(r["train_loss"]) for r in rows)  # not NaN
    assert {"step", "val_loss", "lr", "elapsed_seconds"} <= set(rows[0])
    for name in ("model.pt", "reconstruction.npz", "reconstruction.png", "loss.png", "config.json",
                 "checkpoints/last.pt", "checkpoints/best.pt", "hparams.yaml"):
        assert (result.run_dir / name).is_file(), name
    assert result.quality is not None and "amplitude_ssim" in result.quality


def test_deterministic_runs_are_bit_identical(tiny_scans, tmp_path):
    losses = []
    for name in ("a", "b"):
        result = train(tiny_config(*tiny_scans, tmp_path / name, deterministic=True, seed=3), CPU)
        losses.append([(r["train_loss"], r["val_loss"]) for r in _rows(result.run_dir)])
    assert losses[0] == losses[1]
    assert len(losses[0]) == 2
    assert not torch.are_deterministic_algorithms_enabled()  # process-wide setting restored after the run


def test_worker_processes_give_the_same_batches(tiny_scans, tmp_path):
    losses = []
    for workers in (0, 2):
        result = train(tiny_config(*tiny_scans, tmp_path / str(workers), deterministic=True, num_workers=workers), CPU)
        losses.append([r["train_loss"] for r in _rows(result.run_dir)])
    assert losses[0] == losses[1]


def test_resume_continues_exactly_without_duplicate_or_missing_epochs(tiny_scans, tmp_path):
    straight = train(tiny_config(*tiny_scans, tmp_path / "straight", max_epochs=4, deterministic=True), CPU)
    train(tiny_config(*tiny_scans, tmp_path / "split", max_epochs=2, deterministic=True), CPU)
    resumed = train(tiny_config(*tiny_scans, tmp_path / "split", max_epochs=4, deterministic=True, resume=True), CPU)
    assert resumed.run_dir == tmp_path / "split" / "lightning_logs" / "version_0"
    rows = _rows(resumed.run_dir)
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2, 3]
    expected = [(r["train_loss"], r["val_loss"]) for r in _rows(straight.run_dir)]
    assert [(r["train_loss"], r["val_loss"]) for r in rows] == expected


def test_resume_without_checkpoint_is_a_clear_error(tiny_scans, tmp_path):
    with pytest.raises(ConfigError, match="no checkpoint to resume from"):
        train(tiny_config(*tiny_scans, tmp_path, resume=True), CPU)


def test_early_stopping_stops_when_validation_stalls(tiny_scans, tmp_path):
    # A learning rate of 1e-9 stalls the plain network. With GroupNorm it does not quite: measured on this
    # data, the validation loss creeps down by about 4e-4 (of 571) every epoch, which counts as an
    # improvement. (Likely because Adam moves the norms' biases, which start at exactly 0, by steps of 1e-9
    # that are representable there and nowhere else.) So this test stalls the network without it.
    model = ModelConfig(gridsize=2, channels=TINY_CHANNELS, normalization="none")
    config = tiny_config(*tiny_scans, tmp_path, max_epochs=30, learning_rate=1e-9, early_stopping_patience=2,
                         model=model)
    result = train(config, CPU)
    assert result.epochs_completed < 30


def test_unknown_logger_fails_before_any_output(tiny_scans, tmp_path):
    with pytest.raises(ConfigError, match="unknown logger 'nope'"):
        train(tiny_config(*tiny_scans, tmp_path), ExecutionConfig(accelerator="cpu", logger="nope"))
    assert not (tmp_path / "lightning_logs").exists()


def test_missing_logger_package_names_the_extra(tiny_scans, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "mlflow", None)
    with pytest.raises(MissingExtraError, match=r"ptychodus-torch-plugin\[mlflow\]"):
        train(tiny_config(*tiny_scans, tmp_path), ExecutionConfig(accelerator="cpu", logger="mlflow"))


def test_supervised_model_type_trains_against_the_truth(tiny_scans, tmp_path):
    model = ModelConfig(model_type="supervised", gridsize=1, channels=(8, 16, 32))
    result = train(tiny_config(*tiny_scans, tmp_path, model=model), CPU)
    assert result.status == "FINISHED"


def test_patch_size_mismatch_is_a_clear_error(tiny_scans, tmp_path):
    model = ModelConfig(gridsize=1, patch_size=64, channels=(8, 16, 32))
    with pytest.raises(ConfigError, match="32x32 patterns but the model is set up for N=64"):
        train(tiny_config(*tiny_scans, tmp_path, model=model), CPU)


# --- model files -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained_model(tiny_scans, tmp_path_factory) -> Path:
    result = train(tiny_config(*tiny_scans, tmp_path_factory.mktemp("model"), max_epochs=1), CPU)
    return result.model_path


def test_model_file_round_trip_gives_the_same_outputs(trained_model, tiny_scans):
    host = build_plugin_host(load_entry_points=False)
    model, config, info = load_model(trained_model, host)
    again, _, _ = load_model(trained_model.parent.parent.parent, host)  # the --output_dir works too
    x = torch.rand(2, config.n_channels, 32, 32)
    assert torch.equal(model(x), again(x))
    assert config.gridsize == 2 and info["epochs"] == 1


def test_corrupt_model_file_is_a_clear_error(trained_model, tmp_path):
    data = trained_model.read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="corrupt or truncated"):
        load_model(truncated, build_plugin_host(load_entry_points=False))


def test_pickle_payload_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    evil = tmp_path / "evil.pt"
    torch.save({"format": "ptychodus-torch-model", "x": Payload()}, evil)
    with pytest.raises(ModelFileError, match="never loaded"):
        load_model(evil, build_plugin_host(load_entry_points=False))
    assert not marker.exists()


def test_model_file_from_another_format_version_is_rejected(trained_model, tmp_path):
    payload = torch.load(trained_model, weights_only=True)
    future = tmp_path / "future.pt"
    torch.save({**payload, "format_version": 99}, future)
    with pytest.raises(ModelFileError, match="format 99"):
        load_model(future, build_plugin_host(load_entry_points=False))
