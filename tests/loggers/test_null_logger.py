"""The ``none`` backend writes nothing at all."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ptychodus_torch_plugin.loggers.base import LoggerSettings
from ptychodus_torch_plugin.loggers.null_logger import NullLogger


def test_writes_nothing_not_even_a_folder(tmp_path: Path) -> None:
    output_dir = tmp_path / "out"
    settings = LoggerSettings(
        output_dir=output_dir, run_dir=output_dir / "lightning_logs" / "version_0", per_step_metrics=True
    )
    logger = NullLogger(settings)
    logger.start()
    logger.log_hyperparams({"lr": 0.1})
    logger.log_step_metrics({"loss": 1.0}, epoch=0, step=1)
    logger.log_metrics({"loss": 1.0}, epoch=0, step=1)
    logger.log_image("amp", np.ones((3, 3)), epoch=0, step=1)
    logger.log_artifact(tmp_path / "model.pt")
    logger.finish("FINISHED")
    assert list(tmp_path.iterdir()) == []
