"""Crash-safe file writing and safe loading of torch files.

Writes go to a temporary file in the same folder, are flushed to disk, and then renamed over the
target, so a crash or Ctrl-C leaves either the old file or the new one, never half of one. Loading uses
``torch.load(weights_only=True)``, which refuses any pickle that would import or call code. The checksum
helpers (:func:`make_manifest`, :func:`verify_manifest`) let model files and checkpoints detect a changed
bit in their weights or configuration.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from collections.abc import Callable, Mapping
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


# -- checksums ------------------------------------------------------------------------------------------

CHECKSUM_ALGORITHM = "sha256"


def state_dict_sha256(state: Mapping[str, Any]) -> str:
    """SHA-256 over a state dict: for each entry in sorted-name order its name, dtype, shape and raw bytes.

    Independent of the device and of how the file was written, so the same weights always give the same
    digest; any changed bit in a tensor, a renamed entry, or a changed dtype or shape gives another.
    """
    digest = hashlib.sha256()
    for name in sorted(state):
        value = state[name]
        digest.update(b"name\0" + str(name).encode() + b"\0")
        if isinstance(value, torch.Tensor):
            tensor = value.detach().cpu().contiguous().reshape(-1)
            digest.update(f"{tensor.dtype}\0{tuple(value.shape)}\0{tensor.numel()}\0".encode())
            digest.update(tensor.view(torch.uint8).numpy().tobytes())
        else:  # plain values (rare in a state dict): their canonical JSON text
            digest.update(b"value\0" + json_sha_text(value).encode())
        digest.update(b"\0")
    return digest.hexdigest()


def json_sha_text(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def plain_sha256(value: Any) -> str:
    """SHA-256 of the canonical JSON text of plain values (a configuration record)."""
    return hashlib.sha256(json_sha_text(value).encode()).hexdigest()


def make_manifest(state: Mapping[str, Any], config: Any) -> dict[str, str]:
    return {"algorithm": CHECKSUM_ALGORITHM, "state_dict_sha256": state_dict_sha256(state),
            "config_sha256": plain_sha256(config)}


def verify_manifest(manifest: Any, state: Any, config: Any, path: Path, what: str) -> None:
    """Raise :class:`ModelFileError` unless ``manifest`` matches the weights and the configuration."""
    if not isinstance(manifest, Mapping) or manifest.get("algorithm") != CHECKSUM_ALGORITHM:
        raise ModelFileError(f"{what} {path}: missing or unreadable checksum manifest: the file is corrupt "
                             "or was modified")
    if not isinstance(state, Mapping):
        raise ModelFileError(f"{what} {path}: no usable weights in the file")
    bad = []
    if manifest.get("state_dict_sha256") != state_dict_sha256(state):
        bad.append("weights")
    if manifest.get("config_sha256") != plain_sha256(config):
        bad.append("configuration")
    if bad:
        raise ModelFileError(f"{what} {path}: {' and '.join(bad)} checksum mismatch: the file is corrupt "
                             "or was modified")
