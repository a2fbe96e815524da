"""The iterative solver within a memory budget: the plan it makes, streamed patterns giving the resident
result, and (in a plain subprocess, as a user runs it) a scan larger than the budget reconstructed with a
peak RSS that stays under the budget plus the process's own baseline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ptychodus_torch_plugin.data import load_scan, save_ptychodus
from ptychodus_torch_plugin.data.simulate import SimulationConfig, simulate
from ptychodus_torch_plugin.errors import ConfigError
from ptychodus_torch_plugin.evaluation import evaluate, region_mask
from ptychodus_torch_plugin.memory import MIB, MemoryBudget, parse_bytes
from ptychodus_torch_plugin.reconstructors.iterative.config import IterativeConfig
from ptychodus_torch_plugin.reconstructors.iterative.feed import ResidentFeed, StreamedFeed
from ptychodus_torch_plugin.reconstructors.iterative.memory_plan import MemoryPlan, plan_memory
from ptychodus_torch_plugin.reconstructors.iterative.solver import IterativeSolver

CPU = torch.device("cpu")


def _plan(**changes):
    settings = dict(pixels=1000 * 1000, n_patterns=20_000, patch_size=64, modes=1, batch_size=50, momentum=True,
                    shared=False, distinct_shifts=1, held_bytes=0, stream_possible=True,
                    budget=MemoryBudget(2048 * MIB))
    settings.update(changes)
    return plan_memory(**settings)


def test_patterns_are_resident_when_they_fit_and_streamed_when_not():
    fits = _plan()  # 20,000 x 64 x 64 x 4 = 312 MiB of patterns in a 2 GiB budget
    assert fits.resident and fits.block_size == 0 and fits.cache_probes
    assert fits.object_bytes == 1000 * 1000 * 28
    streamed = _plan(n_patterns=400_000)  # 6.1 GiB of patterns
    assert not streamed.resident and streamed.block_size % 50 == 0 and streamed.block_size >= 50
    assert streamed.total_bytes <= 2048 * MIB
    tight = _plan(n_patterns=400_000, budget=MemoryBudget(100 * MIB))
    assert not tight.resident and tight.total_bytes <= 100 * MIB + tight.block_size * 64 * 64 * 4 * 5 + 16 * MIB


def test_an_in_memory_scan_is_never_copied_and_a_scan_that_cannot_stream_stays_resident():
    held = _plan(n_patterns=400_000, held_bytes=400_000 * 64 * 64 * 4, stream_possible=False)
    assert held.resident and not held.cache_probes  # nothing left in the budget for the cache


def test_the_probe_cache_takes_only_what_the_budget_leaves():
    per_position = _plan(distinct_shifts=20_000)  # 20,000 x 64 x 64 x 12 = 938 MiB: fits beside the patterns
    assert per_position.cache_probes
    assert not _plan(distinct_shifts=20_000, budget=MemoryBudget(1200 * MIB)).cache_probes


def test_an_object_larger_than_the_budget_is_refused_with_the_figures():
    with pytest.raises(ConfigError, match=r"needs .* for the object's state .* raise --memory_budget"):
        _plan(pixels=20_000 * 20_000)


@pytest.mark.parametrize("text, expected", [("2GiB", 2 * 1024**3), ("1.5GB", 1_500_000_000), ("500M", 500 * MIB),
                                            ("auto", None), ("3e9", 3_000_000_000)])
def test_budget_sizes(text, expected):
    assert parse_bytes(text) == expected


@pytest.mark.parametrize("text", ["lots", "2 parsecs", "-1GB", "1KB", "nan"])
def test_bad_budget_sizes_are_config_errors(text):
    with pytest.raises(ConfigError, match="--memory_budget"):
        parse_bytes(text)


@pytest.fixture(scope="module")
def stored_scan(tmp_path_factory):
    folder = tmp_path_factory.mktemp("stored")
    scan = simulate(SimulationConfig(patch_size=32, n_positions=300, scan_kind="spiral", nphotons=1e5, seed=5,
                                     jitter_px=0.3))
    save_ptychodus(scan, folder / "diffraction.h5", folder / "product.h5")
    return load_scan(folder, stream=True), scan


def _streamed(block_size: int) -> MemoryPlan:
    return MemoryPlan(resident=False, block_size=block_size, cache_probes=True, object_bytes=0, working_bytes=0,
                      pattern_bytes=0, cache_bytes=0, budget=MemoryBudget(64 * MIB))


def test_one_streamed_block_gives_the_resident_object_bit_for_bit(stored_scan):
    """Same batches in the same order: streaming changes where the patterns come from, nothing else."""
    streamed_scan, memory_scan = stored_scan
    config = IterativeConfig(epochs=4)
    resident = IterativeSolver(memory_scan, config, CPU)
    assert isinstance(resident.feed, ResidentFeed)
    streamed = IterativeSolver(streamed_scan, config, CPU, plan=_streamed(512))
    assert isinstance(streamed.feed, StreamedFeed)
    np.testing.assert_array_equal(streamed.run().object, resident.run().object)


def test_small_streamed_blocks_reach_the_resident_quality(stored_scan):
    """Blocks of 64 patterns (8 runs of 8) against the whole scan in memory, 30 epochs: measured amplitude /
    phase SSIM 0.830 / 0.975 resident and 0.828 / 0.976 streamed."""
    streamed_scan, memory_scan = stored_scan
    config = IterativeConfig(epochs=30)
    resident = IterativeSolver(memory_scan, config, CPU).run()
    solver = IterativeSolver(streamed_scan, config, CPU, plan=_streamed(64))
    solver.feed.run_length = 8
    streamed = solver.run()
    mask = region_mask(resident.weights)
    a = evaluate(resident.object, memory_scan.object_truth, mask)
    b = evaluate(streamed.object, memory_scan.object_truth, mask)
    print("resident", a.amplitude_ssim, a.phase_ssim, "streamed", b.amplitude_ssim, b.phase_ssim)
    assert abs(a.amplitude_ssim - b.amplitude_ssim) < 0.01 and abs(a.phase_ssim - b.phase_ssim) < 0.01
    assert streamed.history[-1]["amplitude_error"] < 0.2 * streamed.history[0]["amplitude_error"]


def test_history_records_rate_and_peak_memory(stored_scan):
    result = IterativeSolver(stored_scan[1], IterativeConfig(epochs=2), CPU).run()
    for record in result.history:
        assert record["patterns_per_s"] > 0 and record["peak_rss_bytes"] > 50 * MIB


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = "1"
    env.pop("WORLD_SIZE", None)
    return env


def _reconstruct(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ptychodus_torch_plugin", "reconstruct", *args], cwd=cwd,
                          env=_env(), capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("flag, value, message", [
    ("--memory_budget", "plenty", "--memory_budget 'plenty'"),
    ("--memory_budget", "1KiB", "below the smallest"),
    ("--collective_timeout", "0", "--collective_timeout must be a positive"),
])
def test_bad_scale_flags_end_in_one_line(stored_scan, tmp_path, flag, value, message):
    folder = Path(str(stored_scan[0].amplitudes.path)).parent
    result = _reconstruct(["--data_file", str(folder), "--output_dir", "out", flag, value], tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


def test_progress_shows_patterns_per_second_and_memory(stored_scan, tmp_path):
    folder = Path(str(stored_scan[0].amplitudes.path)).parent
    result = _reconstruct(["--data_file", str(folder), "--output_dir", "out", "--epochs", "3"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "patterns/s=" in result.stderr and "peak RSS=" in result.stderr, result.stderr
    summary = json.loads((tmp_path / "out" / "reconstruction.json").read_text())
    assert summary["patterns_per_s"] > 0 and summary["peak_rss_bytes_reconstructing"] > 0
    assert json.loads(result.stdout)["reconstruction"] == summary["reconstruction"]


@pytest.fixture(scope="module")
def passes(tmp_path_factory):
    """The same 2,000-position field (N = 64, jittered) scanned once, and 8 times over (16,000 patterns, 250 MiB
    of float32 amplitudes): a scan 8x longer with the same object, written block by block."""
    from ptychodus_torch_plugin.data.ptychodus_write import PtychodusWriter

    root = tmp_path_factory.mktemp("passes")
    scan = simulate(SimulationConfig(patch_size=64, n_positions=2000, nphotons=1e6, seed=3, jitter_px=0.5))
    save_ptychodus(scan, root / "once" / "diffraction.h5", root / "once" / "product.h5")
    repeats = 8
    with PtychodusWriter(root / "eight" / "diffraction.h5", root / "eight" / "product.h5",
                         n_patterns=repeats * scan.n_patterns, dtype=np.uint16, probe=scan.probe,
                         positions=np.tile(scan.positions, (repeats, 1)), object_shape=scan.object_shape,
                         object_truth=scan.object_truth) as writer:
        for _ in range(repeats):
            writer.write(scan.amplitudes)
    return root


def _peak(root: Path, name: str, budget: str, cwd: Path) -> dict:
    result = _reconstruct(["--data_file", str(root / name), "--output_dir", f"out_{name}_{budget}", "--epochs", "1",
                           "--memory_budget", budget, "--quiet"], cwd)
    assert result.returncode == 0, result.stderr
    return json.loads((cwd / f"out_{name}_{budget}" / "reconstruction.json").read_text())


def test_a_scan_larger_than_the_budget_reconstructs_within_it(passes, tmp_path):
    """Run as a user runs it (a plain subprocess), peak RSS from the run's own summary (VmHWM). With
    --memory_budget 64MiB the 8-pass scan (250 MiB of amplitudes) is streamed, and the process peaks within
    32 MiB of the 1-pass scan's run under the same budget: the stated constant is that run's peak, the
    process's own footprint (interpreter, torch, h5py, writing the results). Left to the automatic budget the
    8-pass scan is held whole and peaks >= 200 MiB above, so the comparison can fail. Measured: 1 pass
    386 MiB, 8 passes streamed 381 MiB, 8 passes resident 736 MiB."""
    once = _peak(passes, "once", "64MiB", tmp_path)["peak_rss_bytes"] / MIB
    streamed = _peak(passes, "eight", "64MiB", tmp_path)
    resident = _peak(passes, "eight", "auto", tmp_path)["peak_rss_bytes"] / MIB
    peak = streamed["peak_rss_bytes"] / MIB
    print(f"1 pass {once:.0f} MiB, 8 passes streamed {peak:.0f} MiB, 8 passes resident {resident:.0f} MiB")
    assert streamed["patterns"] == 16000
    assert peak < once + 32
    assert resident > once + 200
