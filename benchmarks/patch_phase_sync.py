"""Would the network's object improve if each decoded patch's global phase were synchronised with its
neighbours' before stitching?

    python benchmarks/patch_phase_sync.py MODEL.pt --case images [--threads 1] [--resampling bilinear]

Why ask: one far-field pattern cannot tell a patch from the same patch times exp(i phi), so a network that
decodes each pattern alone (the shared encoder, gridsize 1) can only guess each patch's phase offset, and
the stitch averages those guesses. Overlapping patches do measure their relative offsets, as ptychography's
overlap constraint does for an iterative solver. This script measures what fixing them is worth on
``compare_ptychi.py``'s scans (test object, 1500 positions):

1. every pattern through the network; patches stitched as ``pinn`` does (probe-intensity weights, bilinear
   placement; ``--resampling fourier`` places them as inference did before QUALITY-006);
2. for every pair of positions whose decoded supports overlap, the weighted overlap product
   c_ij = sum_x w p_i conj(w p_j), evaluated at the exact sub-pixel offset through the Fourier shift theorem;
3. the offsets: the phases of the leading eigenvector of the Hermitian matrix (c_ij) (spectral angular
   synchronisation), with c_ij as they are and with c_ij / |c_ij|;
4. each patch times exp(-i theta_i), stitched again, and all three objects graded against the truth.

It prints SSIM and Pearson of amplitude and phase for each, and the synchronisation's seconds. The phase
plane and offset are removed by ``evaluation.evaluate`` in every case, so only what differs *between*
patches can change a score.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_ptychi import illumination  # noqa: E402

from ptychodus_torch_plugin.data.simulate.presets import CASES  # noqa: E402
from ptychodus_torch_plugin.evaluation import evaluate, region_mask  # noqa: E402
from ptychodus_torch_plugin.models.model_file import load_model  # noqa: E402
from ptychodus_torch_plugin.physics.scale import intensity_scale  # noqa: E402
from ptychodus_torch_plugin.physics.stitching import RESAMPLINGS, ObjectAccumulator  # noqa: E402
from ptychodus_torch_plugin.plugins import build_plugin_host  # noqa: E402

KEYS = ("amplitude_ssim", "phase_ssim", "amplitude_pearson", "phase_pearson", "paper_phase_ssim")


@torch.no_grad()
def decode_all(model: torch.nn.Module, amplitudes: np.ndarray, chunk: int = 256) -> torch.Tensor:
    """(M, N, N) complex patches, one per pattern, each pattern on its own (as ``pinn`` infers)."""
    data = torch.from_numpy(np.ascontiguousarray(amplitudes, dtype=np.float32))
    gain = float(model.scale) / intensity_scale(data)
    return torch.cat([model(part[:, None] * gain)[:, 0] for part in data.split(chunk)])


def stitch(patches: torch.Tensor, positions: np.ndarray, shape: tuple[int, int], weights: torch.Tensor,
           resampling: str = "bilinear") -> np.ndarray:
    accumulator = ObjectAccumulator(shape, device=torch.device("cpu"), dtype=torch.complex64, resampling=resampling)
    placement = accumulator.place(positions, patches.shape[-1])
    accumulator.add_placed(patches, placement, torch.arange(patches.shape[0]), weights)
    return accumulator.result()[0].numpy()


def overlap_products(patches: torch.Tensor, positions: np.ndarray, weights: torch.Tensor,
                     chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """(pairs (P, 2), c (P,)): c_ij = sum_x w p_i(x - r_i) conj(w p_j(x - r_j)) for every pair whose weighted
    supports overlap, at the exact offset r_j - r_i (Fourier shift on a grid twice the support)."""
    from scipy.spatial import cKDTree

    rows = torch.nonzero(weights.sum(1) > 0)[:, 0]
    first, side = int(rows.min()), int(rows.max()) - int(rows.min()) + 1
    window = (patches * weights)[:, first:first + side, first:first + side]
    grid = 2 * side
    spectra = torch.fft.fft2(window, s=(grid, grid))
    pairs = np.array(sorted(cKDTree(positions).query_pairs(side * np.sqrt(2))), dtype=np.int64).reshape(-1, 2)
    offsets = positions[pairs[:, 1]] - positions[pairs[:, 0]]
    overlapping = np.abs(offsets).max(axis=1) < side
    pairs, offsets = pairs[overlapping], torch.from_numpy(offsets[overlapping])
    k = torch.fft.fftfreq(grid, d=1.0 / grid, dtype=torch.float64)
    index = torch.from_numpy(pairs)
    products = []
    for start in range(0, len(pairs), chunk):
        i, j = index[start:start + chunk, 0], index[start:start + chunk, 1]
        d = offsets[start:start + chunk]
        shift = torch.exp(2j * torch.pi * (k[None, :, None] * d[:, 0, None, None]
                                           + k[None, None, :] * d[:, 1, None, None]) / grid).to(spectra.dtype)
        products.append((spectra[i] * spectra[j].conj() * shift).sum((-2, -1)) / grid**2)
    return pairs, torch.cat(products).numpy()


def synchronised_phases(pairs: np.ndarray, products: np.ndarray, count: int) -> np.ndarray:
    """theta (count,): phases of the leading eigenvector of the Hermitian matrix built from the products."""
    import scipy.sparse as sparse
    from scipy.sparse.linalg import eigsh

    rows = np.concatenate([pairs[:, 0], pairs[:, 1]])
    cols = np.concatenate([pairs[:, 1], pairs[:, 0]])
    matrix = sparse.coo_matrix((np.concatenate([products, products.conj()]), (rows, cols)), shape=(count, count))
    _, vector = eigsh(matrix.tocsr(), k=1, which="LA")
    return np.angle(vector[:, 0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path)
    parser.add_argument("--case", default="images", choices=sorted(CASES))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--resampling", default="bilinear", choices=RESAMPLINGS,
                        help="how patches reach the object grid (inference: bilinear)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    case = CASES[args.case]
    scan = case.scan(case.test)
    mask = region_mask(illumination(scan, torch.device("cpu")))
    model = load_model(args.model, build_plugin_host(load_entry_points=False))[0].eval()
    patches = decode_all(model, scan.amplitudes)
    weights = model.illumination().detach()
    positions = np.asarray(scan.positions, dtype=np.float64)
    shape = tuple(scan.object_shape)

    def grade(label: str, candidate: torch.Tensor, seconds: float | None = None) -> None:
        stitched = stitch(candidate, positions, shape, weights, args.resampling)
        report = evaluate(stitched, scan.object_truth, mask).as_dict()
        timing = "" if seconds is None else f"  ({seconds:.2f} s)"
        print(f"{label:>26} " + " ".join(f"{k} {report[k]:.3f}" for k in KEYS) + timing, flush=True)

    grade("as stitched by pinn", patches)
    started = time.perf_counter()
    pairs, products = overlap_products(patches, positions, weights)
    print(f"{len(pairs)} overlapping pairs, products in {time.perf_counter() - started:.2f} s", flush=True)
    for label, values in (("synchronised", products), ("synchronised, unit weights", products / np.abs(products))):
        started = time.perf_counter()
        theta = synchronised_phases(pairs, values, patches.shape[0])
        turned = patches * torch.from_numpy(np.exp(-1j * theta).astype(np.complex64))[:, None, None]
        grade(label, turned, time.perf_counter() - started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
