"""Helpers shared by the physics tests: seeded random objects and an independent NumPy DFT."""

import numpy as np
import torch


def random_object(
    shape: tuple[int, int], seed: int = 0, dtype: torch.dtype = torch.complex64
) -> torch.Tensor:
    """A random complex object with amplitude in [0.5, 1.5] and phase in [-pi, pi)."""
    rng = np.random.default_rng(seed)
    amplitude = rng.uniform(0.5, 1.5, shape)
    phase = rng.uniform(-np.pi, np.pi, shape)
    return torch.as_tensor(amplitude * np.exp(1j * phase)).to(dtype)


def numpy_centred_dft(x: np.ndarray) -> np.ndarray:
    """Centred orthonormal DFT written as explicit matrix sums (no FFT shifting helpers involved).

    F[u, v] = (H W)^-1/2 sum_{r, c} x[r, c] exp(-2 pi i ((u - H//2)(r - H//2)/H + (v - W//2)(c - W//2)/W)).
    """
    height, width = x.shape[-2:]
    r = np.arange(height) - height // 2
    c = np.arange(width) - width // 2
    rows = np.exp(-2j * np.pi * np.outer(r, r) / height)
    cols = np.exp(-2j * np.pi * np.outer(c, c) / width)
    return rows @ x.astype(np.complex128) @ cols.T / np.sqrt(height * width)
