"""Model types ``pinn`` (physics loss only) and ``supervised`` (needs the true object).

A model bundles the generator with the probe and the intensity scale, because the three only make sense
together: the network's output is an object that, under *this* probe and *this* scale, reproduces the
measured counts. Saving the module therefore saves everything needed to reconstruct another scan.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace

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
from .generator import PatchGenerator, support_mask

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


def _default_gain(module: nn.Module, state_dict: dict, prefix: str, *args: object) -> None:
    """Model files written before the learned gain existed (``scale_trainable`` then trained ``log_scale``
    itself) load with gain 1: their ``log_scale`` keeps serving as the input normaliser, as it did."""
    if hasattr(module, "log_gain") and prefix + "log_gain" not in state_dict:
        state_dict[prefix + "log_gain"] = torch.zeros((), dtype=torch.float32)


class PtychoModel(nn.Module):
    """Generator + probe + intensity scale.

    ``forward`` takes measured amplitudes (sqrt of counts) of a batch of groups, (B, C, N, N), and
    returns complex patches (B, C, N, N). Inputs are divided by the intensity scale ``s`` inside, so
    callers never normalise by hand: ``s`` maps network units to sqrt-counts, ``A ≈ s·|F(P·O)|``.

    ``s`` (``log_scale``) is fixed: it is the data's own scale and it normalises the network's inputs,
    which is what inference reproduces for another scan (each scan divided by its own scale). With
    ``scale_trainable`` a separate gain ``g`` (``log_gain``, starting at 1) is learned on the output side
    only, ``A ≈ g·s·|F(P·O)|``: the absolute transmission the normalisation cannot know, without moving the
    inputs away from what inference will feed. A batch may carry ``scale`` (B,): the intensity scale of
    each group's own scan (training on several scans); its ``amplitudes`` are then already normalised
    so that dividing by ``s`` gives each scan's amplitudes over its own scale.
    """

    def __init__(self, config: ModelConfig, probe: Tensor, intensity_scale: float, canvas_size: int = 0) -> None:
        super().__init__()
        if config.patch_size is None:  # N is the probe's; the default encoder widths follow it
            config = replace(config, patch_size=int(torch.as_tensor(probe).shape[-1]))
        config.validate()
        self.config = config
        self.generator = PatchGenerator(config.n_channels, config.widths, support=config.object_support,
                                        amplitude_max=config.amplitude_max,
                                        shared=config.group_encoder == "shared",
                                        normalization=config.normalization,
                                        pool_last_stage=config.pool_last_stage)
        probe_modes = normalise_probe(as_probe_modes(torch.as_tensor(probe)).to(torch.complex64))
        if probe_modes.shape[-1] != config.patch_size:
            raise ValueError(f"probe size {probe_modes.shape[-1]} != patch size {config.patch_size}")
        probe_real = torch.view_as_real(probe_modes).clone()
        if config.probe_trainable:
            self.probe_real = nn.Parameter(probe_real)
        else:
            self.register_buffer("probe_real", probe_real)
        self.register_buffer("log_scale", torch.tensor(math.log(float(intensity_scale)), dtype=torch.float32))
        if config.scale_trainable:
            self.log_gain = nn.Parameter(torch.zeros((), dtype=torch.float32))
            self.register_load_state_dict_pre_hook(_default_gain)
        # Decoded pixels (all, or the central N/2 square); derived from the configuration, not saved.
        self.register_buffer("support", support_mask(probe_modes.shape[-1], config.object_support),
                             persistent=False)
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
        """The input normaliser s (fixed)."""
        return self.log_scale.exp()

    @property
    def gain(self) -> Tensor:
        """The learned output gain g (1 without ``scale_trainable``)."""
        if hasattr(self, "log_gain"):
            return self.log_gain.exp()
        return torch.ones((), device=self.log_scale.device)

    def forward(self, amplitudes: Tensor) -> Tensor:
        scaled = amplitudes / self.scale
        if self.config.input_transform == "log":
            scaled = torch.log1p(scaled)
        return self.generator(scaled)

    def illumination(self) -> Tensor:
        """(N, N) probe intensity inside the decoded support: the weight of each patch pixel when
        stitching (zero outside the central square with ``object_support`` central)."""
        return probe_intensity(self.probe.detach()) * self.support

    def canvas_weights(self) -> Tensor:
        """(N, N) weights of the overlap constraint's average (``canvas_weights``)."""
        if self.config.canvas_weights == "uniform":
            return self.support
        return self.illumination()

    def constrained_patches(self, patches: Tensor, offsets: Tensor) -> Tensor:
        """Overlap constraint: average the group's patches on a shared canvas and cut them out again.

        ``canvas_weights`` probe: the average is weighted by probe intensity (inside the support), as in
        the final stitching: a patch speaks for the object only where its own beam lit it. With full
        support an unweighted average lets the unconstrained margin of one patch overwrite the
        well-measured centre of its neighbour (GROUP-CANVAS-001). ``uniform``: every decoded pixel counts
        the same (PtychoPINN's average of the central squares).
        """
        if patches.shape[1] == 1:
            return patches
        size = self.canvas_side
        canvas = patches_to_canvas(patches, offsets, size, weights=self.canvas_weights())
        return canvas_to_patches(canvas, offsets, patches.shape[-1])

    def training_loss(self, batch: Batch) -> Tensor:
        """Mean loss of one batch: ``amplitudes`` (B, C, N, N) and ``offsets`` (B, C, 2) are always given."""
        return self.loss_from_patches(self(batch["amplitudes"]), batch)

    def loss_from_patches(self, patches: Tensor, batch: Batch) -> Tensor:
        """Physics loss of the network's output: overlap constraint, forward model, Poisson NLL (or MAE)."""
        patches = self.constrained_patches(patches, batch["offsets"])
        predicted = predicted_amplitude(self.probe, patches)
        observed = batch["amplitudes"] / self.scale
        if hasattr(self, "log_gain"):  # learned only with scale_trainable: no multiply by 1 per step otherwise
            predicted = predicted * self.log_gain.exp()
        if self.config.loss == "mae":
            return amplitude_mae(predicted, observed)
        # Each group's observed amplitudes are its own scan's over that scan's scale s_i: s_i maps both
        # back to that scan's counts.
        scale = batch["scale"].view(-1, 1, 1, 1).to(predicted.dtype) if "scale" in batch else self.scale
        return poisson_nll(predicted, observed, scale=scale)


class SupervisedModel(PtychoModel):
    """Trained against true patches (batch key ``truth``); the loss is the illumination-weighted mean
    absolute complex difference, so dark, undetermined pixels do not count."""

    def loss_from_patches(self, patches: Tensor, batch: Batch) -> Tensor:
        weight = self.illumination()
        weight = weight / weight.sum()
        return ((patches - batch["truth"]).abs() * weight).sum(dim=(-2, -1)).mean()
