"""The PtychoPINN-style generator: diffraction amplitudes of a group in, complex object patches out.

A convolutional encoder reduces the C = gridsize² input patterns (C, N, N) by 2 per stage; two decoders
bring it back, one for the amplitude (``amplitude_max``·sigmoid; the default 2 bounds it in (0, 2): with
the probe and intensity scale normalised as in ``models.pinn``, the object's probe-weighted mean-square
amplitude is 1, and (0, 2) leaves room for brighter-than-average pixels; PtychoPINN uses a plain sigmoid,
``amplitude_max`` 1) and one for the phase (π·tanh: bounded, no wrapping discontinuity for the optimiser).

``shared`` (``group_encoder`` shared): the C patterns of a group go through one single-pattern network each
(the gridsize-1 network, weights shared by the members) instead of one joint network whose first layer
mixes the C channels; the group then meets only in the overlap constraint of the loss.

``support`` chooses what the decoders cover. ``full``: the decoders have the encoder's depth and give the
whole (C, N, N) patch. ``central`` (PtychoPINN's ``pad_object``): they stop one stage earlier and give only
the central N/2 x N/2 of each patch, which is zero-padded to N x N: the object is decoded only where the
beam (radius about N/5) lights it, and the network cannot spend capacity on, or hide errors in, the dark
margin that no measurement determines.
``normalization`` group puts a GroupNorm after every convolution (PtychoPINN has none). It normalises each
sample on its own, so a patch never depends on what else is in its batch, and it is what let the N = 64
network train in the epochs a CPU can give (QUALITY-005: paperlines amplitude / phase SSIM 0.66 / 0.59
-> 0.85 / 0.69 at 60 epochs; 0.75 / 0.64 with another seed).
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

from ..config import NORMALIZATIONS, OBJECT_SUPPORTS

GROUPS = 8
"""Channel groups of ``group`` normalisation (fewer when a stage is narrower)."""


def _double_conv(in_channels: int, out_channels: int, normalization: str) -> nn.Sequential:
    """conv, [norm], ReLU, conv, [norm], ReLU. Without normalisation no placeholder layer is inserted, so
    the parameter names (``stages.0.2.weight``, ...) stay those of model files written before it existed."""
    layers: list[nn.Module] = []
    for width_in in (in_channels, out_channels):
        layers.append(nn.Conv2d(width_in, out_channels, 3, padding=1))
        if normalization == "group":  # per sample: training and inference see the same statistics
            layers.append(nn.GroupNorm(math.gcd(GROUPS, out_channels), out_channels))
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def upsample2x(x: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour 2x up-sampling of (B, C, H, W) as a broadcast + reshape."""
    b, c, h, w = x.shape
    return x[:, :, :, None, :, None].expand(b, c, h, 2, w, 2).reshape(b, c, 2 * h, 2 * w)


def max_pool2x(x: torch.Tensor) -> torch.Tensor:
    """2x2 max pooling of (B, C, H, W), even H and W, as the maximum of its four strided views. The same
    values as ``max_pool2d`` (NaN propagates in both), without the argmax indices the CPU kernel computes
    even when nothing will be differentiated: a whole N = 64 inference pass is 6 % faster in fp32 and 22 %
    in bf16 on the CPU (findings ITER-008)."""
    top = torch.maximum(x[:, :, 0::2, 0::2], x[:, :, 0::2, 1::2])
    return torch.maximum(top, torch.maximum(x[:, :, 1::2, 0::2], x[:, :, 1::2, 1::2]))


class Encoder(nn.Module):
    """One double convolution per width, each followed by 2x pooling (but the last with ``pool_last``
    False)."""

    def __init__(self, in_channels: int, channels: Sequence[int], normalization: str,
                 pool_last: bool = True) -> None:
        super().__init__()
        widths = [in_channels, *channels]
        self.stages = nn.ModuleList(_double_conv(a, b, normalization) for a, b in zip(widths[:-1], widths[1:]))
        self.pool = nn.MaxPool2d(2)
        self.poolings = len(self.stages) - (0 if pool_last else 1)
        """How many stages halve the map: what the decoders must undo."""

    def _downsample(self, x: torch.Tensor) -> torch.Tensor:
        # Training keeps max_pool2d (its gradient picks one input per window, as it always has); without
        # gradients the cheaper strided maximum gives the same values.
        if (torch.is_grad_enabled() and x.requires_grad) or x.shape[-2] % 2 or x.shape[-1] % 2:
            return self.pool(x)
        return max_pool2x(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for index, stage in enumerate(self.stages):
            x = stage(x)
            if index < self.poolings:
                x = self._downsample(x)
        return x


class Decoder(nn.Module):
    """``len(channels)`` up-sampling stages (``full``) or one fewer (``central``, output N/2), then a 3x3 head."""

    def __init__(self, channels: Sequence[int], out_channels: int, stages: int | None = None, *,
                 normalization: str) -> None:
        super().__init__()
        widths = list(reversed(channels))
        pairs = list(zip(widths, [*widths[1:], widths[-1]]))
        pairs = pairs[: len(pairs) if stages is None else stages]
        self.stages = nn.ModuleList(_double_conv(a, b, normalization) for a, b in pairs)
        self.head = nn.Conv2d(pairs[-1][1] if pairs else widths[0], out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.stages:
            x = stage(upsample2x(x))
        return self.head(x)


SUPPORTS = OBJECT_SUPPORTS  # one list, kept by the configuration that validates it


def support_mask(patch_size: int, support: str) -> torch.Tensor:
    """(N, N) float mask of the decoded pixels: all of them (``full``) or rows and columns
    N//4 .. N//4 + N/2 - 1 (``central``), the square centred on pixel N//2 (the scan position)."""
    mask = torch.ones(patch_size, patch_size)
    if support == "central":
        border = patch_size // 4
        mask.zero_()
        mask[border : border + patch_size // 2, border : border + patch_size // 2] = 1.0
    elif support != "full":
        raise ValueError(f"unknown object support '{support}'; choose one of {', '.join(SUPPORTS)}")
    return mask


class PatchGenerator(nn.Module):
    """(B, C, N, N) normalised amplitudes -> (B, C, N, N) complex patches (zero outside the support)."""

    def __init__(self, n_patterns: int, channels: Sequence[int], *, support: str = "full",
                 amplitude_max: float = 2.0, shared: bool = False, normalization: str = "none",
                 pool_last_stage: bool = True) -> None:
        super().__init__()
        if support not in SUPPORTS:
            raise ValueError(f"unknown object support '{support}'; choose one of {', '.join(SUPPORTS)}")
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"unknown normalization '{normalization}'; choose one of {', '.join(NORMALIZATIONS)}")
        self.support = support
        self.amplitude_max = float(amplitude_max)
        self.shared = shared
        width = 1 if shared else n_patterns
        self.encoder = Encoder(width, channels, normalization, pool_last=pool_last_stage)
        # One up-sampling stage per pooling, one fewer for the central N/2 square.
        stages = self.encoder.poolings - (1 if support == "central" else 0)
        self.amplitude_decoder = Decoder(channels, width, stages, normalization=normalization)
        self.phase_decoder = Decoder(channels, width, stages, normalization=normalization)

    def forward(self, amplitudes: torch.Tensor) -> torch.Tensor:
        if self.shared:  # each pattern on its own through one single-pattern network
            batch, members, height, width = amplitudes.shape
            patches = self._decode(amplitudes.reshape(batch * members, 1, height, width))
            return patches.reshape(batch, members, *patches.shape[-2:])
        return self._decode(amplitudes)

    def _decode(self, amplitudes: torch.Tensor) -> torch.Tensor:
        features = self.encoder(amplitudes)
        amplitude = self.amplitude_max * torch.sigmoid(self.amplitude_decoder(features))
        phase = math.pi * torch.tanh(self.phase_decoder(features))
        if self.support == "central":  # (N/2, N/2) -> (N, N), zero amplitude (and phase) outside
            border = (amplitudes.shape[-1] // 4,) * 4
            amplitude = nn.functional.pad(amplitude, border)
            phase = nn.functional.pad(phase, border)
        return torch.polar(amplitude.float(), phase.float())
