"""Model types ``pinn`` (physics loss only) and ``supervised`` (needs the true object).

A model bundles the generator with the probe and the intensity scale, because the three only make sense
together: the network's output is an object that, under *this* probe and *this* scale, reproduces the
measured counts. Saving the module therefore saves everything needed to reconstruct another scan.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from ..config import ModelConfig
from ..physics import (
    amplitude_mae,
    as_probe_modes,
    canvas_to_patches,
    patches_to_canvas,
    poisson_nll,
    predicted_amplitude,
    probe_intensity,
)
from .generator import PatchGenerator

Batch = Mapping[str, Tensor]


def normalise_probe(probe: Tensor) -> Tensor:
    """Scale the probe to total intensity (N/2)², the target of :func:`~..physics.scale.intensity_scale`.

    With both normalised, a unit-amplitude object under this probe yields exactly the data's mean counts
    per pattern, so the network's object amplitude is O(1) (probe-weighted mean square 1) whatever the
    probe's units. Idempotent, so a probe read back from a model file is unchanged.
    """
    size = probe.shape[-1]
    total = probe.abs().square().sum()
    if not total > 0:
        raise ValueError("the probe is zero everywhere")
    return probe * torch.sqrt(torch.tensor(size * size / 4.0) / total)


def _refresh_canvas_side(module: nn.Module, incompatible_keys: object) -> None:
    module.canvas_side = int(module.canvas_size)  # type: ignore[assignment]


class PtychoModel(nn.Module):
    """Generator + probe + intensity scale.

    ``forward`` takes measured amplitudes (sqrt of counts) of a batch of groups, (B, C, N, N), and
    returns complex patches (B, C, N, N). Inputs are divided by the intensity scale ``s`` inside, so
    callers never normalise by hand: ``s`` maps network units to sqrt-counts, ``A ≈ s·|F(P·O)|``.
    """

    def __init__(self, config: ModelConfig, probe: Tensor, intensity_scale: float, canvas_size: int = 0) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.generator = PatchGenerator(config.n_channels, config.channels)
        probe_modes = normalise_probe(as_probe_modes(torch.as_tensor(probe)).to(torch.complex64))
        if probe_modes.shape[-1] != config.patch_size:
            raise ValueError(f"probe size {probe_modes.shape[-1]} != patch size {config.patch_size}")
        probe_real = torch.view_as_real(probe_modes).clone()
        if config.probe_trainable:
            self.probe_real = nn.Parameter(probe_real)
        else:
            self.register_buffer("probe_real", probe_real)
        log_scale = torch.tensor(math.log(float(intensity_scale)), dtype=torch.float32)
        if config.scale_trainable:
            self.log_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("log_scale", log_scale)
        # Side of the shared canvas for the overlap constraint (gridsize > 1); saved with the weights.
        self.register_buffer("canvas_size", torch.tensor(int(canvas_size), dtype=torch.int64))
        # The same value as a Python int: reading the buffer in every step would wait for the GPU.
        self.canvas_side = int(canvas_size)
        self.register_load_state_dict_post_hook(_refresh_canvas_side)

    @property
    def probe(self) -> Tensor:
        return torch.view_as_complex(self.probe_real)

    @property
    def scale(self) -> Tensor:
        return self.log_scale.exp()

    def forward(self, amplitudes: Tensor) -> Tensor:
        return self.generator(amplitudes / self.scale)

    def illumination(self) -> Tensor:
        """(N, N) probe intensity: the weight of each patch pixel when stitching."""
        return probe_intensity(self.probe.detach())

    def constrained_patches(self, patches: Tensor, offsets: Tensor) -> Tensor:
        """Overlap constraint: average the group's patches on a shared canvas and cut them out again.

        The average is weighted by probe intensity, as in the final stitching: a patch speaks for the
        object only where its own beam lit it. An unweighted average would let the unconstrained margin
        of one patch (outside its probe) overwrite the well-measured centre of its neighbour.
        """
        if patches.shape[1] == 1:
            return patches
        size = self.canvas_side
        canvas = patches_to_canvas(patches, offsets, size, weights=self.illumination())
        return canvas_to_patches(canvas, offsets, patches.shape[-1])

    def training_loss(self, batch: Batch) -> Tensor:
        """Mean loss of one batch: ``amplitudes`` (B, C, N, N) and ``offsets`` (B, C, 2) are always given."""
        return self.loss_from_patches(self(batch["amplitudes"]), batch)

    def loss_from_patches(self, patches: Tensor, batch: Batch) -> Tensor:
        """Physics loss of the network's output: overlap constraint, forward model, Poisson NLL (or MAE)."""
        patches = self.constrained_patches(patches, batch["offsets"])
        predicted = predicted_amplitude(self.probe, patches)
        observed = batch["amplitudes"] / self.scale
        if self.config.loss == "mae":
            return amplitude_mae(predicted, observed)
        return poisson_nll(predicted, observed, scale=self.scale)


class SupervisedModel(PtychoModel):
    """Trained against true patches (batch key ``truth``); the loss is the illumination-weighted mean
    absolute complex difference, so dark, undetermined pixels do not count."""

    def loss_from_patches(self, patches: Tensor, batch: Batch) -> Tensor:
        weight = self.illumination()
        weight = weight / weight.sum()
        return ((patches - batch["truth"]).abs() * weight).sum(dim=(-2, -1)).mean()
