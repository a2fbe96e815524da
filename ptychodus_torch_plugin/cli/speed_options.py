"""Command-line flags for :class:`~..config.PerformanceConfig`, shared by ``train``, ``reconstruct`` and
``compare``; made from the fields' declarations."""

from __future__ import annotations

import argparse

from ..config import PerformanceConfig
from .flags import add_declared_flags, values_from_args


def add_speed_arguments(parser: argparse.ArgumentParser) -> None:
    add_declared_flags(parser.add_argument_group("speed (see docs/performance.md)"), PerformanceConfig)


def performance_from_args(args: argparse.Namespace) -> PerformanceConfig:
    config = PerformanceConfig(**values_from_args(args, PerformanceConfig))
    config.validate()
    return config
