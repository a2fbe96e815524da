"""Each learning-rate schedule changes the rate as its name says."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from ptychodus_torch_plugin.config import TrainingConfig
from ptychodus_torch_plugin.errors import ConfigError
from ptychodus_torch_plugin.training.schedules import build_scheduler, current_lr, step_scheduler


def _rates(scheduler_name: str, losses: list[float], **overrides) -> list[float]:
    config = TrainingConfig(train_data_file=Path("x"), output_dir=Path("y"), scheduler=scheduler_name,
                            learning_rate=0.1, max_epochs=len(losses), **overrides)
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=config.learning_rate)
    scheduler = build_scheduler(optimizer, config)
    rates = []
    for loss in losses:
        rates.append(current_lr(optimizer))
        optimizer.step()
        step_scheduler(scheduler, loss)
    return rates


def test_constant_keeps_the_rate():
    assert _rates("constant", [1.0] * 5) == [0.1] * 5


def test_exponential_multiplies_by_gamma_each_epoch():
    rates = _rates("exponential", [1.0] * 4, lr_gamma=0.5)
    assert rates == pytest.approx([0.1, 0.05, 0.025, 0.0125])


def test_cosine_warms_up_then_decays_to_zero():
    rates = _rates("cosine", [1.0] * 12, warmup_epochs=2)
    assert rates[0] < rates[1] < rates[2] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(rates[2:], rates[3:]))
    assert rates[7] == pytest.approx(0.1 * 0.5 * (1 + math.cos(math.pi * 5 / 10)))
    assert rates[-1] < 0.01


def test_plateau_reduces_only_after_patience_epochs_without_improvement():
    improving = _rates("plateau", [5, 4, 3, 2, 1, 0.5], plateau_patience=1, lr_gamma=0.5)
    assert improving == [0.1] * 6
    stalled = _rates("plateau", [1, 1, 1, 1, 1], plateau_patience=1, lr_gamma=0.5)
    assert stalled[:3] == [0.1, 0.1, 0.1]
    assert stalled[3] == pytest.approx(0.05)


def test_unknown_scheduler_is_a_config_error():
    config = TrainingConfig(train_data_file=Path("x"), output_dir=Path("y"), scheduler="warp")
    with pytest.raises(ConfigError, match="unknown scheduler 'warp'"):
        config.validate()
