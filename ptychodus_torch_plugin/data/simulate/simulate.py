"""Simulate a ptychography dataset with ground truth, using the project's own forward model.

Why through :mod:`ptychodus_torch_plugin.physics`: the simulated counts must be exactly what the
reconstruction's forward model predicts from the true object and probe, so a convention slip (shift sign,
FFT centring) shows up as a failed round trip instead of being copied into both sides. The model is
:func:`~ptychodus_torch_plugin.physics.scan_model.scan_amplitudes`: the object read on its own pixel grid,
the probe shifted by each position's sub-pixel remainder (what a real sample does, and what ptychodus and
pty-chi assume).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from ...physics.scan_model import scan_amplitudes
from ..npz import save_npz
from ..ptychodus_h5 import DIFFRACTION_FILE_NAME, PRODUCT_FILE_NAME, save_ptychodus
from ..scan import ScanData
from .config import NOISELESS_PHOTONS, SimulationConfig
from .objects import make_object
from .probes import make_probe
from .scans import make_trajectory, place_in_object, required_object_size


def simulate(config: SimulationConfig) -> ScanData:
    """A :class:`ScanData` with ground-truth object, the probe that produced the counts, and positions.

    Independent random streams (object, scan, noise) are spawned from ``config.seed``, so changing the
    noise level does not change the object or the scan.
    """
    object_rng, scan_rng, noise_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(config.seed).spawn(3)
    )
    n = config.patch_size

    trajectory = make_trajectory(config.scan_kind, config.n_positions, config.step, config.grid)
    if config.object_size is None:
        shape = required_object_size(trajectory, n, config.jitter_px)
    else:
        shape = (config.object_size, config.object_size)
    positions = place_in_object(trajectory, shape, n, config.jitter_px, scan_rng)

    obj = make_object(
        config.object_kind,
        shape,
        object_rng,
        lines_per_kpx=config.lines_per_kpx,
        correlation_px=config.grf_correlation_px,
        images=config.images,
    )
    probe = make_probe(
        config.probe_kind,
        n,
        config.probe_radius,
        edge_px=config.probe_edge_px,
        focus_radius_px=config.probe_focus_radius_px,
        central_stop=config.probe_central_stop,
    )

    intensity = noiseless_intensity(obj, probe, positions)
    target = NOISELESS_PHOTONS if config.nphotons is None else float(config.nphotons)
    scale = target / float(np.mean(np.sum(intensity, axis=(-2, -1))))
    intensity *= scale
    probe = (probe * np.sqrt(scale)).astype(np.complex64)
    counts = intensity if config.nphotons is None else noise_rng.poisson(intensity).astype(np.float64)

    return ScanData(
        amplitudes=np.sqrt(counts).astype(np.float32),
        probe=probe,
        positions=positions,
        object_truth=obj,
        scan_index=np.zeros(config.n_positions, dtype=np.int64),
        pixel_size_m=config.pixel_size_m,
        source="simulated: " + ", ".join(f"{k}={v}" for k, v in asdict(config).items()),
    )


def noiseless_intensity(obj: np.ndarray, probe: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """sum_k |F(P_k(x - p) * O(x))|^2, float64 (M, N, N), via the physics forward model (in float64)."""
    with torch.no_grad():
        amplitude = scan_amplitudes(
            torch.from_numpy(obj.astype(np.complex128)),
            torch.from_numpy(probe.astype(np.complex128)),
            torch.from_numpy(np.asarray(positions, dtype=np.float64)),
        )
    return amplitude.numpy().astype(np.float64) ** 2


def simulate_to_files(
    config: SimulationConfig, npz_path: Path | str, ptychodus_dir: Path | str | None = None
) -> ScanData:
    """Simulate, write the NPZ layout, and optionally ptychodus's diffraction.h5 + product.h5 pair."""
    scan = simulate(config)
    save_npz(scan, npz_path)
    if ptychodus_dir is not None:
        folder = Path(ptychodus_dir)
        save_ptychodus(scan, folder / DIFFRACTION_FILE_NAME, folder / PRODUCT_FILE_NAME)
    return scan
