"""One optimiser step, shared by the trainer and the benchmarks so that what is measured is what runs.

network pass (bf16 autocast / channels_last / compiled / DDP-wrapped, as configured) -> the model's
physics loss in float32 -> backward -> optimiser step. Nothing in here reads a value back to the host:
the loss is returned as a detached device tensor, and callers sum it on the device.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import cast

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from ..distributed import SINGLE_PROCESS, DistributedContext
from ..models.base import TrainableModel
from ..performance import ResolvedPerformance, apply_memory_format, as_input, autocast, compile_or_eager

Batch = Mapping[str, Tensor]


def loss_from_patches(model: nn.Module, patches: Tensor, batch: Batch) -> Tensor:
    """The model's loss for network output ``patches``. Model types split the step in two (``forward``, then
    ``loss_from_patches``) because DDP must wrap the network pass alone: the loss also uses the probe and
    scale, and gradient synchronisation is triggered by the wrapped forward."""
    return cast(TrainableModel, model).loss_from_patches(patches, batch)


def _no_buffer_sync() -> dict[str, bool]:
    """Buffers (probe, scale, canvas size) are identical on every rank by construction, so DDP need not
    send them before every forward. Newer torch spells this ``forward_sync_buffers``."""
    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters:
        return {"forward_sync_buffers": False}
    return {"broadcast_buffers": False}


class TrainStep:
    """Callable ``step(batch, weight=1.0) -> loss`` for ``model`` and ``optimizer`` on ``device``.

    ``weight`` multiplies the loss before backward. Under DDP, whose all-reduce *averages* gradients over
    ranks, a rank holding n_r of a global batch of n groups passes ``weight = n_r * world_size / n``, so the
    averaged gradient is exactly that of the global batch's mean loss, even when the batch does not split
    evenly.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, device: torch.device,
                 options: ResolvedPerformance, distributed: DistributedContext = SINGLE_PROCESS,
                 example: Batch | None = None) -> None:
        self.model = model
        self.optimizer = optimizer
        self.device = device
        self.options = options
        apply_memory_format(model, options)
        network: nn.Module = model
        if distributed.enabled:
            network = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                              **_no_buffer_sync())
        self.forward = network
        if options.compile and example is not None:
            self.forward = compile_or_eager(network, self._trial(example), what="network (training)")

    def _trial(self, example: Batch):  # type: ignore[no-untyped-def]
        def run(forward) -> None:  # type: ignore[no-untyped-def]
            with autocast(self.device, self.options):
                patches = forward(as_input(example["amplitudes"], self.options))
            loss_from_patches(self.model, patches, example).backward()
            self.optimizer.zero_grad(set_to_none=True)
        return run

    def __call__(self, batch: Batch, weight: float | Tensor = 1.0) -> Tensor:
        with autocast(self.device, self.options):
            patches = self.forward(as_input(batch["amplitudes"], self.options))
        loss = loss_from_patches(self.model, patches, batch)
        self.optimizer.zero_grad(set_to_none=True)
        (loss * weight).backward()  # x 1.0 is exact: a single process is unchanged
        self.optimizer.step()
        return loss.detach()
