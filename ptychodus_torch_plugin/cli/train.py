"""``ptychodus-torch train`` / ``python -m ptychodus_torch_plugin.train``."""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

from ..config import (
    CANVAS_WEIGHTS,
    GROUP_ENCODERS,
    GROUP_SELECTIONS,
    LOSSES,
    NORMALIZATIONS,
    OBJECT_SUPPORTS,
    SCHEDULERS,
    ModelConfig,
    TrainingConfig,
)
from .speed_options import add_speed_arguments, performance_from_args

HELP = "train a physics-informed network on a scan"


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _channels(text: str) -> tuple[int, ...] | None:
    if text.strip().lower() == "auto":
        return None
    try:
        values = tuple(int(c) for c in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated integers such as 32,64,128, got {text!r}") from None
    return values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = ModelConfig()  # one source of defaults: the config dataclasses
    train_defaults = TrainingConfig(train_data_file=Path(), output_dir=Path())
    data = parser.add_argument_group("data")
    data.add_argument("--train_data_file", "--train-data-file", type=Path, nargs="+", required=True,
                      help="training scan(s) (NPZ, or ptychodus diffraction HDF5 with its product file); several "
                           "scans of the same N and probe train one model, groups formed within each scan")
    data.add_argument("--test_data_file", "--test-data-file", type=Path, default=None,
                      help="validation scan; the final reconstruction is of this scan")
    data.add_argument("--output_dir", "--output-dir", type=Path, required=True,
                      help="run folders go to OUTPUT_DIR/lightning_logs/version_<N>")
    data.add_argument("--n_images", "--n-images", type=_positive_int, default=train_defaults.n_images,
                      help="groups sampled from the training scan (default: one per position)")
    model = parser.add_argument_group("model")
    model.add_argument("--model", "--model_type", dest="model_type", default=defaults.model_type,
                       help="registered model type: pinn (unsupervised, default), supervised, or a plugin's")
    model.add_argument("--gridsize", type=_positive_int, default=defaults.gridsize, help="groups of gridsize² neighbours")
    model.add_argument("--N", "--patch_size", dest="patch_size", type=int, default=defaults.patch_size,
                       help="pattern size (default: from the data)")
    model.add_argument("--channels", type=_channels, default=defaults.channels,
                       help="encoder widths, comma-separated, or auto (default): 16,32,... with one stage per "
                            "halving of N down to 4x4 (16,32,64 at N=32; 16,32,64,128 at N=64)")
    model.add_argument("--loss", choices=LOSSES, default=defaults.loss)
    model.add_argument("--probe_trainable", "--probe-trainable", action=argparse.BooleanOptionalAction,
                       default=defaults.probe_trainable,
                       help="refine the probe during training")
    model.add_argument("--scale_trainable", "--scale-trainable", action=argparse.BooleanOptionalAction,
                       default=defaults.scale_trainable,
                       help="learn a gain on the intensity scale (output side of the loss); default "
                            f"{'on' if defaults.scale_trainable else 'off'}")
    model.add_argument("--object_support", "--object-support", choices=OBJECT_SUPPORTS,
                       default=defaults.object_support,
                       help="decode the whole patch (full) or only its central N/2 x N/2, zero outside (central); "
                            f"default {defaults.object_support}")
    model.add_argument("--amplitude_max", "--amplitude-max", type=float, default=defaults.amplitude_max,
                       help=f"amplitude head = AMPLITUDE_MAX * sigmoid (default {defaults.amplitude_max:g}; "
                            "PtychoPINN: 1)")
    model.add_argument("--group_encoder", "--group-encoder", choices=GROUP_ENCODERS,
                       default=defaults.group_encoder,
                       help="gridsize > 1: one network for the group's patterns as channels (joint) or one "
                            f"single-pattern network per pattern (shared); default {defaults.group_encoder}")
    model.add_argument("--canvas_weights", "--canvas-weights", choices=CANVAS_WEIGHTS,
                       default=defaults.canvas_weights,
                       help="overlap-constraint average weighted by probe intensity (probe) or uniform over the "
                            f"decoded support (uniform); default {defaults.canvas_weights}")
    model.add_argument("--normalization", choices=NORMALIZATIONS, default=defaults.normalization,
                       help="after every convolution: nothing (none, as PtychoPINN) or GroupNorm (group); "
                            f"default {defaults.normalization}")
    model.add_argument("--pool_last_stage", "--pool-last-stage", action=argparse.BooleanOptionalAction,
                       default=defaults.pool_last_stage,
                       help="pool after the last encoder stage too (a 4x4 map at N=64) or not (8x8, one "
                            f"decoder stage fewer); default {'on' if defaults.pool_last_stage else 'off'}")
    opt = parser.add_argument_group("optimisation")
    opt.add_argument("--max_epochs", "--max-epochs", type=int, default=train_defaults.max_epochs)
    opt.add_argument("--batch_size", "--batch-size", type=int, default=train_defaults.batch_size)
    opt.add_argument("--learning_rate", "--learning-rate", "--lr", type=float, default=train_defaults.learning_rate)
    opt.add_argument("--scheduler", choices=SCHEDULERS,
                     default=train_defaults.scheduler)
    opt.add_argument("--warmup_epochs", "--warmup-epochs", type=int, default=train_defaults.warmup_epochs)
    opt.add_argument("--lr_gamma", "--lr-gamma", type=float, default=train_defaults.lr_gamma)
    opt.add_argument("--plateau_patience", "--plateau-patience", type=int, default=train_defaults.plateau_patience)
    opt.add_argument("--early_stopping_patience", "--early-stopping-patience", type=int,
                     default=train_defaults.early_stopping_patience)
    opt.add_argument("--k_neighbours", "--k-neighbours", type=_positive_int, default=train_defaults.k_neighbours,
                     help="gridsize > 1: each group is a position and gridsize²-1 of its K nearest neighbours")
    opt.add_argument("--group_selection", "--group-selection", choices=GROUP_SELECTIONS,
                     default=train_defaults.group_selection,
                     help="gridsize > 1: members drawn at random from the K nearest neighbours, or the most compact "
                          f"group (2x2 squares on a raster); default {train_defaults.group_selection}")
    opt.add_argument("--seed", type=int, default=train_defaults.seed)
    opt.add_argument("--deterministic", action=argparse.BooleanOptionalAction, default=train_defaults.deterministic,
                     help="seed everything and use deterministic algorithms (bit-identical CPU runs)")
    opt.add_argument("--resume", action="store_true", help="continue the newest run in OUTPUT_DIR from its last checkpoint")
    run = parser.add_argument_group("execution")
    run.add_argument("--accelerator", default="auto", help="auto (default), cpu, cuda, cuda:1, gpu, mps, ...")
    run.add_argument("--num-workers", "--num_workers", dest="num_workers", type=int,
                     default=train_defaults.num_workers)
    run.add_argument("--logger", default="csv", help="csv (default), tensorboard, mlflow, none, or a plugin's")
    run.add_argument("--log-every-step", dest="per_step_metrics", action="store_true",
                     help="also log one row per optimiser step")
    run.add_argument("--experiment-name", default="ptychodus-torch")
    run.add_argument("--run-name", default="ptychodus-torch")
    run.add_argument("--image_every_n_epochs", "--image-every-n-epochs", type=int,
                     default=train_defaults.image_every_n_epochs,
                     help="log amplitude/phase pictures every N epochs (0 = never)")
    run.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines")
    run.add_argument("--disable_mlflow", action="store_true", help=argparse.SUPPRESS)
    add_speed_arguments(parser)


def warn_deprecated(message: str) -> None:
    """A DeprecationWarning the user sees. Python's default filters show DeprecationWarning only when it
    is raised in ``__main__``, and this is library code, so without filters of the user's own (``-W`` or
    ``PYTHONWARNINGS``, which stay in charge) the warning is shown once here, on stderr."""
    with warnings.catch_warnings():
        if not sys.warnoptions:
            warnings.simplefilter("default", DeprecationWarning)
        warnings.warn(message, DeprecationWarning, stacklevel=3)


def build_configs(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from ..config import ExecutionConfig

    if args.disable_mlflow:
        warn_deprecated("--disable_mlflow is deprecated; use --logger none --quiet")
        args.logger, args.quiet = "none", True
    model = ModelConfig(model_type=args.model_type, patch_size=args.patch_size, gridsize=args.gridsize,
                        channels=args.channels, loss=args.loss, probe_trainable=args.probe_trainable,
                        scale_trainable=args.scale_trainable, object_support=args.object_support,
                        amplitude_max=args.amplitude_max, canvas_weights=args.canvas_weights,
                        group_encoder=args.group_encoder, normalization=args.normalization,
                        pool_last_stage=args.pool_last_stage)
    training = TrainingConfig(
        train_data_file=args.train_data_file, test_data_file=args.test_data_file, output_dir=args.output_dir,
        n_images=args.n_images, max_epochs=args.max_epochs, batch_size=args.batch_size,
        learning_rate=args.learning_rate, scheduler=args.scheduler, warmup_epochs=args.warmup_epochs,
        lr_gamma=args.lr_gamma, plateau_patience=args.plateau_patience,
        early_stopping_patience=args.early_stopping_patience, k_neighbours=args.k_neighbours,
        group_selection=args.group_selection, seed=args.seed,
        deterministic=args.deterministic,
        num_workers=args.num_workers, image_every_n_epochs=args.image_every_n_epochs, resume=args.resume,
        quiet=args.quiet, model=model,
    )
    execution = ExecutionConfig(accelerator=args.accelerator, logger=args.logger,
                                per_step_metrics=args.per_step_metrics, experiment_name=args.experiment_name,
                                run_name=args.run_name, performance=performance_from_args(args))
    return training, execution


def run(args: argparse.Namespace) -> int:
    from ..training.trainer import train

    training, execution = build_configs(args)
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
