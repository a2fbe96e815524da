"""Writing a reconstruction's results: the NPZ with the object (and the refined probe, positions and
per-iteration history where there are any) and, when the truth is known, its quality figures. One place,
used by training's final reconstruction and by the ``reconstruct`` command alike."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_write
from .data.scan import ScanData
from .evaluation import evaluate, region_mask
from .plugin_types import Reconstruction

#: Largest side of the region scored against the truth. Scoring works in float64 on the whole region (many
#: arrays of it at once: registration, SSIM filters; measured 262 MiB for a 1024 x 1024 region, 879 MiB for
#: 2048 x 2048); a larger measured region is scored on its central square of this side, which is recorded
#: in the scores (``scored_*``).
MAX_SCORED_SIDE = 1024


def quality_of(recon: Reconstruction, scan: ScanData) -> dict[str, float] | None:
    """SSIM, PSNR, Pearson and FRC against the scan's true object over the measured region (its central
    :data:`MAX_SCORED_SIDE` square when larger); None without a truth."""
    if scan.object_truth is None:
        return None
    mask = region_mask(recon.weights)
    window = _central_window(mask, MAX_SCORED_SIDE)
    scores = evaluate(recon.object[window], scan.object_truth[window], mask[window]).as_dict()
    if window != (slice(None), slice(None)):
        scores.update(scored_row=float(window[0].start), scored_col=float(window[1].start),
                      scored_side=float(MAX_SCORED_SIDE))
    return scores


def _central_window(mask: np.ndarray, side: int) -> tuple[slice, slice]:
    """The whole array, or the central ``side`` x ``side`` square of the mask's bounding box when that box
    is larger on either axis."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0 or max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 <= side:
        return (slice(None), slice(None))
    window = []
    for used in (rows, cols):
        first, end = int(used[0]), int(used[-1]) + 1
        start = first + max(0, (end - first - side) // 2)
        window.append(slice(start, min(start + side, end)))
    return (window[0], window[1])


def save_reconstruction(path: Path, recon: Reconstruction, scan: ScanData, quality: dict[str, float] | None) -> Path:
    """NPZ with the complex object, its amplitude and phase, the weight map and the pixel geometry; also
    ``probe``, ``refined_positions`` and ``history_json`` when the reconstructor produced them.

    Each array is made just before it is written and dropped after, so writing a large object holds one
    derived array at a time (amplitude, phase...), not all of them (20 bytes per object pixel)."""
    arrays: dict[str, Callable[[], np.ndarray]] = {
        "object": lambda: np.asarray(recon.object, dtype=np.complex64),
        "amplitude": lambda: np.abs(np.asarray(recon.object, dtype=np.complex64)),
        "phase": lambda: np.angle(np.asarray(recon.object, dtype=np.complex64)),
        "weights": lambda: np.asarray(recon.weights, dtype=np.float32),
        "positions": lambda: np.asarray(scan.positions, dtype=np.float64),
        "pixel_size_m": lambda: np.float64(scan.pixel_size_m if scan.pixel_size_m is not None else np.nan),
    }
    if recon.probe is not None:
        arrays["probe"] = lambda: np.asarray(recon.probe, dtype=np.complex64)
    if recon.positions is not None:
        arrays["refined_positions"] = lambda: np.asarray(recon.positions, dtype=np.float64)
    if recon.history:
        arrays["history_json"] = lambda: np.array(json.dumps([dict(record) for record in recon.history]))
    if quality:
        arrays["quality_json"] = lambda: np.array(json.dumps(quality))

    def write(handle: Any) -> None:
        with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
            for name, make in arrays.items():
                with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.asanyarray(make()), allow_pickle=False)

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
