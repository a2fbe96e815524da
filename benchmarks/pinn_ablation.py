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
  picture pairs (:data:`~ptychodus_torch_plugin.data.simulate.presets.TRAIN_PICTURES`).

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

import torch

from ptychodus_torch_plugin.config import ExecutionConfig, ModelConfig, TrainingConfig
from ptychodus_torch_plugin.data import save_npz
from ptychodus_torch_plugin.data.scan import ScanData
from ptychodus_torch_plugin.data.simulate.presets import (
    ablation_simulation,
    simulate_paper_lines,
    simulate_picture_crops,
)
from ptychodus_torch_plugin.data.simulate.simulate import simulate
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
    "loginput": {"input_transform": "log"},
}

MODEL_KEYS = {f.name for f in fields(ModelConfig)}


def make_scan(args: argparse.Namespace, positions: int, index: int | None) -> ScanData:
    if args.picture_crops and index is not None:
        return simulate_picture_crops(ablation_simulation(args.case, args.patch_size, positions, index, args.nphotons,
                                                 args.step))
    if args.case == "paperlines":
        seed = 2 if index is None else 11 + index
        step = args.step if args.step else args.patch_size / 16
        return simulate_paper_lines(args.patch_size, positions, seed, args.nphotons or 1e9, step)
    config = ablation_simulation(args.case, args.patch_size, positions, index, args.nphotons, args.step)
    return simulate(replace(config, probe_radius_px=args.probe_radius) if args.probe_radius else config)


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
