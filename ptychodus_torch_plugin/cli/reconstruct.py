"""``ptychodus-torch reconstruct`` / ``python -m ptychodus_torch_plugin.reconstruct``: a scan (and, for the
network-based reconstructors, a trained model) -> complex object over every position, as NPZ and PNG (and
quality figures when the truth is known), with any registered reconstructor."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .reconstructor_options import add_reconstructor_arguments, iterative_from_args
from .speed_options import add_speed_arguments, performance_from_args

HELP = "reconstruct a scan with a registered reconstructor (a trained network, the iterative solver, or both)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, default=None,
                        help="model.pt, a run folder, or a training --output_dir (its newest run); needed by "
                             "pinn and pinn+iterative")
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
    add_reconstructor_arguments(parser)
    add_speed_arguments(parser)


def _validate(args: argparse.Namespace) -> None:
    """Refuse odd arguments before the model or the scan is loaded."""
    from ..config import check_output_dir
    from ..errors import ConfigError

    if args.inference_batch_size < 1:
        raise ConfigError(f"--inference_batch_size must be at least 1, got {args.inference_batch_size}")
    check_output_dir(Path(args.output_dir))
    if args.ptychodus_dir is not None:
        check_output_dir(Path(args.ptychodus_dir))


class _ProgressBars:
    """A tqdm bar per unit (patterns through the network, then iterative epochs)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.bar: Any = None
        self.unit = ""

    def __call__(self, event: Any) -> None:
        from tqdm.auto import tqdm

        if self.quiet:
            return
        if event.unit != self.unit:
            self.close()
            self.unit = event.unit
            self.bar = tqdm(total=event.total, unit=event.unit, leave=False, desc=event.unit + "s")
        self.bar.n = event.done
        if "loss" in event.metrics:
            self.bar.set_postfix(loss=f"{event.metrics['loss']:.4g}", refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def run(args: argparse.Namespace) -> int:
    _validate(args)
    from ..data.load import load_scan
    from ..distributed import distributed_session
    from ..models.model_file import load_model
    from ..performance import resolve
    from ..plugins import build_plugin_host
    from ..reconstructors.base import ReconstructRequest
    from ..reconstructors.run import check_request, default_reconstructor, run_reconstructor
    from ..reconstructors.seeding import load_initial_object
    from ..results import write_results

    host = build_plugin_host()
    name = args.reconstructor or default_reconstructor(args.model is not None)
    check_request(host, name, args.model is not None)  # unknown name / missing model: before loading anything
    iterative = iterative_from_args(args)
    device = host.resolve_device(args.accelerator)
    performance = performance_from_args(args)
    resolve(performance, device, "inference")  # refuse e.g. --cuda-graphs on a CPU before loading anything
    model = load_model(args.model, host)[0] if args.model is not None else None
    scan = load_scan(args.data_file)
    initial = None if args.initial_object is None else load_initial_object(args.initial_object, scan.object_shape)
    bars = _ProgressBars(args.quiet)
    with distributed_session(device) as distributed:  # under torchrun: each rank stitches a share
        request = ReconstructRequest(scan=scan, device=distributed.device_for(device), model=model,
                                     initial_object=initial, iterative=iterative,
                                     inference_batch_size=args.inference_batch_size, performance=performance,
                                     options=dict(args.options), progress=bars, distributed=distributed)
        try:
            recon = run_reconstructor(host, name, request)
        finally:
            bars.close()
        if not distributed.is_main:
            return 0
    out = Path(args.output_dir)
    written = write_results(out, recon, scan, title=name)
    npz, png, quality = written.npz, written.picture, written.quality
    product = None
    if args.ptychodus_dir is not None:
        from dataclasses import replace

        from ..data.ptychodus_h5 import DIFFRACTION_FILE_NAME, PRODUCT_FILE_NAME, save_ptychodus

        result_scan = replace(scan, object_truth=recon.object.astype("complex64"), source="ptychodus-torch reconstruct")
        _, product = save_ptychodus(result_scan, args.ptychodus_dir / DIFFRACTION_FILE_NAME,
                                    args.ptychodus_dir / PRODUCT_FILE_NAME)
    summary = {"reconstructor": name, "reconstruction": str(npz), "picture": str(png), "patterns": recon.n_patterns,
               "object_shape": list(recon.object.shape), "quality": quality,
               "ptychodus_product": str(product) if product else None}
    if recon.history:
        last = recon.history[-1]
        summary["epochs"] = int(last["epoch"])
        summary["seconds"] = round(float(last["elapsed_s"]), 3)
    if not args.quiet:
        print(json.dumps(summary, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    from .main import run_standalone

    return run_standalone("python -m ptychodus_torch_plugin.reconstruct", HELP, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
