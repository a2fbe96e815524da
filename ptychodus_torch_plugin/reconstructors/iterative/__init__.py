"""The ``iterative`` reconstructor: LSQ-ML-style minibatch updates on the scan forward model."""

from .config import NOISE_MODELS, IterativeConfig

__all__ = ["NOISE_MODELS", "IterativeConfig"]
