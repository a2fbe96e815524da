"""Simulator: determinism, noise statistics, non-trivial objects, probes and scans, config errors, CLI."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from ptychodus_torch_plugin.cli import simulate as cli
from ptychodus_torch_plugin.data import load_scan
from ptychodus_torch_plugin.data.simulate import (
    NOISELESS_PHOTONS,
    OBJECT_KINDS,
    PROBE_KINDS,
    SCAN_KINDS,
    SimulationConfig,
    make_object,
    make_probe,
    make_trajectory,
    noiseless_intensity,
    simulate,
)
from ptychodus_torch_plugin.data.simulate.probes import centred_radius
from ptychodus_torch_plugin.errors import ConfigError, MissingExtraError

SMALL = SimulationConfig(patch_size=32, n_positions=16, nphotons=1e4, seed=5)


def test_same_seed_same_data_and_different_seeds_differ() -> None:
    a, b, c = simulate(SMALL), simulate(SMALL), simulate(SimulationConfig(**{**SMALL.__dict__, "seed": 6}))
    np.testing.assert_array_equal(a.amplitudes, b.amplitudes)
    np.testing.assert_array_equal(a.object_truth, b.object_truth)
    np.testing.assert_array_equal(a.positions, b.positions)
    assert not np.array_equal(a.amplitudes, c.amplitudes)
    assert not np.array_equal(a.object_truth, c.object_truth)


def test_noise_level_does_not_change_object_or_scan() -> None:
    noisy = simulate(SimulationConfig(**{**SMALL.__dict__, "jitter_px": 1.0}))
    clean = simulate(SimulationConfig(**{**SMALL.__dict__, "jitter_px": 1.0, "nphotons": None}))
    np.testing.assert_array_equal(noisy.object_truth, clean.object_truth)
    np.testing.assert_array_equal(noisy.positions, clean.positions)


def test_poisson_noise_has_the_requested_mean_and_variance() -> None:
    nphotons = 2e4
    noisy = simulate(SimulationConfig(**{**SMALL.__dict__, "nphotons": nphotons}))
    expected = noiseless_intensity(noisy.object_truth, noisy.probe, noisy.positions)
    counts = noisy.amplitudes.astype(np.float64) ** 2
    np.testing.assert_allclose(counts, np.rint(counts), atol=1e-2)  # whole photon counts
    assert expected.sum(axis=(-2, -1)).mean() == pytest.approx(
        nphotons, rel=1e-4
    )  # the returned probe is scaled
    assert counts.sum(axis=(-2, -1)).mean() == pytest.approx(nphotons, rel=0.01)
    residual = (counts - expected) / np.sqrt(np.maximum(expected, 1e-12))
    bright = expected > 20
    assert abs(residual[bright].mean()) < 0.05 and residual[bright].std() == pytest.approx(1.0, abs=0.05)


def test_noiseless_amplitudes_equal_the_forward_model() -> None:
    clean = simulate(SimulationConfig(**{**SMALL.__dict__, "nphotons": None}))
    expected = noiseless_intensity(clean.object_truth, clean.probe, clean.positions)
    np.testing.assert_allclose(clean.amplitudes.astype(np.float64) ** 2, expected, rtol=1e-5, atol=1e-3)
    assert expected.sum(axis=(-2, -1)).mean() == pytest.approx(NOISELESS_PHOTONS, rel=1e-4)


@pytest.mark.parametrize("kind", [kind for kind in OBJECT_KINDS if kind != "paperlines"])
def test_objects_have_nontrivial_amplitude_and_phase(kind: str) -> None:
    obj = make_object(kind, (64, 80), np.random.default_rng(0))
    amplitude, phase = np.abs(obj), np.angle(obj)
    assert obj.shape == (64, 80) and obj.dtype == np.complex64
    assert amplitude.min() >= 0.5 - 1e-6 and amplitude.max() <= 1 + 1e-6
    assert amplitude.max() - amplitude.min() > 0.3 and amplitude.std() > 0.02
    assert -math.pi / 2 - 1e-6 <= phase.min() and phase.max() <= math.pi / 2 + 1e-6
    assert phase.max() - phase.min() > 1.0 and phase.std() > 0.05
    assert abs(np.corrcoef(amplitude.ravel(), phase.ravel())[0, 1]) < 0.9  # two independent maps


def test_paper_lines_are_ptychopinns_sample_one_structure_in_amplitude_and_phase() -> None:
    """``paperlines`` is PtychoPINN's own sample, not a weak transmission: amplitude in (0, 1] reaching 1,
    the phase pi tanh((a - 1/2) / (3 mean a)) of it (so the two maps are one structure), and seeded."""
    obj = make_object("paperlines", (64, 80), np.random.default_rng(0))
    amplitude, phase = np.abs(obj), np.angle(obj)
    assert obj.shape == (64, 80) and obj.dtype == np.complex64
    assert amplitude.min() >= 0 and amplitude.max() == pytest.approx(1.0) and amplitude.std() > 0.05
    expected = np.pi * np.tanh((amplitude - 0.5) / (3 * amplitude.mean()))
    np.testing.assert_allclose(phase, np.angle(np.exp(1j * expected)), atol=1e-4)
    np.testing.assert_array_equal(obj, make_object("paperlines", (64, 80), np.random.default_rng(0)))


@pytest.mark.parametrize("kind", PROBE_KINDS)
def test_probes_are_centred_unit_power_and_mostly_inside_their_radius(kind: str) -> None:
    probe = make_probe(kind, 64, 12.0)
    assert probe.shape == (1, 64, 64) and probe.dtype == np.complex64
    intensity = np.abs(probe[0]) ** 2
    assert intensity.sum() == pytest.approx(1.0, rel=1e-5)
    rows, cols = np.indices(intensity.shape)
    centre = (np.sum(rows * intensity), np.sum(cols * intensity))
    np.testing.assert_allclose(centre, (32.0, 32.0), atol=0.05)  # pixel N//2
    assert intensity[centred_radius(64) < 18].sum() > 0.95


def test_zone_plate_probe_has_a_structured_phase() -> None:
    probe = make_probe("zoneplate", 64, 12.0)[0]
    inside = centred_radius(64) < 10
    assert np.angle(probe[inside]).std() > 0.3  # defocus: not a flat-phase spot


@pytest.mark.parametrize("kind", SCAN_KINDS)
@pytest.mark.parametrize("jitter", [0.0, 2.5])
def test_every_patch_stays_inside_the_object(kind: str, jitter: float) -> None:
    scan = simulate(
        SimulationConfig(patch_size=32, n_positions=30, scan_kind=kind, jitter_px=jitter, nphotons=None)
    )
    low = scan.positions - 16
    high = low + 31
    assert low.min() >= 0 and (high < np.asarray(scan.object_shape)).all()
    assert len(np.unique(np.round(scan.positions, 6), axis=0)) == 30


def test_trajectory_step_and_shapes() -> None:
    grid = make_trajectory("raster", 6, 5.0, grid=(2, 3))
    np.testing.assert_allclose(np.diff(np.unique(grid[:, 1])), 5.0)
    spiral = make_trajectory("spiral", 200, 5.0)
    nearest = np.sort(np.linalg.norm(spiral[:, None] - spiral[None], axis=-1), axis=1)[:, 1]
    assert 3.0 < np.median(nearest) < 7.0  # density of a 5 px raster


def test_explicit_object_size_is_honoured_and_checked() -> None:
    assert simulate(
        SimulationConfig(patch_size=32, n_positions=4, object_size=80, nphotons=None)
    ).object_shape == (80, 80)
    with pytest.raises(ConfigError, match="needs an object of at least"):
        simulate(SimulationConfig(patch_size=32, n_positions=64, step_px=8, object_size=40))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"object_kind": "cat"}, "unknown object kind 'cat'"),
        ({"probe_kind": "gauss"}, "unknown probe kind"),
        ({"scan_kind": "zigzag"}, "unknown scan kind"),
        ({"patch_size": 4}, "patch size must be an integer >= 8"),
        ({"n_positions": 0}, "number of positions"),
        ({"step_px": -1.0}, "step must be finite and > 0"),
        ({"jitter_px": float("nan")}, "jitter must be finite"),
        ({"nphotons": 0.0}, "nphotons must be finite and > 0"),
        ({"probe_radius_px": 40.0}, "does not fit"),
        ({"probe_central_stop": 1.0}, "central stop"),
        ({"object_size": 10}, "object size must be an integer >= the patch size"),
        ({"grid": (2, 2)}, "fewer than the 64 requested"),
        ({"seed": -1}, "seed must be a non-negative integer"),
    ],
)
def test_bad_settings_raise_config_error(changes: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        simulate(SimulationConfig(**changes))


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return parser.parse_args(argv)


def test_cli_writes_npz_and_ptychodus_pair(tmp_path: Path) -> None:
    args = _parse(
        [
            "--output",
            str(tmp_path / "out" / "train.npz"),
            "--ptychodus-dir",
            str(tmp_path / "pty"),
            "--patch-size",
            "32",
            "--n-positions",
            "9",
            "--scan",
            "spiral",
            "--probe",
            "disk",
            "--object",
            "grf",
            "--seed",
            "2",
            "--jitter",
            "0.5",
            "--nphotons",
            "1e5",
        ]
    )
    assert cli.run(args) == 0
    npz, pair = load_scan(tmp_path / "out" / "train.npz"), load_scan(tmp_path / "pty")
    assert npz.n_patterns == 9 and npz.patch_size == 32
    np.testing.assert_array_equal(npz.amplitudes, pair.amplitudes)
    np.testing.assert_allclose(npz.positions, pair.positions, atol=1e-9)


def test_cli_noiseless_and_bad_options(tmp_path: Path) -> None:
    assert _parse(["--output", "x.npz", "--nphotons", "none"]).nphotons is None
    with pytest.raises(ConfigError, match=r"must name an \.npz file"):
        cli.run(_parse(["--output", str(tmp_path / "x.h5")]))
    with pytest.raises(ConfigError, match="step must be finite"):
        cli.run(_parse(["--output", str(tmp_path / "x.npz"), "--step", "0"]))


def test_cli_choices_match_the_simulator() -> None:
    assert (cli._OBJECT_KINDS, cli._PROBE_KINDS, cli._SCAN_KINDS) == (OBJECT_KINDS, PROBE_KINDS, SCAN_KINDS)


def test_image_object_without_scikit_image_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("skimage", "skimage.data", "skimage.color", "skimage.transform"):
        monkeypatch.setitem(sys.modules, name, None)  # makes the import fail
    with pytest.raises(MissingExtraError, match=r"ptychodus-torch-plugin\[all\]"):
        make_object("image", (32, 32), np.random.default_rng(0))


def test_image_pairs_pick_the_pictures_and_unknown_names_are_refused() -> None:
    base = dict(object_kind="image", patch_size=16, n_positions=9, nphotons=None, seed=0)
    default = simulate(SimulationConfig(**base))
    other = simulate(SimulationConfig(**base, images=("moon", "coins")))
    assert default.object_truth.shape == other.object_truth.shape
    assert not np.allclose(default.object_truth, other.object_truth)
    with pytest.raises(ConfigError, match="unknown image 'nope'"):
        SimulationConfig(**base, images=("moon", "nope"))
