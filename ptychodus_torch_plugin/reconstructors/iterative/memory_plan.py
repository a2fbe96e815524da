"""What the iterative solver holds, decided once from the memory budget before anything large is allocated.

The solver's memory is the object's state, a fixed working set per batch, and (optionally) the measured
patterns and a cache of shifted probes. Only the last two grow with the number of patterns, so they are
what the budget decides:

- the patterns are *resident* (held on the device, fastest) when they fit in half of what the budget leaves
  after the object and the working set; otherwise they are *streamed* in blocks sized to the budget;
- the probe, shifted by each position's sub-pixel remainder, is cached when that fits in what is left.
  Positions on a grid share a few remainders (a simulated raster: one), so that cache is usually tiny; a
  measured scan has one remainder per position, and then the cache is as large as the patterns.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...data.patterns import CHUNK_CACHE_BYTES
from ...errors import ConfigError
from ...memory import MemoryBudget, format_bytes

#: Bytes per object pixel of the solver's state: the object (complex64), the batch scatter buffers
#: (complex64 gradient + float32 illumination, zero between batches, reused for the final weight map).
OBJECT_BYTES_PER_PIXEL = 8 + 8 + 4
#: More per pixel with momentum: the object at the end of the previous epoch (complex64).
MOMENTUM_BYTES_PER_PIXEL = 8
#: More per pixel under torchrun: this rank's illumination, the weight of its object in the combination.
SHARE_BYTES_PER_PIXEL = 4
#: Per pattern: position (float64 x 2), window origin (int64 x 2), sub-pixel remainder (float64 x 2) and
#: its probe-cache slot (int64).
INDEX_BYTES_PER_PATTERN = 56
#: Complex (B, K, N, N) temporaries alive at once in one batch update (probes, windows, exit waves, far
#: field, corrections, gradients, FFT work space), as measured with the CPU allocator (docs/performance.md).
WORKING_ARRAYS = 16
#: Blocks of a streamed scan alive at once: the one in use, one read ahead, one being read (with its raw
#: file values) and the ifftshift copy made on the reading thread; the file's chunk cache comes on top.
STREAM_BLOCKS = 5
#: Largest streamed block: bigger blocks save nothing once a read takes longer than its overhead.
MAX_BLOCK_BYTES = 256 * 1024**2
#: Largest probe cache, whatever the budget: beyond this the two FFTs it saves per pattern cost less than
#: the memory traffic of reading it.
MAX_CACHE_BYTES = 2 * 1024**3


@dataclass(frozen=True)
class MemoryPlan:
    """The solver's holdings, in bytes, and the choices that follow from them."""

    resident: bool
    """The share's patterns are held on the device; otherwise they are streamed in blocks."""
    block_size: int
    """Patterns per streamed block (0 when resident)."""
    cache_probes: bool
    object_bytes: int
    working_bytes: int
    pattern_bytes: int
    """Bytes of patterns held: the resident share, or the streamed blocks alive at once."""
    cache_bytes: int
    budget: MemoryBudget

    @property
    def total_bytes(self) -> int:
        return self.object_bytes + self.working_bytes + self.pattern_bytes + self.cache_bytes

    def describe(self) -> str:
        patterns = ("resident" if self.resident else f"streamed in blocks of {self.block_size}")
        cache = "probe cache " + (format_bytes(self.cache_bytes) if self.cache_probes else "off")
        return (f"patterns {patterns} ({format_bytes(self.pattern_bytes)}), object state "
                f"{format_bytes(self.object_bytes)}, working set {format_bytes(self.working_bytes)}, {cache}; "
                f"budget {self.budget.describe()}")


def plan_memory(*, pixels: int, n_patterns: int, patch_size: int, modes: int, batch_size: int, momentum: bool,
                shared: bool, distinct_shifts: int, held_bytes: int, stream_possible: bool, budget: MemoryBudget,
                device_free: int | None = None) -> MemoryPlan:
    """Decide residency, block size and the probe cache for one share of ``n_patterns`` patterns.

    ``held_bytes``: patterns this process already holds whatever is decided (an in-memory scan on the CPU);
    ``stream_possible``: the patterns can be read in parts (a PatternStack, or host memory for a GPU);
    ``device_free``: free memory of a GPU (None on the CPU, where the budget is the limit).
    """
    per_pattern = patch_size * patch_size * 4
    object_bytes = pixels * (OBJECT_BYTES_PER_PIXEL + MOMENTUM_BYTES_PER_PIXEL * momentum
                             + SHARE_BYTES_PER_PIXEL * shared)
    working = WORKING_ARRAYS * min(batch_size, n_patterns) * modes * patch_size * patch_size * 8
    fixed = object_bytes + working + INDEX_BYTES_PER_PATTERN * n_patterns
    capacity = budget.host_bytes if device_free is None else device_free
    if fixed > capacity:
        where = f"the budget of {budget.describe()}" if device_free is None else \
            f"the {format_bytes(device_free)} free on the GPU"
        raise ConfigError(
            f"the iterative solver needs {format_bytes(fixed)} for the object's state "
            f"({format_bytes(object_bytes)}, {pixels:,} pixels) and one batch ({format_bytes(working)}), more "
            f"than {where}; raise --memory_budget, lower --iterative_batch_size, or split the scan"
        )
    share_bytes = n_patterns * per_pattern
    already_held = device_free is None and held_bytes > 0  # an in-memory scan on the CPU: no copy is made
    room = capacity - fixed - (held_bytes if device_free is None else 0)
    if already_held or not stream_possible or share_bytes <= room // 2:
        resident, block_size, pattern_bytes = True, 0, share_bytes
        room -= 0 if already_held else share_bytes
    else:
        block_bytes = min(MAX_BLOCK_BYTES, max(room // 2 - CHUNK_CACHE_BYTES, 0) // STREAM_BLOCKS)
        block_size = min(n_patterns, max(batch_size, (block_bytes // per_pattern) // batch_size * batch_size))
        resident, pattern_bytes = False, STREAM_BLOCKS * block_size * per_pattern + CHUNK_CACHE_BYTES
        room -= pattern_bytes
    cache_bytes = distinct_shifts * modes * patch_size * patch_size * (8 + 4)
    cache = 0 < cache_bytes <= min(MAX_CACHE_BYTES, room)
    return MemoryPlan(resident=resident, block_size=block_size, cache_probes=cache, object_bytes=object_bytes,
                      working_bytes=working, pattern_bytes=pattern_bytes, cache_bytes=cache_bytes if cache else 0,
                      budget=budget)
