"""One scan across ranks: spatial shares of the patterns, and the object combined where shares overlap.

Scheme (chosen by measurement, docs/findings.md SCALE-002): each rank takes a band of the scan (the
patterns sorted by row, cut into equal counts), reads only those patterns, and runs ordinary iterative
epochs on them against its own copy of the object. After every epoch the ranks agree on the rows that two
or more bands touch (the halo), and combine only those rows: each rank's object weighted by its own
illumination there, summed over ranks with ``all_reduce`` and divided by the summed illumination, the
same normalisation one process applies to overlapping windows of one batch. Rows that one rank alone
touches need no exchange during the run; at the end the whole object is combined once, so every rank
returns the same object. Communication per epoch is the halo (about a window's height per pair of
neighbouring bands), not the object: it does not grow with the scan.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor

from ...distributed import DistributedContext

#: Rows added on both sides of a band's extent when deciding the halo, so positions corrected by a few
#: tenths of a pixel per epoch do not walk into rows another rank has not kept in step.
HALO_MARGIN_ROWS = 8


#: Pixels combined per collective, so the temporaries of the final whole-object combination stay small.
PIECE_PIXELS = 1 << 22


def spatial_shares(positions: np.ndarray, world_size: int) -> list[np.ndarray]:
    """Pattern indices of each rank: the patterns sorted by (row, col) and cut into ``world_size`` runs of
    near-equal length, each returned in index (file) order."""
    order = np.lexsort((positions[:, 1], positions[:, 0]))
    return [np.sort(part) for part in np.array_split(order, world_size)]


def shared_row_bands(extents: np.ndarray, height: int, margin: int = HALO_MARGIN_ROWS) -> list[tuple[int, int]]:
    """Runs of rows [lo, hi) that two or more ranks' extents (R, 2) = [first row, end row) touch, each
    extent widened by ``margin`` rows and clipped to the object."""
    cover = np.zeros(height + 1, dtype=np.int64)
    for first, end in extents:
        if end > first:
            cover[max(int(first) - margin, 0)] += 1
            cover[min(int(end) + margin, height)] -= 1
    shared = np.cumsum(cover)[:height] >= 2
    edges = np.flatnonzero(np.diff(np.concatenate([[0], shared.astype(np.int8), [0]])))
    return [(int(lo), int(hi)) for lo, hi in zip(edges[::2], edges[1::2])]


def gather_extents(extent: tuple[int, int], context: DistributedContext, device: torch.device) -> np.ndarray:
    """Every rank's row extent (world_size, 2), from this rank's."""
    mine = torch.tensor(extent, dtype=torch.int64, device=device)
    every = [torch.empty_like(mine) for _ in range(context.world_size)]
    dist.all_gather(every, mine)
    return torch.stack(every).cpu().numpy()


def combine_rows(obj: Tensor, weight: Tensor, numerator: Tensor, denominator: Tensor, bands: list[tuple[int, int]],
                 width: int) -> None:
    """Replace the rows ``bands`` of the flat object ``obj`` (H*W,) by the illumination-weighted mean of
    every rank's copy. ``weight`` (H*W,) is this rank's illumination; ``numerator`` (H*W, 2) and
    ``denominator`` (H*W,) are zeroed scratch buffers, left zeroed. Pixels no rank lit keep their value."""
    step = max(1, PIECE_PIXELS // max(width, 1))
    pieces = [(lo, min(lo + step, end)) for first, end in bands for lo in range(first, end, step)]
    for first, end in pieces:
        rows = slice(first * width, end * width)
        num, den, own = numerator[rows], denominator[rows], weight[rows]
        torch.mul(torch.view_as_real(obj[rows]), own.unsqueeze(1), out=num)
        den.copy_(own)
        dist.all_reduce(num)
        dist.all_reduce(den)
        merged = torch.view_as_complex(num) / den.clamp_min(torch.finfo(den.dtype).tiny)
        obj[rows] = torch.where(den > 0, merged, obj[rows])
        num.zero_()
        den.zero_()


def average(values: Tensor, weight: float, total_weight: float) -> Tensor:
    """The ``weight``-weighted mean over ranks of ``values`` (same shape on every rank)."""
    summed = values * weight
    dist.all_reduce(summed)
    return summed / total_weight


def gather_rows(local: Tensor, shares: list[np.ndarray], context: DistributedContext) -> Tensor:
    """Rows of every rank's ``local`` (m_rank, ...) put back in global order (M, ...), on every rank."""
    longest = max(len(share) for share in shares)
    padded = local.new_zeros((longest, *local.shape[1:]))
    padded[: local.shape[0]] = local
    every = [torch.empty_like(padded) for _ in range(context.world_size)]
    dist.all_gather(every, padded)
    total = sum(len(share) for share in shares)
    out = local.new_empty((total, *local.shape[1:]))
    for share, rows in zip(shares, every):
        out[torch.as_tensor(share, device=out.device)] = rows[: len(share)]
    return out
