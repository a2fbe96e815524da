"""``ptychodus-torch train`` / ``python -m ptychodus_torch_plugin.train``."""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

from ..config import ExecutionConfig, ModelConfig, PerformanceConfig, TrainingConfig
from .flags import add_declared_flags, defaults_from_record, read_config_record, values_from_args
from .speed_options import add_speed_arguments

HELP = "train a physics-informed network on a scan"

#: Where each settings class's fields are in a run's ``config.json`` (record key prefix) and in the
#: parsed arguments (dest prefix): what ``--config`` replays.
CONFIG_SECTIONS: list[tuple[type, str, str]] = [
    (TrainingConfig, "", ""), (ModelConfig, "model.", ""), (ExecutionConfig, "", ""),
    (PerformanceConfig, "performance.", ""),
]
#: Settings of a recorded run that a replay does not take over: what to do with an existing run folder.
NOT_REPLAYED = ("resume",)


#: TrainingConfig's fields by help group (the rest are optimisation).
_DATA = ("train_data_file", "test_data_file", "output_dir", "n_images")
_EXECUTION = ("num_workers", "image_every_n_epochs", "quiet")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Every setting's flag comes from its declaration (:mod:`..options`): defaults, help and choices are
    the dataclasses' own."""
    add_declared_flags(parser.add_argument_group("data"), TrainingConfig, only=_DATA)
    add_declared_flags(parser.add_argument_group("model"), ModelConfig)
    add_declared_flags(parser.add_argument_group("optimisation"), TrainingConfig, skip=_DATA + _EXECUTION)
    run = parser.add_argument_group("execution")
    add_declared_flags(run, ExecutionConfig)
    add_declared_flags(run, TrainingConfig, only=_EXECUTION)
    run.add_argument("--config", type=Path, default=None, metavar="CONFIG_JSON",
                     help="replay a run's config.json: its settings become the defaults, flags given here win")
    run.add_argument("--print-config", "--print_config", action="store_true",
                     help="print the settings this command would run with, as config.json records them, and exit")
    run.add_argument("--disable_mlflow", action="store_true", help=argparse.SUPPRESS)
    add_speed_arguments(parser)


def config_defaults(path: Path) -> dict[str, object]:
    """Parser defaults from a run's ``config.json`` (``--config``), every setting but :data:`NOT_REPLAYED`."""
    defaults = defaults_from_record(read_config_record(path), CONFIG_SECTIONS)
    return {dest: value for dest, value in defaults.items() if dest not in NOT_REPLAYED}


def warn_deprecated(message: str) -> None:
    """A DeprecationWarning the user sees. Python's default filters show DeprecationWarning only when it
    is raised in ``__main__``, and this is library code, so without filters of the user's own (``-W`` or
    ``PYTHONWARNINGS``, which stay in charge) the warning is shown once here, on stderr."""
    with warnings.catch_warnings():
        if not sys.warnoptions:
            warnings.simplefilter("default", DeprecationWarning)
        warnings.warn(message, DeprecationWarning, stacklevel=3)


def build_configs(args: argparse.Namespace) -> tuple[TrainingConfig, ExecutionConfig]:
    if getattr(args, "disable_mlflow", False):
        warn_deprecated("--disable_mlflow is deprecated; use --logger none --quiet")
        args.logger, args.quiet = "none", True
    model = ModelConfig(**values_from_args(args, ModelConfig))
    training = TrainingConfig(**values_from_args(args, TrainingConfig), model=model)
    performance = PerformanceConfig(**values_from_args(args, PerformanceConfig))
    performance.validate()
    execution = ExecutionConfig(**values_from_args(args, ExecutionConfig), performance=performance)
    return training, execution


def run(args: argparse.Namespace) -> int:
    from ..config import run_record
    from ..training.trainer import train

    training, execution = build_configs(args)
    if getattr(args, "print_config", False):
        print(json.dumps(run_record(training, execution), indent=2))
        return 0
    result = train(training, execution)
    summary = {"status": result.status, "run_dir": str(result.run_dir),
               "model": str(result.model_path) if result.model_path else None,
               "epochs": result.epochs_completed, "metrics": result.metrics, "quality": result.quality}
    if not training.quiet and os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 speaks
        print(json.dumps(summary, indent=2))
    return 130 if result.status == "KILLED" else 0


def main(argv: list[str] | None = None) -> int:
    from .main import run_standalone

    return run_standalone("python -m ptychodus_torch_plugin.train", HELP, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
