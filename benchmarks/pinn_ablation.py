"""PINN ablations on an unseen sample: one change at a time, each figure reproducible by one command.

    python benchmarks/pinn_ablation.py --case lines --patch-size 32 --gridsize 1,2 \\
        --variants baseline,central,central+uniform --epochs 30 --json results.jsonl

Every run trains the ``pinn`` model on simulated *training* scans (several objects), reconstructs a scan of
a different, unseen object with the trained network alone, and grades it against that object's truth with
``evaluation.evaluate`` over ``region_mask`` (as ``benchmarks/quality.py`` and the trainer do): SSIM,
Pearson correlation and PSNR of amplitude and phase, FRC 0.5 cutoff.

Cases (``--case``):

- ``lines``: random-lines objects (PtychoPINN's test pattern), zone-plate probe, raster scan; training
  objects use seeds 11, 12, ...; the test object seed 2.
- ``paperlines``: PtychoPINN's own simulated "lines" sample, for comparing with the paper's figures: the
  amplitude is random full-length lines blurred at three scales, gf(L, 1) + 2 gf(L, 5) + 5 gf(L, 10)
  (normalised to a maximum of 1), and the phase a function of it, pi tanh((A - 1/2) / (3 mean A)) (their
  ``mk_lines_img`` and ``dummy_phi``); simulated with this package's forward model, zone-plate probe,
  raster scan, 1e9 photons by default (their default). Amplitude and phase share their structure here, unlike
  ``lines``, whose amplitude and phase are independent thin lines on a flat background.
- ``disklines``: the ``lines`` objects seen through a flat-phase *disk* probe on a raster, 1e6 photons
  (``compare_ptychi.py``'s lines case): a real, centro-symmetric probe, so one pattern alone cannot tell
  the object from its twin; the lines objects' phase (lines above the background) can, and the shared
  encoder reconstructs this case at N = 32 (docs/findings.md QUALITY-004).
- ``images``: pictures (``SimulationConfig(object_kind="image")``), zone-plate probe, spiral scan, 1e6
  photons; the test sample is the default pair ("camera", "astronaut"), the training samples are *other*
  picture pairs (:data:`TRAIN_PICTURES`).

A variant is a ``+``-joined list of changes (:data:`CHANGES`) applied to :data:`BASE`, the configuration
before this study (QUALITY-001's run); ``default`` is the package's current defaults. Simulated scans are
cached in ``--data-dir`` so variants share identical data. Each result is appended to ``--json`` as one
JSON line as soon as it is measured.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import ndimage

from ptychodus_torch_plugin.config import ExecutionConfig, ModelConfig, TrainingConfig
from ptychodus_torch_plugin.data import save_npz
from ptychodus_torch_plugin.data.scan import ScanData
from ptychodus_torch_plugin.data.simulate.config import SimulationConfig
from ptychodus_torch_plugin.data.simulate.objects import (
    BUNDLED_IMAGES,
    bundled_image,
    to_transmission,
    unit_range,
)
from ptychodus_torch_plugin.data.simulate.probes import make_probe
from ptychodus_torch_plugin.data.simulate.scans import make_trajectory, place_in_object, required_object_size
from ptychodus_torch_plugin.data.simulate.simulate import noiseless_intensity, simulate
from ptychodus_torch_plugin.models.pinn import PtychoModel
from ptychodus_torch_plugin.training.trainer import train

#: The configuration before this study (QUALITY-001): the changes below are measured against it.
BASE: dict[str, Any] = {
    "channels": (16, 32, 64), "object_support": "full", "canvas_weights": "probe", "amplitude_max": 2.0,
    "scale_trainable": False, "learning_rate": 1e-3, "scheduler": "cosine", "batch_size": 16, "k_neighbours": 7,
    "group_selection": "random", "group_encoder": "joint", "normalization": "none",
}

#: One change each; combine with '+'.
CHANGES: dict[str, dict[str, Any]] = {
    "baseline": {},
    "default": {},  # handled in configs(): the package's current defaults, nothing from BASE
    "central": {"object_support": "central"},
    "uniform": {"canvas_weights": "uniform"},
    "sigmoid": {"amplitude_max": 1.0},
    "scale": {"scale_trainable": True},
    "wide": {"channels": (32, 64, 128)},
    "paperwide": {"channels": (64, 128, 256)},
    "deep": {"channels": (16, 32, 64, 128)},
    "deep5": {"channels": (16, 32, 64, 128, 128)},
    "compact": {"group_selection": "compact"},
    "shared": {"group_encoder": "shared"},
    "k3": {"k_neighbours": 3},
    "k4": {"k_neighbours": 4},
    "k12": {"k_neighbours": 12},
    "plateau": {"scheduler": "plateau", "lr_gamma": 0.5, "plateau_patience": 2},
    "constant": {"scheduler": "constant"},
    "lr3e-4": {"learning_rate": 3e-4},
    "lr2e-3": {"learning_rate": 2e-3},
    "batch8": {"batch_size": 8},
    "batch32": {"batch_size": 32},
    "groupnorm": {"normalization": "group"},
    "nonorm": {"normalization": "none"},
    "lr3e-3": {"learning_rate": 3e-3},
    "pool8": {"pool_last_stage": False},
    "loginput": {},  # handled in use_log_input(): an experiment, not a package option
}

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

MODEL_KEYS = {f.name for f in fields(ModelConfig)}
#: The package's own forward, put back for every variant without ``loginput`` (see :func:`use_log_input`).
_PACKAGE_FORWARD = PtychoModel.forward


def paper_lines_object(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """PtychoPINN's simulated lines sample (see the module docstring): lines drawn on a canvas twice the
    size at their density (400 lines on 784 x 784 pixels), blurred at 1, 5 and 10 px, centre crop."""
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


def make_scan(args: argparse.Namespace, positions: int, index: int | None) -> ScanData:
    if args.picture_crops and index is not None:
        return simulate_picture_crops(simulation(args.case, args.patch_size, positions, index, args.nphotons,
                                                 args.step))
    if args.case == "paperlines":
        seed = 2 if index is None else 11 + index
        step = args.step if args.step else args.patch_size / 16
        return simulate_paper_lines(args.patch_size, positions, seed, args.nphotons or 1e9, step)
    config = simulation(args.case, args.patch_size, positions, index, args.nphotons, args.step)
    return simulate(replace(config, probe_radius_px=args.probe_radius) if args.probe_radius else config)


def simulation(case: str, patch_size: int, positions: int, index: int | None, nphotons: float | None,
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
    raise SystemExit(f"unknown case {case!r}: lines, disklines, images or paperlines")


def probe_tag(args: argparse.Namespace) -> str:
    """``_probe<R>`` in data and run folder names when ``--probe-radius`` is given, so runs never share."""
    return f"_probe{args.probe_radius:g}" if args.probe_radius else ""


def data_tag(args: argparse.Namespace) -> str:
    """What else sets the simulated scans apart, for data and run folder names: probe radius, picture crops."""
    return probe_tag(args) + ("_crops" if args.picture_crops else "")


def dataset(args: argparse.Namespace) -> tuple[list[Path], Path]:
    """Simulate (or reuse) the training scans and the test scan; returns their files."""
    folder = args.data_dir / f"{args.case}_N{args.patch_size}_obj{args.train_objects}_pos{args.train_positions}_" \
                             f"test{args.test_positions}_ph{args.nphotons or 'default'}" \
                             f"{f'_step{args.step:g}' if args.step else ''}{data_tag(args)}"
    folder.mkdir(parents=True, exist_ok=True)
    per_object = args.train_positions // args.train_objects
    train_files = []
    for index in range(args.train_objects):
        path = folder / f"train{index}.npz"
        if not path.is_file():
            save_npz(make_scan(args, per_object, index), path)
        train_files.append(path)
    test = folder / "test.npz"
    if not test.is_file():
        save_npz(make_scan(args, args.test_positions, None), test)
    return train_files, test


def use_log_input(enabled: bool) -> None:
    """Variant ``loginput``: the network sees log(1 + a/s) instead of a/s (a: amplitudes, s: the model's
    input normaliser), which compresses a bright central spot against the weak high-angle speckle (the
    disk-probe lead, findings QUALITY-005). Wired here by rebinding ``PtychoModel.forward`` for this
    process, in training and in the trainer's final reconstruction alike; model files do not record it,
    so a network trained this way is only graded here."""

    def log_input_forward(self: PtychoModel, amplitudes: torch.Tensor) -> torch.Tensor:
        return self.generator(torch.log1p(amplitudes / self.scale))

    PtychoModel.forward = log_input_forward if enabled else _PACKAGE_FORWARD  # type: ignore[method-assign]


def configs(variant: str, gridsize: int, args: argparse.Namespace, train_files: list[Path], test: Path,
            output: Path) -> TrainingConfig:
    names = variant.split("+")
    unknown = [n for n in names if n not in CHANGES]
    if unknown:
        raise SystemExit(f"unknown change(s) {unknown}; known: {', '.join(CHANGES)}")
    settings: dict[str, Any] = {} if "default" in names else dict(BASE)
    for name in names:
        settings.update(CHANGES[name])
    model = ModelConfig(gridsize=gridsize, **{k: v for k, v in settings.items() if k in MODEL_KEYS})
    training = {k: v for k, v in settings.items() if k not in MODEL_KEYS}
    config = TrainingConfig(train_data_file=tuple(train_files), test_data_file=test, output_dir=output,
                            max_epochs=args.epochs, seed=args.seed, quiet=True, image_every_n_epochs=0,
                            model=model)
    return replace(config, **training)


KEYS = ("amplitude_ssim", "phase_ssim", "amplitude_pearson", "phase_pearson", "frc_cutoff", "paper_amplitude_ssim",
        "paper_phase_ssim")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", default="lines", choices=("lines", "disklines", "images", "paperlines"))
    parser.add_argument("--patch-size", type=int, default=32)
    parser.add_argument("--gridsize", default="1,2")
    parser.add_argument("--variants", default="baseline", help="comma-separated; each a '+'-joined list of changes")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--train-objects", type=int, default=4)
    parser.add_argument("--train-positions", type=int, default=1024, help="in all, shared by the objects")
    parser.add_argument("--test-positions", type=int, default=256)
    parser.add_argument("--nphotons", type=float, default=None,
                        help="default: 1e5 (lines), 1e6 (disklines, images), 1e9 (paperlines)")
    parser.add_argument("--step", type=float, default=None, help="scan step, px (default N/8; paperlines N/16)")
    parser.add_argument("--probe-radius", type=float, default=None,
                        help="probe radius, px (default N/5); not for paperlines, which has its own probe")
    parser.add_argument("--picture-crops", action="store_true",
                        help="images case: each training object from random windows (crop, rotation, flip) of "
                             "two of the pictures outside the test pair, instead of whole picture pairs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/pinn_ablation_data"))
    parser.add_argument("--output-dir", type=Path, default=Path("/tmp/pinn_ablation_runs"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path, help="append one JSON line per run")
    args = parser.parse_args()
    if args.probe_radius and args.case == "paperlines":
        parser.error("--probe-radius: the paperlines case has its own probe (PtychoPINN's)")
    if args.picture_crops and args.case != "images":
        parser.error("--picture-crops: only for the images case")
    torch.set_num_threads(args.threads)
    train_files, test = dataset(args)
    rows = []
    for variant in args.variants.split(","):
        for gridsize in map(int, args.gridsize.split(",")):
            name = f"{args.case}{data_tag(args)}_N{args.patch_size}_{variant}_g{gridsize}_s{args.seed}"
            output = args.output_dir / name
            config = configs(variant, gridsize, args, train_files, test, output)
            use_log_input("loginput" in variant.split("+"))
            start = time.perf_counter()
            result = train(config, ExecutionConfig(accelerator=args.device, logger="none"))
            row = {"case": args.case, "N": args.patch_size, "gridsize": gridsize, "variant": variant,
                   "epochs": args.epochs, "seed": args.seed, "train_objects": args.train_objects,
                   "train_positions": args.train_positions, "test_positions": args.test_positions,
                   "nphotons": args.nphotons, "step": args.step, "probe_radius": args.probe_radius,
                   "picture_crops": args.picture_crops,
                   "threads": args.threads, "wall_s": round(time.perf_counter() - start, 1),
                   "val_nll": result.history[-1].get("val_loss"), "best_val_nll": min(
                       h["val_loss"] for h in result.history if "val_loss" in h),
                   **(result.quality or {})}
            rows.append(row)
            print(f"{variant:>28} g{gridsize} {row['wall_s']:>6.0f}s " + " ".join(f"{k} {row[k]:.3f}" for k in KEYS),
                  flush=True)
            if args.json:
                with open(args.json, "a") as handle:
                    handle.write(json.dumps(row) + "\n")
    print(f"\n{'variant':>28} {'g':>2} {'wall s':>7} " + " ".join(f"{k:>17}" for k in KEYS))
    for r in rows:
        print(f"{r['variant']:>28} {r['gridsize']:>2} {r['wall_s']:>7.0f} " + " ".join(f"{r[k]:>17.3f}" for k in KEYS))


if __name__ == "__main__":
    main()
