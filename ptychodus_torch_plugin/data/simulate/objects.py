"""Synthetic complex objects (transmission functions) with non-trivial amplitude *and* phase.

Why both: a reconstruction that only recovers amplitude, or only phase, must fail a test on these
objects. Each generator yields two real maps in [0, 1]; :func:`to_transmission` turns them into
amplitude in [amplitude_min, 1] and phase in [-phase_max, +phase_max].
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from ...errors import ConfigError, MissingExtraError

OBJECT_KINDS = ("lines", "grf", "image", "paperlines")

#: scikit-image sample pictures that ship inside its wheel (no download), usable as ``image`` maps.
BUNDLED_IMAGES = ("camera", "astronaut", "coins", "moon", "text", "brick", "grass", "gravel", "horse", "page",
                  "chelsea", "coffee", "rocket", "clock", "cell", "immunohistochemistry")
#: The default (amplitude, phase) pair; training on other pairs and testing on this one is an unseen sample.
DEFAULT_IMAGES = ("camera", "astronaut")
_TAIL_CUTOFF = 1e-3
#: Pixels per band of :func:`to_transmission` (about 100 MB of temporaries, whatever the object's size).
_BAND_PIXELS = 1 << 20


def to_transmission(
    amplitude_map: np.ndarray,
    phase_map: np.ndarray,
    *,
    amplitude_min: float = 0.5,
    phase_max: float = math.pi / 2,
) -> np.ndarray:
    """complex64 object from two [0, 1] maps: high map values absorb (amplitude) and delay (phase).

    Computed a band of rows at a time into the complex64 result: the complex128 temporaries of the whole
    object took 5x the object's size at once (a 7300 x 7300 object: 2 GiB more); every value is the same.
    """
    out = np.empty(amplitude_map.shape, dtype=np.complex64)
    band = max(1, _BAND_PIXELS // max(1, amplitude_map.shape[-1]))
    for start in range(0, amplitude_map.shape[0], band):
        rows = slice(start, start + band)
        amplitude = 1.0 - (1.0 - amplitude_min) * amplitude_map[rows]
        phase = phase_max * (2.0 * phase_map[rows] - 1.0)
        out[rows] = amplitude * np.exp(1j * phase)
    return out


def unit_range(values: np.ndarray, *, in_place: bool = False) -> np.ndarray:
    """Rescale to [0, 1]; a flat map becomes zeros rather than dividing by zero.

    ``in_place`` reuses ``values`` (float64) for the result: the same numbers without a second map.
    """
    low, high = float(values.min()), float(values.max())
    if high - low <= 0:
        if in_place:
            values[...] = 0.0
            return values
        return np.zeros_like(values, dtype=np.float64)
    if not in_place:
        return (values - low) / (high - low)
    values -= low
    values /= high - low
    return values


def random_lines(
    shape: tuple[int, int], rng: np.random.Generator, *, lines_per_kpx: float = 2.5, blur_px: float = 1.0
) -> np.ndarray:
    """Blurred random straight lines, the PtychoPINN test pattern, in [0, 1].

    ``lines_per_kpx`` lines per 1000 object pixels (so density, not count, is fixed across sizes); each line
    spans a random fraction of the object at a random angle, rasterised by dense sampling then blurred.
    """
    height, width = shape
    # uint8, not float64: the filter reads every input into float64 line buffers, so the blurred map is the
    # same, and the canvas takes an eighth of the memory.
    canvas = np.zeros(shape, dtype=np.uint8)
    n_lines = max(1, round(lines_per_kpx * height * width / 1000))
    size = max(height, width)
    for _ in range(n_lines):
        centre = rng.uniform((0, 0), (height, width))
        angle = rng.uniform(0, math.pi)
        half_length = rng.uniform(0.05, 0.35) * size
        steps = int(4 * half_length) + 2
        t = np.linspace(-half_length, half_length, steps)
        rows = np.rint(centre[0] + t * math.sin(angle)).astype(int)
        cols = np.rint(centre[1] + t * math.cos(angle)).astype(int)
        inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
        canvas[rows[inside], cols[inside]] = 1
    blurred = ndimage.gaussian_filter(canvas, blur_px, output=np.float64)
    del canvas
    lines = unit_range(blurred, in_place=True)
    # Drop the blur's far tails (< 0.1 %): the background is then exactly flat, as in a real sample,
    # and stored objects compress several-fold.
    lines[lines < _TAIL_CUTOFF] = 0.0
    return lines


def gaussian_random_field(
    shape: tuple[int, int], rng: np.random.Generator, *, correlation_px: float = 4.0
) -> np.ndarray:
    """Smooth random texture in [0, 1]: white noise low-passed by a Gaussian of width ``correlation_px``."""
    noise = rng.standard_normal(shape)
    field = ndimage.gaussian_filter(noise, correlation_px, mode="wrap")
    del noise
    return unit_range(field, in_place=True)


def bundled_image(shape: tuple[int, int], name: str) -> np.ndarray:
    """A scikit-image sample picture (one of :data:`BUNDLED_IMAGES`), grey-scale, resized to ``shape``, in
    [0, 1]."""
    if name not in BUNDLED_IMAGES:
        raise ConfigError(f"unknown image '{name}'; choose from {', '.join(BUNDLED_IMAGES)}")
    try:
        from skimage import data as skdata
        from skimage.color import rgb2gray
        from skimage.transform import resize
    except ImportError as exc:
        raise MissingExtraError("the 'image' simulation object", "scikit-image", "all") from exc
    picture = np.asarray(getattr(skdata, name)(), dtype=np.float64)
    if picture.ndim == 3:
        picture = rgb2gray(picture[..., :3])
    return unit_range(resize(picture, shape, order=1, anti_aliasing=True), in_place=True)


def paper_lines_object(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """PtychoPINN's own lines sample: blurred random lines (three blur widths summed), the phase a function
    of the amplitude, complex64. Unlike ``lines``, amplitude and phase are one structure, which is the
    data the physics-informed network reconstructs an unseen object from (findings QUALITY-004). Lines are
    drawn on a canvas twice the size at their density (400 lines on 784 x 784 pixels), blurred at 1, 5 and
    10 px, and the centre cropped."""
    from skimage import draw

    big = (2 * shape[0], 2 * shape[1])
    canvas = np.zeros(big)
    for _ in range(max(1, round(400 * big[0] * big[1] / 784**2))):
        r0, r1 = rng.integers(0, big[0], 2)
        c0, c1 = rng.integers(0, big[1], 2)
        rows, cols = draw.line(int(r0), int(c0), int(r1), int(c1))
        canvas[rows, cols] = 1.0
    image = sum(w * ndimage.gaussian_filter(canvas, s) for w, s in ((1, 1), (2, 5), (5, 10)))
    top, left = shape[0] // 2, shape[1] // 2
    amplitude = image[top:top + shape[0], left:left + shape[1]]
    amplitude = amplitude / amplitude.max()
    phase = np.pi * np.tanh((amplitude - 0.5) / (3 * amplitude.mean()))
    return (amplitude * np.exp(1j * phase)).astype(np.complex64)


def make_object(
    kind: str,
    shape: tuple[int, int],
    rng: np.random.Generator,
    *,
    lines_per_kpx: float = 2.5,
    correlation_px: float = 4.0,
    images: tuple[str, str] = DEFAULT_IMAGES,
) -> np.ndarray:
    """complex64 (H, W) object of the named kind; amplitude and phase come from independent maps
    (for ``image``: the pictures named by ``images`` = (amplitude, phase))."""
    if kind == "lines":
        amp = random_lines(shape, rng, lines_per_kpx=lines_per_kpx)
        phase = random_lines(shape, rng, lines_per_kpx=lines_per_kpx)
    elif kind == "grf":
        amp = gaussian_random_field(shape, rng, correlation_px=correlation_px)
        phase = gaussian_random_field(shape, rng, correlation_px=correlation_px)
    elif kind == "image":
        amp, phase = bundled_image(shape, images[0]), bundled_image(shape, images[1])
    elif kind == "paperlines":
        return paper_lines_object(shape, rng)
    else:
        raise ConfigError(f"unknown object kind {kind!r}; choose one of {', '.join(OBJECT_KINDS)}")
    return to_transmission(amp, phase)
