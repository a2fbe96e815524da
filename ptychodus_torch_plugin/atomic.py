"""Crash-safe file writing and safe loading of torch files.

Writes go to a temporary file in the same folder, are flushed to disk, and then renamed over the
target, so a crash or Ctrl-C leaves either the old file or the new one, never half of one. Loading uses
``torch.load(weights_only=True)``, which refuses any pickle that would import or call code.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch

from .errors import ModelFileError


def atomic_write(path: Path, write: Callable[[IO[bytes]], None], *, make_parents: bool = True) -> Path:
    """Call ``write(file)`` on a temporary file, then rename it to ``path``.

    ``make_parents=False`` fails when the folder is gone instead of silently re-creating it.
    """
    path = Path(path)
    if make_parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_torch_save(obj: Any, path: Path) -> Path:
    return atomic_write(path, lambda handle: torch.save(obj, handle))


def safe_torch_load(path: Path, what: str = "model file") -> dict[str, Any]:
    """Load a torch file without unpickling code; every failure becomes one :class:`ModelFileError`."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{what} not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # corrupt zip, truncated file, forbidden pickle global...
        text = str(error).splitlines()[0] if str(error) else type(error).__name__
        if "weights_only" in str(error) or "Unsupported global" in str(error):
            reason = "it contains pickled Python objects other than tensors, which are never loaded"
        elif isinstance(error, (zipfile.BadZipFile, EOFError, RuntimeError)):
            reason = f"it is corrupt or truncated ({text})"
        else:
            reason = text
        raise ModelFileError(f"cannot load {what} {path}: {reason}") from error
    if not isinstance(obj, dict):
        raise ModelFileError(f"{path} is not a ptychodus-torch {what} (top level is {type(obj).__name__})")
    return obj
