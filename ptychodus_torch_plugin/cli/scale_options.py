"""Command-line flags for large scans and several ranks: the memory budget and the collective timeout."""

from __future__ import annotations

import argparse
import datetime

from ..distributed import DEFAULT_TIMEOUT
from ..errors import ConfigError
from ..memory import MemoryBudget, parse_bytes, resolve_budget


def add_scale_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("large scans and torchrun (see docs/distributed.md)")
    group.add_argument("--memory-budget", "--memory_budget", dest="memory_budget", default="auto", metavar="SIZE",
                       help="host memory of each process for the scan's patterns and the reconstruction's state, "
                            "e.g. 2GiB or 500MB; patterns that do not fit are streamed from their HDF5 file in "
                            "blocks (default auto: half the free RAM, shared by the ranks of a node)")
    group.add_argument("--collective-timeout", "--collective_timeout", dest="collective_timeout", type=float,
                       default=DEFAULT_TIMEOUT.total_seconds(), metavar="SECONDS",
                       help="under torchrun, a rank waiting longer than this for the others stops the job with "
                            f"an error (default {DEFAULT_TIMEOUT.total_seconds():.0f})")


def budget_from_args(args: argparse.Namespace) -> MemoryBudget:
    """The budget the flags ask for (parse errors are ConfigErrors: one line, exit 2)."""
    return resolve_budget(parse_bytes(str(args.memory_budget)))


def timeout_from_args(args: argparse.Namespace) -> datetime.timedelta:
    seconds = float(args.collective_timeout)
    if not (0 < seconds < float("inf")):
        raise ConfigError(f"--collective_timeout must be a positive number of seconds, got {args.collective_timeout}")
    return datetime.timedelta(seconds=seconds)
