"""Measured amplitudes, batch by batch, for the iterative solver: from memory or streamed from their file.

Two feeds give the solver the same thing each batch: the local indices of its patterns and their measured
amplitudes on the device, in ``fft2`` layout (zero frequency at pixel 0):

- :class:`ResidentFeed`: every pattern of the share is held on the device (on the CPU: the scan's own
  array, not a copy); each epoch is one random permutation, cut into batches. The ``ifftshift`` is done per
  batch, so no shifted copy of the scan exists.
- :class:`StreamedFeed`: patterns stay where they are (an HDF5 file, or host memory when the device is a
  GPU) and come in blocks, read by a background thread while the solver works on the block before
  (:class:`Prefetcher`), so memory is a few blocks whatever the scan's size. A block is not one run of
  consecutive patterns (one small region of the sample, since files are in scan order) but several short
  runs drawn at random from the whole share each epoch: the batches cut from it then spread over the
  sample as the resident feed's do, while each read is still a run of whole HDF5 chunks. Batches of one
  region only made the object converge more slowly per epoch (docs/findings.md SCALE-001).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch import Tensor

from ...data.patterns import PatternStack
from ...data.prefetch import Prefetcher

_DIMS = (-2, -1)

Batch = tuple[Tensor, Tensor]
"""(local pattern indices (B,) on the device, measured amplitudes (B, N, N) in fft2 layout)."""


def take_rows(amplitudes: np.ndarray | PatternStack, indices: np.ndarray) -> np.ndarray:
    """Rows ``indices`` (sorted) of an amplitude stack: a view when they are one contiguous run of an
    in-memory array, so a single process or a contiguous share never copies the scan."""
    if isinstance(amplitudes, np.ndarray) and indices.size and \
            indices[-1] - indices[0] + 1 == indices.size:
        return amplitudes[int(indices[0]) : int(indices[-1]) + 1]
    return amplitudes[indices]


class ResidentFeed:
    """Every pattern of the share resident on the device; batches are random over the whole share."""

    def __init__(self, amplitudes: Tensor, batch_size: int) -> None:
        self.amplitudes = amplitudes
        self.batch_size = batch_size
        self.device = amplitudes.device
        self.count = int(amplitudes.shape[0])

    def epoch(self, generator: torch.Generator) -> Iterator[Batch]:
        order = torch.randperm(self.count, generator=generator).to(self.device)
        for index in order.split(self.batch_size):
            yield index, torch.fft.ifftshift(self.amplitudes.index_select(0, index), dim=_DIMS)

    def close(self) -> None:
        pass


class StreamedFeed:
    """Blocks of ``block_size`` patterns of the share, read ahead by a background thread.

    ``read(local_indices)`` returns the float32 amplitudes of those patterns of the share in fft2 layout
    (numpy, any source: a PatternStack or a host array); the block is moved to the device through pinned
    memory when the device is a GPU.
    """

    def __init__(self, read: Callable[[np.ndarray], np.ndarray], count: int, block_size: int, batch_size: int,
                 device: torch.device, run_length: int = 64, depth: int = 1) -> None:
        self.read = read
        self.count = count
        self.block_size = max(int(block_size), 1)
        self.batch_size = batch_size
        self.device = device
        self.run_length = max(1, min(int(run_length), self.block_size))
        self.depth = depth
        self._prefetcher: Prefetcher | None = None

    def _blocks(self, generator: torch.Generator) -> list[np.ndarray]:
        """This epoch's blocks: runs of ``run_length`` consecutive patterns in a random order, grouped into
        blocks of ``block_size``, each block's indices sorted (so its reads go forward through the file)."""
        if self.count <= self.block_size:
            return [np.arange(self.count)]
        runs = np.arange(0, self.count, self.run_length)[torch.randperm(-(-self.count // self.run_length),
                                                                        generator=generator).numpy()]
        per_block = max(self.block_size // self.run_length, 1)
        blocks = []
        for first in range(0, runs.size, per_block):
            starts = np.sort(runs[first : first + per_block])
            rows = (starts[:, None] + np.arange(self.run_length)).reshape(-1)
            blocks.append(rows[rows < self.count])
        return blocks

    def _load(self, indices: np.ndarray) -> tuple[Tensor, Tensor]:
        values = torch.from_numpy(self.read(indices))
        if self.device.type == "cuda":
            values = values.pin_memory().to(self.device, non_blocking=True)
        return torch.from_numpy(indices).to(self.device), values

    def epoch(self, generator: torch.Generator) -> Iterator[Batch]:
        blocks = self._blocks(generator)
        orders = [torch.randperm(block.size, generator=generator) for block in blocks]
        self.close()
        self._prefetcher = Prefetcher((lambda b=b: self._load(b)) for b in blocks)
        try:
            for (indices, values), order in zip(self._prefetcher, orders):
                order = order.to(values.device)
                for part in order.split(self.batch_size):
                    yield indices.index_select(0, part), values.index_select(0, part)
        finally:
            self.close()

    def close(self) -> None:
        if self._prefetcher is not None:
            self._prefetcher.close()
            self._prefetcher = None
