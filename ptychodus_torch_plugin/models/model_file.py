"""The model file: one torch file with the weights, the configuration to rebuild the network, and the
package version. Loaded with ``weights_only=True``; anything unexpected is a clear :class:`ModelFileError`.

Format 2 adds a ``manifest`` with SHA-256 checksums of the weights (every tensor's name, dtype, shape and
bytes, in sorted order) and of the model configuration; loading recomputes both and refuses a file whose
checksums do not match, so a bit flip or an edit is an error, never a silently different model. Format 1
files (written before checksums existed) still load, without that check; a format 2 file without its
manifest is refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import __version__
from ..atomic import atomic_torch_save, make_manifest, safe_torch_load, verify_manifest
from ..config import ModelConfig
from ..errors import ConfigError, ModelFileError

MODEL_FORMAT = "ptychodus-torch-model"
MODEL_FORMAT_VERSION = 2
READABLE_FORMAT_VERSIONS = (1, 2)
"""Format 1: no checksum manifest (still read, unverified). Format 2: ``manifest`` required and verified."""
MODEL_FILE_NAME = "model.pt"


def plain(value: Any) -> Any:
    """Config values as plain types only, so the file never needs unpickling of custom classes."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def model_payload(model: nn.Module, config: ModelConfig, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    model_config = plain(config.__dict__)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return {
        "format": MODEL_FORMAT,
        "format_version": MODEL_FORMAT_VERSION,
        "package_version": __version__,
        "model_config": model_config,
        "state_dict": state,
        "info": plain(extra or {}),
        "manifest": make_manifest(state, model_config),
    }


def save_model(model: nn.Module, config: ModelConfig, path: Path, extra: Mapping[str, Any] | None = None) -> Path:
    return atomic_torch_save(model_payload(model, config, extra), path)


def resolve_model_path(path: Path) -> Path:
    """Accept the model file itself, a run folder, or an ``--output_dir`` (its newest run's model)."""
    from ..run_folders import latest_run_dir

    path = Path(path)
    if path.is_dir():
        if (path / MODEL_FILE_NAME).is_file():
            return path / MODEL_FILE_NAME
        run = latest_run_dir(path)
        if run is not None and (run / MODEL_FILE_NAME).is_file():
            return run / MODEL_FILE_NAME
        raise ModelFileError(f"no {MODEL_FILE_NAME} in {path} or in its newest lightning_logs/version_* folder")
    return path


def rebuild_model(payload: Mapping[str, Any], host: Any, path: Path | str = "model") -> tuple[nn.Module, ModelConfig]:
    """Rebuild the network from a loaded payload (model file or checkpoint)."""
    state = payload.get("state_dict")
    if not isinstance(state, Mapping) or "probe_real" not in state:
        raise ModelFileError(f"{path}: no usable weights in the file")
    try:
        config = ModelConfig.from_dict(dict(payload["model_config"]))
        config.validate()
    except (KeyError, TypeError, ValueError) as error:
        raise ModelFileError(f"{path}: the stored model configuration is invalid ({error})") from error
    try:
        model_type = host.model_type(config.model_type)
    except ConfigError as error:
        raise ModelFileError(f"{path}: {error} (is the plugin that provides it installed?)") from error
    probe = torch.view_as_complex(state["probe_real"].float().contiguous())
    model = model_type.create(config, probe, 1.0, int(state.get("canvas_size", torch.tensor(0))))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise ModelFileError(f"{path}: weights do not fit the stored architecture ({str(error)[:300]})") from error
    return model, config


def load_model(path: Path, host: Any) -> tuple[nn.Module, ModelConfig, dict[str, Any]]:
    """Load a model file safely. Returns (model in eval mode, its config, the file's ``info`` record)."""
    path = resolve_model_path(path)
    payload = safe_torch_load(path, "model file")
    if payload.get("format") != MODEL_FORMAT:
        raise ModelFileError(f"{path} is not a ptychodus-torch model file (format={payload.get('format')!r})")
    version = payload.get("format_version")
    if version not in READABLE_FORMAT_VERSIONS:
        readable = " and ".join(str(v) for v in READABLE_FORMAT_VERSIONS)
        raise ModelFileError(
            f"{path} uses model-file format {version}, written by ptychodus-torch-plugin "
            f"{payload.get('package_version')}; this version ({__version__}) reads formats {readable}"
        )
    if version >= 2:  # checked before the weights are used for anything
        verify_manifest(payload.get("manifest"), payload.get("state_dict"), payload.get("model_config"),
                        path, "model file")
    model, config = rebuild_model(payload, host, path)
    model.eval()
    return model, config, dict(payload.get("info") or {})
