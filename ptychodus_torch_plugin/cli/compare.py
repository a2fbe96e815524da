"""``ptychodus-torch compare``: several reconstructors on one scan, side by side in one picture with their
scores (when the truth is known) and wall times: which one to use for this kind of data?"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .detector_options import add_detector_arguments, with_detector_files
from .flags import spellings
from .reconstructor_options import add_reconstructor_arguments, host_of, options_for, plugin_host
from .speed_options import add_speed_arguments, performance_from_args

HELP = "run several reconstructors on one scan and show them side by side with their scores"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(*spellings("--data-file"), dest="data_file", type=Path, required=True,
                        help="scan (NPZ or ptychodus HDF5)")
    parser.add_argument(*spellings("--output-dir"), dest="output_dir", type=Path, required=True,
                        help="folder for comparison.png, comparison.json and each reconstruction's NPZ")
    parser.add_argument("--reconstructors", default=None,
                        help="comma-separated names (default: pinn,iterative,pinn+iterative with --model, "
                             "else iterative)")
    parser.add_argument("--reconstructor", dest="single_reconstructor", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--model", "--model-file", "--model_file", type=Path, default=None,
                        help="trained model for the network-based ones")
    parser.add_argument("--accelerator", default="auto", help="auto, cpu, cuda, cuda:1, gpu, mps, or a plugin's")
    add_detector_arguments(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bars or summary")
    add_reconstructor_arguments(parser, plugin_host(), choose=False)
    add_speed_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from ..config import check_output_dir
    from ..data.load import load_scan
    from ..errors import ConfigError
    from ..models.model_file import load_model
    from ..pictures import save_comparison_figure
    from ..reconstructors.base import ReconstructRequest
    from ..reconstructors.run import check_request, run_reconstructor
    from ..reconstructors.seeding import load_initial_object
    from ..results import quality_of, save_reconstruction
    from .reconstruct import _ProgressBars

    if args.single_reconstructor is not None:
        raise ConfigError(f"compare runs several reconstructors: use --reconstructors "
                          f"{args.single_reconstructor} (comma-separated), not --reconstructor")
    check_output_dir(Path(args.output_dir))
    host = host_of(args)
    default = "pinn,iterative,pinn+iterative" if args.model is not None else "iterative"
    names = [name.strip() for name in (args.reconstructors or default).split(",") if name.strip()]
    for name in names:
        check_request(host, name, args.model is not None)
    options = {name: options_for(args, host, name, others=names) for name in names}
    device = host.resolve_device(args.accelerator)
    performance = performance_from_args(args)
    model = load_model(args.model, host)[0] if args.model is not None else None
    scan = load_scan(args.data_file)
    scan = with_detector_files(scan, args)
    initial = None if args.initial_object is None else load_initial_object(args.initial_object, scan.object_shape)
    out = Path(args.output_dir)
    rows, captions, summary = [], {}, {}
    weights = None
    for name in names:
        bars = _ProgressBars(args.quiet)
        request = ReconstructRequest(scan=scan, device=device, model=model, initial_object=initial,
                                     performance=performance, options=options[name], progress=bars)
        started = time.perf_counter()
        try:
            recon = run_reconstructor(host, name, request)
        finally:
            bars.close()
        seconds = time.perf_counter() - started
        quality = quality_of(recon, scan)
        save_reconstruction(out / name.replace("+", "_") / "reconstruction.npz", recon, scan, quality)
        weights = recon.weights if weights is None else weights
        rows.append((name, recon.object))
        caption = f"{seconds:.1f} s"
        if quality is not None:
            caption = (f"SSIM amp {quality['amplitude_ssim']:.2f} / phase {quality['phase_ssim']:.2f}\n"
                       f"FRC amp {quality['amplitude_frc_cutoff']:.2f} / phase {quality['phase_frc_cutoff']:.2f}, {caption}")
        captions[name] = caption
        summary[name] = {"seconds": round(seconds, 3), "quality": quality,
                         "epochs": int(recon.history[-1]["epoch"]) if recon.history else None}
    assert weights is not None
    picture = save_comparison_figure(out / "comparison.png", rows, scan.object_truth, weights, captions)
    (out / "comparison.json").write_text(json.dumps(summary, indent=2))
    if not args.quiet:
        print(json.dumps({"picture": str(picture), **summary}, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    from .main import run_standalone

    return run_standalone("ptychodus-torch compare", HELP, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
