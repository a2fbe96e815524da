"""How much memory a step may take, and how much the process has taken: the pieces every bounded-memory
path shares (the iterative solver, network inference, the chunked readers).

Why a module of its own: the budget is one number the user gives (``--memory_budget 2GiB``) or that is
derived once from the machine, and every consumer must read it the same way; the process's peak RSS is
what the progress line and ``history`` report, and what the memory tests check in a subprocess.
"""

from __future__ import annotations

import os
import re
import resource
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import ConfigError

if TYPE_CHECKING:
    import torch

KIB, MIB, GIB = 1024, 1024**2, 1024**3

#: Fraction of the free RAM an automatic budget takes, shared by the ranks of one node (torchrun's
#: ``LOCAL_WORLD_SIZE``): the rest is left to the page cache (which keeps a streamed file fast) and to
#: whatever else runs on the machine.
AUTO_FRACTION = 0.5

#: Smallest budget accepted: below this not even one block of patterns and an object fit.
MIN_BUDGET = 32 * MIB

_UNITS = {"": 1, "b": 1, "k": KIB, "kb": 1000, "kib": KIB, "m": MIB, "mb": 1000**2, "mib": MIB,
          "g": GIB, "gb": 1000**3, "gib": GIB, "t": 1024**4, "tb": 1000**4, "tib": 1024**4}


def parse_bytes(text: str) -> int | None:
    """``'2GiB'``, ``'1.5GB'``, ``'500M'``, ``'2e9'`` -> bytes; ``'auto'`` -> None (derive from the machine).

    GB/MB are decimal and GiB/MiB binary, as the SI and IEC define them; a bare G/M is binary (as in
    ``ulimit`` and Slurm's ``--mem``)."""
    cleaned = text.strip().lower().replace(" ", "")
    if cleaned in ("auto", ""):
        return None
    match = re.fullmatch(r"([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)([a-z]*)", cleaned)
    if match is None or match.group(2) not in _UNITS:
        raise ConfigError(f"--memory_budget {text!r}: expected a size such as 2GiB, 1.5GB, 500MiB or 'auto'")
    value = float(match.group(1)) * _UNITS[match.group(2)]
    if not value >= MIN_BUDGET:
        raise ConfigError(f"--memory_budget {text!r} is below the smallest workable budget of "
                          f"{format_bytes(MIN_BUDGET)}")
    return int(value)


def format_bytes(count: float) -> str:
    """Bytes in the largest binary unit that keeps the number >= 1 (``1.50 GiB``)."""
    for unit, size in (("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if abs(count) >= size:
            return f"{count / size:.2f} {unit}"
    return f"{int(count)} B"


def _proc_kib(path: str, key: str) -> int | None:
    """The ``key:`` line of a /proc file (in kB) as bytes, or None where there is no such file or line."""
    try:
        with open(path, encoding="ascii") as handle:
            for line in handle:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * KIB
    except (OSError, ValueError, IndexError):
        pass
    return None


def available_ram() -> int | None:
    """Free RAM the kernel could give this process now (``MemAvailable``: free pages plus reclaimable cache),
    or None where the platform cannot tell."""
    available = _proc_kib("/proc/meminfo", "MemAvailable")
    if available is not None:
        return available
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def peak_rss_bytes() -> int:
    """The largest resident set this process has had so far.

    Linux's ``VmHWM`` (the high-water mark of this program's own memory map) first: ``ru_maxrss`` carries
    over the parent's resident set at the fork that started this process, so a child of a large process
    (a test runner, a notebook) would report the parent's size (measured: 720 MiB reported for a run that
    peaked at 340 MiB). ``ru_maxrss`` where there is no ``/proc`` (KiB on Linux, bytes on macOS)."""
    high_water = _proc_kib("/proc/self/status", "VmHWM")
    if high_water is not None:
        return high_water
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * KIB)


def current_rss_bytes() -> int:
    """Resident set of this process now (``/proc/self/statm``), or the peak where that is unavailable."""
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return peak_rss_bytes()


@dataclass(frozen=True)
class MemoryBudget:
    """Bytes of host memory one process may hold for a reconstruction's data and state (the object, its
    buffers, resident or streamed patterns, probe caches); the interpreter and libraries come on top."""

    host_bytes: int
    automatic: bool = False

    def describe(self) -> str:
        return format_bytes(self.host_bytes) + (" (automatic)" if self.automatic else "")


def resolve_budget(requested: int | None, local_world_size: int | None = None) -> MemoryBudget:
    """The budget the user asked for, or :data:`AUTO_FRACTION` of the free RAM shared by this node's ranks."""
    if requested is not None:
        return MemoryBudget(int(requested))
    ranks = local_world_size or int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
    free = available_ram()
    if free is None:
        return MemoryBudget(4 * GIB, automatic=True)
    return MemoryBudget(max(int(free * AUTO_FRACTION / max(ranks, 1)), MIN_BUDGET), automatic=True)


# -- a device's memory, for the network's reconstruction ------------------------------------------------

def available_memory(device: torch.device) -> int | None:
    """Free bytes on ``device``: ``torch.cuda.mem_get_info`` on CUDA, available RAM on the CPU (``None`` when
    the platform cannot tell, e.g. no ``SC_AVPHYS_PAGES``)."""
    if device.type == "cuda":
        import torch

        return int(torch.cuda.mem_get_info(device)[0])
    if device.type != "cpu":
        return None
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def memory_estimate(object_shape: tuple[int, int], patch_size: int, gridsize: int, batch_size: int) -> tuple[int, int]:
    """Bytes for (the object canvas, one chunk): the canvas is complex64 sums + float32 weights (+ the
    result copy of each); a chunk holds its input amplitudes and patches, plus the network's activations
    (allowance of 64 float32 maps per pattern)."""
    h, w = (int(v) for v in object_shape)
    canvas = h * w * (8 + 4) * 2
    patterns = batch_size * gridsize**2
    chunk = patterns * patch_size * patch_size * (4 + 8 + 64 * 4)
    return canvas, chunk


def check_memory(object_shape: tuple[int, int], patch_size: int, gridsize: int, batch_size: int,
                 device: torch.device, available: int | None = None) -> None:
    """Refuse, before anything is allocated, a reconstruction that would not fit on ``device``."""
    available = available_memory(device) if available is None else available
    if available is None:
        return
    canvas, chunk = memory_estimate(object_shape, patch_size, gridsize, batch_size)
    if canvas + chunk > available:
        h, w = object_shape
        raise ConfigError(
            f"reconstructing needs about {(canvas + chunk) / GIB:.2f} GiB for the object ({h} x {w} pixels: "
            f"{canvas / GIB:.2f} GiB) and one chunk of {batch_size} groups ({chunk / GIB:.2f} GiB), but only "
            f"{available / GIB:.2f} GiB is available on {device}; use a smaller --inference_batch_size, a "
            "device with more memory, or split the scan"
        )


def keep_resident(amplitude_bytes: int, device: torch.device, available: int | None = None) -> bool:
    """Hold the whole scan on ``device`` when it takes at most a quarter of the free memory there."""
    if device.type == "cpu":
        return True
    available = available_memory(device) if available is None else available
    return available is not None and amplitude_bytes <= available // 4
