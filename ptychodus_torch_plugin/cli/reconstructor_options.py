"""Command-line flags for the reconstructors: which one, its starting object, the iterative settings (made
from :class:`~..reconstructors.iterative.config.IterativeConfig`'s declarations, never restated), and
free-form ``--option KEY=VALUE`` settings for third-party reconstructors."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..reconstructors.iterative.config import IterativeConfig
from .flags import add_declared_flags, values_from_args

#: Prefix of the iterative settings' names in the parsed arguments.
ITERATIVE_DEST = "iterative_"


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value


def add_reconstructor_arguments(parser: argparse.ArgumentParser, *, choose: bool = True) -> None:
    """``choose``: a ``--reconstructor`` flag (``compare`` takes a list of them instead)."""
    group = parser.add_argument_group("reconstructor (see `ptychodus-torch plugins` for every registered one)")
    if choose:
        group.add_argument("--reconstructor", default=None,
                           help="pinn, iterative, pinn+iterative, or a plugin's (default: pinn with --model, "
                                "else iterative)")
    group.add_argument("--initial-object", "--initial_object", dest="initial_object", type=Path, default=None,
                       help="starting object for iterative reconstructors: an NPZ (a reconstruction.npz or a "
                            "scan with objectGuess) or a ptychodus product.h5")
    group.add_argument("--option", dest="options", action="append", type=_key_value, default=[],
                       metavar="KEY=VALUE", help="a setting for a third-party reconstructor (repeatable)")
    iterative = parser.add_argument_group("iterative reconstructor (iterative, pinn+iterative)")
    add_declared_flags(iterative, IterativeConfig, dest_prefix=ITERATIVE_DEST)


def iterative_from_args(args: argparse.Namespace) -> IterativeConfig:
    config = IterativeConfig(**values_from_args(args, IterativeConfig, dest_prefix=ITERATIVE_DEST))
    config.validate()
    return config
