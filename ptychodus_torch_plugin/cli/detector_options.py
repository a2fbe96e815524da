"""Command-line flags for detector files given beside a scan (a mask, a background), shared by
``reconstruct`` and ``compare``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .flags import spellings


def add_detector_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(*spellings("--detector-mask"), dest="detector_mask", type=Path, default=None,
                        help="(N, N) mask of detector pixels to leave out (beamstop, gaps, bad pixels; True = "
                             "out): an .npy, or 'mask'/'bad_pixels' in an NPZ or HDF5 file; joined to the "
                             "scan's own bad_pixels")
    parser.add_argument("--background", type=Path, default=None,
                        help="(N, N) counts every pattern holds on top of the diffracted light (dark current, "
                             "stray light): an .npy, or 'background'/'dark' in an NPZ or HDF5 file; the "
                             "iterative fit uses what is above it")


def with_detector_files(scan: Any, args: argparse.Namespace) -> Any:
    """``scan`` with the mask and background the flags name (each a DataError naming its file if bad)."""
    from ..data.detector_mask import with_background, with_detector_mask

    if args.detector_mask is not None:
        scan = with_detector_mask(scan, args.detector_mask)
    if args.background is not None:
        scan = with_background(scan, args.background)
    return scan
