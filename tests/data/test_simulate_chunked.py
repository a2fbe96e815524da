"""The simulator in blocks: the same bits as the whole-array computation it replaced, whatever the block size.

The reference below is the simulator as it was before it worked in blocks (objects, forward model, scale and
noise), copied here so a change to the package cannot move both sides at once.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from ptychodus_torch_plugin.data.simulate import NOISELESS_PHOTONS, SimulationConfig, make_object, simulate
from ptychodus_torch_plugin.data.simulate import objects as objects_module
from ptychodus_torch_plugin.data.simulate.chunks import ForwardModel, chunk_patterns, intensity_totals
from ptychodus_torch_plugin.data.simulate.probes import make_probe
from ptychodus_torch_plugin.data.simulate.scans import make_trajectory, place_in_object, required_object_size
from ptychodus_torch_plugin.data.simulate.simulate import noiseless_intensity
from ptychodus_torch_plugin.errors import ConfigError
from ptychodus_torch_plugin.physics.scan_model import scan_amplitudes

# --- the reference: the whole-array simulator as it was --------------------------------------------------


def _old_unit_range(values: np.ndarray) -> np.ndarray:
    low, high = float(values.min()), float(values.max())
    if high - low <= 0:
        return np.zeros_like(values, dtype=np.float64)
    return (values - low) / (high - low)


def _old_lines(shape: tuple[int, int], rng: np.random.Generator, lines_per_kpx: float) -> np.ndarray:
    height, width = shape
    canvas = np.zeros(shape, dtype=np.float64)
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
        canvas[rows[inside], cols[inside]] = 1.0
    lines = _old_unit_range(ndimage.gaussian_filter(canvas, 1.0))
    return np.where(lines < 1e-3, 0.0, lines)


def _old_grf(shape: tuple[int, int], rng: np.random.Generator, correlation_px: float) -> np.ndarray:
    return _old_unit_range(ndimage.gaussian_filter(rng.standard_normal(shape), correlation_px, mode="wrap"))


def _old_image(shape: tuple[int, int], name: str) -> np.ndarray:
    from skimage import data as skdata
    from skimage.color import rgb2gray
    from skimage.transform import resize

    picture = np.asarray(getattr(skdata, name)(), dtype=np.float64)
    if picture.ndim == 3:
        picture = rgb2gray(picture[..., :3])
    return _old_unit_range(resize(picture, shape, order=1, anti_aliasing=True))


def _old_object(config: SimulationConfig, kind: str, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    if kind == "lines":
        amp, phase = _old_lines(shape, rng, config.lines_per_kpx), _old_lines(shape, rng, config.lines_per_kpx)
    elif kind == "grf":
        amp = _old_grf(shape, rng, config.grf_correlation_px)
        phase = _old_grf(shape, rng, config.grf_correlation_px)
    else:
        amp, phase = _old_image(shape, config.images[0]), _old_image(shape, config.images[1])
    amplitude = 1.0 - (1.0 - 0.5) * amp
    phase = math.pi / 2 * (2.0 * phase - 1.0)
    return (amplitude * np.exp(1j * phase)).astype(np.complex64)


def _old_intensity(obj: np.ndarray, probe: np.ndarray, positions: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        amplitude = scan_amplitudes(
            torch.from_numpy(obj.astype(np.complex128)),
            torch.from_numpy(probe.astype(np.complex128)),
            torch.from_numpy(np.asarray(positions, dtype=np.float64)),
        )
    return amplitude.numpy().astype(np.float64) ** 2


def _old_simulate(config: SimulationConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(amplitudes, probe, positions, object) exactly as the whole-array simulator computed them."""
    object_rng, scan_rng, noise_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(config.seed).spawn(3)
    )
    n = config.patch_size
    trajectory = make_trajectory(config.scan_kind, config.n_positions, config.step, config.grid)
    if config.object_size is None:
        shape = required_object_size(trajectory, n, config.jitter_px)
    else:
        shape = (config.object_size, config.object_size)
    positions = place_in_object(trajectory, shape, n, config.jitter_px, scan_rng)
    obj = _old_object(config, config.object_kind, shape, object_rng)
    probe = make_probe(
        config.probe_kind,
        n,
        config.probe_radius,
        edge_px=config.probe_edge_px,
        focus_radius_px=config.probe_focus_radius_px,
        central_stop=config.probe_central_stop,
    )
    intensity = _old_intensity(obj, probe, positions)
    target = NOISELESS_PHOTONS if config.nphotons is None else float(config.nphotons)
    scale = target / float(np.mean(np.sum(intensity, axis=(-2, -1))))
    intensity *= scale
    probe = (probe * np.sqrt(scale)).astype(np.complex64)
    counts = intensity if config.nphotons is None else noise_rng.poisson(intensity).astype(np.float64)
    return np.sqrt(counts).astype(np.float32), probe, positions, obj


# --- bit identity -----------------------------------------------------------------------------------------

CONFIGS = {
    "raster-noisy-32": SimulationConfig(patch_size=32, n_positions=64, nphotons=1e5, seed=1),
    "raster-noiseless-32": SimulationConfig(patch_size=32, n_positions=64, nphotons=None, seed=2),
    "spiral-jitter-64": SimulationConfig(patch_size=64, n_positions=32, scan_kind="spiral", jitter_px=1.3, seed=3),
    "raster-jitter-disk-grf": SimulationConfig(
        patch_size=32, n_positions=50, jitter_px=0.7, probe_kind="disk", object_kind="grf", nphotons=3e3, seed=4
    ),
    "spiral-image-noiseless": SimulationConfig(
        patch_size=32, n_positions=32, scan_kind="spiral", object_kind="image", nphotons=None, seed=5
    ),
    "raster-128-bright": SimulationConfig(patch_size=128, n_positions=64, nphotons=1e9, seed=6),
}


@pytest.mark.parametrize("name", CONFIGS)
def test_blocks_give_the_whole_array_bits(name: str) -> None:
    config = CONFIGS[name]
    expected = _old_simulate(config)
    for rows in (None, 1, 7):
        scan = simulate(config, rows=rows)
        got = (scan.amplitudes, scan.probe, scan.positions, scan.object_truth)
        for label, want, have in zip(("amplitudes", "probe", "positions", "object"), expected, got, strict=True):
            assert have.dtype == want.dtype and have.shape == want.shape, (name, rows, label)
            assert np.array_equal(have, want), (name, rows, label)


def test_noiseless_intensity_equals_the_whole_array_model() -> None:
    """Sub-pixel positions (each its own probe shift), repeated remainders, a complex64 object."""
    rng = np.random.default_rng(0)
    obj = (rng.uniform(0.5, 1, (90, 100)) * np.exp(1j * rng.uniform(-1, 1, (90, 100)))).astype(np.complex64)
    probe = make_probe("zoneplate", 32, 6.0) * 40.0
    positions = np.concatenate([rng.uniform(20, 70, (37, 2)), np.full((5, 2), 40.5), np.full((3, 2), 33.0)])
    assert np.array_equal(noiseless_intensity(obj, probe, positions), _old_intensity(obj, probe, positions))


def test_pass_one_totals_are_the_whole_array_sums() -> None:
    rng = np.random.default_rng(1)
    obj = np.exp(1j * rng.uniform(-1, 1, (70, 70))).astype(np.complex64)
    probe = make_probe("disk", 16, 4.0)
    positions = rng.uniform(10, 58, (41, 2))
    whole = _old_intensity(obj, probe, positions)
    totals = intensity_totals(ForwardModel(obj, probe, positions), rows=6)
    assert np.array_equal(totals.totals, np.sum(whole, axis=(-2, -1)))
    assert totals.largest == whole.max()


def test_poisson_draws_are_the_same_stream_in_blocks() -> None:
    """numpy's Generator.poisson draws element by element in C order, so blocks continue one stream."""
    lam = np.random.default_rng(3).exponential(30.0, (40, 8, 8))
    lam[:, :2] = 0.0  # zero-mean pixels draw nothing from the stream
    lam[7] *= 1e4  # the large-mean (rejection) sampler
    whole = np.random.default_rng(9).poisson(lam)
    rng = np.random.default_rng(9)
    blocks = np.concatenate([rng.poisson(lam[i : i + 7]) for i in range(0, 40, 7)])
    assert np.array_equal(blocks, whole)


def test_block_size_keeps_temporaries_bounded() -> None:
    assert chunk_patterns(64) == 204 and chunk_patterns(128) == 51 and chunk_patterns(1024) == 1
    assert chunk_patterns(64, n_modes=4) == 51


def test_absurd_photon_counts_are_refused_before_the_noise() -> None:
    with pytest.raises(ConfigError, match="brightest pixel"):
        simulate(SimulationConfig(patch_size=16, n_positions=4, nphotons=1e20))


# --- objects: less memory, same values ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["lines", "grf", "image"])
@pytest.mark.parametrize("shape", [(64, 80), (301, 257)])
def test_objects_are_the_values_of_the_whole_array_code(
    kind: str, shape: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(objects_module, "_BAND_PIXELS", 4000)  # many bands, the last one short
    config = SimulationConfig()
    new = make_object(kind, shape, np.random.default_rng(7))
    old = _old_object(config, kind, shape, np.random.default_rng(7))
    assert new.dtype == old.dtype == np.complex64
    assert np.array_equal(new, old)
