"""Training and inference throughput (patterns/s), measured against this machine's own ceilings.

    python benchmarks/throughput.py                       # CPU: fp32 and bf16, N = 64, 128, gridsize 1, 2
    python benchmarks/throughput.py --device cuda         # all variants (see --variants)
    python benchmarks/throughput.py --profile             # also: where the time goes (torch.profiler)

What is timed is what the package runs, not a re-implementation:

- training = one optimiser step of :class:`ptychodus_torch_plugin.training.step.TrainStep` (network pass,
  overlap constraint, forward model, Poisson loss, backward, Adam), fed by the trainer's batch gathering;
- inference = :func:`ptychodus_torch_plugin.inference.reconstruct_scan`, end to end (network pass for
  every group and stitching of every position into the object, the result copied back to the host).

"patterns/s" counts patterns through the network (groups x gridsize²), as the trainer's
``patterns_per_second`` does; ``infer pos/s`` counts scan positions reconstructed per second.

The same run measures the machine's ceilings (copy bandwidth, batched complex FFT rate, fp32/bf16 matmul
rate) and reports each figure as a fraction of the matching ceiling, the peak memory of each phase, the
accuracy of each variant against float32 (SSIM), and, on the CPU, the wall time and peak RSS of the
issue's smoke command. Everything goes to a table on stdout and to a JSON file (see docs/performance.md).
Nothing here is asserted: speed is measured.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import cProfile
import json
import math
import os
import platform
import pstats
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from ptychodus_torch_plugin.config import ModelConfig
from ptychodus_torch_plugin.data.scan import ScanData
from ptychodus_torch_plugin.data.simulate.config import SimulationConfig
from ptychodus_torch_plugin.data.simulate.simulate import simulate
from ptychodus_torch_plugin.evaluation import evaluate, region_mask
from ptychodus_torch_plugin.inference import patterns_are_independent, reconstruct_scan
from ptychodus_torch_plugin.models.pinn import PtychoModel
from ptychodus_torch_plugin.performance import PerformanceConfig, resolve
from ptychodus_torch_plugin.physics.canvas import group_canvas_size
from ptychodus_torch_plugin.physics.scale import intensity_scale
from ptychodus_torch_plugin.training.data import GroupedScan, epoch_batches, group_scan, load_batches
from ptychodus_torch_plugin.training.step import TrainStep

ROOT = Path(__file__).resolve().parents[1]
MIB = 2**20
GB = 1e9

#: Largest scan simulated; longer benchmark scans repeat its patterns on a wider raster (speed does not
#: depend on the pattern values, and simulating 16k positions would take longer than measuring them).
MAX_SIMULATED_POSITIONS = 1024

VARIANT_FLAGS = {"cl": "channels_last", "compile": "compile", "graphs": "cuda_graphs"}
DEFAULT_VARIANTS = {"cpu": "fp32,bf16", "cuda": "fp32,bf16,bf16+cl,bf16+cl+compile,bf16+cl+graphs"}


# -- small helpers ----------------------------------------------------------------------------------------

def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def parse_variant(name: str) -> PerformanceConfig:
    """``fp32`` / ``bf16``, then optional ``+cl`` (channels_last), ``+compile``, ``+graphs`` (CUDA graphs).

    A variant without ``+cl`` runs with channels_last *off* on every device, so each flag is measured
    on its own rather than through the per-device ``auto`` defaults.
    """
    precision, *flags = name.strip().split("+")
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"variant '{name}' must start with fp32 or bf16")
    unknown = set(flags) - set(VARIANT_FLAGS)
    if unknown:
        raise ValueError(f"variant '{name}': unknown flag(s) {sorted(unknown)}; "
                         f"known: {sorted(VARIANT_FLAGS)}")
    return PerformanceConfig(precision=precision, channels_last="cl" in flags, compile="compile" in flags,
                             cuda_graphs="graphs" in flags)


def reset_peak_memory(device: torch.device) -> None:
    """Start a new peak: the CUDA allocator's peak, or the process's peak RSS (Linux ``clear_refs``)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def peak_memory_mib(device: torch.device) -> float | None:
    """Peak since :func:`reset_peak_memory`: CUDA memory allocated by tensors, or the process's peak RSS."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / MIB
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def best_time(fn: Callable[[], object], device: torch.device, min_time: float, min_calls: int = 3) -> float:
    """Shortest wall time of one call of ``fn`` (after one warm-up call), over at least ``min_calls``
    calls and ``min_time`` seconds. The shortest is the right statistic for a ceiling."""
    fn()
    sync(device)
    best, spent, calls = math.inf, 0.0, 0
    while calls < min_calls or spent < min_time:
        start = time.perf_counter()
        fn()
        sync(device)
        elapsed = time.perf_counter() - start
        best, spent, calls = min(best, elapsed), spent + elapsed, calls + 1
    return best


def capture_warnings() -> contextlib.AbstractContextManager[list[warnings.WarningMessage]]:
    manager = warnings.catch_warnings(record=True)
    return manager


def warning_texts(caught: list[warnings.WarningMessage]) -> list[str]:
    return sorted({f"{w.category.__name__}: {str(w.message).splitlines()[0][:300]}" for w in caught})


# -- the machine ------------------------------------------------------------------------------------------

def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def git_commit() -> str | None:
    try:
        def git(*words: str) -> str:
            return subprocess.run(["git", *words], cwd=ROOT, capture_output=True, text=True, timeout=10,
                                  check=True).stdout.strip()
        head, dirty = git("rev-parse", "--short", "HEAD"), git("status", "--porcelain")
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty else "")


def cpu_busy_percent(seconds: float = 1.0) -> float | None:
    """Share of all CPUs busy (not idle) over ``seconds``, from /proc/stat: other work on the machine."""
    def sample() -> tuple[int, int]:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return values[3] + values[4], sum(values)
    try:
        idle0, total0 = sample()
        time.sleep(seconds)
        idle1, total1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    return 100.0 * (1 - (idle1 - idle0) / max(total1 - total0, 1))


def environment(device: torch.device) -> dict[str, Any]:
    env: dict[str, Any] = {
        "device": str(device), "torch": torch.__version__, "numpy": np.__version__,
        "python": platform.python_version(), "platform": platform.platform(), "cpu": cpu_model(),
        "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "loadavg_start": list(os.getloadavg()), "cpu_busy_percent_before_start": cpu_busy_percent(),
        "git": git_commit(),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update(gpu=props.name, gpu_memory_gib=props.total_memory / 2**30, cuda=torch.version.cuda,
                   cudnn=torch.backends.cudnn.version(),
                   gpu_capability=list(torch.cuda.get_device_capability(device)),
                   tf32_matmul=torch.backends.cuda.matmul.allow_tf32,
                   tf32_cudnn=torch.backends.cudnn.allow_tf32)
    return env


def measure_ceilings(device: torch.device, sizes: list[int], min_time: float, quick: bool) -> dict[str, Any]:
    """What this device can do at best, measured now: copy bandwidth, batched complex FFTs, matmul."""
    cuda = device.type == "cuda"
    copy_bytes = (16 if quick else (1024 if cuda else 256)) * MIB
    src = torch.empty(copy_bytes // 4, dtype=torch.float32, device=device).fill_(1.0)
    dst = torch.empty_like(src)
    copy: dict[str, float] = {
        # read + write of a same-device copy (the STREAM "copy" convention)
        "device_copy_GBps": 2 * copy_bytes / best_time(lambda: dst.copy_(src), device, min_time) / GB,
    }
    if cuda:
        host = torch.empty(copy_bytes // 4, dtype=torch.float32).fill_(1.0).pin_memory()
        copy["host_to_device_pinned_GBps"] = copy_bytes / best_time(
            lambda: src.copy_(host, non_blocking=True), device, min_time) / GB
        pageable = torch.ones(copy_bytes // 4, dtype=torch.float32)
        copy["host_to_device_pageable_GBps"] = copy_bytes / best_time(
            lambda: src.copy_(pageable), device, min_time) / GB
        del host, pageable
    del src, dst

    fft: dict[str, float] = {}
    for n in sorted({64, *sizes}):
        batch, budget = 16, (64 if quick else (1024 if cuda else 256)) * MIB
        while True:
            x = torch.randn(batch, n, n, dtype=torch.complex64, device=device)
            seconds = best_time(lambda: torch.fft.fft2(x), device, min_time)
            if seconds > (0.002 if cuda else 0.02) or 2 * batch * n * n * 8 * 2 > budget:
                break
            batch *= 2
        fft[str(n)] = batch / seconds
        del x

    matmul: dict[str, float] = {}
    kinds = [("fp32", torch.float32, False), ("bf16", torch.bfloat16, False)]
    if cuda:
        kinds.insert(1, ("tf32", torch.float32, True))
    for label, dtype, tf32 in kinds:
        previous = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = tf32
        try:
            n, largest = 256, (512 if quick else (8192 if cuda else 2048))
            while True:
                a = torch.randn(n, n, device=device).to(dtype)
                b = torch.randn(n, n, device=device).to(dtype)
                seconds = best_time(lambda: torch.mm(a, b), device, min_time)
                if seconds > (0.002 if cuda else 0.05) or n >= largest:
                    break
                n *= 2
            matmul[label] = 2 * n**3 / seconds / 1e12
        finally:
            torch.backends.cuda.matmul.allow_tf32 = previous
    return {"copy": copy, "fft_transforms_per_s": fft, "matmul_TFLOPs": matmul,
            "notes": {"device_copy_GBps": "bytes read + bytes written per second, one large same-device copy",
                      "fft_transforms_per_s": "complex64 N x N fft2 per second, batched (key: N)",
                      "matmul_TFLOPs": "square matmul, 2 n^3 FLOP per product"}}


# -- data and model ---------------------------------------------------------------------------------------

def tiled_scan(base: ScanData, positions: int) -> ScanData:
    """A scan of ``positions`` positions on a raster (step N/8) that reuses ``base``'s patterns in turn."""
    size = base.patch_size
    side = math.ceil(math.sqrt(positions))
    step = size / 8
    index = np.arange(positions)
    grid = np.stack([index // side, index % side], axis=1).astype(np.float64)
    coords = grid * step + size // 2 + 4
    return ScanData(amplitudes=base.amplitudes[index % base.n_patterns], probe=base.probe, positions=coords,
                    source=f"benchmark: {positions} positions tiled from {base.n_patterns} simulated")


def make_scans(size: int, positions: int) -> tuple[ScanData, ScanData]:
    """(simulated scan with its true object, scan of ``positions`` positions for the speed figures)."""
    base = simulate(SimulationConfig(patch_size=size, n_positions=min(positions, MAX_SIMULATED_POSITIONS),
                                     nphotons=1e6, seed=0))
    return base, (base if positions <= base.n_patterns else tiled_scan(base, positions))


def make_model(scan: ScanData, data: GroupedScan, size: int, gridsize: int) -> PtychoModel:
    torch.manual_seed(0)
    canvas = group_canvas_size(data.offsets, size)
    return PtychoModel(ModelConfig(patch_size=size, gridsize=gridsize), torch.from_numpy(scan.probe),
                       intensity_scale(scan.amplitudes), canvas)


def batch_stream(data: GroupedScan, batch: int) -> Iterator[dict[str, torch.Tensor]]:
    """Full shuffled batches, epoch after epoch, gathered exactly as the trainer gathers them."""
    epoch = 0
    while True:
        batches = epoch_batches(data, batch, shuffle=True, seed=0, epoch=epoch)
        batches = [b for b in batches if len(b) == batch]
        yield from load_batches(data, batches)
        epoch += 1


def count_flops(model: PtychoModel, data: GroupedScan, groups: int = 2) -> dict[str, float]:
    """Network FLOPs per pattern (convolutions and matmuls, counted by FlopCounterMode; the FFTs and the
    element-wise work are not counted): forward, and forward + backward as in a training step."""
    model = copy.deepcopy(model)
    sample = data.batch(torch.arange(min(groups, data.n_groups), device=data.groups.device))
    patterns = sample["amplitudes"].shape[0] * sample["amplitudes"].shape[1]
    with FlopCounterMode(display=False) as forward, torch.no_grad():
        model(sample["amplitudes"])
    with FlopCounterMode(display=False) as training:
        model.training_loss(sample).backward()
    return {"forward": forward.get_total_flops() / patterns,
            "training": training.get_total_flops() / patterns}


# -- measurements -----------------------------------------------------------------------------------------

def measure_training(model0: PtychoModel, data: GroupedScan, config: PerformanceConfig, device: torch.device,
                     batch: int, steps: int, warmup: int, repeats: int) -> tuple[dict[str, Any], PtychoModel]:
    model = copy.deepcopy(model0).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    options = resolve(config, device, "training")
    stream = batch_stream(data, batch)
    example = next(stream)
    with capture_warnings() as caught:
        warnings.simplefilter("always")
        started = time.perf_counter()
        step = TrainStep(model, optimizer, device, options, example=example)
        setup_s = time.perf_counter() - started
        total = torch.zeros((), dtype=torch.float64, device=device)

        def run(count: int) -> None:
            nonlocal total
            for _ in range(count):
                sample = next(stream)
                total += step(sample).double() * sample["amplitudes"].shape[0]

        reset_peak_memory(device)
        run(warmup)
        sync(device)
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            run(steps)
            sync(device)
            times.append(time.perf_counter() - started)
    patterns = batch * data.n_channels
    seconds = statistics.median(times)
    result = {
        "options": options.describe(), "batch_groups": batch, "steps_timed": steps * repeats,
        "patterns_per_s": steps * patterns / seconds,
        "patterns_per_s_best": steps * patterns / min(times),
        "step_ms": 1e3 * seconds / steps, "block_s": times, "setup_s": setup_s,
        "peak_mib": peak_memory_mib(device),
        "loss_finite": bool(torch.isfinite(total)), "warnings": warning_texts(caught),
        "compile_fell_back": options.compile and any("torch.compile" in str(w.message) for w in caught),
    }
    model.to(memory_format=torch.contiguous_format)  # TrainStep converted it in place for +cl
    return result, model


def measure_inference(model: PtychoModel, scan: ScanData, config: PerformanceConfig, device: torch.device,
                      batch: int, repeats: int) -> tuple[dict[str, Any], Any]:
    # patterns through the network per position: one when each pattern's patch is independent of its group
    # (gridsize 1, shared encoder: see inference.patterns_are_independent), else gridsize² (every group)
    per_position = 1 if patterns_are_independent(model) else model.config.gridsize**2
    with capture_warnings() as caught:
        warnings.simplefilter("always")
        started = time.perf_counter()
        reconstruct_scan(model, scan, batch_size=batch, device=device, performance=config)  # warm-up
        first_s = time.perf_counter() - started
        reset_peak_memory(device)
        times, recon = [], None
        for _ in range(repeats):
            sync(device)
            started = time.perf_counter()
            recon = reconstruct_scan(model, scan, batch_size=batch, device=device, performance=config)
            times.append(time.perf_counter() - started)  # the result is on the host: nothing left running
    seconds = statistics.median(times)
    options = resolve(config, device, "inference")
    result = {
        "options": options.describe(), "batch_groups": batch, "positions": scan.n_patterns,
        "patterns_per_s": scan.n_patterns * per_position / seconds,
        "patterns_per_s_best": scan.n_patterns * per_position / min(times),
        "positions_per_s": scan.n_patterns / seconds, "scan_s": seconds, "repeat_s": times,
        "first_call_s": first_s,
        "peak_mib": peak_memory_mib(device),
        "finite": bool(recon is not None and np.isfinite(recon.object).all()),
        "warnings": warning_texts(caught),
        "compile_fell_back": options.compile and any("torch.compile" in str(w.message) for w in caught),
    }
    return result, recon


def quality(recon: Any, reference: Any, truth: np.ndarray | None) -> dict[str, Any]:
    """SSIM of ``recon`` against the float32 reconstruction and against the true object."""
    mask = region_mask(reference.weights)
    versus_fp32 = evaluate(recon.object, reference.object, mask)
    result: dict[str, Any] = {"vs_fp32": {"amplitude_ssim": versus_fp32.amplitude_ssim,
                                          "phase_ssim": versus_fp32.phase_ssim}}
    if truth is not None:
        versus_truth = evaluate(recon.object, truth, mask)
        result["vs_truth"] = {"amplitude_ssim": versus_truth.amplitude_ssim,
                              "phase_ssim": versus_truth.phase_ssim}
    return result


# -- profiles ---------------------------------------------------------------------------------------------

CATEGORIES = (("convolution", ("conv",)), ("fft", ("fft",)), ("stitching / gather", ("index_add", "scatter",
              "gather", "index", "take")), ("optimizer", ("adam", "_foreach", "optim")),
              ("pooling / upsampling", ("pool", "expand", "upsample")), ("copy / layout", ("copy_", "to_copy",
              "contiguous", "clone", "reshape")), ("matmul", ("mm", "matmul", "linear")))


def _device_time_us(event: Any) -> float:
    value = getattr(event, "self_device_time_total", None)
    return float(value if value is not None else getattr(event, "self_cuda_time_total", 0.0))


def _category(name: str) -> str:
    name = name.lower()
    return next((c for c, keys in CATEGORIES if any(k in name for k in keys)), "element-wise / other")


def summarise_profile(prof: torch.profiler.profile, device: torch.device, top: int) -> dict[str, Any]:
    """Top operators by self time and the share of each kind of work.

    CPU: self CPU time of every operator. CUDA: kernel time; the total is that of all kernels, and each
    operator (``aten::...``) is charged the kernels it launched, so the operators' shares are readable
    names; kernels launched outside any operator (a CUDA-graph replay) count as ``unattributed``.
    """
    from torch.autograd import DeviceType

    events = [e for e in prof.key_averages() if not e.key.startswith("ProfilerStep")]
    ops = [e for e in events if e.device_type == DeviceType.CPU]
    if device.type == "cuda":
        kernels = [e for e in events
                   if e.device_type != DeviceType.CPU and not getattr(e, "is_user_annotation", False)]
        total = sum(_device_time_us(e) for e in kernels)
        op_time = {e.key: _device_time_us(e) for e in ops}
        top_kernels = sorted(kernels, key=_device_time_us, reverse=True)[:top]
    else:
        total = sum(float(e.self_cpu_time_total) for e in ops)
        op_time = {e.key: float(e.self_cpu_time_total) for e in ops}
        top_kernels = []
    total = total or 1.0
    calls = {e.key: e.count for e in ops}
    categories: dict[str, float] = {}
    for name, value in op_time.items():
        categories[_category(name)] = categories.get(_category(name), 0.0) + value
    unattributed = total - sum(op_time.values())
    if device.type == "cuda" and unattributed > 0.01 * total:
        categories["unattributed (e.g. CUDA graph replay)"] = unattributed
    ranked = sorted(op_time.items(), key=lambda kv: -kv[1])[:top]
    optimizer = [e for e in ops if e.key.startswith("Optimizer.step")]
    sort_by = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    return {
        "clock": "GPU kernel time" if device.type == "cuda" else "CPU self time",
        "total_ms": total / 1e3,
        "top": [{"op": name, "self_ms": value / 1e3, "percent": 100 * value / total, "calls": calls[name]}
                for name, value in ranked],
        "top_kernels": [{"kernel": e.key[:160], "self_ms": _device_time_us(e) / 1e3,
                         "percent": 100 * _device_time_us(e) / total, "calls": e.count} for e in top_kernels],
        "categories_percent": {k: 100 * v / total
                               for k, v in sorted(categories.items(), key=lambda kv: -kv[1])},
        # the whole optimiser step (its own operators included), CPU time: Adam's per-parameter updates
        # are element-wise operators that the categories above cannot tell apart from the model's
        "optimizer_step_cpu_ms": sum(float(e.cpu_time_total) for e in optimizer) / 1e3 if optimizer else None,
        "table": prof.key_averages().table(sort_by=sort_by, row_limit=top),
    }


def host_breakdown(run: Callable[[], object], top: int = 12) -> dict[str, Any]:
    """cProfile of one ``reconstruct_scan`` call: its wall time split over the calls it makes directly
    (grouping, the network pass, stitching, copies...). On a GPU, waiting for the device shows up in the
    first call that needs a result on the host (the final copy of the object)."""
    profiler = cProfile.Profile()
    profiler.enable()
    run()
    profiler.disable()
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    root = next((key for key in stats if key[2] == "reconstruct_scan" and "ptychodus_torch_plugin" in key[0]),
                None)
    if root is None:
        return {}

    def label(key: tuple[str, int, str]) -> str:
        filename, line, function = key
        if "ptychodus_torch_plugin" in filename:
            return f"{filename.split('ptychodus_torch_plugin', 1)[1].lstrip('/')}:{line}({function})"
        return function if filename == "~" else f"{Path(filename).name}:{line}({function})"

    children = []
    for key, (_, _, _, _, callers) in stats.items():
        if root in callers:
            calls, _, _, cumulative = callers[root]
            children.append({"function": label(key), "cumulative_s": cumulative, "calls": calls})
    children.sort(key=lambda r: -r["cumulative_s"])
    return {"total_s": stats[root][3], "self_s": stats[root][2], "direct_calls": children[:top]}


def profile_case(model0: PtychoModel, trained: PtychoModel, data: GroupedScan, scan: ScanData,
                 config: PerformanceConfig, device: torch.device, batch: int, infer_batch: int,
                 steps: int, top: int) -> dict[str, Any]:
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    model = copy.deepcopy(model0).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    stream = batch_stream(data, batch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        step = TrainStep(model, optimizer, device, resolve(config, device, "training"), example=next(stream))
        step(next(stream))
        sync(device)
        with torch.profiler.profile(activities=activities) as prof:
            for _ in range(steps):
                step(next(stream))
            sync(device)
        training = summarise_profile(prof, device, top)
        with torch.profiler.profile(activities=activities) as prof:
            reconstruct_scan(trained, scan, batch_size=infer_batch, device=device, performance=config)
        inference = summarise_profile(prof, device, top)
        inference["host_functions"] = host_breakdown(lambda: reconstruct_scan(
            trained, scan, batch_size=infer_batch, device=device, performance=config))
    training["steps"] = steps
    inference["chunks"] = math.ceil(scan.n_patterns / infer_batch)
    return {"variant_options": resolve(config, device, "inference").describe(), "training": training,
            "inference": inference}


# -- one (N, gridsize) ------------------------------------------------------------------------------------

def fractions(row: dict[str, Any], flops: dict[str, float], ceilings: dict[str, Any], size: int, modes: int,
              device: torch.device) -> dict[str, Any]:
    """Each rate as a fraction of the ceiling that bounds it (see docs/performance.md)."""
    matmul = ceilings["matmul_TFLOPs"]
    bf16 = row["variant"].startswith("bf16")
    if bf16:
        peak_key = "bf16"
    elif device.type == "cuda" and torch.backends.cudnn.allow_tf32 and "tf32" in matmul:
        peak_key = "tf32"  # cuDNN runs float32 convolutions in TF32 by default
    else:
        peak_key = "fp32"
    peak = matmul[peak_key] * 1e12
    copy_bw = ceilings["copy"]["device_copy_GBps"] * GB
    fft_rate = ceilings["fft_transforms_per_s"].get(str(size))
    pattern_bytes = size * size * 4
    out: dict[str, Any] = {"matmul_ceiling": peak_key}
    train, infer = row.get("train"), row.get("inference")
    if train:
        achieved = train["patterns_per_s"] * flops["training"]
        out["train_TFLOPs"] = achieved / 1e12
        out["train_of_matmul"] = achieved / peak
        # the forward model runs one N x N FFT per pattern and probe mode, its backward one more
        out["train_of_fft"] = train["patterns_per_s"] * 2 * modes / fft_rate if fft_rate else None
        out["train_input_of_copy"] = train["patterns_per_s"] * 2 * pattern_bytes / copy_bw
    if infer:
        achieved = infer["patterns_per_s"] * flops["forward"]
        out["infer_TFLOPs"] = achieved / 1e12
        out["infer_of_matmul"] = achieved / peak
        out["infer_input_of_copy"] = infer["patterns_per_s"] * 2 * pattern_bytes / copy_bw
        if "host_to_device_pinned_GBps" in ceilings["copy"]:
            out["infer_scan_of_h2d"] = (infer["positions_per_s"] * pattern_bytes
                                        / (ceilings["copy"]["host_to_device_pinned_GBps"] * GB))
    return out


Row = dict[str, Any]


def measure_case(size: int, gridsize: int, variants: list[str], device: torch.device,
                 args: argparse.Namespace, ceilings: dict[str, Any]) -> tuple[list[Row], Row]:
    started = time.perf_counter()
    base, scan = make_scans(size, args.positions)
    data = group_scan(scan, gridsize).to(device)
    model0 = make_model(scan, data, size, gridsize).to(device)
    flops = count_flops(model0, data)
    modes = int(model0.probe.shape[0])
    batch = min(args.batch, data.n_groups)
    infer_batch = args.infer_batch
    rows: list[dict[str, Any]] = []
    trained: dict[str, PtychoModel] = {}
    for name in variants:
        config = parse_variant(name)
        row: dict[str, Any] = {"N": size, "gridsize": gridsize, "variant": name}
        if config.cuda_graphs:
            row["train"] = None  # CUDA graphs apply to inference only: training would repeat bf16+cl
        else:
            row["train"], trained[name] = measure_training(model0, data, config, device, batch, args.steps,
                                                           args.warmup, args.repeats)
        rows.append(row)
        rate = f"{row['train']['patterns_per_s']:10.1f} patterns/s" if row["train"] else "   (inference only)"
        print(f"  N={size} g={gridsize} {name:<18} train {rate}", flush=True)
    # Inference of every variant uses the same weights (those trained by the first variant, fp32 when
    # listed), so the SSIM against the fp32 reconstruction measures rounding, nothing else.
    reference_name = "fp32" if "fp32" in trained else next(iter(trained), None)
    reference_model = trained[reference_name] if reference_name else copy.deepcopy(model0)
    reference_recon = None
    if base is not scan or "fp32" not in variants:
        fp32 = PerformanceConfig(precision="fp32", channels_last=False)
        reference_recon = reconstruct_scan(reference_model, base, batch_size=infer_batch, device=device,
                                           performance=fp32)
    recons: dict[str, Any] = {}
    for row in rows:
        config = parse_variant(row["variant"])
        row["inference"], recon = measure_inference(reference_model, scan, config, device, infer_batch,
                                                    args.repeats)
        if base is not scan:
            recon = reconstruct_scan(reference_model, base, batch_size=infer_batch, device=device,
                                     performance=config)
        recons[row["variant"]] = recon
        if row["variant"] == "fp32" and reference_recon is None:
            reference_recon = recon
        rate = f"{row['inference']['patterns_per_s']:10.1f} patterns/s"
        print(f"  N={size} g={gridsize} {row['variant']:<18} inference {rate}", flush=True)
    for row in rows:
        row["quality"] = quality(recons[row["variant"]], reference_recon, base.object_truth)
        row["fractions"] = fractions(row, flops, ceilings, size, modes, device)
        row["network_flops_per_pattern"] = flops
    reference_quality = quality(reference_recon, reference_recon, base.object_truth)
    fp32_truth = reference_quality.get("vs_truth")
    for row in rows:
        if fp32_truth and "vs_truth" in row["quality"]:
            row["quality"]["ssim_minus_fp32"] = {k: row["quality"]["vs_truth"][k] - fp32_truth[k]
                                                 for k in fp32_truth}
    case = {"N": size, "gridsize": gridsize, "positions": scan.n_patterns,
            "simulated_positions": base.n_patterns,
            "object_shape": list(scan.object_shape), "probe_modes": modes, "batch_groups": batch,
            "infer_batch_groups": infer_batch, "reference_weights": reference_name,
            "fp32_reference_vs_truth": fp32_truth,
            "network_flops_per_pattern": flops, "parameters": sum(p.numel() for p in model0.parameters()),
            "encoder_widths": list(model0.config.widths)}
    if args.profile:
        profiled = args.profile_variant or ("bf16+cl" if device.type == "cuda" else variants[0])
        print(f"  N={size} g={gridsize} profiling {profiled}", flush=True)
        case["profile"] = profile_case(model0, reference_model, data, scan, parse_variant(profiled), device,
                                       batch, infer_batch, args.profile_steps, args.profile_top)
        case["profile"]["variant"] = profiled
    case["seconds"] = time.perf_counter() - started
    return rows, case


# -- the smoke command ------------------------------------------------------------------------------------

def smoke_command() -> dict[str, Any]:
    """Wall time and peak RSS of the issue's CPU smoke command, in a child process of its own."""
    fixture = ROOT / "tests" / "fixtures" / "pytorch_integration" / "minimal_dataset_v2.npz"
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "ptychodus_torch_plugin.train", "--train_data_file", str(fixture),
                   "--test_data_file", str(fixture), "--output_dir", f"{tmp}/logger_smoke",
                   "--n_images", "64", "--max_epochs", "1", "--gridsize", "2", "--batch_size", "4",
                   "--accelerator", "cpu", "--deterministic", "--num-workers", "0", "--logger", "csv",
                   "--quiet"]
        started = time.perf_counter()
        child = subprocess.Popen(command)
        _, status, usage = os.wait4(child.pid, 0)  # this child's own rusage, not that of all children
        wall = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise RuntimeError(f"the smoke command failed with exit status {child.returncode}: "
                           + " ".join(command))
    shown = " ".join(command[3:]).replace(tmp, "tmp").replace(f"{ROOT}/", "")
    return {"command": f"python -m ptychodus_torch_plugin.train {shown}",
            "wall_s": wall, "peak_rss_mib": usage.ru_maxrss / 1024}


# -- output -----------------------------------------------------------------------------------------------

def _f(value: float | None, fmt: str, width: int) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width}{fmt}}"


def print_report(result: dict[str, Any]) -> None:
    env, ceilings = result["environment"], result["ceilings"]
    device = env.get("gpu") or env["cpu"]
    print(f"\n{env['device']} ({device}), torch {env['torch']}, python {env['python']}, "
          f"{env['torch_threads']} threads, load average {env['loadavg_start'][0]:.2f} at start, "
          f"{env['loadavg_end'][0]:.2f} at end")
    copy_bw = ", ".join(f"{k.removesuffix('_GBps')} {v:.1f} GB/s" for k, v in ceilings["copy"].items())
    fft = ", ".join(f"{n}x{n} {rate / 1e3:.1f}k/s" for n, rate in ceilings["fft_transforms_per_s"].items())
    matmul = ", ".join(f"{k} {v:.3g}" for k, v in ceilings["matmul_TFLOPs"].items())
    print(f"ceilings: copy {copy_bw}; complex64 FFT {fft}; matmul TFLOP/s {matmul}")
    busy = env.get("cpu_busy_percent_before_start")
    if (busy > 20) if busy is not None else env["loadavg_start"][0] > 0.5 * (env["cpu_count"] or 1):
        busy_text = "" if busy is None else f", CPUs {busy:.0f}% busy in the second before"
        print(f"note: other work was running when the run started (load average "
              f"{env['loadavg_start'][0]:.2f}{busy_text}); figures may be low")
    head = (f"{'N':>4} {'g':>2} {'variant':<18} {'train p/s':>10} {'infer p/s':>10} {'infer pos/s':>11} "
            f"{'train MiB':>9} {'infer MiB':>9} {'SSIM vs fp32 amp/ph':>19}")
    print("\n" + head)
    for row in result["rows"]:
        train, infer, q = row["train"], row["inference"], row["quality"]["vs_fp32"]
        ssim = f"{q['amplitude_ssim']:.4f}/{q['phase_ssim']:.4f}"
        print(f"{row['N']:>4} {row['gridsize']:>2} {row['variant']:<18} "
              f"{_f(train and train['patterns_per_s'], '.1f', 10)} {_f(infer['patterns_per_s'], '.1f', 10)} "
              f"{_f(infer['positions_per_s'], '.1f', 11)} {_f(train and train['peak_mib'], '.0f', 9)} "
              f"{_f(infer['peak_mib'], '.0f', 9)} {ssim:>19}")
    print(f"\n{'N':>4} {'g':>2} {'variant':<18} {'train TFLOP/s':>13} {'% matmul':>8} {'% FFT':>6} "
          f"{'infer TFLOP/s':>13} {'% matmul':>8} {'% copy':>6}  (matmul ceiling used)")
    for row in result["rows"]:
        fr = row["fractions"]

        def pct(key: str, width: int = 8) -> str:
            return _f(100 * fr[key] if fr.get(key) is not None else None, ".1f", width)
        print(f"{row['N']:>4} {row['gridsize']:>2} {row['variant']:<18} "
              f"{_f(fr.get('train_TFLOPs'), '.4f', 13)} "
              f"{pct('train_of_matmul')} {pct('train_of_fft', 6)} {_f(fr.get('infer_TFLOPs'), '.4f', 13)} "
              f"{pct('infer_of_matmul')} {pct('infer_input_of_copy', 6)}  ({fr['matmul_ceiling']})")
    flops = {(c["N"], c["gridsize"]): c["network_flops_per_pattern"] for c in result["cases"]}
    print("\nnetwork GFLOP per pattern (forward / training step): " + ", ".join(
        f"N={n} g={g} {f['forward'] / 1e9:.3f}/{f['training'] / 1e9:.3f}" for (n, g), f in flops.items()))
    for case in result["cases"]:
        if "profile" not in case:
            continue
        for phase in ("training", "inference"):
            prof = case["profile"][phase]
            cats = ", ".join(f"{k} {v:.0f}%" for k, v in prof["categories_percent"].items() if v >= 1)
            print(f"\nprofile N={case['N']} g={case['gridsize']} {case['profile']['variant']} {phase} "
                  f"({prof['clock']}): {cats}")
            print(prof["table"])
            host = prof.get("host_functions") or {}
            if host:
                split = ", ".join(f"{c['function']} {100 * c['cumulative_s'] / host['total_s']:.0f}%"
                                  for c in host["direct_calls"][:6])
                print(f"reconstruct_scan wall time {host['total_s']:.3f} s, by direct call: {split}")
    if "smoke" in result:
        smoke = result["smoke"]
        print(f"smoke command: {smoke['wall_s']:.1f} s wall, peak RSS {smoke['peak_rss_mib']:.0f} MiB")


def write_json(path: Path, result: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    slim = copy.deepcopy(result)
    for case in slim["cases"]:  # the formatted tables are for the terminal; the JSON keeps the numbers
        for phase in ("training", "inference"):
            case.get("profile", {}).get(phase, {}).pop("table", None)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(slim, indent=2) + "\n")
    tmp.replace(path)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cpu", "cuda"),
                        default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--sizes", default="64,128", help="pattern sizes N, comma-separated")
    parser.add_argument("--gridsizes", default="1,2", help="gridsizes, comma-separated")
    parser.add_argument("--variants", default=None,
                        help="comma-separated: fp32 | bf16, each with optional +cl (channels_last), "
                             "+compile, "
                             "+graphs (CUDA graphs, inference only); default: "
                             + "; ".join(f"{k}: {v}" for k, v in DEFAULT_VARIANTS.items()))
    parser.add_argument("--batch", type=int, default=None,
                        help="training groups per step (default 8 CPU, 512 CUDA)")
    parser.add_argument("--infer-batch", type=int, default=None,
                        help="inference groups per chunk (default: --batch on the CPU, 1024 on CUDA, the "
                             "size of the simulated scan, so every chunk has one shape)")
    parser.add_argument("--steps", type=int, default=None,
                        help="timed training steps per repeat (default 3 CPU, 20 CUDA)")
    parser.add_argument("--warmup", type=int, default=None,
                        help="untimed training steps first (default 1 CPU, 3 CUDA)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed repeats of the training block and of the whole inference; the median is "
                             "reported (default 3)")
    parser.add_argument("--positions", type=int, default=None,
                        help="scan positions (default 64 CPU, 16384 CUDA); above "
                             f"{MAX_SIMULATED_POSITIONS} the simulated patterns are tiled")
    parser.add_argument("--profile", action="store_true", help="torch.profiler tables: where the time goes")
    parser.add_argument("--profile-variant", default=None,
                        help="variant to profile (default: the first one on the CPU, bf16+cl on CUDA)")
    parser.add_argument("--profile-steps", type=int, default=3)
    parser.add_argument("--profile-top", type=int, default=15)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--ceiling-time", type=float, default=0.3, help="seconds spent on each ceiling")
    parser.add_argument("--quick", action="store_true", help="small ceiling measurements (for the tests)")
    parser.add_argument("--no-smoke", action="store_true", help="skip the CPU smoke command")
    parser.add_argument("--json", type=Path, default=None,
                        help="default benchmarks/results/throughput_<device>.json")
    args = parser.parse_args(argv)
    cuda = args.device == "cuda"
    if cuda and not torch.cuda.is_available():
        parser.error("--device cuda, but no CUDA device is available")
    defaults = {"batch": (512, 8), "steps": (20, 3), "warmup": (3, 1), "repeats": (3, 3),
                "positions": (16384, 64)}
    for name, (on_cuda, on_cpu) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, on_cuda if cuda else on_cpu)
    args.infer_batch = args.infer_batch or (1024 if cuda else args.batch)
    names = (args.variants or DEFAULT_VARIANTS[args.device]).split(",")
    args.variants = [v.strip() for v in names if v.strip()]
    args.sizes = [int(v) for v in args.sizes.split(",")]
    args.gridsizes = [int(v) for v in args.gridsizes.split(",")]
    for name in args.variants + ([args.profile_variant] if args.profile_variant else []):
        try:
            config = parse_variant(name)
        except ValueError as exc:
            parser.error(str(exc))
        if config.cuda_graphs and not cuda:
            parser.error(f"variant '{name}': CUDA graphs need --device cuda")
    for name in ("batch", "infer_batch", "steps", "repeats", "positions"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.positions < max(g * g for g in args.gridsizes):
        parser.error("--positions must be at least gridsize² for every gridsize")
    args.json = args.json or ROOT / "benchmarks" / "results" / f"throughput_{args.device}.json"
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    started = time.perf_counter()
    result: dict[str, Any] = {
        "command": "python benchmarks/throughput.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "environment": environment(device),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "complete": False,
    }
    print(f"measuring ceilings on {device} ...", flush=True)
    result["ceilings"] = measure_ceilings(device, args.sizes, args.ceiling_time, args.quick)
    result["rows"], result["cases"] = [], []
    for size in args.sizes:
        for gridsize in args.gridsizes:
            rows, case = measure_case(size, gridsize, args.variants, device, args, result["ceilings"])
            result["rows"] += rows
            result["cases"].append(case)
            result["environment"]["loadavg_end"] = list(os.getloadavg())
            write_json(args.json, result)  # a run cut short by a time limit keeps what it measured
    if not args.no_smoke and device.type == "cpu":
        print("timing the smoke command ...", flush=True)
        result["smoke"] = smoke_command()
    result["environment"]["loadavg_end"] = list(os.getloadavg())
    result["total_s"] = time.perf_counter() - started
    result["complete"] = True
    print_report(result)
    write_json(args.json, result)
    print(f"\nwrote {args.json} ({result['total_s']:.0f} s)")
    return result


if __name__ == "__main__":
    main()
