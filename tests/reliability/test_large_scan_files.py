"""Bad ptychodus HDF5 scans as a user meets them, in a plain subprocess of ``reconstruct``: a truncated file,
a chunk that cannot be decompressed midway through a streamed run, patterns without positions. Each ends
in one line and exit status 2 with no result left in the output folder; a scan streamed from its file
is written back to ptychodus files block by block, pattern for pattern."""

from __future__ import annotations

import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
from reliability_helpers import python

from ptychodus_torch_plugin.data import load_scan
from ptychodus_torch_plugin.data.checks import DataWarning
from ptychodus_torch_plugin.data.ptychodus_write import PtychodusWriter
from ptychodus_torch_plugin.data.simulate import SimulationConfig, simulate

#: Small enough that the 600-pattern scan below (2.3 MiB) is streamed from its file.
BUDGET = ["--memory_budget", "32MiB"]


@pytest.fixture(scope="module")
def stored(tmp_path_factory) -> Path:
    """600 patterns of 32 x 32 in ptychodus's pair, 512 patterns to a 1 MiB chunk (as the simulator writes)."""
    folder = tmp_path_factory.mktemp("stored")
    scan = simulate(SimulationConfig(patch_size=32, n_positions=600, scan_kind="spiral", nphotons=1e5, seed=8))
    with PtychodusWriter(folder / "diffraction.h5", folder / "product.h5", n_patterns=scan.n_patterns,
                         dtype=np.uint16, probe=scan.probe, positions=scan.positions,
                         object_shape=scan.object_shape, object_truth=scan.object_truth) as writer:
        writer.write(scan.amplitudes)
    return folder


def _copy(source: Path, target: Path) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    for name in ("diffraction.h5", "product.h5"):
        (target / name).write_bytes((source / name).read_bytes())
    return target


def _reconstruct(folder: Path, cwd: Path, *extra: str):
    return python(["-m", "ptychodus_torch_plugin", "reconstruct", "--data_file", str(folder), "--output_dir", "out",
                   "--epochs", "3", "--quiet", *BUDGET, *extra], cwd)


def _one_error_line(result, *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("ptychodus-torch: error:"), result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def _nothing_written(cwd: Path) -> None:
    out = cwd / "out"
    assert not out.exists() or not [p for p in out.iterdir() if not p.name.startswith(".")], list(out.iterdir())


def test_a_truncated_diffraction_file(stored, tmp_path):
    folder = _copy(stored, tmp_path / "scan")
    raw = (folder / "diffraction.h5").read_bytes()
    (folder / "diffraction.h5").write_bytes(raw[: len(raw) // 2])
    result = _reconstruct(folder, tmp_path)
    _one_error_line(result, "diffraction.h5")
    _nothing_written(tmp_path)


def test_a_chunk_that_cannot_be_read_midway_through_a_streamed_run(stored, tmp_path):
    """The file opens and the run starts; the damaged chunk (the second of two) ends it in its first epoch."""
    folder = _copy(stored, tmp_path / "scan")
    with h5py.File(folder / "diffraction.h5", "r") as h5:
        info = h5["patterns"].id.get_chunk_info(1)  # rows 512..599
    raw = bytearray((folder / "diffraction.h5").read_bytes())
    raw[info.byte_offset : info.byte_offset + info.size] = b"\x00" * info.size
    (folder / "diffraction.h5").write_bytes(bytes(raw))
    result = _reconstruct(folder, tmp_path)
    _one_error_line(result, "diffraction.h5", "cannot read patterns")
    _nothing_written(tmp_path)


def test_patterns_without_positions(stored, tmp_path):
    """No pattern with a position: one line, exit 2. Some without: they are dropped with one warning (as
    ptychodus does) and the rest reconstructs."""
    none = _copy(stored, tmp_path / "none")
    with h5py.File(none / "diffraction.h5", "r+") as h5:
        h5["indexes"][...] = h5["indexes"][()] + 10_000
    _one_error_line(_reconstruct(none, tmp_path), "no pattern index matches")
    _nothing_written(tmp_path)

    some = _copy(stored, tmp_path / "some")
    with h5py.File(some / "diffraction.h5", "r+") as h5:
        indexes = h5["indexes"][()]
        indexes[100:110] += 10_000
        h5["indexes"][...] = indexes
    result = _reconstruct(some, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "10 of 600 patterns have no probe position" in result.stderr
    assert np.load(tmp_path / "out" / "reconstruction.npz")["positions"].shape == (590, 2)


def test_a_streamed_scan_is_written_back_to_ptychodus_files_pattern_for_pattern(stored, tmp_path):
    result = _reconstruct(stored, tmp_path, "--ptychodus-dir", "product")
    assert result.returncode == 0, result.stderr
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        written = load_scan(tmp_path / "product", stream=False)
        original = load_scan(stored, stream=False)
    np.testing.assert_array_equal(written.amplitudes, original.amplitudes)
    np.testing.assert_allclose(written.positions, original.positions, atol=1e-9)
    reconstruction = np.load(tmp_path / "out" / "reconstruction.npz")["object"]
    np.testing.assert_array_equal(written.object_truth, reconstruction)
    with h5py.File(tmp_path / "product" / "diffraction.h5") as h5:
        assert h5["patterns"].dtype == np.uint16 and h5["patterns"].chunks[0] > 1


def test_the_same_scan_from_memory_also_writes_back(stored, tmp_path):
    """An in-memory scan (NPZ) takes save_ptychodus's path; both give ptychodus a readable pair."""
    from ptychodus_torch_plugin.data import save_npz

    save_npz(load_scan(stored, stream=False), tmp_path / "scan.npz")
    result = python(["-m", "ptychodus_torch_plugin", "reconstruct", "--data_file", str(tmp_path / "scan.npz"),
                     "--output_dir", "out", "--epochs", "2", "--quiet", "--ptychodus-dir", "product"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert load_scan(tmp_path / "product", stream=False).n_patterns == 600


def test_a_large_npz_is_read_whole_with_a_warning_pointing_to_hdf5(tmp_path):
    """An NPZ above the streaming threshold (a quarter of the budget) cannot be streamed: the run says so
    once, before reading, and still reconstructs; a small NPZ says nothing."""
    from ptychodus_torch_plugin.data import save_npz

    scan = simulate(SimulationConfig(patch_size=64, n_positions=600, scan_kind="spiral", nphotons=1e5, seed=8))
    save_npz(scan, tmp_path / "scan.npz", compressed=False)  # 9.4 MiB of patterns, above 32 MiB / 4
    command = ["-m", "ptychodus_torch_plugin", "reconstruct", "--data_file", str(tmp_path / "scan.npz"),
               "--output_dir", "out", "--epochs", "1", "--quiet", "--iterative_batch_size", "16"]
    large = python([*command, "--memory_budget", "32MiB"], tmp_path)
    assert large.returncode == 0, large.stderr
    warned = [line for line in large.stderr.splitlines() if "LargeScanWarning" in line]
    assert len(warned) == 1 and "read whole into memory" in warned[0] and "ptychodus HDF5" in warned[0], large.stderr
    small = python(command, tmp_path)
    assert small.returncode == 0 and "LargeScanWarning" not in small.stderr, small.stderr
