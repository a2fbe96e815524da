"""``ptychodus-torch train`` / ``python -m ptychodus_torch_plugin.train``."""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

from .speed_options import add_speed_arguments, performance_from_args

HELP = "train a physics-informed network on a scan"


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _channels(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(c) for c in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated integers such as 32,64,128, got {text!r}") from None
    return values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    data = parser.add_argument_group("data")
    data.add_argument("--train_data_file", "--train-data-file", type=Path, required=True,
                      help="training scan (NPZ, or ptychodus diffraction HDF5 with its product file)")
    data.add_argument("--test_data_file", "--test-data-file", type=Path, default=None,
                      help="validation scan; the final reconstruction is of this scan")
    data.add_argument("--output_dir", "--output-dir", type=Path, required=True,
                      help="run folders go to OUTPUT_DIR/lightning_logs/version_<N>")
    data.add_argument("--n_images", "--n-images", type=_positive_int, default=None,
                      help="groups sampled from the training scan (default: one per position)")
    model = parser.add_argument_group("model")
    model.add_argument("--model", "--model_type", dest="model_type", default="pinn",
                       help="registered model type: pinn (unsupervised, default), supervised, or a plugin's")
    model.add_argument("--gridsize", type=_positive_int, default=1, help="groups of gridsize² neighbours")
    model.add_argument("--N", "--patch_size", dest="patch_size", type=int, default=None,
                       help="pattern size (default: from the data)")
    model.add_argument("--channels", type=_channels, default=(32, 64, 128),
                       help="encoder widths, comma-separated (default 32,64,128)")
    model.add_argument("--loss", choices=("poisson", "mae"), default="poisson")
    model.add_argument("--probe_trainable", "--probe-trainable", action="store_true",
                       help="refine the probe during training")
    model.add_argument("--scale_trainable", "--scale-trainable", action="store_true",
                       help="learn the intensity scale")
    opt = parser.add_argument_group("optimisation")
    opt.add_argument("--max_epochs", "--max-epochs", type=int, default=50)
    opt.add_argument("--batch_size", "--batch-size", type=int, default=16)
    opt.add_argument("--learning_rate", "--learning-rate", "--lr", type=float, default=1e-3)
    opt.add_argument("--scheduler", choices=("constant", "exponential", "cosine", "plateau"), default="constant")
    opt.add_argument("--warmup_epochs", "--warmup-epochs", type=int, default=0)
    opt.add_argument("--lr_gamma", "--lr-gamma", type=float, default=0.95)
    opt.add_argument("--plateau_patience", "--plateau-patience", type=int, default=5)
    opt.add_argument("--early_stopping_patience", "--early-stopping-patience", type=int, default=None)
    opt.add_argument("--seed", type=int, default=0)
    opt.add_argument("--deterministic", action="store_true",
                     help="seed everything and use deterministic algorithms (bit-identical CPU runs)")
    opt.add_argument("--resume", action="store_true", help="continue the newest run in OUTPUT_DIR from its last checkpoint")
    run = parser.add_argument_group("execution")
    run.add_argument("--accelerator", default="auto", help="auto (default), cpu, cuda, cuda:1, gpu, mps, ...")
    run.add_argument("--num-workers", "--num_workers", dest="num_workers", type=int, default=0)
    run.add_argument("--logger", default="csv", help="csv (default), tensorboard, mlflow, none, or a plugin's")
    run.add_argument("--log-every-step", dest="per_step_metrics", action="store_true",
                     help="also log one row per optimiser step")
    run.add_argument("--experiment-name", default="ptychodus-torch")
    run.add_argument("--run-name", default="ptychodus-torch")
    run.add_argument("--image_every_n_epochs", "--image-every-n-epochs", type=int, default=5,
                     help="log amplitude/phase pictures every N epochs (0 = never)")
    run.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines")
    run.add_argument("--disable_mlflow", action="store_true", help=argparse.SUPPRESS)
    add_speed_arguments(parser)


def build_configs(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from ..config import ExecutionConfig, ModelConfig, TrainingConfig

    if args.disable_mlflow:
        warnings.warn("--disable_mlflow is deprecated; use --logger none --quiet", DeprecationWarning, stacklevel=2)
        args.logger, args.quiet = "none", True
    model = ModelConfig(model_type=args.model_type, patch_size=args.patch_size, gridsize=args.gridsize,
                        channels=args.channels, loss=args.loss, probe_trainable=args.probe_trainable,
                        scale_trainable=args.scale_trainable)
    training = TrainingConfig(
        train_data_file=args.train_data_file, test_data_file=args.test_data_file, output_dir=args.output_dir,
        n_images=args.n_images, max_epochs=args.max_epochs, batch_size=args.batch_size,
        learning_rate=args.learning_rate, scheduler=args.scheduler, warmup_epochs=args.warmup_epochs,
        lr_gamma=args.lr_gamma, plateau_patience=args.plateau_patience,
        early_stopping_patience=args.early_stopping_patience, seed=args.seed, deterministic=args.deterministic,
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
    from .main import run_command

    parser = argparse.ArgumentParser(prog="python -m ptychodus_torch_plugin.train", description=HELP)
    add_arguments(parser)
    return run_command(run, parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
