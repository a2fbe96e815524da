"""ePIE as a ptychodus-torch reconstructor plugin: one pattern at a time, object only, fixed probe."""

from __future__ import annotations

import numpy as np
import torch

from ptychodus_torch_plugin import hookimpl
from ptychodus_torch_plugin.physics.scan_model import place_windows, shifted_probes
from ptychodus_torch_plugin.reconstructors import (
    ProgressEvent,
    Reconstruction,
    Reconstructor,
    ReconstructRequest,
)


def run_epie(request: ReconstructRequest) -> Reconstruction:
    scan, device = request.scan, request.device
    epochs = int(request.options.get("epochs", "10"))
    alpha = float(request.options.get("alpha", "1.0"))
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
    return [Reconstructor("epie", run_epie, "ePIE, one pattern at a time (options: epochs, alpha)")]
