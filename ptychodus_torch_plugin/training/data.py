"""Training batches: groups of gridsize² neighbouring patterns with their offsets, resident in memory.

The whole scan is held as a few tensors (optionally on the GPU); a batch is a gather of group indices,
so there is no per-sample Python work. The DataLoader only schedules index batches, which keeps
``--num-workers`` meaningful for CPU runs without copying patterns around.

Under ``torchrun`` with a scan left in its HDF5 file (a :class:`~..data.patterns.PatternStack`), each rank
keeps a fixed contiguous share of the groups and reads only the patterns those groups use
(:func:`group_scan` with ``distributed``): memory per rank is its share, and the batches of a step are
drawn by each rank from its own share (:func:`local_shard_batches`) instead of being cut from one global
batch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from ..config import Grouping
from ..data.patterns import PatternStack
from ..data.scan import ScanData
from ..distributed import SINGLE_PROCESS, DistributedContext
from ..errors import ConfigError
from ..physics import extract_patches
from ..physics.grouping import group_offsets, order_by_angle
from ..physics.scale import intensity_scale


@dataclass(frozen=True)
class GroupedScan:
    """A scan (or several) cut into groups: ``groups`` (G, C) indexes ``amplitudes`` (M, N, N).

    ``scales`` (G,), when present, is the intensity scale of each group's own scan; ``amplitudes`` are then
    stored multiplied by reference / own scale, so the model (which divides by the reference) sees every
    scan over its own scale, as inference does, and the loss maps each group back to its own counts.
    """

    amplitudes: Tensor
    positions: Tensor
    groups: Tensor
    offsets: Tensor
    truth_patches: Tensor | None = None
    scales: Tensor | None = None
    rank_groups: tuple[int, ...] | None = None
    """Groups held by each rank when every rank holds only its share of the scan (None: every rank holds
    all of it)."""

    @property
    def n_groups(self) -> int:
        return int(self.groups.shape[0])

    @property
    def global_groups(self) -> int:
        """Groups over all ranks."""
        return self.n_groups if self.rank_groups is None else sum(self.rank_groups)

    @property
    def n_channels(self) -> int:
        return int(self.groups.shape[1])

    def to(self, device: torch.device) -> GroupedScan:
        move = {name: getattr(self, name).to(device) for name in ("amplitudes", "positions", "groups", "offsets")}
        truth = None if self.truth_patches is None else self.truth_patches.to(device)
        scales = None if self.scales is None else self.scales.to(device)
        return replace(self, truth_patches=truth, scales=scales, **move)

    def batch(self, index: Tensor) -> dict[str, Tensor]:
        members = self.groups[index]
        batch = {
            "amplitudes": self.amplitudes[members],
            "offsets": self.offsets[index],
            "positions": self.positions[members],
        }
        if self.truth_patches is not None:
            batch["truth"] = self.truth_patches[members]
        if self.scales is not None:
            batch["scale"] = self.scales[index]
        return batch


def group_scan(
    scan: ScanData,
    gridsize: int,
    *,
    n_groups: int | None = None,
    seed: int = 0,
    k_neighbours: int = 7,
    with_truth: bool = False,
    reference_scale: float | None = None,
    selection: str = "random",
    distributed: DistributedContext = SINGLE_PROCESS,
) -> GroupedScan:
    """Group a scan for training or validation (see ``physics.grouping``).

    With ``reference_scale`` the scan is normalised by its own intensity scale s (see
    :class:`GroupedScan`): amplitudes x reference / s, and ``scales`` = s for every group. Under
    ``torchrun`` a scan left in its file is sharded: this rank keeps a contiguous share of the groups and
    reads only their patterns.
    """
    n_channels = gridsize**2
    if scan.n_patterns < n_channels:
        raise ConfigError(
            f"gridsize {gridsize} needs at least {n_channels} positions per group, but the scan has only "
            f"{scan.n_patterns}"
        )
    grouping = Grouping(gridsize, k_neighbours, selection, seed)  # the draw inference repeats from the model
    groups = order_by_angle(scan.positions, grouping.groups(scan.positions, n_groups))
    offsets = group_offsets(scan.positions, groups)
    positions, rank_groups = scan.positions, None
    if distributed.enabled and not scan.in_memory:
        parts = np.array_split(np.arange(len(groups)), distributed.world_size)
        rank_groups = tuple(len(part) for part in parts)
        groups, offsets = groups[parts[distributed.rank]], offsets[parts[distributed.rank]]
        members = np.unique(groups)
        groups = np.searchsorted(members, groups)
        positions = scan.positions[members]
        amplitudes = torch.from_numpy(scan.amplitudes[members])
    else:
        amplitudes = torch.from_numpy(np.ascontiguousarray(scan.amplitudes, dtype=np.float32))
    truth = None
    if with_truth:
        if scan.object_truth is None:
            raise ConfigError("this model type needs the true object ('objectGuess') in the training data")
        truth = extract_patches(torch.from_numpy(scan.object_truth), torch.from_numpy(positions),
                                scan.patch_size).to(torch.complex64)
    scales = None
    if reference_scale is not None:
        own = data_intensity_scale(scan.amplitudes, distributed)
        if own != reference_scale:
            amplitudes = amplitudes * float(reference_scale / own)
        scales = torch.full((len(groups),), own, dtype=torch.float32)
    return GroupedScan(
        amplitudes=amplitudes,
        positions=torch.from_numpy(np.asarray(positions, dtype=np.float32)),
        groups=torch.from_numpy(np.asarray(groups, dtype=np.int64)),
        offsets=torch.from_numpy(np.asarray(offsets, dtype=np.float32)),
        truth_patches=truth,
        scales=scales,
        rank_groups=rank_groups,
    )


#: Largest relative difference between two scans' probes (each scaled to unit power, global phase removed)
#: that still counts as the same probe. Simulated or re-saved copies of one probe differ by ~1e-7.
PROBE_TOLERANCE = 1e-3


def probe_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Relative L2 difference of two probes (modes, N, N) after scaling each to unit total power and
    removing their global phase difference: 0 for the same probe at another dose or phase."""
    a = np.asarray(a, dtype=np.complex128)
    b = np.asarray(b, dtype=np.complex128)
    if a.shape != b.shape:
        return float("inf")
    a = a / np.sqrt(np.sum(np.abs(a) ** 2))
    b = b / np.sqrt(np.sum(np.abs(b) ** 2))
    overlap = np.vdot(b, a)
    phase = overlap / abs(overlap) if abs(overlap) > 0 else 1.0
    return float(np.sqrt(np.sum(np.abs(a - b * phase) ** 2)))


def split_groups(n_groups: int | None, pattern_counts: Sequence[int]) -> list[int | None]:
    """Share ``n_groups`` among scans in proportion to their pattern counts (largest remainders, at least
    one each); ``None`` (one group per position) stays ``None`` for every scan."""
    if n_groups is None:
        return [None] * len(pattern_counts)
    total = sum(pattern_counts)
    exact = [n_groups * c / total for c in pattern_counts]
    shares = [int(e) for e in exact]
    for i in sorted(range(len(exact)), key=lambda i: exact[i] - shares[i], reverse=True)[: n_groups - sum(shares)]:
        shares[i] += 1
    return [max(1, s) for s in shares]


def group_scans(
    scans: Sequence[ScanData],
    gridsize: int,
    *,
    n_groups: int | None = None,
    seed: int = 0,
    k_neighbours: int = 7,
    with_truth: bool = False,
    reference_scale: float | None = None,
    selection: str = "random",
    distributed: DistributedContext = SINGLE_PROCESS,
) -> GroupedScan:
    """Group several scans of one instrument into one training set: groups are formed within each scan
    (never across scans: their positions live in different objects), each scan is normalised by its own
    intensity scale relative to ``reference_scale`` (default: the first scan's), and the results are
    concatenated. One scan gives exactly :func:`group_scan` of it with that reference."""
    if not scans:
        raise ConfigError("no training scan given")
    if reference_scale is None:
        reference_scale = data_intensity_scale(scans[0].amplitudes, distributed)
    shares = split_groups(n_groups, [scan.n_patterns for scan in scans])
    parts = [group_scan(scan, gridsize, n_groups=share, seed=seed + 7919 * i, k_neighbours=k_neighbours,
                        with_truth=with_truth, reference_scale=reference_scale, selection=selection,
                        distributed=distributed)
             for i, (scan, share) in enumerate(zip(scans, shares))]
    if len(parts) == 1:
        return parts[0]
    starts = np.cumsum([0] + [int(p.amplitudes.shape[0]) for p in parts[:-1]])
    truths = [p.truth_patches for p in parts]
    sharded = [p.rank_groups or (p.n_groups,) * distributed.world_size for p in parts]
    return GroupedScan(
        amplitudes=torch.cat([p.amplitudes for p in parts]),
        positions=torch.cat([p.positions for p in parts]),
        groups=torch.cat([p.groups + int(start) for p, start in zip(parts, starts)]),
        offsets=torch.cat([p.offsets for p in parts]),
        truth_patches=None if any(t is None for t in truths) else torch.cat(truths),  # type: ignore[arg-type]
        scales=torch.cat([p.scales for p in parts]),  # type: ignore[misc]
        rank_groups=tuple(int(sum(c)) for c in zip(*sharded)) if any(p.rank_groups for p in parts) else None,
    )


class _IndexBatches(Dataset[dict[str, Tensor]]):
    """Each item is a whole batch, gathered by tensor indexing."""

    def __init__(self, data: GroupedScan, batches: list[Tensor]) -> None:
        self.data = data
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return self.data.batch(self.batches[i])


def epoch_batches(data: GroupedScan, batch_size: int, *, shuffle: bool, seed: int, epoch: int) -> list[Tensor]:
    """Index batches for one epoch. The order depends only on (seed, epoch), so a resumed run sees
    exactly the batches an uninterrupted run would have seen."""
    if shuffle:
        generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        order = torch.randperm(data.n_groups, generator=generator)
    else:
        order = torch.arange(data.n_groups)
    return list(order.split(batch_size))


class Share(NamedTuple):
    indices: Tensor
    """This rank's group indices."""
    weight: float
    """Loss weight n_rank * world_size / n_global (1.0 in a single process)."""
    global_size: int
    """Groups in the whole (all-rank) batch."""


def shard_batches(batches: list[Tensor], rank: int, world_size: int) -> list[Share]:
    """This rank's share of each global batch, with the loss weight that makes DDP's gradient average equal
    the gradient of the global batch's mean loss (see :class:`.step.TrainStep`).

    Every global batch is split into ``world_size`` near-equal contiguous parts. A last batch smaller than
    ``world_size`` is merged into the one before, so no rank ever gets an empty part.
    """
    if world_size == 1:
        return [Share(b, 1.0, len(b)) for b in batches]
    batches = list(batches)
    if len(batches) > 1 and len(batches[-1]) < world_size:
        batches[-2:] = [torch.cat(batches[-2:])]
    if batches and len(batches[0]) < world_size:
        raise ConfigError(f"{len(batches[0])} groups cannot be shared by {world_size} processes; use fewer "
                          "processes or more data")
    shares = []
    for b in batches:
        part = b.tensor_split(world_size)[rank]
        shares.append(Share(part, len(part) * world_size / len(b), len(b)))
    return shares


def local_shard_batches(rank_groups: Sequence[int], batch_size: int, *, seed: int, epoch: int,
                        rank: int) -> list[Share]:
    """This rank's batches when each rank holds only its share of the groups: ceil(total / batch_size)
    steps, the same on every rank; at each step every rank takes its next part of its own shuffled share,
    weighted so that DDP's average is the step's global mean loss (see :func:`shard_batches`)."""
    world, total = len(rank_groups), sum(rank_groups)
    steps = -(-total // batch_size)
    if min(rank_groups) < steps:
        raise ConfigError(f"each of the {world} processes holds at least {min(rank_groups)} groups but an epoch has "
                          f"{steps} steps of --batch_size {batch_size}; raise --batch_size to at least "
                          f"{-(-total // max(min(rank_groups), 1))} or use fewer processes")
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch * 7919 + rank)
    parts = torch.randperm(rank_groups[rank], generator=generator).tensor_split(steps)
    sizes = [[len(part) for part in torch.arange(count).tensor_split(steps)] for count in rank_groups]
    step_totals = [sum(column) for column in zip(*sizes)]
    return [Share(part, len(part) * world / size, size) for part, size in zip(parts, step_totals)]


def data_intensity_scale(amplitudes: np.ndarray | PatternStack, distributed: DistributedContext = SINGLE_PROCESS) -> float:
    """The intensity scale of a scan's amplitudes: of an array, or of a file read block by block (under
    torchrun each rank reads one part and the sums are added over ranks)."""
    if isinstance(amplitudes, PatternStack):
        from ..inference import streamed_intensity_scale

        return streamed_intensity_scale(amplitudes, distributed)
    return intensity_scale(amplitudes)


def load_batches(data: GroupedScan, index_batches: list[Tensor], num_workers: int = 0) -> Iterator[dict[str, Tensor]]:
    """Gather each index batch from ``data``. In-process, the indices are moved to the data's device in one
    copy per epoch (a copy per batch from pageable memory would make every step wait for the GPU)."""
    if num_workers == 0:
        if not index_batches:
            return iter(())
        sizes = [len(b) for b in index_batches]
        order = torch.cat(index_batches).to(data.groups.device)
        return (data.batch(b) for b in order.split(sizes))
    loader = DataLoader(_IndexBatches(data, index_batches), batch_size=None, shuffle=False,
                        num_workers=num_workers, persistent_workers=False)
    return iter(loader)


def batch_loader(
    data: GroupedScan,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int,
    epoch: int,
    num_workers: int = 0,
) -> Iterator[dict[str, Tensor]]:
    return load_batches(data, epoch_batches(data, batch_size, shuffle=shuffle, seed=seed, epoch=epoch), num_workers)
