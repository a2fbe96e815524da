"""Registers the built-in model types, through the same hook a third-party model plugin uses."""

from __future__ import annotations

from .. import hookimpl
from .base import ModelType
from .pinn import PtychoModel, SupervisedModel


@hookimpl
def ptychodus_torch_register_model_types() -> list[ModelType]:
    return [
        ModelType("pinn", PtychoModel, "unsupervised: physics (diffraction) loss only"),
        ModelType("supervised", SupervisedModel, "trained against the true object", needs_ground_truth=True),
    ]
