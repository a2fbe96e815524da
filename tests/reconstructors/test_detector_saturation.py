"""Saturated detector pixels (``--saturation-counts``): left out of the fit pattern by pattern, so a scan
whose brightest 1 % of pixels were clipped reconstructs as the unclipped one does; counted per epoch; a
threshold of zero or below is one error line."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch

from ptychodus_torch_plugin.data import save_npz
from ptychodus_torch_plugin.data.simulate import SimulationConfig, simulate
from ptychodus_torch_plugin.evaluation import evaluate, region_mask
from ptychodus_torch_plugin.reconstructors.base import ReconstructRequest
from ptychodus_torch_plugin.reconstructors.iterative.config import IterativeConfig
from ptychodus_torch_plugin.reconstructors.iterative.solver import reconstruct_iterative


@pytest.fixture(scope="module")
def clipped():
    """The scan, and a copy whose brightest 1 % of pixels read the 99th percentile (a detector that
    saturates there), with that threshold."""
    scan = simulate(SimulationConfig(patch_size=32, n_positions=300, scan_kind="spiral", nphotons=1e6, seed=5))
    counts = scan.amplitudes.astype(np.float64) ** 2
    threshold = float(np.quantile(counts, 0.99))
    return scan, replace(scan, amplitudes=np.sqrt(np.minimum(counts, threshold)).astype(np.float32)), threshold


def _scores(scan, truth, threshold):
    result = reconstruct_iterative(ReconstructRequest(scan=scan, device=torch.device("cpu"),
                                                      options=IterativeConfig(epochs=40, saturation_counts=threshold)))
    report = evaluate(result.object, truth, region_mask(result.weights))
    return report.amplitude_ssim, report.phase_ssim, result.history


def test_saturated_pixels_are_left_out_and_the_clipped_scan_reconstructs_as_the_clean_one(clipped):
    """Measured (2 threads): clean 0.925 / 0.982; clipped, fitted as measured 0.786 / 0.975; clipped with
    the threshold 0.925 / 0.982, 3,073 pixels left out per epoch."""
    scan, saturated, threshold = clipped
    clean = _scores(scan, scan.object_truth, None)
    naive = _scores(saturated, scan.object_truth, None)
    masked = _scores(saturated, scan.object_truth, threshold)
    assert naive[0] < clean[0] - 0.08  # fitting clipped pixels costs amplitude
    assert masked[0] > clean[0] - 0.01 and masked[1] > clean[1] - 0.01
    expected = int((saturated.amplitudes.astype(np.float64) ** 2 >= threshold).sum())
    assert masked[2][-1]["saturated_pixels"] == expected and "saturated_pixels" not in naive[2][-1]


def test_the_command_reports_the_saturated_pixels_in_its_summary(clipped, tmp_path):
    import json

    path = save_npz(clipped[1], tmp_path / "clipped.npz")
    done = subprocess.run([sys.executable, "-m", "ptychodus_torch_plugin", "reconstruct", "--data-file", str(path),
                           "--output-dir", str(tmp_path / "out"), "--saturation-counts", str(clipped[2]),
                           "--epochs", "2", "--quiet"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "out" / "reconstruction.json").read_text())
    assert summary["saturated_pixels"] > 0


def test_a_threshold_of_zero_or_below_is_one_error_line(clipped, tmp_path):
    path = save_npz(clipped[0], tmp_path / "scan.npz")
    for value in ("0", "-5"):
        done = subprocess.run([sys.executable, "-m", "ptychodus_torch_plugin", "reconstruct", "--data-file",
                               str(path), "--output-dir", str(tmp_path / "out"), "--saturation-counts", value,
                               "--quiet"], capture_output=True, text=True, timeout=120)
        assert done.returncode == 2 and "Traceback" not in done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "--saturation-counts must be a positive intensity" in lines[0], done.stderr
        assert not (tmp_path / "out" / "reconstruction.npz").exists()
