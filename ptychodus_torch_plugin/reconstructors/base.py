"""What a reconstructor plugin registers, what it is given and what it returns.

A reconstructor turns one scan (and, for the network-based ones, a trained model) into the complex
object, and where it refines them, the probe and the scan positions. It is registered through the hook
``ptychodus_torch_register_reconstructors`` exactly as a logger or a model type is, and offered by name by
``ptychodus-torch reconstruct --reconstructor NAME``, by the ``plugins`` listing and inside ptychodus.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..config import PerformanceConfig
from ..plugin_types import ProgressCallback, ProgressEvent, Reconstruction

if TYPE_CHECKING:  # annotations only: importing this module must not import torch's heavier parts
    import torch
    from torch import nn

    from ..data.scan import ScanData
    from ..distributed import DistributedContext
    from ..memory import MemoryBudget


@dataclass(frozen=True)
class ReconstructRequest:
    """Everything a reconstructor may use. Fields a reconstructor does not need it simply ignores."""

    scan: ScanData
    device: torch.device
    model: nn.Module | None = None
    """A trained network (from a model file), for reconstructors that declare ``needs_model``."""
    initial_object: np.ndarray | None = None
    """Starting guess (H, W) on the scan's object grid; None = the reconstructor's own choice."""
    performance: PerformanceConfig | None = None
    options: Any = None
    """The reconstructor's settings: an instance of its :attr:`Reconstructor.options` class (built by the
    host from the flags, ``--option KEY=VALUE``, ptychodus's settings or its defaults); for a reconstructor
    that declares no class, the ``--option`` texts as a mapping."""
    progress: ProgressCallback | None = None
    distributed: DistributedContext | None = None
    """Set under ``torchrun``: this process is one rank of the job; every rank is given the same request
    and must return the same reconstruction (rank 0 writes it)."""
    memory_budget: MemoryBudget | None = None
    """Host memory this reconstruction may hold for its data and state (``--memory_budget``); None = the
    automatic budget of :func:`~ptychodus_torch_plugin.memory.resolve_budget`. ``scan.amplitudes`` may be a
    :class:`~ptychodus_torch_plugin.data.patterns.PatternStack` (read in blocks) when the scan is large."""

    def report(self, event: ProgressEvent) -> None:
        if self.progress is not None:
            self.progress(event)


@dataclass(frozen=True)
class Reconstructor:
    """A reconstructor offered by name, as returned by ``ptychodus_torch_register_reconstructors``."""

    name: str
    run: Callable[[ReconstructRequest], Reconstruction]
    description: str = ""
    needs_model: bool = False
    """True when it cannot work without a trained model (``--model``)."""
    options: type | None = None
    """A frozen dataclass of this reconstructor's settings, each field declared with
    :func:`ptychodus_torch_plugin.options.setting` (default, help, choices). From it come the command line's
    flags, ``--option KEY=VALUE``, the settings in ptychodus and the ``plugins`` listing; the run gets an
    instance as ``request.options``. A ``validate()`` method, if any, is called before the run."""

    def describe(self) -> dict[str, Any]:
        from ..options import describe_options

        return {"name": self.name, "description": self.description, "needs_model": self.needs_model,
                "options": describe_options(self.options)}


__all__ = ["ProgressCallback", "ProgressEvent", "ReconstructRequest", "Reconstruction", "Reconstructor"]
