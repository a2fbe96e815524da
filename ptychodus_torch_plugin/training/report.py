"""What a finished training run leaves: the model file with the best weights, and the final reconstruction
of the evaluation scan with its scores, pictures and loss curve.

Why apart from the loop: it runs once, on rank 0, after the last epoch, and only reads what the loop
recorded (the run folder, the history).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from ..config import ModelConfig
from ..data.scan import ScanData
from ..models.model_file import MODEL_FILE_NAME, save_model
from ..pictures import save_loss_figure
from ..plugin_types import Reconstruction
from ..results import write_results
from .checkpoints import checkpoint_path, load_checkpoint


def save_best_model(model: nn.Module, config: ModelConfig, run_dir: Path, info: Mapping[str, Any]) -> Path:
    """The model file, with the best checkpoint's weights (loaded into ``model``) rather than the last."""
    best = checkpoint_path(run_dir, "best")
    if best.is_file():
        model.load_state_dict(load_checkpoint(best)["model"])
    return save_model(model, config, Path(run_dir) / MODEL_FILE_NAME, dict(info))


@dataclass(frozen=True)
class FinalReport:
    quality: dict[str, float] | None
    """Scores against the truth, when the evaluation scan has one."""
    files: tuple[Path, ...]
    """The reconstruction picture and the loss curve (for the logger's artifacts)."""


def final_report(run_dir: Path, reconstruction: Reconstruction, scan: ScanData,
                 history: Sequence[Mapping[str, float]], epochs: int) -> FinalReport:
    """``reconstruction.npz``/``.png`` with the scores, and ``loss.png`` from the per-epoch history."""
    written = write_results(Path(run_dir), reconstruction, scan, title=f"after {epochs} epochs")
    losses = {k: [h[k] for h in history if k in h] for k in ("train_loss", "val_loss")}
    curve = save_loss_figure(Path(run_dir) / "loss.png", [int(h["epoch"]) for h in history],
                             {k: v for k, v in losses.items() if v})
    return FinalReport(written.quality, (written.picture, curve))
