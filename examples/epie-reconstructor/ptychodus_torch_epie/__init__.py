"""ePIE as a ptychodus-torch reconstructor plugin: one pattern at a time, object only, fixed probe."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ptychodus_torch_plugin import hookimpl
from ptychodus_torch_plugin.options import setting
from ptychodus_torch_plugin.physics.scan_model import place_windows, shifted_probes
from ptychodus_torch_plugin.reconstructors import (
    ProgressEvent,
    Reconstruction,
    Reconstructor,
    ReconstructRequest,
)


@dataclass(frozen=True)
class EpieOptions:
    """Declared once: the command line (--epochs, --alpha, --option alpha=0.5), ptychodus's settings and
    `ptychodus-torch plugins` are made from these fields."""

    epochs: int = setting(10, minimum=1, help="passes over every pattern")
    alpha: float = setting(1.0, minimum=0.0, help="ePIE's object step size")


def run_epie(request: ReconstructRequest) -> Reconstruction:
    scan, device, options = request.scan, request.device, request.options
    epochs, alpha = options.epochs, options.alpha
    if not 0 < alpha <= 2:
        raise ValueError(f"alpha must be in (0, 2], got {alpha}")
    size, (height, width) = scan.patch_size, scan.object_shape
    start = torch.ones(height, width) if request.initial_object is None else torch.from_numpy(request.initial_object)
    obj = start.to(device, torch.complex64).reshape(-1).clone()
    windows = place_windows(scan.positions, size, (height, width), device)
    probes = shifted_probes(torch.from_numpy(scan.probe).to(device), windows.frac)  # (M, modes, N, N)
    # Measured amplitudes with the zero frequency moved to pixel 0, the layout of a plain fft2. np.asarray reads
    # a large scan that stayed in its HDF5 file (a PatternStack) whole; a memory-bounded plugin reads blocks.
    measured = torch.fft.ifftshift(torch.from_numpy(np.asarray(scan.amplitudes)).to(device), dim=(-2, -1))
    brightest = probes.abs().square().sum(dim=1).amax()
    order = torch.Generator().manual_seed(0)
    for epoch in range(epochs):
        for m in torch.randperm(scan.n_patterns, generator=order).tolist():
            flat, probe = windows.flat[m], probes[m]
            exit_wave = probe * obj[flat].view(size, size)
            far = torch.fft.fft2(exit_wave, norm="ortho")
            modulus = far.abs().square().sum(dim=0).sqrt()
            change = torch.fft.ifft2(far * (measured[m] / (modulus + 1e-9)), norm="ortho") - exit_wave
            obj[flat] += alpha * ((probe.conj() * change).sum(dim=0) / brightest).reshape(-1)
        request.report(ProgressEvent(epoch + 1, epochs, "epoch"))
    weights = torch.zeros(height * width, device=device)
    weights.index_add_(0, windows.flat.reshape(-1), probes.abs().square().sum(dim=1).reshape(-1))
    return Reconstruction(obj.view(height, width).cpu().numpy(), weights.view(height, width).cpu().numpy(),
                          scan.n_patterns)


@hookimpl
def ptychodus_torch_register_reconstructors() -> list[Reconstructor]:
    return [Reconstructor("epie", run_epie, "ePIE, one pattern at a time", options=EpieOptions)]
