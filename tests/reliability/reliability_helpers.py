"""Helpers for the reliability tests: tiny simulated scans, a CLI runner, zip byte surgery."""

from __future__ import annotations

import csv
import io
import os
import struct
import subprocess
import sys
import time
import zipfile
from pathlib import Path

from ptychodus_torch_plugin.data import save_npz
from ptychodus_torch_plugin.data.simulate.config import SimulationConfig
from ptychodus_torch_plugin.data.simulate.simulate import simulate

TINY = ["--channels", "8,16,32", "--image_every_n_epochs", "0"]


def make_scan(folder: Path, name: str, *, patch_size: int = 32, n_positions: int = 36, seed: int = 1) -> Path:
    scan = simulate(SimulationConfig(patch_size=patch_size, n_positions=n_positions, nphotons=1e5, seed=seed,
                                     probe_kind="disk"))
    return save_npz(scan, Path(folder) / f"{name}.npz")


def child_env() -> dict[str, str]:
    """The environment of a user who set nothing: no PTYCHODUS_TORCH_* and no MLFLOW_* variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PTYCHODUS_TORCH_", "MLFLOW_"))}
    env["OMP_NUM_THREADS"] = "1"  # two cores: keep concurrent children from oversubscribing them
    return env


def python(args: list[str], cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=child_env())


def start_train(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "ptychodus_torch_plugin.train", *args], cwd=cwd,
                            env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def metric_epochs(run_dir: Path) -> list[int]:
    path = Path(run_dir) / "metrics.csv"
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return [int(row["epoch"]) for row in csv.DictReader(handle) if row.get("epoch")]


def wait_for_epochs(run_dir: Path, count: int, process: subprocess.Popen[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if len(metric_epochs(run_dir)) >= count:
                return
        except (OSError, ValueError, KeyError):
            pass  # a row being written
        if process.poll() is not None:
            raise AssertionError(f"training ended early ({process.returncode}): {process.stderr.read()}")
        time.sleep(0.05)
    raise AssertionError(f"no {count} epochs in {run_dir} after {timeout} s")


def largest_member_data_span(path: Path) -> tuple[str, int, int]:
    """(name, offset, size) of the largest stored record of a torch zip: the bytes of its largest tensor."""
    with zipfile.ZipFile(path) as archive:
        info = max(archive.infolist(), key=lambda i: i.file_size)
    assert info.compress_type == zipfile.ZIP_STORED
    with open(path, "rb") as handle:
        handle.seek(info.header_offset + 26)
        name_length, extra_length = struct.unpack("<HH", handle.read(4))
    return info.filename, info.header_offset + 30 + name_length + extra_length, info.file_size


def flip_tensor_byte_in_place(source: Path, target: Path) -> None:
    """One bit flipped in the middle of the largest tensor's bytes; the zip's CRC is left stale."""
    _, offset, size = largest_member_data_span(source)
    data = bytearray(Path(source).read_bytes())
    data[offset + size // 2] ^= 0x01
    Path(target).write_bytes(bytes(data))


def flip_tensor_byte_rezipped(source: Path, target: Path) -> None:
    """One bit flipped in the largest tensor, the zip rewritten so every CRC is valid again."""
    name, _, _ = largest_member_data_span(source)
    out = io.BytesIO()
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as new:
        for info in old.infolist():
            data = bytearray(old.read(info))
            if info.filename == name:
                data[len(data) // 2] ^= 0x01
            new.writestr(info, bytes(data))
    Path(target).write_bytes(out.getvalue())
