"""Reconstructors: named ways to turn a scan (and optionally a trained model) into the object.

Built-ins (``pinn``, ``iterative``, ``pinn+iterative``) are registered by :mod:`.builtin` through the
same hook a third-party plugin implements; see :mod:`.base` for the interface.
"""

from .base import ProgressEvent, Reconstruction, Reconstructor, ReconstructRequest

__all__ = ["ProgressEvent", "ReconstructRequest", "Reconstruction", "Reconstructor"]
