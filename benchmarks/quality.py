"""Reconstruction quality against a known object after unsupervised training.

    python benchmarks/quality.py --patch-size 64 --gridsize 1,2 --epochs 50 [--device cuda] [--json out.json]

Simulates a training scan and an unseen test scan (different random lines objects, zone-plate probe,
Poisson noise), trains the ``pinn`` model on the first, reconstructs the second, and prints SSIM, PSNR,
Pearson correlation and FRC of amplitude and phase (see ``ptychodus_torch_plugin.evaluation``), together
with the NLL the *true* object reaches on the test scan, so the gap left by training is visible.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from ptychodus_torch_plugin.config import ExecutionConfig, ModelConfig, TrainingConfig
from ptychodus_torch_plugin.data import save_npz
from ptychodus_torch_plugin.data.scan import ScanData
from ptychodus_torch_plugin.data.simulate.config import SimulationConfig
from ptychodus_torch_plugin.data.simulate.simulate import simulate
from ptychodus_torch_plugin.models.pinn import normalise_probe
from ptychodus_torch_plugin.physics import as_probe_modes, extract_patches, poisson_nll, predicted_amplitude
from ptychodus_torch_plugin.physics.scale import intensity_scale
from ptychodus_torch_plugin.training.trainer import train


def truth_nll(scan: ScanData) -> float:
    """Poisson NLL (as logged, log k! dropped) of the true object, at its best global amplitude gain."""
    probe = normalise_probe(as_probe_modes(torch.from_numpy(scan.probe)))
    scale = intensity_scale(scan.amplitudes)
    patches = extract_patches(torch.from_numpy(scan.object_truth), torch.from_numpy(scan.positions), scan.patch_size)
    observed = torch.from_numpy(scan.amplitudes)
    predicted = predicted_amplitude(probe, patches)
    gain = float(observed.sum() / (scale * predicted.sum()))
    return float(poisson_nll(predicted * gain, observed / scale, scale=scale))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patch-size", type=int, default=64)
    parser.add_argument("--gridsize", default="1,2")
    parser.add_argument("--channels", default="16,32,64")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--train-positions", type=int, default=1024)
    parser.add_argument("--test-positions", type=int, default=256)
    parser.add_argument("--nphotons", type=float, default=1e5)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        scans = {}
        for name, seed, positions in (("train", 1, args.train_positions), ("test", 2, args.test_positions)):
            scans[name] = simulate(SimulationConfig(patch_size=args.patch_size, n_positions=positions,
                                                    nphotons=args.nphotons, seed=seed))
            save_npz(scans[name], folder / f"{name}.npz")
        reference = truth_nll(scans["test"])
        for gridsize in map(int, args.gridsize.split(",")):
            config = TrainingConfig(
                train_data_file=folder / "train.npz", test_data_file=folder / "test.npz",
                output_dir=folder / f"g{gridsize}", max_epochs=args.epochs, batch_size=args.batch,
                learning_rate=args.lr, scheduler="cosine", quiet=True, image_every_n_epochs=0,
                model=ModelConfig(gridsize=gridsize, channels=tuple(int(c) for c in args.channels.split(","))))
            start = time.perf_counter()
            result = train(config, ExecutionConfig(accelerator=args.device, logger="none"))
            rows.append({"N": args.patch_size, "gridsize": gridsize, "epochs": args.epochs,
                         "train_s": time.perf_counter() - start, "val_nll": result.history[-1]["val_loss"],
                         "truth_nll": reference, **(result.quality or {})})
    keys = ["amplitude_ssim", "phase_ssim", "amplitude_pearson", "phase_pearson", "frc_cutoff"]
    print(f"{'N':>4} {'g':>2} {'epochs':>6} {'train s':>8} {'val NLL':>9} {'truth NLL':>9} " + " ".join(f"{k:>17}" for k in keys))
    for r in rows:
        print(f"{r['N']:>4} {r['gridsize']:>2} {r['epochs']:>6} {r['train_s']:>8.0f} {r['val_nll']:>9.2f} "
              f"{r['truth_nll']:>9.2f} " + " ".join(f"{r[k]:>17.3f}" for k in keys))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
