"""Large scans on this machine: simulate N = 128 scans of growing size into ptychodus HDF5 (chunk by chunk),
then reconstruct each with ``iterative`` for a few epochs in 1 and 2 processes, and print peak RSS, seconds
per epoch and patterns/s. Optionally the same scan with today's code from another checkout (the in-memory
path before streaming), on the same threads, for the speed comparison.

    python benchmarks/large_scan.py --sizes 20000,60000,200000 --data-dir /tmp/large_scans \\
        --memory-budget 2GiB --ranks 1,2 --json benchmarks/results/large_scan/large_scan_cpu.json

Every run is a plain subprocess (``torchrun`` for several ranks), as a user would start it; its peak RSS is
the largest resident set of any process of the run (``RUSAGE_CHILDREN`` of a fresh wrapper process), and
the solver's own peak over its epochs is read from ``reconstruction.json``. The scans are raster scans with
+-``--jitter`` px of position noise, so every position has its own sub-pixel remainder (as measured
positions do) and no probe cache can stand in for the per-pattern probe shifts. The file is read once
before the runs, so it is in the page cache for every one of them. Figures: docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MIB = 1024**2

#: Runs a command and prints the largest RSS of it and its descendants (KiB on Linux) and its wall time.
_WRAPPER = """
import json, resource, subprocess, sys, time
started = time.perf_counter()
code = subprocess.run(sys.argv[1:]).returncode
print(json.dumps({"code": code, "wall_s": time.perf_counter() - started,
                  "peak_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}), file=sys.stderr)
"""


def measured(command: list[str], env: dict[str, str], log: Path, cwd: Path = ROOT) -> dict[str, float]:
    """Run ``command`` through the wrapper in ``cwd`` (``python -m`` imports the package found there first);
    its own stderr goes to ``log``."""
    with open(log, "w") as handle:
        result = subprocess.run([sys.executable, "-c", _WRAPPER, *command], env=env, stdout=handle,
                                stderr=subprocess.PIPE, text=True, cwd=cwd)
    handle_text = result.stderr.strip().splitlines()
    record = json.loads(handle_text[-1])
    if handle_text[:-1]:
        with open(log, "a") as handle:
            handle.write("\n".join(handle_text[:-1]) + "\n")
    if record["code"] != 0:
        raise SystemExit(f"{' '.join(command)} failed ({record['code']}); see {log}")
    return record


def environment(threads: int, pythonpath: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("WORLD_SIZE", None)
    env["OMP_NUM_THREADS"] = str(threads)
    env["PYTHONPATH"] = str(pythonpath)
    return env


def field_step(size: int, patch: int, jitter: float, field: int) -> float:
    """The raster step that spreads ``size`` positions over a ``field`` x ``field`` object (the simulator's
    square grid, its 2 px edge margins and the jitter kept inside)."""
    cols = math.ceil(math.sqrt(size))
    return math.floor(100 * (field - patch - 1 - 4 - 2 * jitter - 1) / (cols - 1)) / 100


def simulate(size: int, patch: int, jitter: float, folder: Path, field: int | None = None) -> dict[str, float] | None:
    """The scan in ``folder`` (made once; later calls reuse it). With ``field``, the object is that many pixels
    a side whatever the number of positions (denser scans of one field of view)."""
    if (folder / "product.h5").exists():
        return None
    command = [sys.executable, "-m", "ptychodus_torch_plugin", "simulate", "--n-positions", str(size),
               "--patch-size", str(patch), "--jitter", str(jitter), "--seed", "1", "--ptychodus-dir", str(folder)]
    if field is not None:
        command += ["--object-size", str(field), "--step", str(field_step(size, patch, jitter, field))]
    folder.parent.mkdir(parents=True, exist_ok=True)
    return measured(command, environment(2, ROOT), folder.parent / f"simulate_{folder.name}.log")


def warm(folder: Path) -> float:
    """Read the diffraction file once, so every run finds it in the page cache; seconds taken."""
    started = time.perf_counter()
    with open(folder / "diffraction.h5", "rb") as handle:
        while handle.read(64 * MIB):
            pass
    return time.perf_counter() - started


def reconstruct(folder: Path, out: Path, ranks: int, epochs: int, budget: str | None, threads: int,
                tree: Path, accelerator: str = "cpu") -> dict[str, float]:
    """One reconstruction run; figures from the wrapper, reconstruction.json and the NPZ history."""
    flags = ["--reconstructor", "iterative", "--data_file", str(folder), "--output_dir", str(out),
             "--epochs", str(epochs), "--accelerator", accelerator, "--quiet"]
    if budget is not None:
        flags += ["--memory_budget", budget]
    if ranks == 1:
        command = [sys.executable, "-m", "ptychodus_torch_plugin.reconstruct", *flags]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={ranks}",
                   "-m", "ptychodus_torch_plugin.reconstruct", *flags]
    out.mkdir(parents=True, exist_ok=True)
    run = measured(command, environment(max(threads // ranks, 1), tree), out / "run.log", cwd=tree)
    history = json.loads(str(np.load(out / "reconstruction.npz")["history_json"]))
    summary_path = out / "reconstruction.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    seconds = [history[0]["elapsed_s"]] + [b["elapsed_s"] - a["elapsed_s"] for a, b in zip(history, history[1:])]
    patterns = summary.get("patterns") or int(np.load(out / "reconstruction.npz")["positions"].shape[0])
    solver_peak = max((r.get("peak_rss_bytes", 0) for r in history), default=0)
    return {"ranks": ranks, "budget": budget or "auto", "epochs": len(history),
            "s_per_epoch": [round(s, 2) for s in seconds],
            "patterns_per_s": [round(patterns / s, 1) for s in seconds],
            "solver_peak_rss_mib": round(solver_peak / MIB, 1) if solver_peak else None,
            "process_peak_rss_mib": round(run["peak_kib"] / 1024, 1), "wall_s": round(run["wall_s"], 1),
            "amplitude_error": history[-1]["amplitude_error"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="20000,60000,200000")
    parser.add_argument("--patch-size", type=int, default=128)
    parser.add_argument("--jitter", type=float, default=0.5)
    parser.add_argument("--field", type=int, default=None,
                        help="object side in pixels for every size (denser scans of one field of view); default: "
                             "the object grows with the scan at a step of N/8")
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/large_scans"))
    parser.add_argument("--ranks", default="1,2")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="threads in all (shared by the ranks)")
    parser.add_argument("--memory-budget", default="2GiB")
    parser.add_argument("--accelerator", default="cpu", help="cpu, or cuda (one GPU per rank)")
    parser.add_argument("--resident-too", action="store_true",
                        help="also run each size in one process with the automatic budget")
    parser.add_argument("--baseline-tree", type=Path, default=None,
                        help="another checkout (the code before streaming) to run on the same scans, 1 process")
    parser.add_argument("--baseline-sizes", default="20000", help="sizes the baseline runs on")
    parser.add_argument("--simulate-only", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    results: dict[str, object] = {"machine": os.uname().nodename, "cpus": os.cpu_count(), "runs": [],
                                  "simulations": {}, "accelerator": args.accelerator, "command": sys.argv}

    def save() -> None:
        if args.json is not None:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(results, indent=2))

    sizes = [int(s) for s in args.sizes.split(",")]
    suffix = "" if args.field is None else f"_field{args.field}"
    for size in sizes:
        folder = args.data_dir / f"n{args.patch_size}_{size}{suffix}"
        made = simulate(size, args.patch_size, args.jitter, folder, args.field)
        if made is not None:
            results["simulations"][str(size)] = {"wall_s": round(made["wall_s"], 1),  # type: ignore[index]
                                                 "peak_rss_mib": round(made["peak_kib"] / 1024, 1)}
            print(f"simulated {size}: {made['wall_s']:.0f} s, peak RSS {made['peak_kib'] / 1024:.0f} MiB", flush=True)
            save()
    if args.simulate_only:
        return
    for size in sizes:
        folder = args.data_dir / f"n{args.patch_size}_{size}{suffix}"
        amplitude_gib = size * args.patch_size**2 * 4 / 1024**3
        print(f"\n{size} patterns ({amplitude_gib:.2f} GiB of float32 amplitudes), file read in "
              f"{warm(folder):.1f} s", flush=True)
        plans = [(ranks, args.memory_budget, ROOT, "budget") for ranks in (int(r) for r in args.ranks.split(","))]
        if args.resident_too:
            plans.append((1, None, ROOT, "auto"))
        if args.baseline_tree is not None and str(size) in args.baseline_sizes.split(","):
            plans.append((1, None, args.baseline_tree, "baseline"))
        for ranks, budget, tree, label in plans:
            out = args.data_dir / "runs" / f"{size}{suffix}_{label}_{ranks}"
            row = reconstruct(folder, out, ranks, args.epochs, None if label == "baseline" else budget, args.threads,
                              tree, args.accelerator)
            row.update(size=size, label=label, amplitude_gib=round(amplitude_gib, 2))
            results["runs"].append(row)  # type: ignore[attr-defined]
            save()
            print(f"  {label:8s} ranks {ranks} budget {row['budget']:>5s}: s/epoch {row['s_per_epoch']}, patterns/s "
                  f"{row['patterns_per_s']}, solver peak {row['solver_peak_rss_mib']} MiB, process peak "
                  f"{row['process_peak_rss_mib']} MiB, wall {row['wall_s']} s", flush=True)


if __name__ == "__main__":
    main()
