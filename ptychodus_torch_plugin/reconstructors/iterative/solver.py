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
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import Tensor

from ...data.scan import ScanData
from ...errors import ConfigError
from ...inference import available_memory
from ...physics.probe import as_probe_modes
from ...physics.scan_model import object_windows, place_windows, shifted_probes
from ...physics.windows import shift_windows, split_positions, window_indices
from ..base import ProgressEvent, ReconstructRequest, Reconstruction
from . import updates
from .config import IterativeConfig

#: Shifted probes of every position are cached when they take at most this much (and a quarter of free
#: memory); otherwise each batch shifts its own (two FFTs per mode and pattern).
PROBE_CACHE_BYTES = 2 * 1024**3


class IterativeSolver:
    """State of one reconstruction: object, probe, positions and the per-scan constants."""

    def __init__(self, scan: ScanData, config: IterativeConfig, device: torch.device,
                 initial_object: np.ndarray | None = None) -> None:
        config.validate()
        self.config = config
        self.device = device
        self.scan = scan
        self.size = scan.patch_size
        self.shape = (int(scan.object_shape[0]), int(scan.object_shape[1]))
        start = np.ones(self.shape, np.complex64) if initial_object is None else initial_object
        if tuple(start.shape) != self.shape:
            raise ConfigError(f"the starting object is {start.shape[0]} x {start.shape[1]} pixels but this scan's "
                              f"object is {self.shape[0]} x {self.shape[1]}")
        if not np.all(np.isfinite(start)):
            raise ConfigError("the starting object contains NaN or infinite values")
        self.object = torch.as_tensor(np.asarray(start, np.complex64), device=device).reshape(-1).clone()
        self.probe = as_probe_modes(torch.from_numpy(scan.probe)).to(device, torch.complex64)
        self.positions = torch.as_tensor(scan.positions, dtype=torch.float64, device=device).clone()
        self.windows = place_windows(self.positions, self.size, self.shape, device)
        self.integer_scan = not bool((self.windows.frac != 0).any())
        # Measured amplitudes in fft2 layout (DC at pixel 0), once per scan.
        self.measured = torch.fft.ifftshift(torch.from_numpy(scan.amplitudes), dim=(-2, -1)).to(device)
        self.valid = None
        if scan.bad_pixels is not None:
            good = torch.from_numpy(~scan.bad_pixels).to(torch.float32)
            self.valid = torch.fft.ifftshift(good, dim=(-2, -1)).to(device)
        self.total_measured = float(self.measured.double().square().sum())
        pixels = self.shape[0] * self.shape[1]
        self._gradient = torch.zeros(pixels, 2, dtype=torch.float32, device=device)
        self._illumination = torch.zeros(pixels, dtype=torch.float32, device=device)
        self._cached_probes: Tensor | None = None
        self._cached_lit: Tensor | None = None  # sum_k |P_k|^2 of each cached probe (M, N, N)
        self.generator = torch.Generator().manual_seed(config.seed)

    # -- per-batch pieces ----------------------------------------------------------------------------

    def _probes(self, index: Tensor, frac: Tensor) -> Tensor:
        if self._cached_probes is not None:
            return self._cached_probes.index_select(0, index)
        if self.integer_scan:
            return self.probe.unsqueeze(0).expand(len(index), *self.probe.shape)
        return shifted_probes(self.probe, frac)

    def _cache_probes(self, wanted: bool) -> None:
        """Keep every position's shifted probe while neither probe nor positions change."""
        if not wanted or self.integer_scan:
            self._cached_probes = self._cached_lit = None
            return
        if self._cached_probes is not None:
            return
        need = self.scan.n_patterns * self.probe.numel() * 8
        free = available_memory(self.device)
        if need <= PROBE_CACHE_BYTES and (free is None or need <= free // 4):
            self._cached_probes = shifted_probes(self.probe, self.windows.frac)
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

    def _batch(self, index: Tensor, refine_probe: bool, refine_positions: bool) -> tuple[Tensor, Tensor]:
        """One update from the patterns ``index``; returns (sum of losses, sum of squared amplitude errors)."""
        config, size = self.config, self.size
        flat, frac = self.windows.flat.index_select(0, index), self.windows.frac.index_select(0, index)
        probes = self._probes(index, frac)
        windows = object_windows(self.object, flat, size)
        waves = probes * windows.unsqueeze(1)
        far = updates.project(waves)
        measured = self.measured.index_select(0, index)
        change, loss, amplitude_error = updates.far_field_correction(far, measured, config.noise_model, self.valid)
        chi = updates.exit_wave_change(change)

        # object
        gradient = updates.object_gradient(chi, probes)
        if self._cached_lit is not None:
            lit = self._cached_lit.index_select(0, index)
        else:
            lit = updates.intensity(probes).squeeze(1)
        summed, lit = self._scatter_gather(flat, gradient, lit)
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
        origins, frac = split_positions(moved, self.size)
        rows, cols = window_indices(origins, self.size)
        self.windows.flat[index] = (rows[:, :, None] * self.shape[1] + cols[:, None, :]).reshape(len(index), -1)
        self.windows.frac[index] = frac
        self.integer_scan = False  # corrected positions are sub-pixel from now on

    # -- the loop ------------------------------------------------------------------------------------

    def run(self, request: ReconstructRequest | None = None) -> Reconstruction:
        config = self.config
        count = self.scan.n_patterns
        history: list[dict[str, float]] = []
        velocity = torch.zeros_like(self.object)
        started = time.perf_counter()
        reporting = 0.0  # time spent in the progress callback, which is not the solver's
        for epoch in range(config.epochs):
            refine_probe = config.probe_refined(epoch)
            refine_positions = config.positions_refined(epoch)
            self._cache_probes(not (refine_probe or refine_positions))
            before = self.object.clone() if config.momentum > 0 else None
            loss = torch.zeros((), dtype=torch.float64, device=self.device)
            error = torch.zeros((), dtype=torch.float64, device=self.device)
            order = torch.randperm(count, generator=self.generator).to(self.device)
            for index in order.split(config.batch_size):
                batch_loss, batch_error = self._batch(index, refine_probe, refine_positions)
                loss += batch_loss.double()
                error += batch_error.double()
            amplitude_error = float(error) / max(self.total_measured, 1e-30)
            if before is not None:
                if history and amplitude_error > history[-1]["amplitude_error"]:
                    velocity.zero_()  # adaptive restart: momentum that made the fit worse is dropped
                else:
                    velocity = config.momentum * velocity + (self.object - before)
                    self.object += config.momentum * velocity
            record = {"epoch": float(epoch + 1), "loss": float(loss) / count,
                      "amplitude_error": amplitude_error,
                      "elapsed_s": time.perf_counter() - started - reporting}
            history.append(record)
            if request is not None:
                reported = time.perf_counter()
                request.report(ProgressEvent(epoch + 1, config.epochs, "epoch", record, self.object.view(self.shape)))
                reporting += time.perf_counter() - reported
            if self._converged(history):
                break
        return self.result(history)

    def _converged(self, history: list[dict[str, float]]) -> bool:
        """Relative decrease of the amplitude error over the last ``patience`` epochs below ``tolerance``."""
        config = self.config
        if config.tolerance <= 0 or len(history) <= config.patience:
            return False
        old, new = history[-1 - config.patience]["amplitude_error"], history[-1]["amplitude_error"]
        return (old - new) <= config.tolerance * abs(old)

    def illumination_map(self) -> Tensor:
        """Summed probe intensity on the object grid (H, W) for the current probe and positions."""
        total = torch.zeros(self.shape[0] * self.shape[1], dtype=torch.float32, device=self.device)
        for index in torch.arange(self.scan.n_patterns, device=self.device).split(1024):
            probes = self._probes(index, self.windows.frac[index])
            total.index_add_(0, self.windows.flat[index].reshape(-1), updates.intensity(probes).reshape(-1))
        return total.view(self.shape)

    def result(self, history: list[dict[str, float]]) -> Reconstruction:
        config = self.config
        refined_probe = config.refine_probe_from is not None and config.refine_probe_from <= len(history)
        moved = config.refine_positions_from is not None and config.refine_positions_from <= len(history)
        return Reconstruction(
            object=self.object.view(self.shape).cpu().numpy(),
            weights=self.illumination_map().cpu().numpy(),
            n_patterns=self.scan.n_patterns,
            probe=self.probe.cpu().numpy() if refined_probe else None,
            positions=self.positions.cpu().numpy() if moved else None,
            history=tuple(history),
        )


def reconstruct_iterative(request: ReconstructRequest, initial_object: np.ndarray | None = None) -> Reconstruction:
    """Run the iterative reconstructor as ``request`` asks, from ``initial_object`` (or the request's, or
    ones)."""
    require_single_process(request)
    start = initial_object if initial_object is not None else request.initial_object
    solver = IterativeSolver(request.scan, request.iterative, request.device, start)
    return solver.run(request)


def require_single_process(request: ReconstructRequest) -> None:
    """The iterative solver runs in one process: under ``torchrun`` every rank would repeat the same work,
    so that is refused with a clear error instead."""
    if request.distributed is not None and request.distributed.enabled:
        raise ConfigError("the iterative reconstructors run in one process; start `reconstruct` without torchrun "
                          "(the network reconstructor `pinn` is the one that shares a scan across ranks)")
