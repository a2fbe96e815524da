"""``ptychodus-torch reconstruct`` / ``python -m ptychodus_torch_plugin.reconstruct``: model + scan ->
stitched complex object over every position, as NPZ and PNG (and quality figures when the truth is known)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .speed_options import add_speed_arguments, performance_from_args

HELP = "reconstruct a scan with a trained model"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, required=True,
                        help="model.pt, a run folder, or a training --output_dir (its newest run)")
    parser.add_argument("--data_file", "--data-file", "--test_data_file", type=Path, required=True,
                        help="scan to reconstruct (NPZ or ptychodus diffraction HDF5)")
    parser.add_argument("--output_dir", "--output-dir", type=Path, required=True)
    parser.add_argument("--inference_batch_size", "--inference-batch-size", type=int, default=256,
                        help="groups per network pass (memory per pass grows with it)")
    parser.add_argument("--accelerator", default="auto")
    parser.add_argument("--ptychodus-dir", "--ptychodus_dir", type=Path, default=None,
                        help="also write the result as ptychodus files (product.h5 with the reconstructed object, "
                             "diffraction.h5) into this folder")
    parser.add_argument("--quiet", action="store_true")
    add_speed_arguments(parser)


def _validate(args: argparse.Namespace) -> None:
    """Refuse odd arguments before the model or the scan is loaded."""
    from ..config import _check_output_dir
    from ..errors import ConfigError

    if args.inference_batch_size < 1:
        raise ConfigError(f"--inference_batch_size must be at least 1, got {args.inference_batch_size}")
    _check_output_dir(Path(args.output_dir))
    if args.ptychodus_dir is not None:
        _check_output_dir(Path(args.ptychodus_dir))


def run(args: argparse.Namespace) -> int:
    _validate(args)
    from ..data.load import load_scan
    from ..distributed import distributed_session
    from ..evaluation import evaluate, region_mask
    from ..inference import reconstruct_scan
    from ..models.model_file import load_model
    from ..performance import resolve
    from ..pictures import save_object_figure
    from ..plugins import build_plugin_host
    from ..training.trainer import save_reconstruction

    host = build_plugin_host()
    device = host.resolve_device(args.accelerator)
    performance = performance_from_args(args)
    resolve(performance, device, "inference")  # refuse e.g. --cuda-graphs on a CPU before loading anything
    model, config, _ = load_model(args.model, host)
    scan = load_scan(args.data_file)
    with distributed_session(device) as distributed:  # under torchrun: each rank stitches a share
        recon = reconstruct_scan(model, scan, batch_size=args.inference_batch_size,
                                 device=distributed.device_for(device), performance=performance,
                                 distributed=distributed)
        if not distributed.is_main:
            return 0
    quality = None
    if scan.object_truth is not None:
        quality = evaluate(recon.object, scan.object_truth, region_mask(recon.weights)).as_dict()
    out = Path(args.output_dir)
    npz = save_reconstruction(out / "reconstruction.npz", recon, scan, quality)
    png = save_object_figure(out / "reconstruction.png", recon.object, scan.object_truth, weights=recon.weights)
    product = None
    if args.ptychodus_dir is not None:
        from dataclasses import replace

        from ..data.ptychodus_h5 import DIFFRACTION_FILE_NAME, PRODUCT_FILE_NAME, save_ptychodus

        result_scan = replace(scan, object_truth=recon.object.astype("complex64"), source="ptychodus-torch reconstruct")
        _, product = save_ptychodus(result_scan, args.ptychodus_dir / DIFFRACTION_FILE_NAME,
                                    args.ptychodus_dir / PRODUCT_FILE_NAME)
    summary = {"reconstruction": str(npz), "picture": str(png), "patterns": recon.n_patterns,
               "object_shape": list(recon.object.shape), "quality": quality,
               "ptychodus_product": str(product) if product else None}
    if not args.quiet:
        print(json.dumps(summary, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    from .main import run_command

    parser = argparse.ArgumentParser(prog="python -m ptychodus_torch_plugin.reconstruct", description=HELP)
    add_arguments(parser)
    return run_command(run, parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
