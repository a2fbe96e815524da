"""What a model-type plugin registers: a named recipe for a generator network and its training loss."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ModelType:
    """A model type offered by name (``--model pinn``), as returned by ``ptychodus_torch_register_model_types``."""

    name: str
    create: Callable[..., Any]
    """Build the trainable model from the model configuration."""
    description: str = ""
    needs_ground_truth: bool = False
    """True for supervised types: training data must carry the true object."""
