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

from .errors import ConfigError

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
