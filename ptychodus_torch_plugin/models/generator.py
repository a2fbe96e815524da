"""The PtychoPINN-style generator: diffraction amplitudes of a group in, complex object patches out.

A convolutional encoder reduces the C = gridsize² input patterns (C, N, N) by 2 per stage; two decoders
of the same depth bring it back to (C, N, N), one for the amplitude (2·sigmoid, bounded in (0, 2): with
the probe and intensity scale normalised as in ``models.pinn``, the object's probe-weighted mean-square
amplitude is 1, and (0, 2) leaves room for brighter-than-average pixels) and one for the phase (π·tanh:
bounded, no wrapping discontinuity for the optimiser).
Decoders up-sample with nearest neighbour + convolution, which avoids the checkerboard artefacts of
transposed convolutions. The nearest-neighbour step is written as a broadcast (:func:`upsample2x`), whose
backward pass is a plain sum: deterministic on every device, unlike CUDA's ``upsample_nearest2d``
backward, which uses atomic adds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


def _double_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1),
        nn.ReLU(inplace=True),
    )


def upsample2x(x: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour 2x up-sampling of (B, C, H, W) as a broadcast + reshape."""
    b, c, h, w = x.shape
    return x[:, :, :, None, :, None].expand(b, c, h, 2, w, 2).reshape(b, c, 2 * h, 2 * w)


class Encoder(nn.Module):
    def __init__(self, in_channels: int, channels: Sequence[int]) -> None:
        super().__init__()
        widths = [in_channels, *channels]
        self.stages = nn.ModuleList(_double_conv(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.stages:
            x = self.pool(stage(x))
        return x


class Decoder(nn.Module):
    def __init__(self, channels: Sequence[int], out_channels: int) -> None:
        super().__init__()
        widths = list(reversed(channels))
        self.stages = nn.ModuleList(
            _double_conv(a, b) for a, b in zip(widths, [*widths[1:], widths[-1]])
        )
        self.head = nn.Conv2d(widths[-1], out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.stages:
            x = stage(upsample2x(x))
        return self.head(x)


class PatchGenerator(nn.Module):
    """(B, C, N, N) normalised amplitudes -> (B, C, N, N) complex patches."""

    def __init__(self, n_patterns: int, channels: Sequence[int]) -> None:
        super().__init__()
        self.encoder = Encoder(n_patterns, channels)
        self.amplitude_decoder = Decoder(channels, n_patterns)
        self.phase_decoder = Decoder(channels, n_patterns)

    def forward(self, amplitudes: torch.Tensor) -> torch.Tensor:
        features = self.encoder(amplitudes)
        amplitude = 2.0 * torch.sigmoid(self.amplitude_decoder(features))
        phase = math.pi * torch.tanh(self.phase_decoder(features))
        return torch.polar(amplitude.float(), phase.float())
