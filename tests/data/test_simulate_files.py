"""Simulated scans written in blocks: ptychodus's file pair as ``save_ptychodus`` lays it out, read back to the
in-memory simulation's bits, written atomically, and the NPZ refused where it would not fit in memory."""

from __future__ import annotations

import importlib
import os
import stat
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from ptychodus_torch_plugin.cli import simulate as cli
from ptychodus_torch_plugin.data import read_npz, read_ptychodus, save_ptychodus
from ptychodus_torch_plugin.data.ptychodus_write import (
    PATTERN_CHUNK_BYTES,
    PtychodusWriter,
    counts_dtype,
    pattern_chunk_rows,
)
from ptychodus_torch_plugin.data.simulate import SimulationConfig, simulate, simulate_to_files
from ptychodus_torch_plugin.errors import ConfigError, DataError

# The package's ``simulate`` function hides its module of the same name from attribute access.
simulate_module = importlib.import_module("ptychodus_torch_plugin.data.simulate.simulate")

NOISY = SimulationConfig(patch_size=32, n_positions=40, nphotons=1e4, seed=1, jitter_px=0.6, pixel_size_m=20e-9)
NOISELESS = SimulationConfig(patch_size=32, n_positions=40, nphotons=None, seed=2, scan_kind="spiral")
BRIGHT = SimulationConfig(patch_size=64, n_positions=12, nphotons=1e9, seed=3)


def _contents(path: Path) -> dict[str, Any]:
    """Every dataset (dtype, shape, compression, layout, attributes, values) and the root attributes."""
    out: dict[str, Any] = {}
    with h5py.File(path, "r") as h5:
        out["/"] = {key: value for key, value in h5.attrs.items()}
        for key, dset in h5.items():
            out[key] = {"dtype": dset.dtype, "shape": dset.shape, "compression": dset.compression,
                        "chunks": dset.chunks, "attrs": dict(dset.attrs), "values": dset[()]}
    return out


def _assert_same_contents(ours: dict[str, Any], theirs: dict[str, Any]) -> None:
    assert list(ours) == list(theirs)
    for key, want in theirs.items():
        have = ours[key]
        if key == "/":
            assert have.keys() == want.keys()
            for name, value in want.items():
                assert np.array_equal(have[name], value), name
            continue
        for field in ("dtype", "shape", "compression", "chunks"):
            assert have[field] == want[field], (key, field)
        assert have["attrs"].keys() == want["attrs"].keys(), key
        for name, value in want["attrs"].items():
            assert np.array_equal(have["attrs"][name], value), (key, name)
        assert np.array_equal(have["values"], want["values"]), key


@pytest.mark.parametrize("config", [NOISY, NOISELESS, BRIGHT], ids=["noisy", "noiseless", "bright"])
def test_streamed_pair_is_what_save_ptychodus_writes(config: SimulationConfig, tmp_path: Path) -> None:
    scan = simulate(config)
    save_ptychodus(scan, tmp_path / "whole" / "diffraction.h5", tmp_path / "whole" / "product.h5")
    simulate_to_files(config, None, tmp_path / "blocks", rows=7)
    for name in ("diffraction.h5", "product.h5"):
        _assert_same_contents(_contents(tmp_path / "blocks" / name), _contents(tmp_path / "whole" / name))
    assert sorted(p.name for p in (tmp_path / "blocks").iterdir()) == ["diffraction.h5", "product.h5"]


@pytest.mark.parametrize("config", [NOISY, NOISELESS], ids=["noisy", "noiseless"])
def test_streamed_pair_reads_back_as_the_in_memory_simulation(config: SimulationConfig, tmp_path: Path) -> None:
    written = simulate_to_files(config, None, tmp_path, rows=5)
    scan = simulate(config)
    back = read_ptychodus(tmp_path / "diffraction.h5", tmp_path / "product.h5")
    assert (written.n_patterns, written.patch_size, written.object_shape) == (40, 32, scan.object_shape)
    assert np.array_equal(np.asarray(back.amplitudes), scan.amplitudes)
    np.testing.assert_allclose(back.positions, scan.positions, rtol=0, atol=1e-9)
    assert np.array_equal(back.probe, scan.probe)
    assert np.array_equal(back.object_truth, scan.object_truth)
    assert back.pixel_size_m == pytest.approx(config.pixel_size_m or 10e-9, rel=1e-12)


def test_npz_and_pair_together_hold_the_same_scan(tmp_path: Path) -> None:
    simulate_to_files(NOISY, tmp_path / "scan.npz", tmp_path / "pair")
    npz, pair = read_npz(tmp_path / "scan.npz"), read_ptychodus(tmp_path / "pair" / "diffraction.h5",
                                                                 tmp_path / "pair" / "product.h5")
    assert np.array_equal(npz.amplitudes, simulate(NOISY).amplitudes)
    assert np.array_equal(np.asarray(pair.amplitudes), npz.amplitudes)
    with h5py.File(tmp_path / "pair" / "diffraction.h5") as h5:
        assert h5["patterns"].dtype == np.uint16


def test_patterns_are_chunked_along_the_pattern_axis(tmp_path: Path) -> None:
    config = SimulationConfig(patch_size=64, n_positions=300, step_px=1.0, nphotons=1e5, seed=4)
    simulate_to_files(config, None, tmp_path)
    with h5py.File(tmp_path / "diffraction.h5") as h5:
        patterns = h5["patterns"]
        assert patterns.dtype == np.uint16 and patterns.compression == "lzf"
        assert patterns.chunks == (128, 64, 64)  # 128 * 64 * 64 * 2 bytes = 1 MiB
    assert pattern_chunk_rows(300, 128, np.uint32) * 128 * 128 * 4 == PATTERN_CHUNK_BYTES
    assert pattern_chunk_rows(5, 64, np.uint16) == 5 and pattern_chunk_rows(9, 1024, np.float32) == 1


def test_counts_dtype_follows_save_ptychodus_rule(tmp_path: Path) -> None:
    assert counts_dtype(None) == np.float32  # noiseless: counts are not whole
    assert counts_dtype(65535.9) == np.uint16 and counts_dtype(65536) == np.uint32
    assert counts_dtype(2.0**32 - 1) == np.uint32 and counts_dtype(2.0**32) == np.float32
    simulate_to_files(BRIGHT, None, tmp_path)  # ~1e6 counts in the brightest pixel
    with h5py.File(tmp_path / "diffraction.h5") as h5:
        assert h5["patterns"].dtype == np.uint32


def _writer(folder: Path, n_patterns: int = 6, dtype: type = np.uint16) -> PtychodusWriter:
    rng = np.random.default_rng(0)
    return PtychodusWriter(
        folder / "diffraction.h5", folder / "product.h5", n_patterns=n_patterns, dtype=dtype,
        probe=rng.standard_normal((1, 8, 8)).astype(np.complex64),
        positions=np.full((n_patterns, 2), 10.0), object_shape=(24, 24),
    )


def test_a_count_that_does_not_fit_the_dtype_fails_loudly(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not fit the file's uint16"), _writer(tmp_path) as writer:
        writer.write(np.full((3, 8, 8), 10.0, dtype=np.float32))
        writer.write(np.full((3, 8, 8), np.sqrt(70000.0), dtype=np.float32))  # would wrap to 4464
    assert list(tmp_path.iterdir()) == []


def test_unfinished_writer_leaves_no_file(tmp_path: Path) -> None:
    writer = _writer(tmp_path)
    writer.write(np.ones((2, 8, 8), dtype=np.float32))
    with pytest.raises(ValueError, match="only 2 of 6 patterns"):
        writer.close()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("failure", [RuntimeError("disk on fire"), KeyboardInterrupt()], ids=["error", "ctrl-c"])
def test_failure_midway_keeps_the_final_names_untouched(
    failure: BaseException, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "diffraction.h5").write_bytes(b"previous run")
    original = PtychodusWriter.write
    calls = []

    def failing_write(self: PtychodusWriter, amplitudes: np.ndarray) -> None:
        calls.append(amplitudes.shape[0])
        if len(calls) == 3:
            raise failure
        original(self, amplitudes)

    monkeypatch.setattr(PtychodusWriter, "write", failing_write)
    with pytest.raises(type(failure)):
        simulate_to_files(NOISY, None, tmp_path, rows=5)
    assert len(calls) == 3  # two blocks were in the temporary file when it failed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["diffraction.h5"]
    assert (tmp_path / "diffraction.h5").read_bytes() == b"previous run"


def test_failure_while_finishing_removes_the_temporary_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_product(self: PtychodusWriter, path: Path) -> None:
        path.write_bytes(b"half a product")
        raise OSError("no space left on device")

    monkeypatch.setattr(PtychodusWriter, "_write_product", broken_product)
    with pytest.raises(OSError, match="no space"):
        simulate_to_files(NOISY, None, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_ptychodus_reads_the_streamed_pair(tmp_path: Path) -> None:
    io = pytest.importorskip("ptychodus.api.io", reason="ptychodus 1.7 is not installed in this interpreter")
    from ptychodus.api.reconstruct import prepare_reconstruct_input

    scan = simulate(NOISY)
    simulate_to_files(NOISY, None, tmp_path, rows=6)
    product = io.load_product(tmp_path / "product.h5")
    prepared = prepare_reconstruct_input(io.load_diffraction_data(tmp_path / "diffraction.h5"), product)
    patterns = np.asarray(prepared.diffraction_patterns, dtype=np.float64)
    assert np.array_equal(patterns, np.rint(scan.amplitudes.astype(np.float64) ** 2))
    assert np.array_equal(product.probes.get_array()[0], scan.probe)
    assert np.array_equal(product.object_.get_array()[0], scan.object_truth)
    # From float32 amplitudes squared, as save_ptychodus computes it: within 1e-7 of the whole counts' mean.
    assert product.metadata.probe_photon_count == pytest.approx(
        float(np.mean(np.sum(patterns, axis=(-2, -1)))), rel=1e-7
    )


# --- NPZ only where it fits ---------------------------------------------------------------------------------


def test_npz_larger_than_memory_allows_is_refused_with_the_hdf5_way_out() -> None:
    config = SimulationConfig(patch_size=128, n_positions=200_000)
    with pytest.raises(ConfigError, match="--ptychodus-dir") as error:
        simulate_module.check_npz_fits(config, available=24 * 1024**3)
    assert "\n" not in str(error.value) and "12.2 GiB" in str(error.value)
    simulate_module.check_npz_fits(config, available=64 * 1024**3)  # 2 x 12.2 GiB < half of 64 GiB


def test_cli_refuses_the_npz_before_simulating(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(simulate_module, "available_ram", lambda: 1024**2)
    monkeypatch.setattr(simulate_module, "Simulation", None)  # simulating would fail differently
    parser = cli.argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = parser.parse_args(["--output", str(tmp_path / "x.npz"), "--n-positions", "100"])
    with pytest.raises(ConfigError, match="needs the whole stack in memory"):
        cli.run(args)
    assert list(tmp_path.iterdir()) == []


def test_writer_rejects_misshapen_blocks(tmp_path: Path) -> None:
    with _writer(tmp_path, n_patterns=2) as writer:
        with pytest.raises(ValueError, match="expected amplitudes of shape"):
            writer.write(np.ones((1, 9, 9), dtype=np.float32))
        with pytest.raises(ValueError, match="3 patterns written to a file made for 2"):
            writer.write(np.ones((3, 8, 8), dtype=np.float32))
        writer.write(np.ones((2, 8, 8), dtype=np.float32))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["diffraction.h5", "product.h5"]


def test_finished_files_get_the_usual_permissions(tmp_path: Path) -> None:
    """Temporary files must not stay private (mkstemp's 0600) once renamed: others read the pair too."""
    umask = os.umask(0)
    os.umask(umask)
    simulate_to_files(NOISY, None, tmp_path)
    for name in ("diffraction.h5", "product.h5"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask
