"""Seeding and deterministic algorithms, so two runs with ``--deterministic`` give identical metrics."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextmanager
def deterministic_algorithms(device: torch.device, enabled: bool = True) -> Iterator[None]:
    """Deterministic algorithms for the duration of a run, then the caller's setting again (a library
    call must not leave process-wide state changed)."""
    previous = torch.are_deterministic_algorithms_enabled()
    previous_cudnn = (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    if enabled:
        enable_deterministic(device)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = previous_cudnn


def enable_deterministic(device: torch.device) -> None:
    """Turn on PyTorch's deterministic algorithms.

    Handled explicitly: cuBLAS needs a fixed workspace (``CUBLAS_WORKSPACE_CONFIG``); cuDNN must not
    benchmark-pick algorithms; ``index_add_`` (stitching, group canvas) switches to its deterministic CUDA
    kernel in this mode; the decoders' nearest up-sampling is a broadcast (``models.generator.upsample2x``)
    because CUDA's ``upsample_nearest2d`` backward has no deterministic kernel. Any other op without one
    raises at once instead of silently breaking reproducibility.
    """
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    torch.use_deterministic_algorithms(True)


def rng_state() -> dict[str, object]:
    """RNG states in plain/tensor form (loadable with ``weights_only=True``)."""
    state: dict[str, object] = {
        "python": random.getstate(),
        "numpy": np.random.get_state()[1].tolist(),
        "numpy_pos": int(np.random.get_state()[2]),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, object]) -> None:
    python_state = state.get("python")
    if python_state is not None:
        version, internal, gauss = python_state  # type: ignore[misc]
        random.setstate((version, tuple(internal), gauss))
    if "numpy" in state:
        np.random.set_state(("MT19937", np.asarray(state["numpy"], dtype=np.uint32), int(state["numpy_pos"]), 0, 0.0))  # type: ignore[arg-type]
    if "torch" in state:
        torch.set_rng_state(state["torch"])  # type: ignore[arg-type]
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])  # type: ignore[arg-type]
