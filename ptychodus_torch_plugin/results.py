"""Writing a reconstruction's results: the NPZ with the object (and the refined probe, positions and
per-iteration history where there are any) and, when the truth is known, its quality figures. One place,
used by training's final reconstruction and by the ``reconstruct`` command alike."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_write
from .data.scan import ScanData
from .evaluation import evaluate, region_mask
from .reconstructors.base import Reconstruction


def quality_of(recon: Reconstruction, scan: ScanData) -> dict[str, float] | None:
    """SSIM, PSNR, Pearson and FRC against the scan's true object over the measured region; None without
    a truth."""
    if scan.object_truth is None:
        return None
    return evaluate(recon.object, scan.object_truth, region_mask(recon.weights)).as_dict()


def save_reconstruction(path: Path, recon: Reconstruction, scan: ScanData, quality: dict[str, float] | None) -> Path:
    """NPZ with the complex object, its amplitude and phase, the weight map and the pixel geometry; also
    ``probe``, ``refined_positions`` and ``history_json`` when the reconstructor produced them."""
    arrays: dict[str, Any] = {
        "object": recon.object.astype(np.complex64),
        "amplitude": np.abs(recon.object).astype(np.float32),
        "phase": np.angle(recon.object).astype(np.float32),
        "weights": recon.weights.astype(np.float32),
        "positions": np.asarray(scan.positions, dtype=np.float64),
        "pixel_size_m": np.float64(scan.pixel_size_m if scan.pixel_size_m is not None else np.nan),
    }
    if recon.probe is not None:
        arrays["probe"] = np.asarray(recon.probe, dtype=np.complex64)
    if recon.positions is not None:
        arrays["refined_positions"] = np.asarray(recon.positions, dtype=np.float64)
    if recon.history:
        arrays["history_json"] = np.array(json.dumps([dict(record) for record in recon.history]))
    if quality:
        arrays["quality_json"] = np.array(json.dumps(quality))

    def write(handle: Any) -> None:
        np.savez_compressed(handle, **arrays)

    return atomic_write(path, write)


@dataclass(frozen=True)
class WrittenResults:
    npz: Path
    picture: Path
    quality: dict[str, float] | None
    """Scores against the truth (``None`` without one)."""


def write_results(folder: Path, recon: Reconstruction, scan: ScanData, title: str = "") -> WrittenResults:
    """What every reconstruction leaves in ``folder``: ``reconstruction.npz`` (:func:`save_reconstruction`)
    and ``reconstruction.png`` (amplitude and phase, beside the truth when known), scored once."""
    from .pictures import save_object_figure

    quality = quality_of(recon, scan)
    npz = save_reconstruction(Path(folder) / "reconstruction.npz", recon, scan, quality)
    picture = save_object_figure(Path(folder) / "reconstruction.png", recon.object, scan.object_truth, title=title,
                                 weights=recon.weights)
    return WrittenResults(npz, picture, quality)
