"""Running a registered reconstructor by name, with the host's rules: a reconstructor that needs a model
gets one, one that raises is reported by its name and plugin, and what it returns is checked."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ConfigError, PluginError, PtychodusTorchError
from .base import Reconstruction, ReconstructRequest


def default_reconstructor(has_model: bool) -> str:
    """``pinn`` when a trained model is given, else ``iterative`` (which needs none)."""
    return "pinn" if has_model else "iterative"


def check_request(host: Any, name: str, has_model: bool) -> None:
    """Refuse an unknown name or a missing model before any data is loaded."""
    reconstructor = host.reconstructor(name).backend
    if reconstructor.needs_model and not has_model:
        raise ConfigError(f"reconstructor '{reconstructor.name}' needs a trained model: pass --model (a model.pt, "
                          "a run folder or a training --output_dir)")


def run_reconstructor(host: Any, name: str, request: ReconstructRequest) -> Reconstruction:
    """Run the reconstructor registered as ``name`` on ``request``."""
    check_request(host, name, request.model is not None)
    entry = host.reconstructor(name)
    reconstructor = entry.backend
    try:
        result = reconstructor.run(request)
    except PtychodusTorchError:
        raise
    except Exception as error:
        from ..distributed import is_peer_failure, peer_lost

        if request.distributed is not None and request.distributed.enabled and is_peer_failure(error):
            raise peer_lost(error, request.distributed) from error
        raise PluginError(f"reconstructor '{reconstructor.name}' (plugin '{entry.plugin}') failed: "
                          f"{type(error).__name__}: {error}") from error
    shape = tuple(request.scan.object_shape)
    if not isinstance(result, Reconstruction) or np.shape(result.object) != shape:
        got = np.shape(getattr(result, "object", None)) if isinstance(result, Reconstruction) else type(result).__name__
        raise PluginError(f"reconstructor '{reconstructor.name}' (plugin '{entry.plugin}') returned {got}, not a "
                          f"Reconstruction of the scan's {shape[0]} x {shape[1]} object")
    return result
