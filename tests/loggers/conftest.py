"""Shared fixtures for the logger backend tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ptychodus_torch_plugin.loggers.base import LoggerSettings, allocate_run_dir


@pytest.fixture
def output_dir(tmp_path: Path) -> Path:
    return tmp_path / "out"


@pytest.fixture
def make_settings(output_dir: Path) -> Callable[..., LoggerSettings]:
    """Settings for a fresh ``version_<N>`` folder (or an explicit ``run_dir`` for resume tests)."""

    def make(**overrides: Any) -> LoggerSettings:
        if "run_dir" not in overrides:
            overrides["run_dir"] = allocate_run_dir(output_dir)
        return LoggerSettings(output_dir=output_dir, **overrides)

    return make
