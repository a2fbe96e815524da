"""Regenerate the committed test fixtures, deterministically: ``python scripts/make_fixtures.py``.

``tests/fixtures/pytorch_integration/minimal_dataset_v2.npz``: 64 patterns of 64 x 64 from a lines object
with ground truth, a soft-disk probe and Poisson noise. Choices that keep it small (~50 KB compressed):
a step of 4 px (so the object is only ~100 px wide), a modest 1000 photons per pattern (mostly-zero
patterns compress well) and a sparse line density (a flat background compresses well).
``tests/data/test_data_fixtures.py`` rebuilds it in memory and compares arrays with the committed file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ptychodus_torch_plugin.data import ScanData, save_npz
from ptychodus_torch_plugin.data.simulate import SimulationConfig, simulate

ROOT = Path(__file__).resolve().parents[1]
MINIMAL_DATASET = ROOT / "tests" / "fixtures" / "pytorch_integration" / "minimal_dataset_v2.npz"

#: The settings of minimal_dataset_v2; change them only together with the file's version suffix.
MINIMAL_CONFIG = SimulationConfig(
    object_kind="lines",
    patch_size=64,
    probe_kind="disk",
    scan_kind="raster",
    n_positions=64,
    step_px=4.0,
    jitter_px=0.5,
    nphotons=1000.0,
    seed=20240601,
    lines_per_kpx=1.0,
)


def minimal_dataset() -> ScanData:
    """The minimal_dataset_v2 scan, built in memory."""
    return simulate(MINIMAL_CONFIG)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--output", type=Path, default=MINIMAL_DATASET, help="where to write minimal_dataset_v2.npz"
    )
    args = parser.parse_args(argv)
    path = save_npz(minimal_dataset(), args.output)
    print(f"wrote {path} ({path.stat().st_size / 1024:.1f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
