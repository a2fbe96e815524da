"""Odd command lines end in exit status 2 and one readable line, never a traceback; a
reconstruction that would not fit in memory is refused before anything is allocated."""

from __future__ import annotations

import contextlib
import io
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ptychodus_torch_plugin.cli import reconstruct as reconstruct_cli
from ptychodus_torch_plugin.cli import train as train_cli
from ptychodus_torch_plugin.config import ExecutionConfig, ModelConfig, TrainingConfig
from ptychodus_torch_plugin.data import save_npz
from ptychodus_torch_plugin.data.simulate.config import SimulationConfig
from ptychodus_torch_plugin.data.simulate.simulate import simulate
from ptychodus_torch_plugin.errors import ConfigError
from ptychodus_torch_plugin.inference import check_memory, reconstruct_scan
from ptychodus_torch_plugin.models.model_file import load_model
from ptychodus_torch_plugin.plugins import build_plugin_host
from ptychodus_torch_plugin.training.trainer import train

FAST = ["--channels", "8,16,32", "--image_every_n_epochs", "0", "--accelerator", "cpu", "--logger", "none",
        "--quiet"]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("b_inputs")
    scan = simulate(SimulationConfig(patch_size=32, n_positions=12, nphotons=1e5, seed=1, probe_kind="disk"))
    good = save_npz(scan, folder / "scan.npz")
    nan = dict(np.load(good))
    key = next(k for k in ("diff3d", "diffraction") if k in nan)
    nan[key] = nan[key].copy()
    nan[key][0, 0, 0] = np.nan
    np.savez(folder / "nan.npz", **nan)
    huge = dict(np.load(good))
    huge[key] = np.full_like(huge[key], 1e30)
    np.savez(folder / "huge.npz", **huge)
    (folder / "text.npz").write_text("not a scan")
    result = train(TrainingConfig(train_data_file=good, output_dir=folder / "model", max_epochs=1, quiet=True,
                                  image_every_n_epochs=0, model=ModelConfig(channels=(8, 16, 32))),
                   ExecutionConfig(accelerator="cpu", logger="none"))
    return {"scan": good, "nan": folder / "nan.npz", "huge": folder / "huge.npz", "text": folder / "text.npz",
            "dir": folder, "model": result.model_path, "missing": folder / "missing.npz"}


def _run(main, argv: list[str]) -> tuple[int, str]:
    """Exit status and stderr of an in-process command line (argparse's SystemExit included)."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(argv)
    except SystemExit as exc:
        code = exc.code
    return code, err.getvalue()


def _assert_one_line_exit_2(code: int, stderr: str, argv: list[str]) -> None:
    lines = [line for line in stderr.splitlines() if line.strip() and "usage:" not in line and line[:1] != " "]
    assert code == 2, (argv, code, stderr)
    assert "Traceback" not in stderr, stderr
    errors = [line for line in lines if "error:" in line]
    assert len(errors) == 1, stderr
    assert len(errors[0]) < 400, errors[0]


# --- B2: fuzzed command lines ------------------------------------------------------------------------

BAD_TRAIN_ARGS = [
    ["--max_epochs", "0"], ["--max_epochs", "-3"], ["--max_epochs", "1.5"], ["--max_epochs", "many"],
    ["--batch_size", "0"], ["--batch_size", "-1"], ["--batch_size", "x"], ["--n_images", "0"],
    ["--N", "-32"], ["--N", "0"], ["--N", "7"], ["--N", "64"], ["--gridsize", "0"], ["--gridsize", "-2"],
    ["--gridsize", "5"], ["--gridsize", "100000"], ["--channels", "a,b"], ["--channels", ""], ["--channels", "0"],
    ["--channels", "100000000"], ["--learning_rate", "nan"], ["--learning_rate", "inf"], ["--learning_rate", "-1"],
    ["--learning_rate", "1e308"], ["--lr_gamma", "nan"], ["--lr_gamma", "2"], ["--seed", "-1"],
    ["--seed", "99999999999999999999"], ["--num-workers", "-1"], ["--warmup_epochs", "-1"],
    ["--plateau_patience", "-1"], ["--image_every_n_epochs", "-1"], ["--early_stopping_patience", "0"],
    ["--scheduler", "nope"], ["--loss", "l3"], ["--model", "nope"], ["--logger", "nope"], ["--accelerator", "tpu"],
    ["--train_data_file", "@missing"], ["--train_data_file", "@dir"], ["--train_data_file", "@text"],
    ["--train_data_file", "@nan"], ["--test_data_file", "@missing"],
    ["--test_data_file", "@dir"], ["--output_dir", "@scan"], ["--output_dir", "@scan/sub"], ["--resume"],
    ["--unknown-flag"],
]
BAD_TRAIN = st.sampled_from(BAD_TRAIN_ARGS)


def _resolve(args: list[str], files: dict[str, Path]) -> list[str]:
    return [str(files[a[1:].split("/")[0]]) + a[1:].partition("/")[1] + a[1:].partition("/")[2]
            if a.startswith("@") else a for a in args]


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(bad=st.lists(BAD_TRAIN, min_size=1, max_size=2))
def test_fuzzed_train_command_lines_exit_2_with_one_line(files, tmp_path_factory, bad):
    out = tmp_path_factory.mktemp("fuzz_out")
    argv = ["--train_data_file", str(files["scan"]), "--output_dir", str(out), "--max_epochs", "1", *FAST]
    argv += _resolve([x for pair in bad for x in pair], files)
    code, stderr = _run(train_cli.main, argv)
    _assert_one_line_exit_2(code, stderr, argv)
    assert not list(out.glob("lightning_logs/*/model.pt"))  # refused before training


@pytest.mark.parametrize("bad", BAD_TRAIN_ARGS, ids=" ".join)
def test_every_bad_train_argument_exits_2_with_one_line(files, tmp_path, bad):
    argv = ["--train_data_file", str(files["scan"]), "--output_dir", str(tmp_path), "--max_epochs", "1", *FAST]
    argv += _resolve(bad, files)
    code, stderr = _run(train_cli.main, argv)
    _assert_one_line_exit_2(code, stderr, argv)


BAD_RECONSTRUCT_ARGS = [
    ["--model", "@missing"], ["--model", "@scan"], ["--model", "@text"], ["--model", "@dir"],
    ["--data_file", "@missing"], ["--data_file", "@nan"], ["--data_file", "@text"], ["--data_file", "@dir"],
    ["--inference_batch_size", "0"], ["--inference_batch_size", "-5"], ["--inference_batch_size", "1e3"],
    ["--accelerator", "tpu"], ["--output_dir", "@scan"],
]
BAD_RECONSTRUCT = st.sampled_from(BAD_RECONSTRUCT_ARGS)


@pytest.mark.parametrize("bad", BAD_RECONSTRUCT_ARGS, ids=" ".join)
def test_every_bad_reconstruct_argument_exits_2_with_one_line(files, tmp_path, bad):
    argv = ["--model", str(files["model"]), "--data_file", str(files["scan"]), "--output_dir", str(tmp_path),
            "--accelerator", "cpu", "--quiet", *_resolve(bad, files)]
    code, stderr = _run(reconstruct_cli.main, argv)
    _assert_one_line_exit_2(code, stderr, argv)


@settings(max_examples=15, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(bad=BAD_RECONSTRUCT)
def test_fuzzed_reconstruct_command_lines_exit_2_with_one_line(files, tmp_path_factory, bad):
    out = tmp_path_factory.mktemp("fuzz_recon")
    argv = ["--model", str(files["model"]), "--data_file", str(files["scan"]), "--output_dir", str(out),
            "--accelerator", "cpu", "--quiet", *_resolve(bad, files)]
    code, stderr = _run(reconstruct_cli.main, argv)
    _assert_one_line_exit_2(code, stderr, argv)


def test_absurdly_large_amplitudes_are_refused(files, tmp_path):
    argv = ["--train_data_file", str(files["huge"]), "--output_dir", str(tmp_path), "--max_epochs", "1", *FAST]
    code, stderr = _run(train_cli.main, argv)
    _assert_one_line_exit_2(code, stderr, argv)


def test_batch_larger_than_the_data_trains_one_smaller_batch(files, tmp_path):
    argv = ["--train_data_file", str(files["scan"]), "--output_dir", str(tmp_path), "--max_epochs", "1",
            "--batch_size", "1000", *FAST]
    code, stderr = _run(train_cli.main, argv)
    assert code == 0, stderr
    assert (tmp_path / "lightning_logs" / "version_0" / "model.pt").is_file()


# --- B3: memory limits -----------------------------------------------------------------------------


def test_object_too_large_for_memory_is_refused_before_allocating(files, monkeypatch):
    import ptychodus_torch_plugin.inference as inference
    import ptychodus_torch_plugin.memory as memory
    from ptychodus_torch_plugin.data import load_scan

    model, _, _ = load_model(files["model"], build_plugin_host(load_entry_points=False))
    scan = load_scan(files["scan"])
    side = 60_000  # 60000² complex64 + float32 weights: ~80 GiB, with the result copies
    big = replace(scan, object_shape=(side, side), object_truth=None)

    def no_allocation(*args, **kwargs):
        raise AssertionError("the object canvas was allocated before the memory check")

    monkeypatch.setattr(memory, "available_memory", lambda device: 4 * 1024**3)
    monkeypatch.setattr(inference, "ObjectAccumulator", no_allocation)
    with pytest.raises(ConfigError, match=r"reconstructing needs about [\d.]+ GiB for the object .* only 4\.00 GiB"):
        reconstruct_scan(model, big, batch_size=8, device=torch.device("cpu"))


def test_memory_check_uses_the_real_available_memory():
    from ptychodus_torch_plugin.inference import available_memory

    free = available_memory(torch.device("cpu"))
    assert free is not None and free > 0
    with pytest.raises(ConfigError, match="GiB is available on cpu"):
        check_memory((60_000, 60_000), 32, 1, 8, torch.device("cpu"), available=1024**3)
    check_memory((64, 64), 32, 1, 8, torch.device("cpu"))  # a small scan passes


def test_reconstruct_command_refuses_a_huge_chunk(files, tmp_path, monkeypatch):
    import ptychodus_torch_plugin.memory as memory

    monkeypatch.setattr(memory, "available_memory", lambda device: 1024**2)  # 1 MiB free
    argv = ["--model", str(files["model"]), "--data_file", str(files["scan"]), "--output_dir", str(tmp_path),
            "--accelerator", "cpu", "--quiet"]
    code, stderr = _run(reconstruct_cli.main, argv)
    _assert_one_line_exit_2(code, stderr, argv)
    assert "reconstructing needs about" in stderr and not (tmp_path / "reconstruction.npz").exists()
