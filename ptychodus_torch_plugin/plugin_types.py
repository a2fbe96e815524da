"""The records that cross the plugin interface: what a reconstructor returns and reports, and what a
trainer-event hook is handed.

Why a module of their own, on the bottom floor: the inference, results, training and plugin modules all
pass these around, and a plugin imports them; here they import nothing of the package, so no import runs
upward. ``ptychodus_torch_plugin.reconstructors`` and ``.training.context`` re-export them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from torch import Tensor


@dataclass(frozen=True)
class Reconstruction:
    """A reconstructed object on the scan's object grid, and how well each pixel is determined."""

    object: np.ndarray
    """Complex (H, W) object on the scan's object grid."""
    weights: np.ndarray
    """(H, W) summed probe intensity: how well each pixel is determined (0 = not measured)."""
    n_patterns: int
    probe: np.ndarray | None = None
    """The refined probe (modes, N, N), when the reconstructor refined it; else None."""
    positions: np.ndarray | None = None
    """The corrected positions (M, 2) = (row, col), when the reconstructor corrected them; else None."""
    history: tuple[Mapping[str, float], ...] = ()
    """One record per iteration (e.g. ``epoch``, ``loss``, ``elapsed_s``) for iterative reconstructors."""


@dataclass(frozen=True)
class ProgressEvent:
    """``done`` of ``total`` units (``epoch`` or ``pattern``) finished, with that step's metrics."""

    done: int
    total: int
    unit: str
    metrics: Mapping[str, float] = field(default_factory=dict)
    object: Tensor | None = None
    """The current estimate (H, W), a live view on the device: copy it to keep it."""


ProgressCallback = Callable[[ProgressEvent], None]


ProgressCallback = Callable[[ProgressEvent], None]


@dataclass
class RunContext:
    """One training run, as seen by plugins.

    ``hyperparams`` is the flattened configuration (the same values the logger records); plugins should
    treat every field as read-only.
    """

    output_dir: Path
    run_dir: Path
    device: str
    hyperparams: Mapping[str, Any] = field(default_factory=dict)
    epoch: int = 0
