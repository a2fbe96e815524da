"""Command-line flags for the reconstructors: which one, its starting object, the iterative settings
(defaults taken from :class:`~..reconstructors.iterative.config.IterativeConfig`, never restated), and
free-form ``--option KEY=VALUE`` settings for third-party reconstructors."""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path

from ..reconstructors.iterative.config import NOISE_MODELS, IterativeConfig

#: (flag, field, type, help); the default of each comes from IterativeConfig.
_ITERATIVE_FLAGS: tuple[tuple[str, str, type, str], ...] = (
    ("--epochs", "epochs", int, "iterative epochs (passes over every pattern)"),
    ("--iterative_batch_size", "batch_size", int, "patterns per iterative update (under torchrun: of the whole job, "
                                                  "shared by the ranks)"),
    ("--damping", "damping", float, "illumination-normalisation damping (rPIE's alpha)"),
    ("--step_size", "step_size", float, "fraction of the least-squares step taken per batch"),
    ("--momentum", "momentum", float, "epoch-level momentum on the object, 0 = off"),
    ("--refine_probe_from", "refine_probe_from", int, "refine the probe (all its modes) from this epoch on"),
    ("--refine_positions_from", "refine_positions_from", int, "correct the scan positions from this epoch on"),
    ("--max_position_step", "max_position_step_px", float, "largest position change per epoch, pixels"),
    ("--tolerance", "tolerance", float, "stop when the amplitude error improved by less than this fraction "
                                        "over --patience epochs (0 = run every epoch)"),
    ("--patience", "patience", int, "epochs over which --tolerance is judged"),
    ("--iterative_seed", "seed", int, "seed of the random batch order"),
)


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value


def add_reconstructor_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("reconstructor (see `ptychodus-torch plugins` for every registered one)")
    group.add_argument("--reconstructor", default=None,
                       help="pinn, iterative, pinn+iterative, or a plugin's (default: pinn with --model, "
                            "else iterative)")
    group.add_argument("--initial_object", "--initial-object", type=Path, default=None,
                       help="starting object for iterative reconstructors: an NPZ (a reconstruction.npz or a "
                            "scan with objectGuess) or a ptychodus product.h5")
    group.add_argument("--option", dest="options", action="append", type=_key_value, default=[],
                       metavar="KEY=VALUE", help="a setting for a third-party reconstructor (repeatable)")
    defaults = IterativeConfig()
    iterative = parser.add_argument_group("iterative reconstructor (iterative, pinn+iterative)")
    iterative.add_argument("--noise_model", "--noise-model", choices=NOISE_MODELS, default=defaults.noise_model,
                           help=f"noise model (default {defaults.noise_model})")
    for flag, name, kind, text in _ITERATIVE_FLAGS:
        default = getattr(defaults, name)
        iterative.add_argument(flag, flag.replace("_", "-"), dest=f"iterative_{name}", type=kind, default=default,
                               help=f"{text} (default {default})")


def iterative_from_args(args: argparse.Namespace) -> IterativeConfig:
    values = {f.name: getattr(args, f"iterative_{f.name}") for f in fields(IterativeConfig)
              if hasattr(args, f"iterative_{f.name}")}
    config = IterativeConfig(noise_model=args.noise_model, **values)
    config.validate()
    return config
