"""torchrun with 2 gloo processes on the CPU: same losses as one process, one set of logs and checkpoints,
--resume under torchrun, and distributed reconstruction equal to a single-process one."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ptychodus_torch_plugin.distributed import SINGLE_PROCESS, StopConsensus, distributed_session
from ptychodus_torch_plugin.errors import ConfigError
from ptychodus_torch_plugin.training.data import shard_batches

TRAIN_ARGS = ["--gridsize", "2", "--channels", "8,16,32", "--batch_size", "7", "--n_images", "35",
              "--accelerator", "cpu", "--quiet", "--image_every_n_epochs", "0", "--deterministic"]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = "1"
    env.pop("WORLD_SIZE", None)
    return env


def _torchrun(target: str, args: list[str], cwd: Path, nproc: int = 2) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
               *(["-m", target] if not target.endswith(".py") else [target]), *args]
    result = subprocess.run(command, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def _single(module: str, args: list[str], cwd: Path) -> None:
    result = subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=_env(), capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def _rows(output_dir: Path) -> list[dict[str, str]]:
    files = sorted(output_dir.rglob("metrics.csv"))
    assert len(files) == 1, files
    with files[0].open() as handle:
        return list(csv.DictReader(handle))


def _losses(rows: list[dict[str, str]], key: str) -> np.ndarray:
    return np.array([float(r[key]) for r in rows])


@pytest.fixture(scope="module")
def runs(tiny_scans, tmp_path_factory) -> dict[str, Path]:
    """A single-process run of 2 epochs; a 2-process run of 2 epochs, then resumed under torchrun to 3; and
    an uninterrupted 2-process run of 3 epochs."""
    train, test = tiny_scans
    root = tmp_path_factory.mktemp("ddp")
    data = ["--train_data_file", str(train), "--test_data_file", str(test)]
    _single("ptychodus_torch_plugin.train", [*data, *TRAIN_ARGS, "--max_epochs", "2", "--output_dir", "one"], root)
    _torchrun("ptychodus_torch_plugin.train", [*data, *TRAIN_ARGS, "--max_epochs", "2", "--output_dir", "two"], root)
    two_epochs = _rows(root / "two")
    _torchrun("ptychodus_torch_plugin.train",
              [*data, *TRAIN_ARGS, "--max_epochs", "3", "--output_dir", "two", "--resume"], root)
    _torchrun("ptychodus_torch_plugin.train", [*data, *TRAIN_ARGS, "--max_epochs", "3", "--output_dir", "three"], root)
    return {"one": root / "one", "two": root / "two", "two_epochs": two_epochs,  # type: ignore[dict-item]
            "three": root / "three"}


def test_two_gloo_processes_give_the_single_process_losses(runs) -> None:
    """Same global batches, same losses. Only float32 summation order differs (two half-batch gradients
    averaged instead of one), and Adam, which divides by the gradient's own size, turns that rounding into
    small weight differences that grow with every step: measured (shared group encoder, central support)
    5e-8 relative after one epoch, 7e-6 after two. The exact equivalence is checked on one step below."""
    one = _rows(runs["one"])
    two = runs["two_epochs"]
    assert len(two) == 2
    for key in ("train_loss", "val_loss"):
        np.testing.assert_allclose(_losses(two, key)[0], _losses(one, key)[0], rtol=1e-6)
        np.testing.assert_allclose(_losses(two, key)[1], _losses(one, key)[1], rtol=5e-5)
    assert [r["step"] for r in two] == ["5", "10"]


@pytest.mark.parametrize("weighted", [True, False])
def test_one_ddp_step_equals_the_single_process_step(weighted, tmp_path) -> None:
    """A global batch of 7 split 4 + 3: with the loss weights, the DDP step is the single-process step; the
    unweighted average (what plain DDP would do) is measurably different, so this test can fail."""
    script = Path(__file__).with_name("ddp_one_step.py")
    saved = tmp_path / "ddp.pt"
    _torchrun(str(script), [str(saved), "weighted" if weighted else "plain"], tmp_path)
    sys.path.insert(0, str(script.parent))
    try:
        from ddp_one_step import one_step
    finally:
        sys.path.remove(str(script.parent))
    reference = one_step(SINGLE_PROCESS)
    ddp = torch.load(saved, weights_only=True)
    # The whole update as one vector: a single bias whose gradient is a sum of nearly cancelling terms (the
    # phase head's, measured 7e-4 relative to its own tiny update) would otherwise measure only rounding.
    difference = torch.cat([(ddp[k] - reference[k]).flatten() for k in reference])
    worst = float(difference.norm() / torch.cat([reference[k].flatten() for k in reference]).norm())
    if weighted:
        assert worst < 1e-5
    else:
        assert worst > 1e-4


def test_only_rank_zero_writes_logs_and_checkpoints(runs) -> None:
    run_dirs = sorted((runs["two"] / "lightning_logs").iterdir())
    assert [d.name for d in run_dirs] == ["version_0"]
    assert sorted(p.name for p in (run_dirs[0] / "checkpoints").iterdir()) == ["best.pt", "last.pt"]
    assert len(list(runs["two"].rglob("metrics.csv"))) == 1
    assert len(list(runs["two"].rglob("model.pt"))) == 1
    assert not list(runs["two"].rglob("*.tmp*"))


def test_resume_under_torchrun_continues_like_an_uninterrupted_run(runs) -> None:
    uninterrupted, resumed = _rows(runs["three"]), _rows(runs["two"])
    assert [r["epoch"] for r in resumed] == ["0", "1", "2"]
    for key in ("train_loss", "val_loss"):
        np.testing.assert_array_equal(_losses(resumed, key), _losses(uninterrupted, key))


def test_distributed_reconstruction_equals_one_process(runs, tiny_scans, tmp_path) -> None:
    model = runs["three"] / "lightning_logs" / "version_0" / "model.pt"
    args = ["--model", str(model), "--data_file", str(tiny_scans[1]), "--accelerator", "cpu", "--quiet",
            "--inference_batch_size", "5"]
    _single("ptychodus_torch_plugin.reconstruct", [*args, "--output_dir", "one"], tmp_path)
    _torchrun("ptychodus_torch_plugin.reconstruct", [*args, "--output_dir", "two"], tmp_path)
    single = np.load(tmp_path / "one" / "reconstruction.npz")
    shared = np.load(tmp_path / "two" / "reconstruction.npz")
    assert np.abs(single["object"]).max() > 0.1
    np.testing.assert_allclose(shared["weights"], single["weights"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(shared["object"], single["object"], rtol=1e-4, atol=1e-5)


# -- pieces, without processes ------------------------------------------------------------------------------


def test_shards_cover_each_batch_once_and_weights_restore_the_global_mean() -> None:
    batches = list(torch.arange(23).split(7))  # 7, 7, 7, 2
    for world in (1, 2, 3):
        shares = [shard_batches(batches, rank, world) for rank in range(world)]
        n_batches = len(shares[0])
        for b in range(n_batches):
            parts = [shares[rank][b] for rank in range(world)]
            joined = torch.cat([p.indices for p in parts])
            assert len(set(joined.tolist())) == len(joined) == parts[0].global_size
            # DDP averages over ranks: mean_r(weight_r * mean_loss_r) = global mean when each local loss is
            # the mean of its own groups
            values = torch.rand(parts[0].global_size, dtype=torch.float64)
            lookup = dict(zip(joined.tolist(), values.tolist()))
            ddp = sum(p.weight * np.mean([lookup[i] for i in p.indices.tolist()]) for p in parts) / world
            assert ddp == pytest.approx(float(values.mean()))
        assert sum(len(s.indices) for rank in range(world) for s in shares[rank]) == 23
    # with 3 ranks the last batch of 2 is merged into the one before
    assert [s.global_size for s in shard_batches(batches, 0, 3)] == [7, 7, 9]


def test_fewer_groups_than_processes_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="cannot be shared by 4 processes"):
        shard_batches([torch.arange(3)], 0, 4)


def test_single_process_needs_no_process_group() -> None:
    with distributed_session(torch.device("cpu"), environ={}) as context:
        assert context is SINGLE_PROCESS and not context.enabled and context.is_main
        assert context.broadcast("x") == "x"
    consensus = StopConsensus(SINGLE_PROCESS)
    assert consensus.step(False) is False and consensus.step(True) is True


def test_torchrun_variables_without_a_rank_are_refused() -> None:
    with pytest.raises(ConfigError, match="RANK"):
        with distributed_session(torch.device("cpu"), environ={"WORLD_SIZE": "2"}):
            pass


def test_ranks_agree_on_the_step_at_which_to_stop(tmp_path) -> None:
    """Only rank 1 sees the signal; both ranks stop together one step later, so neither is left waiting."""
    _torchrun(str(Path(__file__).with_name("ddp_stop_consensus.py")), [], tmp_path)
    lines = [(tmp_path / f"rank_{rank}.txt").read_text() for rank in (0, 1)]
    assert lines == ["rank 0 stops at 4 settled None", "rank 1 stops at 4 settled None"]


# -- HDF5 training data: each rank its own share -----------------------------------------------------------


def test_each_rank_groups_and_reads_only_its_share_of_an_hdf5_scan(tiny_scans, tmp_path, monkeypatch) -> None:
    from ptychodus_torch_plugin import inference
    from ptychodus_torch_plugin.data import load_scan, save_ptychodus
    from ptychodus_torch_plugin.data.patterns import PatternStack
    from ptychodus_torch_plugin.distributed import DistributedContext
    from ptychodus_torch_plugin.training.data import group_scan

    memory = load_scan(tiny_scans[0])
    save_ptychodus(memory, tmp_path / "diffraction.h5", tmp_path / "product.h5")
    stored = load_scan(tmp_path, stream=True)
    monkeypatch.setattr(inference, "streamed_intensity_scale", lambda stack, distributed: 1.0)  # no process group
    read: list[int] = []
    original = PatternStack.read
    monkeypatch.setattr(PatternStack, "read", lambda self, idx, out=None: read.extend(np.asarray(idx).tolist())
                        or original(self, idx, out))
    whole = group_scan(memory, 2, seed=3)
    parts = [group_scan(stored, 2, seed=3, reference_scale=1.0,
                        distributed=DistributedContext(rank=rank, world_size=2)) for rank in (0, 1)]
    assert [p.rank_groups for p in parts] == [(18, 18), (18, 18)] and whole.n_groups == 36
    for rank, part in enumerate(parts):
        expected = whole.groups[rank * 18:(rank + 1) * 18]
        members = np.unique(expected.numpy())
        assert part.amplitudes.shape[0] == members.size < memory.n_patterns
        # the same groups, re-indexed into the rows this rank read
        np.testing.assert_array_equal(part.amplitudes[part.groups].numpy(), memory.amplitudes[expected.numpy()])
    assert sorted(read) == sorted(np.concatenate([np.unique(whole.groups[:18].numpy()),
                                                  np.unique(whole.groups[18:].numpy())]).tolist())


def test_local_shards_take_equal_steps_and_weights_restore_the_global_mean() -> None:
    from ptychodus_torch_plugin.training.data import local_shard_batches

    counts = (12, 11, 11)
    shares = [local_shard_batches(counts, 8, seed=1, epoch=2, rank=rank) for rank in range(3)]
    assert {len(s) for s in shares} == {5}  # ceil(34 / 8) steps on every rank
    for step in range(5):
        parts = [shares[rank][step] for rank in range(3)]
        assert len({p.global_size for p in parts}) == 1
        assert sum(len(p.indices) for p in parts) == parts[0].global_size
        values = [torch.rand(len(p.indices), dtype=torch.float64) for p in parts]
        ddp = sum(p.weight * float(v.mean()) for p, v in zip(parts, values)) / 3
        assert ddp == pytest.approx(float(torch.cat(values).mean()))
    for rank, count in enumerate(counts):
        assert sorted(torch.cat([p.indices for p in shares[rank]]).tolist()) == list(range(count))
    with pytest.raises(ConfigError, match="raise --batch_size"):
        local_shard_batches((3, 3), 1, seed=0, epoch=0, rank=0)


def test_training_from_hdf5_under_torchrun(tiny_scans, tmp_path) -> None:
    from ptychodus_torch_plugin.data import load_scan, save_ptychodus

    for name, path in zip(("train", "test"), tiny_scans):
        save_ptychodus(load_scan(path), tmp_path / name / "diffraction.h5", tmp_path / name / "product.h5")
    args = ["--train_data_file", str(tmp_path / "train"), "--test_data_file", str(tmp_path / "test"), *TRAIN_ARGS,
            "--n_images", "36", "--max_epochs", "2", "--output_dir", "h5"]
    _torchrun("ptychodus_torch_plugin.train", args, tmp_path)
    rows = _rows(tmp_path / "h5")
    assert len(rows) == 2 and all(np.isfinite(float(r["train_loss"])) and np.isfinite(float(r["val_loss"]))
                                  for r in rows)
    assert len(list((tmp_path / "h5").rglob("model.pt"))) == 1
