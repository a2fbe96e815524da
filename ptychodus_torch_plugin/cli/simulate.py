"""``ptychodus-torch simulate``: write a synthetic dataset with ground truth (NPZ, ptychodus HDF5, or both).

Flags map one to one onto :class:`~ptychodus_torch_plugin.data.simulate.SimulationConfig`; the simulator
(and torch) is imported only when the command runs, so building the parser stays cheap. The HDF5 pair is
written in parts as the patterns are simulated, so only it suits scans larger than memory.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import ConfigError

HELP = "simulate a ptychography dataset with ground truth and write it as NPZ and/or ptychodus HDF5"

_OBJECT_KINDS = ("lines", "grf", "image", "paperlines")
_PROBE_KINDS = ("disk", "zoneplate")
_SCAN_KINDS = ("raster", "spiral")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the simulate flags (defaults mirror SimulationConfig)."""
    out = parser.add_argument_group("output")
    out.add_argument(
        "--output", "-o", type=Path, default=None,
        help="NPZ file to write (holds the whole scan in memory; optional with --ptychodus-dir)",
    )
    out.add_argument(
        "--ptychodus-dir",
        type=Path,
        default=None,
        help="write diffraction.h5 + product.h5 into this folder (written in parts: any scan size)",
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

    _check_outputs(args.output, args.ptychodus_dir)
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
    written = simulate_to_files(config, args.output, args.ptychodus_dir)
    where = [] if args.output is None else [str(args.output)]
    if args.ptychodus_dir is not None:
        where.append(f"{args.ptychodus_dir}/")
    print(
        f"simulated {written.n_patterns} patterns of {written.patch_size}x{written.patch_size}, object "
        f"{written.object_shape[0]}x{written.object_shape[1]} -> {' and '.join(where)}",
        file=sys.stderr,
    )
    return 0


def _check_outputs(output: Path | None, ptychodus_dir: Path | None) -> None:
    """At least one destination, each of the right kind, before anything is simulated."""
    if output is None and ptychodus_dir is None:
        raise ConfigError("nothing to write: give --output FILE.npz, --ptychodus-dir FOLDER, or both")
    if output is not None:
        if output.suffix.lower() != ".npz":
            raise ConfigError(f"--output must name an .npz file; got {output}")
        if output.exists() and output.is_dir():
            raise ConfigError(f"--output {output} is a folder; give a file name ending in .npz")
    if ptychodus_dir is not None and ptychodus_dir.exists() and not ptychodus_dir.is_dir():
        raise ConfigError(f"--ptychodus-dir {ptychodus_dir} is a file; give a folder")


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
