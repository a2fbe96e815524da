"""Running under ``torchrun``: one process per device, joined by ``torch.distributed``.

``torchrun`` sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``; :func:`distributed_session` reads them, joins
the process group (NCCL between CUDA devices, gloo on the CPU) and leaves it at the end. Without those
variables everything here is a no-op and a run is an ordinary single process.

Besides the training backend, every job gets a small *gloo* group for control messages (the run folder
chosen by rank 0, the stop flag): those are CPU tensors and Python objects, so exchanging them never waits
for the GPU.
"""

from __future__ import annotations

import contextlib
import datetime
import gc
import os
import signal
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist

from .errors import ConfigError, PtychodusTorchError

#: Collectives that wait longer than this raise instead of hanging (a crashed peer is then visible).
DEFAULT_TIMEOUT = datetime.timedelta(minutes=30)


class _Groups:
    """The session's process-group handle, dropped when the session ends.

    A context object may outlive its session (a caller keeps it); if it still referenced the process group,
    that group would be destroyed only during interpreter shutdown, when gloo's worker threads can no longer
    be joined cleanly and the process aborts ("terminate called without an active exception").
    """

    def __init__(self, control: Any = None) -> None:
        self.control = control


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands in a job; ``world_size == 1`` is a plain single-process run."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    backend: str | None = None
    _groups: _Groups = field(default_factory=_Groups, compare=False, repr=False)

    @property
    def control_group(self) -> Any:
        """The gloo group for control messages (None outside a session)."""
        return self._groups.control

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 alone logs, checkpoints and writes results."""
        return self.rank == 0

    def device_for(self, device: torch.device) -> torch.device:
        """Each rank drives its own GPU: ``cuda`` becomes ``cuda:LOCAL_RANK`` (CPU stays CPU)."""
        if self.enabled and device.type == "cuda":
            return torch.device("cuda", self.local_rank)
        return device

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank (a picklable object, sent over the gloo control group)."""
        if not self.enabled:
            return value
        box = [value if self.is_main else None]
        dist.broadcast_object_list(box, src=0, group=self.control_group)
        return box[0]

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """Element-wise sum over ranks of a tensor on this rank's training device (in place, returned)."""
        if self.enabled:
            dist.all_reduce(values)
        return values


SINGLE_PROCESS = DistributedContext()


def launched_by_torchrun(environ: Mapping[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return int(env.get("WORLD_SIZE", "1") or 1) > 1


def _read_rank(env: Mapping[str, str], name: str) -> int:
    try:
        return int(env[name])
    except (KeyError, ValueError):
        raise ConfigError(f"WORLD_SIZE is set but {name} is missing or not an integer; start distributed jobs "
                          "with torchrun, which sets RANK, LOCAL_RANK and WORLD_SIZE") from None


class PeerLostError(PtychodusTorchError):
    """Another rank of the job died or stopped answering within the collective timeout."""


#: Words of the errors gloo and NCCL raise when a peer is gone or a collective timed out.
_PEER_FAILURE_MARKERS = ("connection reset", "connection closed", "timed out", "timeout", "broken pipe",
                         "nccl", "gloo", "peer", "socket")


def is_peer_failure(error: BaseException) -> bool:
    """True for the errors a collective raises when another rank is gone (not for bugs in this rank)."""
    dist_error = getattr(dist, "DistError", None)
    if dist_error is not None and isinstance(error, dist_error):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and any(marker in text for marker in _PEER_FAILURE_MARKERS)


def peer_lost(error: BaseException, context: DistributedContext) -> PeerLostError:
    """The one-line error for a collective that failed because another rank is gone."""
    detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    detail = detail.split("] ", 1)[-1][:160]  # drop gloo's source-file prefix
    return PeerLostError(f"rank {context.rank} of {context.world_size} lost the other ranks ({detail}): a rank died "
                         "or stopped answering within --collective_timeout; the job is stopped and nothing was "
                         "written")


class JobStoppedError(PtychodusTorchError):
    """torchrun ended this rank (SIGTERM): another rank failed, or the job was cancelled."""


@contextlib.contextmanager
def stop_on_sigterm(environ: Mapping[str, str] | None = None) -> Iterator[None]:
    """Under torchrun, turn the SIGTERM that torchrun sends to the surviving ranks when one fails (or when the
    job is cancelled) into one error line instead of a silent death; a single process keeps the default.

    Once the block has failed, SIGTERM is ignored for the rest of the process: the error line (a lost peer,
    say) is being printed, and torchrun's SIGTERM, which follows a peer's death within milliseconds, must not
    kill the process before it is."""
    env = os.environ if environ is None else environ
    if not launched_by_torchrun(env):
        yield
        return
    rank, world_size = env.get("RANK", "?"), env.get("WORLD_SIZE", "?")

    def stopped(signum: int, frame: Any) -> None:
        raise JobStoppedError(f"rank {rank} of {world_size} was stopped by torchrun (SIGTERM): another rank "
                              "failed or the job was cancelled; nothing was written")

    previous = signal.signal(signal.SIGTERM, stopped)
    try:
        yield
    except BaseException:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise
    signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def distributed_session(device: torch.device, environ: Mapping[str, str] | None = None,
                        timeout: datetime.timedelta = DEFAULT_TIMEOUT) -> Iterator[DistributedContext]:
    """Join the ``torchrun`` job this process belongs to, if any, for the duration of the block.

    A process group that the caller already initialised is used as it is and left open. A collective that
    waits longer than ``timeout`` for another rank raises instead of hanging.
    """
    env = os.environ if environ is None else environ
    if not launched_by_torchrun(env):
        yield SINGLE_PROCESS
        return
    rank, local_rank, world_size = _read_rank(env, "RANK"), _read_rank(env, "LOCAL_RANK"), int(env["WORLD_SIZE"])
    backend = "nccl" if device.type == "cuda" else "gloo"
    owned = not dist.is_initialized()
    if owned:
        if device.type == "cuda":
            if local_rank >= torch.cuda.device_count():
                raise ConfigError(f"LOCAL_RANK {local_rank} has no GPU: this node has {torch.cuda.device_count()}; "
                                  "use --nproc-per-node at most the number of GPUs")
            torch.cuda.set_device(local_rank)
        try:
            dist.init_process_group(backend=backend, timeout=timeout)
        except (RuntimeError, ValueError) as exc:
            raise ConfigError(f"could not join the distributed job ({backend}, rank {rank} of {world_size}): "
                              f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    else:
        backend = dist.get_backend()
    groups = _Groups(dist.new_group(backend="gloo", timeout=timeout) if backend != "gloo" else dist.group.WORLD)
    try:
        yield DistributedContext(rank=rank, local_rank=local_rank, world_size=world_size, backend=backend,
                                 _groups=groups)
    finally:
        control, groups.control = groups.control, None
        if owned and dist.is_initialized():
            if sys.exc_info()[0] is None:  # leave together, so no rank tears gloo down under a peer
                dist.barrier(group=control)
            del control
            gc.collect()  # DDP reducers and other holders of the group go before it is destroyed
            dist.destroy_process_group()
            gc.collect()


class StopConsensus:
    """Agree across ranks, without stalling the GPU, on when to stop after a Ctrl-C/SIGTERM.

    Each rank may see the signal at a different batch; if one rank left the epoch while the others waited
    for it in the gradient all-reduce, the job would hang. So every step posts this rank's flag in an
    asynchronous MAX all-reduce over the gloo control group and reads the result posted one step earlier:
    every rank reads the same value at the same step and they all stop together, one step after the first
    of them saw the signal.
    """

    def __init__(self, context: DistributedContext) -> None:
        self.context = context
        self._pending: Any = None
        self._flag = torch.zeros(1, dtype=torch.int32)

    def _post(self, requested: bool) -> None:
        self._flag = torch.tensor([1 if requested else 0], dtype=torch.int32)
        self._pending = dist.all_reduce(self._flag, op=dist.ReduceOp.MAX, group=self.context.control_group,
                                        async_op=True)

    def _collect(self) -> bool:
        if self._pending is None:
            return False
        self._pending.wait()
        self._pending = None
        return bool(self._flag.item())

    def step(self, requested: bool) -> bool:
        """Called once per training step on every rank; True when all ranks must stop now."""
        if not self.context.enabled:
            return requested
        agreed = self._collect()
        self._post(requested)
        return agreed

    def settle(self, requested: bool) -> bool:
        """Called at the end of an epoch on every rank: the final, synchronous agreement."""
        if not self.context.enabled:
            return requested
        earlier = self._collect()
        self._post(requested)
        return self._collect() or earlier
