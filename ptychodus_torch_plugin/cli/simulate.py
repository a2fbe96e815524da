"""``ptychodus-torch simulate``: write a synthetic dataset with ground truth (NPZ, optionally ptychodus HDF5).

Flags map one to one onto :class:`~ptychodus_torch_plugin.data.simulate.SimulationConfig`; the simulator
(and torch) is imported only when the command runs, so building the parser stays cheap.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import ConfigError

HELP = "simulate a ptychography dataset with ground truth and write it as NPZ (and ptychodus HDF5)"

_OBJECT_KINDS = ("lines", "grf", "image")
_PROBE_KINDS = ("disk", "zoneplate")
_SCAN_KINDS = ("raster", "spiral")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the simulate flags (defaults mirror SimulationConfig)."""
    out = parser.add_argument_group("output")
    out.add_argument("--output", "-o", type=Path, required=True, help="NPZ file to write")
    out.add_argument(
        "--ptychodus-dir",
        type=Path,
        default=None,
        help="also write diffraction.h5 + product.h5 into this folder",
    )
    sim = parser.add_argument_group("simulation")
    sim.add_argument(
        "--object", dest="object_kind", choices=_OBJECT_KINDS, default="lines", help="object (default lines)"
    )
    sim.add_argument(
        "--object-size", type=int, default=None, help="object side in pixels (default: fit the scan)"
    )
    sim.add_argument(
        "--probe",
        dest="probe_kind",
        choices=_PROBE_KINDS,
        default="zoneplate",
        help="probe (default zoneplate)",
    )
    sim.add_argument("--probe-radius", type=float, default=None, help="probe radius in pixels (default N/5)")
    sim.add_argument(
        "--scan", dest="scan_kind", choices=_SCAN_KINDS, default="raster", help="trajectory (default raster)"
    )
    sim.add_argument(
        "--n-positions", type=int, default=64, help="number of diffraction patterns (default 64)"
    )
    sim.add_argument(
        "--grid", type=int, nargs=2, metavar=("ROWS", "COLS"), default=None, help="raster grid shape"
    )
    sim.add_argument(
        "--patch-size", "-N", type=int, default=64, help="pattern/probe side N in pixels (default 64)"
    )
    sim.add_argument("--step", type=float, default=None, help="scan step in object pixels (default N/8)")
    sim.add_argument(
        "--jitter", type=float, default=0.0, help="uniform position jitter, +/- pixels (default 0)"
    )
    sim.add_argument(
        "--nphotons",
        type=_photons,
        default=1e6,
        help="mean counts per pattern; 'none' = noiseless (default 1e6)",
    )
    sim.add_argument("--images", type=_image_pair, default=None, metavar="AMPLITUDE,PHASE",
                     help="pictures of the 'image' object (default camera,astronaut; any two of "
                          "coins, moon, text, brick, grass, gravel, horse, page, chelsea, coffee, rocket, ...)")
    sim.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    sim.add_argument("--pixel-size", type=float, default=None, help="object pixel size in metres (metadata)")


def run(args: argparse.Namespace) -> int:
    """Simulate with the parsed flags; bad combinations raise ConfigError (exit status 2 via main)."""
    from ..data.simulate import SimulationConfig, simulate_to_files

    if args.output.suffix.lower() != ".npz":
        raise ConfigError(f"--output must name an .npz file; got {args.output}")
    if args.output.exists() and args.output.is_dir():
        raise ConfigError(f"--output {args.output} is a folder; give a file name ending in .npz")
    config = SimulationConfig(
        object_kind=args.object_kind,
        object_size=args.object_size,
        patch_size=args.patch_size,
        probe_kind=args.probe_kind,
        probe_radius_px=args.probe_radius,
        scan_kind=args.scan_kind,
        n_positions=args.n_positions,
        grid=None if args.grid is None else (args.grid[0], args.grid[1]),
        step_px=args.step,
        jitter_px=args.jitter,
        nphotons=args.nphotons,
        seed=args.seed,
        pixel_size_m=args.pixel_size,
        **({"images": args.images} if args.images is not None else {}),
    )
    scan = simulate_to_files(config, args.output, args.ptychodus_dir)
    where = f"{args.output}" + (f" and {args.ptychodus_dir}/" if args.ptychodus_dir else "")
    print(
        f"simulated {scan.n_patterns} patterns of {scan.patch_size}x{scan.patch_size}, object "
        f"{scan.object_shape[0]}x{scan.object_shape[1]} -> {where}",
        file=sys.stderr,
    )
    return 0


def _image_pair(text: str) -> tuple[str, str]:
    parts = tuple(part.strip() for part in text.split(","))
    if len(parts) != 2 or not all(parts):
        raise argparse.ArgumentTypeError(f"expected two picture names such as camera,astronaut, got {text!r}")
    return parts  # type: ignore[return-value]


def _photons(text: str) -> float | None:
    """'none' (any case) means noiseless; otherwise a positive number such as 1e6."""
    if text.strip().lower() in ("none", "inf", "noiseless"):
        return None
    try:
        return float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a number or 'none', got {text!r}") from exc
