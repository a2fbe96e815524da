"""One network trained on one simulated lines scan and graded on a scan of another object: the quick probe
behind docs/findings.md QUALITY-003 (why the network fails at N = 64).

    python benchmarks/pinn_single_scan.py --patch-size 64 --channels 16,32,64,128 --epochs 30

Gridsize 1, 512 training positions (seed 1), 256 test positions (seed 2), batch 16, Adam 1e-3 with a cosine
schedule, 1 thread. Prints the training loss per epoch, the validation loss, the scores of the unseen
object and, for scale, the loss of the true object and of the best flat object on the training scan.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from ptychodus_torch_plugin.config import ExecutionConfig, ModelConfig, TrainingConfig
from ptychodus_torch_plugin.data import save_npz
from ptychodus_torch_plugin.data.simulate import SimulationConfig, simulate
from ptychodus_torch_plugin.models.pinn import PtychoModel
from ptychodus_torch_plugin.physics import extract_patches
from ptychodus_torch_plugin.physics.scale import intensity_scale
from ptychodus_torch_plugin.training.data import group_scan
from ptychodus_torch_plugin.training.trainer import train


def reference_losses(scan, config: ModelConfig) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """NLL of the true object and of the best flat object (gains 0.3..3) on the first 256 patterns."""
    data = group_scan(scan, 1, seed=0)
    model = PtychoModel(config, torch.from_numpy(scan.probe), intensity_scale(scan.amplitudes))
    index = torch.arange(min(256, data.n_groups))
    batch = data.batch(index)
    truth = extract_patches(torch.from_numpy(scan.object_truth), torch.from_numpy(scan.positions),
                            scan.patch_size).to(torch.complex64)[data.groups[index]]
    gains = (0.3, 0.5, 0.7, 1.0, 1.4, 2.0, 3.0)
    with torch.no_grad():
        true = min(float(model.loss_from_patches(truth * g, batch)) for g in gains)
        flat = min(float(model.loss_from_patches(torch.ones_like(truth) * g, batch)) for g in gains)
    return true, flat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patch-size", type=int, default=64)
    parser.add_argument("--channels", default="16,32,64")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--nphotons", type=float, default=1e5)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    size = args.patch_size
    model = ModelConfig(patch_size=size, gridsize=1, channels=tuple(int(c) for c in args.channels.split(",")))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        train_scan = simulate(SimulationConfig(patch_size=size, n_positions=512, nphotons=args.nphotons, seed=1))
        train_file = save_npz(train_scan, folder / "train.npz")
        test_file = save_npz(simulate(SimulationConfig(patch_size=size, n_positions=256, nphotons=args.nphotons,
                                                       seed=2)), folder / "test.npz")
        config = TrainingConfig(train_data_file=train_file, test_data_file=test_file, output_dir=folder / "out",
                                max_epochs=args.epochs, batch_size=16, learning_rate=args.learning_rate,
                                scheduler="cosine", seed=0, quiet=True, image_every_n_epochs=0, model=model)
        started = time.perf_counter()
        result = train(config, ExecutionConfig(accelerator="cpu", logger="none"))
        seconds = time.perf_counter() - started
        true, flat = reference_losses(train_scan, model)
    print(f"N {size}, channels {args.channels}, {args.epochs} epochs, {args.nphotons:g} photons, {seconds:.0f} s")
    print("train loss per epoch:", [round(h["train_loss"], 2) for h in result.history])
    print(f"val loss {result.history[-1]['val_loss']:.2f}; on the training scan: true object {true:.2f}, "
          f"best flat object {flat:.2f}")
    print({k: round(v, 3) for k, v in (result.quality or {}).items()
           if k in ("amplitude_ssim", "phase_ssim", "amplitude_pearson", "phase_pearson")})


if __name__ == "__main__":
    main()
