"""``ptychodus-torch reconstruct`` / ``python -m ptychodus_torch_plugin.reconstruct``: a scan (and, for the
network-based reconstructors, a trained model) -> complex object over every position, as NPZ and PNG (and
quality figures when the truth is known), with any registered reconstructor."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .detector_options import add_detector_arguments, with_detector_files
from .flags import spellings
from .reconstructor_options import add_reconstructor_arguments, host_of, options_for, plugin_host
from .scale_options import add_scale_arguments, budget_from_args, timeout_from_args
from .speed_options import add_speed_arguments, performance_from_args

HELP = "reconstruct a scan with a registered reconstructor (a trained network, the iterative solver, or both)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", "--model-file", "--model_file", type=Path, default=None,
                        help="trained model file (model.pt), a run folder, or a training --output-dir (its newest "
                             "run); needed by pinn and pinn+iterative")
    parser.add_argument(*spellings("--data-file", "--test_data_file"), dest="data_file", type=Path, required=True,
                        help="scan to reconstruct (NPZ, or ptychodus diffraction HDF5, read in blocks as "
                             "--memory-budget asks)")
    parser.add_argument(*spellings("--output-dir"), dest="output_dir", type=Path, required=True,
                        help="folder for reconstruction.npz, its pictures and reconstruction.json")
    parser.add_argument("--accelerator", default="auto", help="auto, cpu, cuda, cuda:1, gpu, mps, or a plugin's")
    parser.add_argument(*spellings("--ptychodus-dir"), dest="ptychodus_dir", type=Path, default=None,
                        help="also write the result as ptychodus files (product.h5 with the reconstructed object, "
                             "diffraction.h5) into this folder")
    add_detector_arguments(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bars or summary")
    add_reconstructor_arguments(parser, plugin_host())
    add_speed_arguments(parser)
    add_scale_arguments(parser)


def _validate(args: argparse.Namespace) -> None:
    """Refuse odd arguments before the model or the scan is loaded."""
    from ..config import check_output_dir

    check_output_dir(Path(args.output_dir))
    if args.ptychodus_dir is not None:
        check_output_dir(Path(args.ptychodus_dir))
    budget_from_args(args)
    timeout_from_args(args)


class _ProgressBars:
    """A tqdm bar per unit (patterns through the network, then iterative epochs), with the rate in
    patterns/s and the process's peak memory once the reconstructor reports them."""

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
        postfix = {}
        if "loss" in event.metrics:
            postfix["loss"] = f"{event.metrics['loss']:.4g}"
        if "patterns_per_s" in event.metrics:
            postfix["patterns/s"] = f"{event.metrics['patterns_per_s']:.0f}"
        if "peak_rss_bytes" in event.metrics:
            from ..memory import format_bytes

            postfix["peak RSS"] = format_bytes(event.metrics["peak_rss_bytes"])
        if postfix:
            self.bar.set_postfix(postfix, refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def run(args: argparse.Namespace) -> int:
    _validate(args)
    from ..data.load import load_scan
    from ..distributed import distributed_session, stop_on_sigterm
    from ..models.model_file import load_model
    from ..performance import resolve
    from ..reconstructors.base import ReconstructRequest
    from ..reconstructors.run import check_request, default_reconstructor, run_reconstructor
    from ..reconstructors.seeding import load_initial_object

    host = host_of(args)
    name = args.reconstructor or default_reconstructor(args.model is not None)
    check_request(host, name, args.model is not None)  # unknown name / missing model: before loading anything
    options = options_for(args, host, name)
    device = host.resolve_device(args.accelerator)
    performance = performance_from_args(args)
    resolve(performance, device, "inference")  # refuse e.g. --cuda-graphs on a CPU before loading anything
    budget, timeout = budget_from_args(args), timeout_from_args(args)
    model = load_model(args.model, host)[0] if args.model is not None else None
    # HDF5 patterns taking more than a quarter of the budget stay in their file, read in blocks as needed
    scan = load_scan(args.data_file, stream_above=budget.host_bytes // 4)
    scan = with_detector_files(scan, args)
    initial = None if args.initial_object is None else load_initial_object(args.initial_object, scan.object_shape)
    with stop_on_sigterm(), distributed_session(device, timeout=timeout) as distributed:
        # under torchrun each rank takes a share of the scan; rank 0 writes the results
        bars = _ProgressBars(args.quiet or not distributed.is_main)
        request = ReconstructRequest(scan=scan, device=distributed.device_for(device), model=model,
                                     initial_object=initial, performance=performance,
                                     options=options, progress=bars, distributed=distributed,
                                     memory_budget=budget)
        try:
            recon = run_reconstructor(host, name, request)
        finally:
            bars.close()
        if not distributed.is_main:
            return 0
        summary = _write_outputs(args, name, scan, recon)
    if not args.quiet:
        print(json.dumps(summary, indent=2))
    return 0


def _write_outputs(args: argparse.Namespace, name: str, scan: Any, recon: Any) -> dict[str, Any]:
    """Rank 0's files: the reconstruction (NPZ, PNG), optionally the ptychodus product, and the summary
    ``reconstruction.json`` (written last, so its presence means the run finished)."""
    from ..atomic import atomic_write
    from ..memory import peak_rss_bytes
    from ..results import write_results

    out = Path(args.output_dir)
    written = write_results(out, recon, scan, title=name)
    product = None
    if args.ptychodus_dir is not None:
        from ..data.ptychodus_h5 import DIFFRACTION_FILE_NAME, PRODUCT_FILE_NAME, save_reconstruction_product

        _, product = save_reconstruction_product(scan, recon.object, args.ptychodus_dir / DIFFRACTION_FILE_NAME,
                                                 args.ptychodus_dir / PRODUCT_FILE_NAME)
    summary: dict[str, Any] = {
        "reconstructor": name, "reconstruction": str(written.npz), "picture": str(written.picture),
        "patterns": recon.n_patterns, "object_shape": list(recon.object.shape), "quality": written.quality,
        "ptychodus_product": str(product) if product else None, "peak_rss_bytes": peak_rss_bytes(),
    }
    if scan.bad_pixels is not None:  # detector pixels left out of every pattern
        summary["masked_pixels"] = int(scan.bad_pixels.sum())
    if scan.background is not None:  # counts per pattern taken as background
        summary["background_counts_per_pattern"] = round(float(scan.background.sum()), 3)
    if recon.history:
        last = recon.history[-1]
        summary["epochs"] = int(last["epoch"])
        summary["seconds"] = round(float(last["elapsed_s"]), 3)
        for key in ("patterns_per_s", "peak_device_bytes"):
            if key in last:
                summary[key] = round(float(last[key]), 1)
        if "saturated_pixels" in last:  # detector pixels left out of the fit in the last epoch
            summary["saturated_pixels"] = int(last["saturated_pixels"])
        summary["peak_rss_bytes_reconstructing"] = int(max(r.get("peak_rss_bytes", 0) for r in recon.history))
    atomic_write(out / "reconstruction.json", lambda handle: handle.write(json.dumps(summary, indent=2).encode()))
    return summary


def main(argv: list[str] | None = None) -> int:
    from .main import run_standalone

    return run_standalone("python -m ptychodus_torch_plugin.reconstruct", HELP, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
