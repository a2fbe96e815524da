"""Small helpers shared by the built-in backends (file writing and picture conversion).

Nothing here imports matplotlib at module import time: the package must stay light to import.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..atomic import atomic_write

_UNSAFE_FILE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


def atomic_write_text(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so that a reader (or a crash) never sees a half-written file."""
    atomic_write(Path(path), lambda handle: handle.write(text.encode("utf-8")), make_parents=False)


def safe_file_stem(name: str) -> str:
    """A picture or metric name turned into one file-name component (``phase/amp`` -> ``phase_amp``)."""
    stem = _UNSAFE_FILE_CHARS.sub("_", name).strip("._")
    return stem or "image"


def image_file_name(name: str, epoch: int) -> str:
    """``<name>_epoch<NNNN>.png``: sorts by epoch in a file browser and never collides across epochs."""
    return f"{safe_file_stem(name)}_epoch{epoch:04d}.png"


def to_unit_range(image: np.ndarray) -> np.ndarray:
    """A 2-D picture scaled to [0, 1] as float32.

    Complex input shows its magnitude; NaN/inf become 0 so that one bad pixel cannot blank the picture;
    a constant picture becomes all zeros instead of dividing by zero.
    """
    data = np.asarray(image)
    if np.iscomplexobj(data):
        data = np.abs(data)
    data = np.squeeze(data.astype(np.float64, copy=False))
    if data.ndim != 2:
        raise ValueError(f"expected a 2-D picture, got shape {np.shape(image)}")
    finite = np.isfinite(data)
    if not finite.any():
        return np.zeros(data.shape, dtype=np.float32)
    low, high = float(data[finite].min()), float(data[finite].max())
    scaled = np.where(finite, data, low) - low
    if high > low:
        scaled /= high - low
    else:
        scaled[:] = 0.0
    return np.clip(scaled, 0.0, 1.0).astype(np.float32)


def save_png(path: Path, image: np.ndarray) -> Path:
    """Write a 2-D picture as a greyscale PNG.

    Uses ``matplotlib.image.imsave`` (what ``pyplot.imsave`` calls): it renders off-screen with Agg and,
    unlike importing ``pyplot``, does not pick or change the process-wide GUI backend.
    """
    from matplotlib.image import imsave  # lazy: matplotlib is slow to import

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    imsave(path, to_unit_range(image), cmap="gray", vmin=0.0, vmax=1.0, format="png")
    return path
