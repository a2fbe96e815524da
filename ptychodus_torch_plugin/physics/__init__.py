"""Physics core: forward model, sub-pixel patch extraction and stitching, group canvas, losses, scale.

Conventions (axis order, position meaning, FFT centring, units) are fixed in specs/physics_conventions.md.
"""

from .canvas import canvas_to_patches, group_canvas_size, patches_to_canvas
from .grouping import group_neighbours, group_offsets
from .losses import amplitude_mae, poisson_nll
from .patches import extract_patches
from .probe import as_probe_modes, probe_intensity
from .propagation import far_field, inverse_far_field, predicted_amplitude
from .scale import amplitude_from_counts, intensity_scale, mean_total_intensity
from .shift import fourier_shift
from .stitching import ObjectAccumulator, stitch_patches
from .windows import split_positions

__all__ = [
    "ObjectAccumulator",
    "amplitude_from_counts",
    "amplitude_mae",
    "as_probe_modes",
    "canvas_to_patches",
    "extract_patches",
    "far_field",
    "fourier_shift",
    "group_canvas_size",
    "group_neighbours",
    "group_offsets",
    "intensity_scale",
    "inverse_far_field",
    "mean_total_intensity",
    "patches_to_canvas",
    "poisson_nll",
    "predicted_amplitude",
    "probe_intensity",
    "split_positions",
    "stitch_patches",
]
