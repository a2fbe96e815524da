"""Does a trained network give each position's true patch, its twin, or neither?

    python benchmarks/pinn_patch_check.py MODEL.pt --case lines [--scan test|train0|train1|...]

With a real, centro-symmetric probe (the ``lines`` case's flat disk) one pattern cannot tell the object
from its twin: conjugated and point-reflected about the scan position, which has the same far-field
magnitudes. A network that sees one pattern at a time could still learn a clean patch and pick the twin
at random per position: then each patch correlates strongly with *one* of the two, and a sign-sync across
overlaps would repair the stitched object. This script tells that case from a network that learned
neither. For each position it decodes the pattern alone (as inference does with a shared encoder) and
prints the complex correlation (global phase removed, probe-intensity weighted over the decoded support)
with the true patch and with its twin, on a scan simulated as in ``compare_ptychi.py``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ptychodus_torch_plugin.data.simulate.presets import CASES  # noqa: E402
from ptychodus_torch_plugin.models.model_file import load_model  # noqa: E402
from ptychodus_torch_plugin.physics.patches import extract_patches  # noqa: E402
from ptychodus_torch_plugin.physics.scale import intensity_scale  # noqa: E402
from ptychodus_torch_plugin.plugins import build_plugin_host  # noqa: E402


def twin(patches: torch.Tensor) -> torch.Tensor:
    """conj(x(-r)) about pixel N//2, the scan position: index k -> N - k (mod N)."""
    return torch.roll(torch.flip(patches, (-2, -1)), (1, 1), (-2, -1)).conj()


def correlation(a: torch.Tensor, b: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """|<a - mean, b - mean>_w| / (||a - mean||_w ||b - mean||_w) per patch: 1 = equal up to a global phase."""
    total = weight.sum()
    a = a - (a * weight).sum((-2, -1), keepdim=True) / total
    b = b - (b * weight).sum((-2, -1), keepdim=True) / total
    inner = (a * b.conj() * weight).sum((-2, -1)).abs()
    return inner / torch.sqrt((a.abs() ** 2 * weight).sum((-2, -1)) * (b.abs() ** 2 * weight).sum((-2, -1)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path)
    parser.add_argument("--case", default="lines", choices=sorted(CASES))
    parser.add_argument("--scan", default="test", help="test (the unseen object) or trainK (K-th training object)")
    parser.add_argument("--positions", type=int, default=300)
    args = parser.parse_args()
    case = CASES[args.case]
    extra = case.test if args.scan == "test" else case.train[int(args.scan.removeprefix("train"))]
    scan = case.scan(extra, args.positions)
    model = load_model(args.model, build_plugin_host(load_entry_points=False))[0].eval()
    size = scan.amplitudes.shape[-1]
    # As inference does: this scan's amplitudes over its own intensity scale, times the model's.
    amplitudes = torch.from_numpy(scan.amplitudes)[:, None] * (model.scale / intensity_scale(scan.amplitudes))
    with torch.no_grad():
        patches = torch.cat([model(amplitudes[i:i + 64]) for i in range(0, len(amplitudes), 64)])[:, 0]
    truth = extract_patches(torch.from_numpy(scan.object_truth), scan.positions, size)
    weight = model.illumination()
    to_truth, to_twin = correlation(patches, truth, weight), correlation(patches, twin(truth), weight)
    best = torch.maximum(to_truth, to_twin).numpy()
    print(f"{args.case} {args.scan}: {len(best)} positions, correlation with the true patch "
          f"{to_truth.mean():.3f}, with its twin {to_twin.mean():.3f}; the better of the two: median "
          f"{np.median(best):.3f} (10-90 %: {np.quantile(best, 0.1):.3f}-{np.quantile(best, 0.9):.3f}); "
          f"truth preferred at {float((to_truth > to_twin).float().mean()):.0%} of positions; "
          f"true patch vs its own twin {correlation(truth, twin(truth), weight).mean():.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
