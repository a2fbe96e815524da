"""Dtype helpers shared by the physics modules (complex <-> matching real precision)."""

import torch
from torch import Tensor

_REAL_OF = {torch.complex64: torch.float32, torch.complex128: torch.float64, torch.complex32: torch.float16}
_COMPLEX_OF = {torch.float32: torch.complex64, torch.float64: torch.complex128}


def real_dtype(dtype: torch.dtype) -> torch.dtype:
    """Real dtype of the same precision, so weights and phases never silently upcast or truncate."""
    return _REAL_OF.get(dtype, dtype)


def complex_dtype(dtype: torch.dtype) -> torch.dtype:
    """Complex dtype of the same precision; integers and half precision map to complex64 (FFT-able)."""
    if dtype.is_complex:
        return dtype
    return _COMPLEX_OF.get(dtype, torch.complex64)


def as_complex(x: Tensor) -> Tensor:
    """Promote a real tensor to complex of the same precision; complex tensors pass through untouched."""
    return x if x.is_complex() else x.to(complex_dtype(x.dtype))
