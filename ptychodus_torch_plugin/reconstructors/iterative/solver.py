"""Minibatched LSQ-ML-style reconstruction of the object (and optionally probe and positions) from the
measured amplitudes, on the scan forward model of :mod:`~ptychodus_torch_plugin.physics.scan_model`.

Per batch of patterns: exit waves from the current object and the (sub-pixel shifted) probe, a target in
the far field from the noise model, the exit-wave change back in real space, then

- object: the change is back-projected through the probe, normalised by the batch's illumination
  (damped, as rPIE does) and applied with the least-squares step length along that direction;
- probe (optional): the change that the object step left unexplained, back-projected through the object;
- positions (optional): the per-pattern shift that best explains what is left.

After each epoch a heavy-ball momentum step carries the object along the previous epoch's change, which
is what makes the slowly converging low spatial frequencies of the phase arrive in tens of epochs
(docs/findings.md, ITER-002). Everything runs on the scan's device; nothing reads a value back to the
host inside an epoch (the loss is summed on the device and read once per epoch).

Memory does not grow with the number of patterns beyond a few bytes each (positions, window origins): the
object's state, one batch's arrays, and the patterns as :mod:`.memory_plan` decides from the budget,
resident or streamed in blocks (:mod:`.feed`). Window indices are made per batch from each window's
origin, never stored per pixel. Under ``torchrun`` each rank reconstructs a spatial share of the scan
and the ranks combine the rows their shares overlap after every epoch (:mod:`.sharing`).
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import Tensor

from ...data.patterns import PatternStack
from ...data.scan import ScanData
from ...distributed import SINGLE_PROCESS, DistributedContext
from ...errors import ConfigError
from ...memory import MemoryBudget, peak_rss_bytes, resolve_budget
from ...physics.patches import check_windows_inside
from ...physics.probe import as_probe_modes
from ...physics.scan_model import object_windows, shifted_probes
from ...physics.windows import shift_windows, split_positions
from ..base import ProgressEvent, Reconstruction, ReconstructRequest
from . import sharing, updates
from .config import IterativeConfig
from .feed import ResidentFeed, StreamedFeed, take_rows
from .memory_plan import MemoryPlan, plan_memory

_DIMS = (-2, -1)
#: Patterns per step when the patterns are copied to a GPU.
_CHUNK = 1024
#: Consecutive patterns read together by a streamed feed (at least one HDF5 chunk of the file), fewer when
#: a block would otherwise hold fewer than RUNS_PER_BLOCK runs: the more places a block draws from, the
#: nearer its batches come to the resident feed's (docs/findings.md SCALE-001: 8 runs per block lost 0.026
#: phase SSIM at 60 epochs, 31 runs 0.009).
RUN_LENGTH = 32
RUNS_PER_BLOCK = 32
#: Times per epoch the ranks combine the rows their shares share (the last at the epoch's end); more often
#: carries each band's changes across the boundary sooner, at two small collectives a time (SCALE-002).
HALO_SYNCS_PER_EPOCH = 1


class IterativeSolver:
    """State of one reconstruction: object, probe, positions and the per-scan constants.

    ``budget`` bounds what the solver holds (default: :func:`~...memory.resolve_budget`'s automatic one);
    ``distributed`` makes this solver one rank of a ``torchrun`` job, working on its spatial share.
    ``plan`` imposes a memory plan instead of deriving it from the budget (benchmarks, tests).
    """

    def __init__(self, scan: ScanData, config: IterativeConfig, device: torch.device,
                 initial_object: np.ndarray | None = None, *, budget: MemoryBudget | None = None,
                 distributed: DistributedContext = SINGLE_PROCESS, plan: MemoryPlan | None = None) -> None:
        config.validate()
        self.config = config
        self.device = device
        self.scan = scan
        self.distributed = distributed
        self.size = scan.patch_size
        self.shape = (int(scan.object_shape[0]), int(scan.object_shape[1]))
        if initial_object is not None:
            if tuple(initial_object.shape) != self.shape:
                raise ConfigError(f"the starting object is {initial_object.shape[0]} x {initial_object.shape[1]} "
                                  f"pixels but this scan's object is {self.shape[0]} x {self.shape[1]}")
            if not np.all(np.isfinite(initial_object)):
                raise ConfigError("the starting object contains NaN or infinite values")
        if distributed.enabled:
            if scan.n_patterns < distributed.world_size:
                raise ConfigError(f"{scan.n_patterns} patterns cannot be shared by {distributed.world_size} processes; "
                                  "use fewer processes")
            self.shares: list[np.ndarray] | None = sharing.spatial_shares(scan.positions, distributed.world_size)
            self.share = self.shares[distributed.rank]
        else:
            self.shares, self.share = None, np.arange(scan.n_patterns)
        self.count = int(self.share.size)
        # The batch size is the job's: each rank updates with its part, so a batch covers the sample as densely
        # as one process's batch does (SCALE-002: 50 patterns on each of 2 ranks lost 0.02 phase SSIM).
        self.batch_size = max(1, config.batch_size // distributed.world_size)
        pixels = self.shape[0] * self.shape[1]
        if initial_object is None:  # made in place: a host array of ones first would double the object at start
            self.object = torch.ones(pixels, dtype=torch.complex64, device=device)
        else:
            self.object = torch.as_tensor(np.asarray(initial_object, np.complex64), device=device).reshape(-1).clone()
        self.probe = as_probe_modes(torch.from_numpy(scan.probe)).to(device, torch.complex64)
        self.positions = torch.as_tensor(scan.positions[self.share], dtype=torch.float64, device=device).clone()
        self.origins, self.frac = split_positions(self.positions, self.size)
        check_windows_inside(self.origins, self.size, self.shape)
        span = torch.arange(self.size, device=device)
        self._window = (span[:, None] * self.shape[1] + span[None, :]).reshape(-1)
        self.integer_scan = not bool((self.frac != 0).any())
        self.valid = None
        self._saturated = torch.zeros((), dtype=torch.int64, device=device)  # pixels left out this epoch
        self.background = None  # counts on top of the diffracted light, fft2 layout
        if scan.background is not None:
            self.background = torch.fft.ifftshift(torch.from_numpy(scan.background), dim=_DIMS).to(device)
        if scan.bad_pixels is not None:
            good = torch.from_numpy(~scan.bad_pixels).to(torch.float32)
            self.valid = torch.fft.ifftshift(good, dim=_DIMS).to(device)
        shifts = 0 if self.integer_scan else int(torch.unique(self.frac, dim=0).shape[0])
        self.plan = plan or self._plan(budget or resolve_budget(None), shifts)
        self.feed = self._feed(self.plan)
        self._gradient = torch.zeros(pixels, 2, dtype=torch.float32, device=device)
        self._illumination = torch.zeros(pixels, dtype=torch.float32, device=device)
        self._share_weight: Tensor | None = None  # this rank's illumination (torchrun only)
        self._cached_probes: Tensor | None = None  # shifted probe of each distinct remainder (U, K, N, N)
        self._cached_lit: Tensor | None = None  # sum_k |P_k|^2 of each cached probe (U, N, N)
        self._slot: Tensor | None = None  # each pattern's row in the cache
        self.total_measured: float | None = None
        self.generator = torch.Generator().manual_seed(config.seed + 7919 * distributed.rank)

    # -- memory and patterns ------------------------------------------------------------------------

    def _plan(self, budget: MemoryBudget, shifts: int) -> MemoryPlan:
        scan, cuda = self.scan, self.device.type == "cuda"
        held = self.count * self.size * self.size * 4 if scan.in_memory else 0
        free = int(torch.cuda.mem_get_info(self.device)[0]) if cuda else None
        return plan_memory(pixels=self.shape[0] * self.shape[1], n_patterns=self.count, patch_size=self.size,
                           modes=int(self.probe.shape[0]), batch_size=self.batch_size,
                           momentum=self.config.momentum > 0, shared=self.distributed.enabled,
                           distinct_shifts=shifts, held_bytes=held,
                           stream_possible=cuda or not scan.in_memory, budget=budget, device_free=free)

    def _feed(self, plan: MemoryPlan) -> ResidentFeed | StreamedFeed:
        amplitudes = self.scan.amplitudes
        if not plan.resident:
            def read(local: np.ndarray) -> np.ndarray:
                """Patterns of the share, in fft2 layout: shifted while the file's values are converted."""
                if isinstance(amplitudes, PatternStack):
                    return amplitudes.read(self.share[local], fft_layout=True)
                return np.fft.ifftshift(amplitudes[self.share[local]], axes=_DIMS)

            run = max(getattr(amplitudes, "chunk_rows", 1), min(RUN_LENGTH, plan.block_size // RUNS_PER_BLOCK))
            return StreamedFeed(read, self.count, plan.block_size, self.batch_size, self.device, run)
        if self.device.type == "cpu":
            return ResidentFeed(torch.from_numpy(np.asarray(take_rows(amplitudes, self.share))),
                                self.batch_size)
        held = torch.empty((self.count, self.size, self.size), dtype=torch.float32, device=self.device)
        for start in range(0, self.count, _CHUNK):
            rows = take_rows(amplitudes, self.share[start:start + _CHUNK])
            held[start:start + len(rows)] = torch.from_numpy(np.asarray(rows, dtype=np.float32)).to(self.device)
        return ResidentFeed(held, self.batch_size)

    # -- per-batch pieces ----------------------------------------------------------------------------

    def _flat(self, index: Tensor) -> Tensor:
        """Flat object indices (B, N*N) of the windows of patterns ``index``."""
        corner = self.origins.index_select(0, index)
        return (corner[:, 0] * self.shape[1] + corner[:, 1]).unsqueeze(1) + self._window

    def _probes(self, index: Tensor, frac: Tensor) -> Tensor:
        if self._cached_probes is not None:
            return self._cached_probes.index_select(0, self._slot.index_select(0, index))  # type: ignore[union-attr]
        if self.integer_scan:
            return self.probe.unsqueeze(0).expand(len(index), *self.probe.shape)
        return shifted_probes(self.probe, frac)

    def _lit(self, index: Tensor, probes: Tensor) -> Tensor:
        if self._cached_lit is not None:
            return self._cached_lit.index_select(0, self._slot.index_select(0, index))  # type: ignore[union-attr]
        return updates.intensity(probes).squeeze(1)

    def _cache_probes(self, wanted: bool) -> None:
        """Keep the shifted probe of every distinct sub-pixel remainder while neither probe nor positions
        change, when the memory plan has room for it."""
        if not wanted or self.integer_scan or not self.plan.cache_probes:
            self._cached_probes = self._cached_lit = self._slot = None
            return
        if self._cached_probes is None:
            remainders, self._slot = torch.unique(self.frac, dim=0, return_inverse=True)
            self._cached_probes = shifted_probes(self.probe, remainders)
            self._cached_lit = updates.intensity(self._cached_probes).squeeze(1)

    def _scatter_gather(self, flat: Tensor, gradient: Tensor, illumination: Tensor) -> tuple[Tensor, Tensor]:
        """Sum the batch's window contributions on the object grid and read them back per window, so that
        overlapping windows of one batch share one update; the buffers are cleared where touched."""
        index = flat.reshape(-1)
        self._gradient.index_add_(0, index, torch.view_as_real(gradient).reshape(-1, 2))
        self._illumination.index_add_(0, index, illumination.reshape(-1))
        shape = gradient.shape
        summed = torch.view_as_complex(self._gradient).index_select(0, index).view(shape)
        lit = self._illumination.index_select(0, index).view(shape)
        if index.numel() >= self._illumination.numel() // 4:  # clearing all is cheaper than clearing each
            self._gradient.zero_()
            self._illumination.zero_()
        else:
            self._gradient.index_fill_(0, index, 0.0)
            self._illumination.index_fill_(0, index, 0.0)
        return summed, lit

    def _detector(self, measured: Tensor) -> tuple[Tensor, Tensor | None]:
        """The batch as the fit sees it: the amplitudes of the light above the background, and the pixels it
        may use (the scan's good pixels, less those at or above the saturation level in each pattern, which
        are counted); the mask is None when every pixel counts."""
        valid = self.valid
        if self.config.saturation_counts is not None:
            unsaturated = (measured.square() < self.config.saturation_counts).unsqueeze(1)
            self._saturated += unsaturated.numel() - unsaturated.sum()
            valid = (unsaturated if valid is None else unsaturated & (valid > 0)).to(measured.dtype)
        if self.background is not None:
            measured = (measured.square() - self.background).clamp_min(0.0).sqrt()
        return measured, valid

    def _batch(self, index: Tensor, measured: Tensor, refine_probe: bool,
               refine_positions: bool, valid: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """One update from the patterns ``index`` (local to this share) with their ``measured`` amplitudes
        (fft2 layout) and the pixels to fit (``valid``; default the scan's good pixels); returns (sum of
        losses, sum of squared amplitude errors)."""
        config, size = self.config, self.size
        flat, frac = self._flat(index), self.frac.index_select(0, index)
        probes = self._probes(index, frac)
        windows = object_windows(self.object, flat, size)
        waves = probes * windows.unsqueeze(1)
        far = updates.project(waves)
        valid = self.valid if valid is None else valid
        change, loss, amplitude_error = updates.far_field_correction(far, measured, config.noise_model, valid)
        chi = updates.exit_wave_change(change)

        # object
        gradient = updates.object_gradient(chi, probes)
        summed, lit = self._scatter_gather(flat, gradient, self._lit(index, probes))
        direction = summed / (lit + config.damping * lit.amax())
        explained = probes * direction.unsqueeze(1)
        step = updates.lsq_step(explained, chi) * config.step_size
        windows = windows + step * direction
        self.object.index_put_((flat.reshape(-1),), windows.reshape(-1))
        chi = chi - step * explained

        if refine_probe:
            chi = self._update_probe(chi, windows, frac)
        if refine_positions:
            self._update_positions(index, chi, probes, windows)
        return loss.sum(), amplitude_error.sum()

    def _update_probe(self, chi: Tensor, windows: Tensor, frac: Tensor) -> Tensor:
        """Probe step from what the object step left unexplained; returns what is still unexplained.

        The update is normalised on the unshifted probe grid; the sub-pixel misregistration of that
        normalisation (< 1 px of a smooth |O|^2 map) only scales the direction, and the step length is
        solved for."""
        gradient = updates.probe_gradient(chi, windows)
        if not self.integer_scan:
            gradient = shift_windows(gradient, -frac[:, None, :].expand(-1, gradient.shape[1], 2))
        weight = windows.real.square() + windows.imag.square()
        norm = weight.sum(dim=0)
        direction = gradient.sum(dim=0) / (norm + self.config.damping * norm.amax())
        explained = direction.unsqueeze(0) * windows.unsqueeze(1)
        step = updates.lsq_step(explained, chi)
        self.probe = self.probe + step * direction
        return chi - step * explained

    def _update_positions(self, index: Tensor, chi: Tensor, probes: Tensor, windows: Tensor) -> None:
        steps = updates.position_steps(chi, probes, windows, self.config.max_position_step_px)
        low = float(self.size // 2)
        high = torch.tensor([self.shape[0] - self.size + self.size // 2, self.shape[1] - self.size + self.size // 2],
                            dtype=torch.float64, device=self.device)
        moved = torch.minimum(torch.clamp_min(self.positions[index] + steps.to(torch.float64), low), high)
        self.positions[index] = moved
        self.origins[index], self.frac[index] = split_positions(moved, self.size)
        self.integer_scan = False  # corrected positions are sub-pixel from now on

    # -- the loop ------------------------------------------------------------------------------------

    def run(self, request: ReconstructRequest | None = None) -> Reconstruction:
        config, context = self.config, self.distributed
        total_patterns = self.scan.n_patterns
        history: list[dict[str, float]] = []
        previous = self.object.clone() if config.momentum > 0 else None  # the object at the last epoch's end
        started = time.perf_counter()
        reporting = 0.0  # time spent in the progress callback, which is not the solver's
        try:
            for epoch in range(config.epochs):
                epoch_started = time.perf_counter()
                refine_probe = config.probe_refined(epoch)
                refine_positions = config.positions_refined(epoch)
                self._cache_probes(not (refine_probe or refine_positions))
                sums = torch.zeros(3, dtype=torch.float64, device=self.device)  # loss, error, measured power
                self._saturated.zero_()
                bands, marks = self._halo_plan() if context.enabled else ([], [])
                done = 0
                for index, measured in self.feed.epoch(self.generator):
                    signal, valid = self._detector(measured)
                    batch_loss, batch_error = self._batch(index, signal, refine_probe, refine_positions, valid)
                    sums[0] += batch_loss.double()
                    sums[1] += batch_error.double()
                    if self.total_measured is None:  # the power the amplitude error is a fraction of
                        sums[2] += signal.square().sum(dtype=torch.float64)
                    done += len(index)
                    while marks and done >= marks[0]:  # every rank passes the same marks, in step
                        marks.pop(0)
                        self._combine_rows(bands)
                if context.enabled:
                    self._combine_epoch(refine_probe, refine_positions, bands)
                    context.sum(sums)
                    if config.saturation_counts is not None:
                        context.sum(self._saturated)
                loss, error, power = (float(v) for v in sums.cpu())
                if self.total_measured is None:
                    self.total_measured = power
                amplitude_error = error / max(self.total_measured, 1e-30)
                if previous is not None:
                    self._momentum(previous, restart=bool(history) and amplitude_error > history[-1]["amplitude_error"])
                record = {"epoch": float(epoch + 1), "loss": loss / total_patterns,
                          "amplitude_error": amplitude_error,
                          "elapsed_s": time.perf_counter() - started - reporting,
                          "patterns_per_s": total_patterns / max(time.perf_counter() - epoch_started, 1e-9),
                          **self._memory_record()}
                if config.saturation_counts is not None:
                    record["saturated_pixels"] = float(self._saturated)
                history.append(record)
                if request is not None:
                    reported = time.perf_counter()
                    request.report(ProgressEvent(epoch + 1, config.epochs, "epoch", record,
                                                 self.object.view(self.shape)))
                    reporting += time.perf_counter() - reported
                if self._converged(history):
                    break
        finally:
            self.feed.close()
        del previous
        if context.enabled:
            self._combine_rows([(0, self.shape[0])])  # the whole object: every rank ends with the same one
        return self.result(history)

    def _momentum(self, previous: Tensor, restart: bool) -> None:
        """Heavy-ball step on the object, holding one extra object (``previous``, the object at the end of
        the last epoch before its momentum step) instead of a velocity and a copy: with v the velocity,
        ``previous`` = start of this epoch - m v_old, so v = m v_old + (end - start) = object - previous.
        A rise of the amplitude error drops the velocity (adaptive restart, ITER-005)."""
        if restart:
            previous.copy_(self.object)
            return
        momentum = self.config.momentum
        velocity = previous.sub_(self.object).neg_()  # in place: previous now holds v
        self.object.add_(velocity, alpha=momentum)
        previous.mul_(-momentum).add_(self.object)  # the end of this epoch again: object - m v

    def _memory_record(self) -> dict[str, float]:
        """Peak memory so far (the largest of the ranks'), for the history and the progress line."""
        peaks = torch.tensor([float(peak_rss_bytes()), 0.0], dtype=torch.float64)
        if self.device.type == "cuda":
            peaks[1] = float(torch.cuda.max_memory_allocated(self.device))
        if self.distributed.enabled:
            import torch.distributed as dist

            dist.all_reduce(peaks, op=dist.ReduceOp.MAX, group=self.distributed.control_group)
        record = {"peak_rss_bytes": float(peaks[0])}
        if self.device.type == "cuda":
            record["peak_device_bytes"] = float(peaks[1])
        return record

    def _converged(self, history: list[dict[str, float]]) -> bool:
        """Relative decrease of the amplitude error over the last ``patience`` epochs below ``tolerance``."""
        config = self.config
        if config.tolerance <= 0 or len(history) <= config.patience:
            return False
        old, new = history[-1 - config.patience]["amplitude_error"], history[-1]["amplitude_error"]
        return (old - new) <= config.tolerance * abs(old)

    # -- several ranks -------------------------------------------------------------------------------

    def _halo_plan(self) -> tuple[list[tuple[int, int]], list[int]]:
        """This epoch's shared rows (from every rank's current extent) and the pattern counts after which the
        ranks combine them within the epoch: :data:`HALO_SYNCS_PER_EPOCH` - 1 marks spread over the smallest
        share, so that every rank reaches each mark (and its collectives) the same number of times."""
        extents = sharing.gather_extents((int(self.origins[:, 0].min()), int(self.origins[:, 0].max()) + self.size),
                                         self.distributed, self.device)
        bands = sharing.shared_row_bands(extents, self.shape[0])
        smallest = min(len(share) for share in self.shares or [self.share])
        marks = [smallest * k // HALO_SYNCS_PER_EPOCH for k in range(1, HALO_SYNCS_PER_EPOCH)]
        return bands, [mark for mark in marks if mark > 0]

    def _combine_rows(self, bands: list[tuple[int, int]]) -> None:
        """Replace ``bands`` of the object by every rank's copy weighted by its illumination there."""
        if self._share_weight is None:
            self._share_weight = self._illumination_of_share(None)
        sharing.combine_rows(self.object, self._share_weight, self._gradient, self._illumination, bands,
                             self.shape[1])

    def _combine_epoch(self, refined_probe: bool, moved: bool, bands: list[tuple[int, int]]) -> None:
        """The end of an epoch: the probe averaged over the ranks when it was refined, the weights updated
        when the probe or the positions changed, and the shared rows combined."""
        if refined_probe:
            self.probe = sharing.average(self.probe, self.count, float(self.scan.n_patterns))
        if self._share_weight is None or refined_probe or moved:
            self._share_weight = self._illumination_of_share(self._share_weight)
        self._combine_rows(bands)

    def _illumination_of_share(self, out: Tensor | None) -> Tensor:
        """Summed probe intensity of this rank's windows on the object grid (H*W,)."""
        total = torch.zeros_like(self._illumination) if out is None else out.zero_()
        # a batch at a time: the working set the memory plan counted (larger chunks raised the peak)
        for index in torch.arange(self.count, device=self.device).split(self.batch_size):
            probes = self._probes(index, self.frac.index_select(0, index))
            total.index_add_(0, self._flat(index).reshape(-1), self._lit(index, probes).reshape(-1))
        return total

    # -- results -------------------------------------------------------------------------------------

    def illumination_map(self) -> Tensor:
        """Summed probe intensity on the object grid (H, W) for the current probe and positions, over every
        pattern (all ranks). Uses the solver's scratch buffer: call it once, at the end."""
        total = self._illumination_of_share(self._illumination)
        if self.distributed.enabled:
            self.distributed.sum(total)
        return total.view(self.shape)

    def result(self, history: list[dict[str, float]]) -> Reconstruction:
        config = self.config
        refined_probe = config.refine_probe_from is not None and config.refine_probe_from <= len(history)
        moved = config.refine_positions_from is not None and config.refine_positions_from <= len(history)
        positions = self.positions
        if moved and self.shares is not None:
            positions = sharing.gather_rows(self.positions, self.shares, self.distributed)
        return Reconstruction(
            object=self.object.view(self.shape).cpu().numpy(),
            weights=self.illumination_map().cpu().numpy(),
            n_patterns=self.scan.n_patterns,
            probe=self.probe.cpu().numpy() if refined_probe else None,
            positions=positions.cpu().numpy() if moved else None,
            history=tuple(history),
        )


def reconstruct_iterative(request: ReconstructRequest, initial_object: np.ndarray | None = None) -> Reconstruction:
    """Run the iterative reconstructor as ``request`` asks, from ``initial_object`` (or the request's, or
    ones); under ``torchrun`` (``request.distributed``) as one rank of the job."""
    start = initial_object if initial_object is not None else request.initial_object
    config = IterativeConfig() if request.options is None else request.options
    if not isinstance(config, IterativeConfig):
        raise TypeError(f"the iterative solver takes IterativeConfig options, not {type(config).__name__}")
    solver = IterativeSolver(request.scan, config, request.device, start, budget=request.memory_budget,
                             distributed=request.distributed or SINGLE_PROCESS)
    return solver.run(request)
