"""Training and inference throughput (patterns/s), and the wall time of the README's smoke command.

    python benchmarks/throughput.py [--device cpu|cuda] [--sizes 64,128] [--gridsizes 1,2] [--json out.json]

Training step = network forward + overlap constraint + forward model + Poisson loss + backward + Adam step.
Inference = network forward + stitching of every patch into the object (the path ``reconstruct`` takes).
Prints a table and, with ``--json``, writes the figures. Nothing here is asserted: speed is measured.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

from ptychodus_torch_plugin.config import ModelConfig
from ptychodus_torch_plugin.data.simulate.config import SimulationConfig
from ptychodus_torch_plugin.data.simulate.simulate import simulate
from ptychodus_torch_plugin.inference import reconstruct_scan
from ptychodus_torch_plugin.physics.canvas import group_canvas_size
from ptychodus_torch_plugin.physics.scale import intensity_scale
from ptychodus_torch_plugin.models.pinn import PtychoModel
from ptychodus_torch_plugin.training.data import group_scan

ROOT = Path(__file__).resolve().parents[1]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(size: int, gridsize: int, device: torch.device, batch: int, steps: int, positions: int) -> dict:
    scan = simulate(SimulationConfig(patch_size=size, n_positions=positions, nphotons=1e6, seed=0))
    data = group_scan(scan, gridsize).to(device)
    canvas = group_canvas_size(data.offsets, size)
    model = PtychoModel(ModelConfig(patch_size=size, gridsize=gridsize), torch.from_numpy(scan.probe),
                        intensity_scale(scan.amplitudes), canvas).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    index = torch.arange(min(batch, data.n_groups), device=device)
    sample = data.batch(index)

    def step() -> None:
        loss = model.training_loss(sample)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(2):
        step()
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    train_rate = steps * len(index) * gridsize**2 / (time.perf_counter() - start)

    model.eval()
    reconstruct_scan(model, scan, batch_size=batch, device=device)  # warm-up
    _sync(device)
    start = time.perf_counter()
    reconstruct_scan(model, scan, batch_size=batch, device=device)
    _sync(device)
    infer_rate = scan.n_patterns * gridsize**2 / (time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return {"N": size, "gridsize": gridsize, "device": str(device), "batch_groups": len(index),
            "train_patterns_per_s": train_rate, "inference_patterns_per_s": infer_rate, "peak_gpu_mib": peak,
            "parameters": sum(p.numel() for p in model.parameters())}


def smoke_command() -> dict:
    """Wall time and peak RSS of the issue's CPU smoke command, in a child process."""
    import tempfile

    fixture = ROOT / "tests" / "fixtures" / "pytorch_integration" / "minimal_dataset_v1.npz"
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "ptychodus_torch_plugin.train", "--train_data_file", str(fixture),
                        "--test_data_file", str(fixture), "--output_dir", f"{tmp}/logger_smoke", "--n_images", "64",
                        "--max_epochs", "1", "--gridsize", "2", "--batch_size", "4", "--accelerator", "cpu",
                        "--deterministic", "--num-workers", "0", "--logger", "csv", "--quiet"], check=True)
        wall = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"smoke_wall_s": wall, "smoke_peak_rss_mib": rss}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--sizes", default="64,128")
    parser.add_argument("--gridsizes", default="1,2")
    parser.add_argument("--batch", type=int, default=None, help="groups per step (default 16 CPU, 512 GPU)")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--positions", type=int, default=256)
    parser.add_argument("--no-smoke", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    device = torch.device(args.device)
    batch = args.batch or (512 if device.type == "cuda" else 16)
    steps = args.steps or (50 if device.type == "cuda" else 5)
    rows = [measure(n, g, device, batch, steps, args.positions)
            for n in map(int, args.sizes.split(",")) for g in map(int, args.gridsizes.split(","))]
    print(f"torch {torch.__version__}, {device}, threads {torch.get_num_threads()}")
    print(f"{'N':>4} {'g':>2} {'batch':>6} {'train patt/s':>13} {'infer patt/s':>13} {'peak GPU MiB':>13}")
    for r in rows:
        peak = f"{r['peak_gpu_mib']:.0f}" if r["peak_gpu_mib"] is not None else "-"
        print(f"{r['N']:>4} {r['gridsize']:>2} {r['batch_groups']:>6} {r['train_patterns_per_s']:>13.0f} "
              f"{r['inference_patterns_per_s']:>13.0f} {peak:>13}")
    result = {"rows": rows, "torch": torch.__version__}
    if not args.no_smoke and device.type == "cpu":
        result.update(smoke_command())
        print(f"smoke command: {result['smoke_wall_s']:.1f} s wall, peak RSS {result['smoke_peak_rss_mib']:.0f} MiB")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
