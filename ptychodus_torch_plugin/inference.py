"""Reconstruct a whole scan with a trained model: one network pass per group, stitched in chunks.

Every position of the scan contributes (gridsize 1: one group per position; gridsize g: one group per
position, made of it and g²-1 neighbours), so no pattern is dropped and no position is zeroed. Patches
are stitched on the model's device with probe-intensity weights, chunk by chunk, so memory is bounded
by ``batch_size`` however long the scan.

A scan left in its HDF5 file (a :class:`~.data.patterns.PatternStack`) is read chunk by chunk, each
chunk's patterns read by a background thread while the network works on the chunk before; under
``torchrun`` each rank reads only its own share of the file.

On a GPU the scan's amplitudes are copied to the device once when they fit (``resident``), chunks are
gathered there, positions are validated once for the whole scan, and the loop never waits for the host:
network pass (see :mod:`.performance` for bf16, channels_last, compile and CUDA graphs) then ``index_add_``
into the object. Under ``torchrun`` each rank reconstructs a contiguous share of the groups and the
partial sums are added over ranks (:meth:`ObjectAccumulator.reduce`): the same object as one process,
up to float32 summation order.

The scan's amplitudes are normalised by the scan's own intensity scale (not the training scan's), so a
model trained at one dose reconstructs a scan measured at another: the network always sees inputs of the
mean total intensity it was trained on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import cast

import numpy as np
import torch
from torch import nn

from .config import Grouping
from .data.patterns import PatternStack
from .data.prefetch import Prefetcher
from .data.scan import ScanData
from .distributed import SINGLE_PROCESS, DistributedContext
from .errors import ConfigError
from .memory import available_memory, check_memory, keep_resident, memory_estimate  # noqa: F401 (re-exported)
from .models.base import TrainableModel
from .performance import PerformanceConfig, inference_forward, resolve
from .physics import ObjectAccumulator
from .physics.grouping import order_by_angle
from .physics.scale import intensity_scale, scale_from_mean_total
from .plugin_types import Reconstruction

__all__ = ["Reconstruction", "reconstruct_scan"]


def check_compatible(model: TrainableModel, scan: ScanData) -> None:
    size = model.config.patch_size
    if scan.patch_size != size:
        raise ConfigError(
            f"the model was trained on {size}x{size} patterns but this scan has "
            f"{scan.patch_size}x{scan.patch_size}; train a model for this pattern size"
        )
    needed = model.config.n_channels
    if scan.n_patterns < needed:
        raise ConfigError(f"the model needs groups of {needed} positions but the scan has {scan.n_patterns}")


def patterns_are_independent(model: TrainableModel) -> bool:
    """True when the network maps each pattern to its patch on its own (``group_encoder`` shared, or
    gridsize 1). Inference then passes every pattern through it once instead of once per group it belongs
    to (about gridsize² times): a quarter of the work at gridsize 2, and each position weighted once in the
    stitch rather than by how many groups picked it (INFER-001). The group only matters in training,
    through the overlap constraint."""
    return model.config.gridsize == 1 or model.config.group_encoder == "shared"


def model_grouping(model: TrainableModel) -> Grouping:
    """The grouping a model was trained with (a model type without a :class:`ModelConfig`: its gridsize,
    drawn as by default)."""
    config = getattr(model, "config", None)
    grouping = getattr(config, "grouping", None)
    return grouping if isinstance(grouping, Grouping) else Grouping(int(getattr(config, "gridsize", 1)))


@torch.no_grad()
def reconstruct_scan(
    model: TrainableModel,
    scan: ScanData,
    *,
    batch_size: int = 256,
    device: torch.device | None = None,
    performance: PerformanceConfig | None = None,
    distributed: DistributedContext = SINGLE_PROCESS,
    progress: Callable[[int, int], None] | None = None,
) -> Reconstruction:
    """Stitched complex object over every position of ``scan``.

    ``progress(done, total)`` is called after each chunk with the patterns (groups x gridsize², or one per
    position when :func:`patterns_are_independent`) passed through the network so far (this rank's share
    under torchrun). With ``distributed`` enabled every rank must call this with the same scan and model;
    each stitches its share and every rank returns the whole object. The positions are grouped as the
    model was trained (its stored :attr:`~.config.ModelConfig.grouping`).
    """
    if batch_size < 1:
        raise ConfigError(f"--inference_batch_size must be at least 1, got {batch_size}")
    check_compatible(model, scan)
    device = device or next(model.parameters()).device
    options = resolve(performance, device, "inference")
    gridsize = 1 if patterns_are_independent(model) else model.config.gridsize
    size = scan.patch_size
    check_memory(tuple(scan.object_shape), size, gridsize, min(batch_size, scan.n_patterns), device)
    model = model.to(device).eval()
    grouping = replace(model_grouping(model), gridsize=gridsize)
    groups = torch.from_numpy(order_by_angle(scan.positions, grouping.groups(scan.positions)))
    if distributed.enabled:  # a contiguous share keeps each rank's patches local on the object
        groups = groups.tensor_split(distributed.world_size)[distributed.rank]
    # The scan is never rescaled on the host: each chunk is scaled on the device, and the scan's intensity
    # scale is measured where the data lives (on the GPU when the scan is resident there).
    amplitudes: torch.Tensor | PatternStack
    if isinstance(scan.amplitudes, PatternStack):
        amplitudes = scan.amplitudes
        scale = streamed_intensity_scale(amplitudes, distributed)
    else:
        amplitudes = torch.from_numpy(np.ascontiguousarray(scan.amplitudes, dtype=np.float32))
        if keep_resident(amplitudes.numel() * 4, device):
            amplitudes = amplitudes.to(device)
            groups = groups.to(device)
        elif device.type == "cuda":
            amplitudes = amplitudes.pin_memory()
        scale = intensity_scale(amplitudes)
    gain = float(model.scale.detach()) / scale
    weights = model.illumination().to(device)
    # Bilinear placement: a decoded patch ends at its support's edge, and a Fourier shift of it would ring.
    accumulator = ObjectAccumulator(tuple(scan.object_shape), device=device, dtype=torch.complex64,
                                    resampling="bilinear")
    placement = accumulator.place(np.asarray(scan.positions, dtype=np.float64), size)
    chunk_groups = min(batch_size, max(int(groups.shape[0]), 1))
    example = torch.zeros(chunk_groups, gridsize**2, size, size, device=device)
    total, done = int(groups.numel()), 0
    with inference_forward(cast(nn.Module, model), device, options, example) as forward:
        for chunk, patterns in _chunks(amplitudes, groups.split(batch_size), device):
            members = chunk.reshape(-1)
            inputs = patterns.view(chunk.shape[0], chunk.shape[1], size, size) * gain
            patches = forward(inputs)
            accumulator.add_placed(patches.reshape(-1, size, size), placement, members.to(device), weights)
            done += int(members.numel())
            if progress is not None:
                progress(done, total)
    if distributed.enabled:
        accumulator.reduce()
    obj, weight_map = accumulator.result()
    return Reconstruction(obj.cpu().numpy(), weight_map.cpu().numpy(), scan.n_patterns)


def _chunks(amplitudes: torch.Tensor | PatternStack, chunks: tuple[torch.Tensor, ...],
            device: torch.device) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(group chunk, its members' amplitudes on ``device``) for each chunk: gathered from a tensor, or read
    from the file by a background thread one chunk ahead."""
    if isinstance(amplitudes, torch.Tensor):
        for chunk in chunks:
            yield chunk, amplitudes[chunk.reshape(-1)].to(device, non_blocking=True)
        return

    def read(chunk: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        values = torch.from_numpy(amplitudes.read(chunk.reshape(-1).cpu().numpy()))
        if device.type == "cuda":
            values = values.pin_memory()
        return chunk, values.to(device, non_blocking=True)

    reader = Prefetcher((lambda chunk=chunk: read(chunk)) for chunk in chunks)
    try:
        yield from reader
    finally:
        reader.close()


def streamed_intensity_scale(stack: PatternStack, distributed: DistributedContext = SINGLE_PROCESS) -> float:
    """:func:`intensity_scale` of a scan in its file: each rank sums the squares of a contiguous part of the
    patterns (reading only that part) and the sums are added over ranks (on the gloo control group)."""
    part = np.array_split(np.arange(len(stack)), distributed.world_size)[distributed.rank]
    total = torch.zeros(1, dtype=torch.float64)
    for _, block in stack.blocks(max(1, (64 * 1024**2) // stack.pattern_bytes), part):
        total += float(np.square(block, dtype=np.float64).sum())
    if distributed.enabled:
        import torch.distributed as dist

        dist.all_reduce(total, group=distributed.control_group)
    return scale_from_mean_total(float(total) / len(stack), *stack.shape[-2:])
