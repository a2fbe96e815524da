"""Benchmark: stitch a 100,000-position scan (N = 64) chunk by chunk and show memory stays bounded.

Patches are generated chunk by chunk (cut from a known random object with sub-pixel positions), so the
full set of patches (100k x 64 x 64 complex64 = 3.3 GB) never exists. Each scan size runs in its own
process, because peak RSS (ru_maxrss) is a per-process high-water mark.

    python benchmarks/stitch_large_scan.py                      # 10k vs 100k, prints a table
    python benchmarks/stitch_large_scan.py --positions 100000   # one run, prints one JSON line
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch

from ptychodus_torch_plugin.physics import ObjectAccumulator, extract_patches


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def run_once(positions: int, patch_size: int, object_side: int, chunk: int, device: str, seed: int) -> dict:
    """Stitch ``positions`` patches into an object_side^2 object; time generation and stitching apart."""
    dev = torch.device(device)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    amplitude = torch.rand(object_side, object_side, generator=gen) + 0.5
    phase = (torch.rand(object_side, object_side, generator=gen) - 0.5) * 6.0
    obj = torch.polar(amplitude, phase).to(dev)
    low, high = patch_size // 2, object_side - patch_size // 2 - 1
    scan = (low + torch.rand(positions, 2, generator=gen, dtype=torch.float64) * (high - low)).to(dev)

    accumulator = ObjectAccumulator((object_side, object_side), device=dev, dtype=torch.complex64)
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    rss_before = peak_rss_mib()
    generate_s = stitch_s = 0.0
    for start in range(0, positions, chunk):
        t0 = time.perf_counter()
        patches = extract_patches(obj, scan[start : start + chunk], patch_size)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t1 = time.perf_counter()
        accumulator.add(patches, scan[start : start + chunk])
        if dev.type == "cuda":
            torch.cuda.synchronize()
        generate_s += t1 - t0
        stitch_s += time.perf_counter() - t1
        del patches
    stitched, weight = accumulator.result()
    covered = weight > 0
    max_error = float((stitched[covered] - obj[covered]).abs().max())
    result = {
        "device": str(dev),
        "positions": positions,
        "patch_size": patch_size,
        "object": f"{object_side}x{object_side}",
        "chunk": chunk,
        "threads": torch.get_num_threads(),
        "generate_s": round(generate_s, 2),
        "stitch_s": round(stitch_s, 2),
        "stitch_positions_per_s": round(positions / stitch_s),
        "peak_rss_before_mib": round(rss_before),
        "peak_rss_mib": round(peak_rss_mib()),
        "all_patches_would_be_mib": round(positions * patch_size**2 * 8 / 2**20),
        "covered_fraction": round(float(covered.double().mean()), 4),
        "max_abs_error": max_error,
    }
    if dev.type == "cuda":
        result["cuda_max_allocated_mib"] = round(torch.cuda.max_memory_allocated() / 2**20)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--positions", type=int, help="run one scan of this many positions")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--patch-size", type=int, default=64)
    parser.add_argument("--object-side", type=int, default=1024)
    parser.add_argument("--chunk", type=int, default=4096)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    if args.positions is not None:
        print(json.dumps(run_once(args.positions, args.patch_size, args.object_side, args.chunk,
                                  args.device, args.seed)))
        return

    rows = []
    for size in args.sizes:
        cmd = [sys.executable, __file__, "--positions", str(size), "--patch-size", str(args.patch_size),
               "--object-side", str(args.object_side), "--chunk", str(args.chunk), "--device", args.device,
               "--seed", str(args.seed)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    keys = ["positions", "generate_s", "stitch_s", "stitch_positions_per_s", "peak_rss_before_mib",
            "peak_rss_mib", "all_patches_would_be_mib", "covered_fraction", "max_abs_error"]
    if rows and "cuda_max_allocated_mib" in rows[0]:
        keys.append("cuda_max_allocated_mib")
    first = rows[0]
    print(f"device={first['device']} N={first['patch_size']} object={first['object']} "
          f"chunk={first['chunk']} threads={first['threads']}")
    print("  ".join(keys))
    for row in rows:
        cells = [f"{row[k]:.1e}" if k == "max_abs_error" else str(row[k]) for k in keys]
        print("  ".join(f"{cell:>{len(k)}}" for cell, k in zip(cells, keys, strict=True)))


if __name__ == "__main__":
    main()
