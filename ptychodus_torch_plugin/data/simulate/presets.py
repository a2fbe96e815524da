"""The simulated cases of the benchmarks, in the package so that every script (and a test) builds the very
same scans: the side-by-side comparison's cases (:data:`CASES`), the network study's samples
(:func:`ablation_simulation`), PtychoPINN's own lines sample (:func:`simulate_paper_lines`) and training
objects cut from pictures (:func:`simulate_picture_crops`).

Why here and not in ``benchmarks/``: the scripts there imported each other's helpers and rebound package
functions at run time; a case is data, and the package's simulator is where data are made.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ...errors import ConfigError
from ..scan import ScanData
from .config import SimulationConfig
from .objects import BUNDLED_IMAGES, bundled_image, paper_lines_object, to_transmission, unit_range
from .probes import make_probe
from .scans import make_trajectory, place_in_object, required_object_size
from .simulate import noiseless_intensity, simulate

#: (amplitude, phase) pictures of the ``images`` case's training samples; the test sample is the default pair.
TRAIN_PICTURES: tuple[tuple[str, str], ...] = (
    ("coins", "moon"), ("brick", "grass"), ("text", "gravel"), ("page", "clock"),
    ("coffee", "rocket"), ("horse", "cell"), ("chelsea", "immunohistochemistry"), ("moon", "coins"),
)
TEST_PICTURES = ("camera", "astronaut")
#: Pictures that ``--picture-crops`` draws training objects from: every bundled one but the test pair.
CROP_PICTURES = tuple(name for name in BUNDLED_IMAGES if name not in TEST_PICTURES)
#: Each picture is first resized to this square (as ``bundled_image`` squeezes it), then windowed.
BUNDLED_SIDE = (512, 512)

#: Picture pairs of the comparison's training objects (the test object is the default pair).
TRAIN_PAIRS = (("moon", "coins"), ("brick", "text"), ("grass", "page"), ("gravel", "horse"))


def simulate_paper_lines(patch_size: int, positions: int, seed: int, nphotons: float, step: float) -> ScanData:
    """A scan of :func:`paper_lines_object` through this package's forward model (as ``simulate`` does)."""
    object_rng, noise_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    trajectory = make_trajectory("raster", positions, step)
    shape = required_object_size(trajectory, patch_size, 0.0)
    where = place_in_object(trajectory, shape, patch_size, 0.0, object_rng)
    obj = paper_lines_object(shape, object_rng)
    probe = make_probe("zoneplate", patch_size, patch_size / 5)
    return counted_scan(obj, probe, where, nphotons, noise_rng,
                        f"paper lines: N={patch_size}, {positions} positions, step {step}, seed {seed}, "
                        f"{nphotons:g} photons")


def counted_scan(obj: np.ndarray, probe: np.ndarray, where: np.ndarray, nphotons: float,
                 noise_rng: np.random.Generator, source: str) -> ScanData:
    """Poisson counts of ``obj`` under ``probe`` at ``where``, scaled to ``nphotons`` per pattern on average
    (as ``simulate`` does), with the probe scaled to match."""
    intensity = noiseless_intensity(obj, probe, where)
    scale = nphotons / float(np.mean(np.sum(intensity, axis=(-2, -1))))
    counts = noise_rng.poisson(intensity * scale).astype(np.float64)
    return ScanData(amplitudes=np.sqrt(counts).astype(np.float32), probe=(probe * np.sqrt(scale)).astype(np.complex64),
                    positions=where, object_truth=obj, scan_index=np.zeros(len(where), dtype=np.int64),
                    source=source)


def picture_crop(name: str, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A random window (35-100 % of the picture's shorter side, anywhere in it) of a bundled picture, in a
    random one of its eight orientations, resized to ``shape``, in [0, 1]: many distinct training objects
    from a few pictures, at several feature scales."""
    from skimage.transform import resize

    picture = bundled_image(BUNDLED_SIDE, name)
    side = int(round(rng.uniform(0.35, 1.0) * BUNDLED_SIDE[0]))
    top, left = (int(rng.integers(0, BUNDLED_SIDE[0] - side + 1)) for _ in range(2))
    window = np.rot90(picture[top:top + side, left:left + side], int(rng.integers(4)))
    if rng.integers(2):
        window = window[:, ::-1]
    return unit_range(resize(window, shape, order=1, anti_aliasing=True))


def simulate_picture_crops(config: SimulationConfig) -> ScanData:
    """The ``images`` case's scan (same trajectory, probe and dose as ``config``) of an object whose amplitude
    and phase are :func:`picture_crop` windows of two different :data:`CROP_PICTURES`."""
    object_rng, scan_rng, noise_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(config.seed).spawn(3))
    trajectory = make_trajectory(config.scan_kind, config.n_positions, config.step)
    shape = required_object_size(trajectory, config.patch_size, 0.0)
    where = place_in_object(trajectory, shape, config.patch_size, 0.0, scan_rng)
    names = object_rng.choice(len(CROP_PICTURES), size=2, replace=False)
    obj = to_transmission(*(picture_crop(CROP_PICTURES[i], shape, object_rng) for i in names))
    probe = make_probe(config.probe_kind, config.patch_size, config.probe_radius, edge_px=config.probe_edge_px,
                       focus_radius_px=config.probe_focus_radius_px, central_stop=config.probe_central_stop)
    return counted_scan(obj, probe, where, float(config.nphotons), noise_rng,
                        f"picture crops of {CROP_PICTURES[names[0]]} / {CROP_PICTURES[names[1]]}, "
                        f"seed {config.seed}, {config.n_positions} positions")


def ablation_simulation(case: str, patch_size: int, positions: int, index: int | None, nphotons: float | None,
               step: float | None = None) -> SimulationConfig:
    """Training object ``index`` (0, 1, ...) or, for None, the unseen test object."""
    if case == "lines":
        seed = 2 if index is None else 11 + index
        return SimulationConfig(patch_size=patch_size, n_positions=positions, seed=seed, step_px=step,
                                nphotons=1e5 if nphotons is None else nphotons)
    if case == "disklines":
        seed = 2 if index is None else 11 + index
        return SimulationConfig(patch_size=patch_size, n_positions=positions, seed=seed, step_px=step,
                                object_kind="lines", probe_kind="disk", scan_kind="raster",
                                nphotons=1e6 if nphotons is None else nphotons)
    if case == "images":
        pictures = TEST_PICTURES if index is None else TRAIN_PICTURES[index % len(TRAIN_PICTURES)]
        return SimulationConfig(object_kind="image", probe_kind="zoneplate", scan_kind="spiral",
                                n_positions=positions, patch_size=patch_size,
                                nphotons=1e6 if nphotons is None else nphotons, images=pictures,
                                seed=3 if index is None else 21 + index, step_px=step)
    raise ConfigError(f"unknown case {case!r}: lines, disklines, images or paperlines")


@dataclass(frozen=True)
class Case:
    name: str
    common: dict[str, Any]
    test: dict[str, Any]
    train: tuple[dict[str, Any], ...]

    def config(self, extra: dict[str, Any], n_positions: int = 1500) -> SimulationConfig:
        return SimulationConfig(patch_size=64, n_positions=n_positions, **self.common, **extra)

    def scan(self, extra: dict[str, Any], n_positions: int = 1500) -> ScanData:
        return simulate(self.config(extra, n_positions))


@dataclass(frozen=True)
class PaperLinesCase(Case):
    """PtychoPINN's own lines sample (:func:`paper_lines_object`: blurred lines, the phase a
    function of the amplitude), zone-plate probe, raster with a 4 px step, 1e9 photons: the data on which
    the network reconstructs an unseen object at N = 64 (QUALITY-004)."""

    def config(self, extra: dict[str, Any], n_positions: int = 1500) -> SimulationConfig:
        raise TypeError("the paperlines sample is not a SimulationConfig object kind: use scan()")

    def scan(self, extra: dict[str, Any], n_positions: int = 1500) -> ScanData:
        return simulate_paper_lines(64, n_positions, extra["seed"], self.common["nphotons"], self.common["step_px"])


IMAGES = dict(object_kind="image", probe_kind="zoneplate", scan_kind="spiral")
CASES = {
    "images": Case("images", {**IMAGES, "nphotons": 1e6}, {"seed": 1},
                   tuple({"images": pair, "seed": 10 + i} for i, pair in enumerate(TRAIN_PAIRS))),
    "lines": Case("lines", dict(object_kind="lines", probe_kind="disk", scan_kind="raster", nphotons=1e6),
                  {"seed": 1}, tuple({"seed": 11 + i} for i in range(4))),
    "lowdose": Case("lowdose", {**IMAGES, "nphotons": 1e4}, {"seed": 1},
                    tuple({"images": pair, "seed": 10 + i} for i, pair in enumerate(TRAIN_PAIRS))),
    # Seeds as in pinn_ablation.py --case paperlines: test object 2, training objects 11, 12, ...
    "paperlines": PaperLinesCase("paperlines", {"object_kind": "paperlines", "probe_kind": "zoneplate",
                                                "scan_kind": "raster", "nphotons": 1e9, "step_px": 4.0},
                                 {"seed": 2}, tuple({"seed": 11 + i} for i in range(4))),
}
