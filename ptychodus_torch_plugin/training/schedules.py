"""Learning-rate schedules, stepped once per epoch.

``constant`` keeps the rate; ``exponential`` multiplies it by ``lr_gamma`` each epoch; ``cosine`` ramps up
linearly over ``warmup_epochs`` and then follows half a cosine to zero at ``max_epochs``; ``plateau``
multiplies it by ``lr_gamma`` after ``plateau_patience`` epochs without a better validation loss.
"""

from __future__ import annotations

import math

import torch
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, ReduceLROnPlateau

from ..config import TrainingConfig
from ..errors import ConfigError


def cosine_with_warmup(warmup_epochs: int, max_epochs: int):  # type: ignore[no-untyped-def]
    """Factor of the base rate after ``epoch`` finished epochs."""

    def factor(epoch: int) -> float:
        if epoch < warmup_epochs:
            return (epoch + 1) / (warmup_epochs + 1)
        span = max(1, max_epochs - warmup_epochs)
        progress = min(1.0, (epoch - warmup_epochs) / span)
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def build_scheduler(optimizer: torch.optim.Optimizer, config: TrainingConfig) -> LRScheduler | ReduceLROnPlateau:
    if config.scheduler == "constant":
        return LambdaLR(optimizer, lambda epoch: 1.0)
    if config.scheduler == "exponential":
        return torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=config.lr_gamma)
    if config.scheduler == "cosine":
        return LambdaLR(optimizer, cosine_with_warmup(config.warmup_epochs, config.max_epochs))
    if config.scheduler == "plateau":
        factor = config.lr_gamma if config.lr_gamma < 1 else 0.5
        return ReduceLROnPlateau(optimizer, mode="min", factor=factor, patience=config.plateau_patience)
    raise ConfigError(f"unknown scheduler '{config.scheduler}'")


def step_scheduler(scheduler: LRScheduler | ReduceLROnPlateau, monitored_loss: float) -> None:
    """Advance one epoch; only reduce-on-plateau looks at the loss."""
    if isinstance(scheduler, ReduceLROnPlateau):
        scheduler.step(monitored_loss)
    else:
        scheduler.step()


def current_lr(optimizer: torch.optim.Optimizer) -> float:
    return float(optimizer.param_groups[0]["lr"])
