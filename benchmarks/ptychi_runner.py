"""Run pty-chi (LSQML or ePIE) on a :class:`ScanData`, for a side-by-side comparison with our models.

    python benchmarks/ptychi_runner.py [--epochs 100] [--device cpu] [--methods lsqml,epie]

pty-chi is an optional comparison, not a dependency: install it with ``pip install --no-deps ptychi``
plus its imports (pydantic, pandas, scikit-learn, tqdm, matplotlib). Everything here converts our
conventions (``ptychodus_torch_plugin.data.scan``) to pty-chi's, each of which, got wrong, would shift or
scale its result and make the comparison unfair:

- data: pty-chi wants intensities (counts), DC at the centre -> ``amplitudes**2`` with ``fft_shift=True``;
- probe: pty-chi's far-field FFT is unnormalised, ours orthonormal -> our probe divided by N;
- positions: LSQML/ePIE read the object window from ``round(round(p) + origin - (N-1)/2)`` and shift
  the probe by ``p - round(p)``; ours reads from ``floor(p) - N//2`` and shifts by ``p - floor(p)``: the
  same model (up to the Fourier-shifted probe's wrap) when the origin is -0.5 (``SPECIFIED``). With 0 the
  start is a half-integer that torch rounds half-to-even: positions with odd ``round(p)`` read 1 px off,
  the others right, a parity-dependent error rather than a clean 0.5 px shift;
- object: initialised to ones with the truth's shape, so the result needs no registration shift.

The true probe stays fixed and no positions are refined: only the object is reconstructed, as by our
models, so LSQML's first-epoch probe-intensity rescaling and the object/probe ambiguity rescaling (both
meant for a probe that is being refined) are switched off.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
import time
import types
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ptychodus_torch_plugin.data.scan import ScanData

#: Methods and their default batch sizes: the ones that converged fastest per epoch on 1500 patterns, N = 64.
METHODS = ("lsqml", "epie")
DEFAULT_BATCH = {"lsqml": 50, "epie": 20}

#: pty-chi's position origin for our convention; a module constant so a check can try another value.
_ORIGIN_PX = -0.5

INSTALL_HINT = "pip install --no-deps ptychi==2.2.0 pydantic pandas scikit-learn tqdm matplotlib"


@dataclass
class PtychiSnapshot:
    """The object after ``epoch`` finished epochs.

    ``elapsed_s`` is wall time since the first epoch started: building pty-chi's task (data copies,
    option checks) is excluded, and so is taking earlier snapshots, so it is the reconstruction's own time
    (pty-chi's one-off pre-run hook falls in epoch 1; on CUDA each epoch ends with a synchronize).
    ``object`` is complex (H, W) in the frame and shape of ``scan.object_truth`` / ``scan.object_shape``.
    """

    epoch: int
    elapsed_s: float
    object: np.ndarray


class _GaussianBlur(torch.nn.Module):
    """Stand-in for ``torchvision.transforms.GaussianBlur`` as pty-chi calls it (random object starts).

    Why: PyPI's torchvision is a CUDA build that fails to import beside a CPU torch, and pty-chi imports
    it at module level for this one class. Separable Gaussian, reflect padding, over the last two axes.
    A (low, high) sigma range, which torchvision samples from, is taken at its midpoint: pty-chi passes
    equal bounds, and a benchmark should not draw hidden random numbers.
    """

    def __init__(self, kernel_size: int | Sequence[int], sigma: float | Sequence[float] = (0.1, 2.0)) -> None:
        super().__init__()
        sizes = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
        if len(sizes) != 2 or any(int(k) < 1 or int(k) % 2 == 0 for k in sizes):
            raise ValueError(f"kernel sizes must be odd and positive; got {kernel_size!r}")
        std = float(sigma) if isinstance(sigma, (int, float)) else sum(map(float, sigma)) / len(sigma)
        if std <= 0:
            raise ValueError(f"sigma must be positive; got {sigma!r}")
        self.kernel_size: tuple[int, int] = (int(sizes[0]), int(sizes[1]))
        self.sigma: tuple[float, float] = (std, std)

    @staticmethod
    def _kernel(size: int, sigma: float, like: torch.Tensor) -> torch.Tensor:
        x = torch.arange(size, dtype=like.dtype, device=like.device) - (size - 1) / 2
        weights = torch.exp(-0.5 * (x / sigma) ** 2)
        return weights / weights.sum()

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        shape = img.shape
        x = img.reshape(-1, 1, shape[-2], shape[-1])
        (kh, kw), (sh, sw) = self.kernel_size, self.sigma
        x = torch.nn.functional.pad(x, [kw // 2, kw // 2, kh // 2, kh // 2], mode="reflect")
        x = torch.nn.functional.conv2d(x, self._kernel(kh, sh, x).view(1, 1, kh, 1))
        x = torch.nn.functional.conv2d(x, self._kernel(kw, sw, x).view(1, 1, 1, kw))
        return x.reshape(shape)


def _install_torchvision_stand_in() -> None:
    """Put a minimal ``torchvision`` in ``sys.modules`` if the real one does not import."""
    try:
        importlib.import_module("torchvision.transforms")
        return
    except Exception:  # noqa: BLE001 - a broken CUDA build raises RuntimeError/OSError, not ImportError
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]
    package = types.ModuleType("torchvision")
    transforms = types.ModuleType("torchvision.transforms")
    transforms.GaussianBlur = _GaussianBlur  # type: ignore[attr-defined]
    package.transforms = transforms  # type: ignore[attr-defined]
    package.__doc__ = transforms.__doc__ = "Stand-in installed by benchmarks/ptychi_runner.py"
    sys.modules["torchvision"] = package
    sys.modules["torchvision.transforms"] = transforms


def _import_ptychi() -> Any:
    _install_torchvision_stand_in()
    import ptychi.api  # noqa: F401 - import errors are reported by ptychi_available
    from ptychi.api.task import PtychographyTask  # noqa: F401

    return sys.modules["ptychi.api"]


def ptychi_available() -> str | None:
    """None if pty-chi imports, else a one-line reason with the install command."""
    try:
        _import_ptychi()
    except Exception as exc:  # noqa: BLE001 - any failure means 'not usable here'
        return f"pty-chi unavailable ({type(exc).__name__}: {exc}); {INSTALL_HINT}"
    return None


def _options(api: Any, method: str, batch_size: int, device: str, seed: int) -> Any:
    if method == "lsqml":
        options = api.LSQMLOptions()
        options.reconstructor_options.noise_model = api.NoiseModels.GAUSSIAN
        options.reconstructor_options.rescale_probe_intensity_in_first_epoch = False
    elif method == "epie":
        options = api.EPIEOptions()
        options.object_options.alpha = 1.0
    else:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    rec = options.reconstructor_options
    rec.batch_size = batch_size
    rec.batching_mode = api.BatchingModes.RANDOM
    rec.default_device = api.Devices.GPU if torch.device(device).type == "cuda" else api.Devices.CPU
    rec.default_dtype = api.Dtypes.FLOAT32
    rec.random_seed = seed
    options.data_options.fft_shift = True
    obj = options.object_options
    obj.optimizable = True
    obj.step_size = 1.0
    obj.remove_object_probe_ambiguity.enabled = False
    obj.determine_position_origin_coords_by = api.ObjectPosOriginCoordsMethods.SPECIFIED
    obj.position_origin_coords = np.array([_ORIGIN_PX, _ORIGIN_PX])
    options.probe_options.optimizable = False
    options.probe_position_options.optimizable = False
    options.opr_mode_weight_options.optimizable = False
    return options


@contextlib.contextmanager
def _torch_defaults_restored(device: str) -> Iterator[None]:
    """pty-chi sets torch's global default device and dtype; give the caller its own back afterwards."""
    default_device, default_dtype = torch.get_default_device(), torch.get_default_dtype()
    target = torch.device(device)
    on_cuda = target.type == "cuda" and target.index is not None
    try:
        with torch.cuda.device(target.index) if on_cuda else contextlib.nullcontext():
            yield
    finally:
        torch.set_default_device(default_device)
        torch.set_default_dtype(default_dtype)


def run_ptychi(
    scan: ScanData,
    method: str,
    epochs: int,
    *,
    batch_size: int | None = None,
    device: str = "cpu",
    record_epochs: Sequence[int] = (),
    seed: int = 0,
) -> list[PtychiSnapshot]:
    """Reconstruct the object of ``scan`` with pty-chi's ``method`` ("lsqml" or "epie"), true probe fixed.

    Runs one epoch at a time so each can be timed; returns a snapshot after each epoch in
    ``record_epochs`` (1-based) and after the last, in epoch order. ``seed`` fixes pty-chi's random
    batches. pty-chi also seeds the global RNGs (torch, NumPy, random) and sets torch's default
    device and dtype; the latter two are restored on return.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1; got {epochs}")
    reason = ptychi_available()
    if reason is not None:
        raise RuntimeError(reason)
    api = _import_ptychi()
    from ptychi.api.task import PtychographyTask

    n = scan.patch_size
    wanted = {e for e in record_epochs if 1 <= e <= epochs} | {epochs}
    options = _options(api, method, batch_size or DEFAULT_BATCH[method], device, seed)
    intensities = np.square(scan.amplitudes, dtype=np.float32)
    probe = (scan.probe / n).astype(np.complex64)[np.newaxis]  # (opr modes, incoherent modes, N, N)
    obj = np.ones((1, *scan.object_shape), dtype=np.complex64)
    valid = None if scan.bad_pixels is None else ~scan.bad_pixels
    cuda = torch.device(device).type == "cuda"
    snapshots: list[PtychiSnapshot] = []
    with _torch_defaults_restored(device):
        task = PtychographyTask(
            options,
            diffraction_data=intensities,
            object_data=obj,
            probe_data=probe,
            probe_position_x_px=scan.positions[:, 1].astype(np.float32),
            probe_position_y_px=scan.positions[:, 0].astype(np.float32),
            valid_pixel_mask=valid,
        )
        # pty-chi seeds torch globally but shuffles with its own torch.Generator at a fixed default seed,
        # so random_seed alone never changes the batches: seed that generator too.
        generator = getattr(task.reconstructor.dataloader, "generator", None)
        if generator is not None:
            generator.manual_seed(seed)
        with task:
            elapsed = 0.0
            for epoch in range(1, epochs + 1):
                start = time.perf_counter()
                task.run(1)
                if cuda:
                    torch.cuda.synchronize()
                elapsed += time.perf_counter() - start
                if epoch in wanted:
                    current = task.get_data_to_cpu("object", as_numpy=True)[0]
                    snapshots.append(PtychiSnapshot(epoch, elapsed, current.astype(np.complex64)))
    return snapshots


def _illumination(scan: ScanData) -> np.ndarray:
    from ptychodus_torch_plugin.physics import probe_intensity, stitch_patches

    ones = np.ones((scan.n_patterns, scan.patch_size, scan.patch_size), np.complex64)
    _, weights = stitch_patches(ones, scan.positions, scan.object_shape,
                                weights=probe_intensity(torch.from_numpy(scan.probe)))
    return weights.numpy()


def main(argv: Sequence[str] | None = None) -> None:
    """Simulate the 'images' case and print each method's SSIM against the truth."""
    from ptychodus_torch_plugin.data.simulate import SimulationConfig, simulate
    from ptychodus_torch_plugin.evaluation import evaluate, region_mask

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    reason = ptychi_available()
    if reason is not None:
        raise SystemExit(reason)
    scan = simulate(SimulationConfig(object_kind="image", probe_kind="zoneplate", scan_kind="spiral",
                                     n_positions=1500, patch_size=64, nphotons=1e6, seed=1))
    region = region_mask(_illumination(scan))
    print(f"{'method':8} {'epochs':>6} {'wall s':>8} {'s/epoch':>8} {'amp SSIM':>9} {'phase SSIM':>10} "
          "shift px")
    for method in args.methods.split(","):
        last = run_ptychi(scan, method, args.epochs, device=args.device, seed=args.seed)[-1]
        report = evaluate(last.object, scan.object_truth, region)
        shift = ", ".join(f"{s:+.2f}" for s in report.shift_px)
        print(f"{method:8} {last.epoch:6d} {last.elapsed_s:8.1f} {last.elapsed_s / last.epoch:8.3f} "
              f"{report.amplitude_ssim:9.4f} {report.phase_ssim:10.4f} ({shift})")


if __name__ == "__main__":
    main()
