"""Helpers for the training tests."""

from __future__ import annotations

from pathlib import Path

from ptychodus_torch_plugin.config import ExecutionConfig, ModelConfig, TrainingConfig

TINY_CHANNELS = (8, 16, 32)


def tiny_config(train: Path, test: Path | None, output_dir: Path, **overrides) -> TrainingConfig:
    model = overrides.pop("model", ModelConfig(gridsize=2, channels=TINY_CHANNELS))
    values = dict(train_data_file=train, test_data_file=test, output_dir=output_dir, max_epochs=2, batch_size=8,
                  quiet=True, image_every_n_epochs=0, model=model)
    values.update(overrides)
    return TrainingConfig(**values)


CPU = ExecutionConfig(accelerator="cpu", logger="csv")
