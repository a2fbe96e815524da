"""Two training runs started at once on the same --output_dir never share or clobber a run folder."""

from __future__ import annotations

from reliability_helpers import TINY, make_scan, metric_epochs, start_train

from ptychodus_torch_plugin.models.model_file import load_model
from ptychodus_torch_plugin.plugins import build_plugin_host
from ptychodus_torch_plugin.training.checkpoints import load_checkpoint


def test_two_runs_started_at_once_get_their_own_version_folders(tmp_path):
    scan = make_scan(tmp_path, "train")
    args = ["--train_data_file", str(scan), "--output_dir", "out", "--accelerator", "cpu", "--batch_size", "8",
            "--logger", "csv", "--quiet", "--num-workers", "0", "--max_epochs", "2", *TINY]
    processes = [start_train(args, tmp_path) for _ in range(2)]
    outputs = [p.communicate(timeout=180) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], [err for _, err in outputs]
    runs = sorted((tmp_path / "out" / "lightning_logs").iterdir())
    assert [r.name for r in runs] == ["version_0", "version_1"]
    host = build_plugin_host(load_entry_points=False)
    for run in runs:
        assert metric_epochs(run) == [0, 1]
        assert load_checkpoint(run / "checkpoints" / "last.pt")["progress"]["epoch"] == 2
        load_model(run / "model.pt", host)
        assert (run / "config.json").is_file()
        assert not list(run.rglob("*.tmp"))
