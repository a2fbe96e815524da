"""The throughput benchmark runs end to end and writes figures that make sense (tiny settings, CPU); the
ablation benchmark's probe radius reaches its simulated scans."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load_benchmark():
    path = ROOT / "benchmarks" / "throughput.py"
    spec = importlib.util.spec_from_file_location("throughput_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def _generator_flops(size: int, n_patterns: int) -> int:
    """Forward FLOPs of the default generator per pattern, by hand: 2 * 9 * c_in * c_out * H * W per 3x3
    convolution (biases and element-wise work not counted, as FlopCounterMode does not count them)."""
    from ptychodus_torch_plugin.config import ModelConfig

    config = ModelConfig(patch_size=size)
    channels = list(config.widths)
    stages = len(channels) - (1 if config.object_support == "central" else 0)  # central: output N/2, padded

    def conv(c_in: int, c_out: int, side: int) -> int:
        return 2 * 9 * c_in * c_out * side * side

    total, side, widths = 0, size, [n_patterns, *channels]
    for c_in, c_out in zip(widths[:-1], widths[1:]):  # encoder: two convolutions, then 2x pooling
        total += conv(c_in, c_out, side) + conv(c_out, c_out, side)
        side //= 2
    decoder, back = 0, list(reversed(channels))
    for c_in, c_out in list(zip(back, [*back[1:], back[-1]]))[:stages]:  # decoder: 2x up-sampling, two convolutions
        side *= 2
        decoder += conv(c_in, c_out, side) + conv(c_out, c_out, side)
    decoder += conv(back[-1], n_patterns, side)  # output head
    return (total + 2 * decoder) // n_patterns  # amplitude and phase decoders


@pytest.mark.slow
def test_throughput_benchmark_writes_sane_figures(tmp_path):
    benchmark = _load_benchmark()
    out = tmp_path / "throughput.json"
    tiny = ("--device cpu --sizes 16 --gridsizes 1 --variants fp32,bf16 --batch 2 --steps 1 --warmup 1 "
            "--repeats 1 --positions 8 --quick --ceiling-time 0.01 --no-smoke").split()
    returned = benchmark.main([*tiny, "--json", str(out)])
    result = json.loads(out.read_text())
    assert result["complete"] is True and result["rows"] == json.loads(json.dumps(returned["rows"]))

    ceilings = result["ceilings"]
    assert _positive(ceilings["copy"]["device_copy_GBps"])
    assert set(ceilings["fft_transforms_per_s"]) == {"16", "64"}
    assert all(_positive(v) for v in ceilings["fft_transforms_per_s"].values())
    # a 16x16 FFT is cheaper than a 64x64 one on any machine
    assert ceilings["fft_transforms_per_s"]["16"] > ceilings["fft_transforms_per_s"]["64"]
    assert _positive(ceilings["matmul_TFLOPs"]["fp32"]) and _positive(ceilings["matmul_TFLOPs"]["bf16"])

    env = result["environment"]
    assert env["torch"] and env["python"] and env["torch_threads"] >= 1 and len(env["loadavg_start"]) == 3

    (case,) = result["cases"]
    flops = case["network_flops_per_pattern"]
    # training is forward + backward: about 3x forward (the first layer needs no input gradient)
    assert flops["forward"] == pytest.approx(_generator_flops(16, 1), rel=1e-9)
    assert 2.5 * flops["forward"] < flops["training"] < 3.0 * flops["forward"]

    assert [row["variant"] for row in result["rows"]] == ["fp32", "bf16"]
    for row in result["rows"]:
        train, infer = row["train"], row["inference"]
        assert _positive(train["patterns_per_s"]) and _positive(train["step_ms"]) and train["loss_finite"]
        assert _positive(infer["patterns_per_s"]) and infer["finite"] and infer["positions"] == 8
        assert infer["patterns_per_s"] == pytest.approx(infer["positions_per_s"])  # gridsize 1
        assert train["patterns_per_s"] == pytest.approx(1e3 * 2 / train["step_ms"])  # 2 groups per step
        assert _positive(train["peak_mib"]) and _positive(infer["peak_mib"])
        fractions = row["fractions"]
        peak = ceilings["matmul_TFLOPs"][row["variant"]]
        assert fractions["matmul_ceiling"] == row["variant"]
        assert fractions["train_of_matmul"] == pytest.approx(
            train["patterns_per_s"] * flops["training"] / (peak * 1e12))
        assert fractions["infer_of_matmul"] == pytest.approx(
            infer["patterns_per_s"] * flops["forward"] / (peak * 1e12))
        assert 0 < fractions["train_of_fft"] < 1 and 0 < fractions["infer_input_of_copy"] < 1
    fp32, bf16 = (row["quality"] for row in result["rows"])
    for key in ("amplitude_ssim", "phase_ssim"):
        assert fp32["vs_fp32"][key] == pytest.approx(1.0)  # the reference against itself
        assert 0.5 < bf16["vs_fp32"][key] <= 1.0 + 1e-9
    assert set(bf16["ssim_minus_fp32"]) == {"amplitude_ssim", "phase_ssim"}


def test_variant_names_parse_and_bad_ones_are_refused():
    benchmark = _load_benchmark()
    config = benchmark.parse_variant("bf16+cl+graphs")
    flags = (config.precision, config.channels_last, config.compile, config.cuda_graphs)
    assert flags == ("bf16", True, False, True)
    assert benchmark.parse_variant("fp32").channels_last is False
    with pytest.raises(ValueError):
        benchmark.parse_variant("fp16")
    with pytest.raises(ValueError):
        benchmark.parse_variant("bf16+turbo")
    with pytest.raises(SystemExit):
        benchmark.parse_args(["--device", "cpu", "--variants", "bf16+graphs"])


def _load_ablation():
    import sys

    path = ROOT / "benchmarks" / "pinn_ablation.py"
    spec = importlib.util.spec_from_file_location("pinn_ablation_benchmark", path)
    ablation = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = ablation
    spec.loader.exec_module(ablation)
    return ablation


def test_ablation_probe_radius_reaches_the_simulated_probe():
    """``pinn_ablation.py --probe-radius R`` simulates with a disk of radius R (default N/5)."""
    import argparse

    import numpy as np

    ablation = _load_ablation()

    def power_within(probe_radius: float | None, radius: float) -> float:
        args = argparse.Namespace(case="disklines", patch_size=32, nphotons=None, step=None, probe_radius=probe_radius,
                                  picture_crops=False)
        probe = np.abs(ablation.make_scan(args, 4, 0).probe[0]) ** 2
        axis = np.arange(32) - 16
        inside = np.hypot(axis[:, None], axis[None, :]) <= radius
        return float(probe[inside].sum() / probe.sum())

    assert power_within(3.2, 4.5) > 0.97  # a 3.2 px disk, soft edge 1.5 px
    assert power_within(None, 4.5) < 0.8  # the default 6.4 px disk (measured 0.63)


def test_ablation_picture_crops_make_distinct_training_objects_and_keep_the_test_pair():
    """``--picture-crops``: every training object is a different window of pictures outside the test pair,
    scanned as the images case is; the unseen test scan stays the whole (camera, astronaut) pair."""
    import argparse

    import numpy as np

    pytest.importorskip("skimage")
    from ptychodus_torch_plugin.data.simulate import presets

    ablation = _load_ablation()
    assert not set(presets.TEST_PICTURES) & set(presets.CROP_PICTURES)
    args = argparse.Namespace(case="images", patch_size=16, nphotons=None, step=None, probe_radius=None,
                              picture_crops=True)
    plain = argparse.Namespace(**{**vars(args), "picture_crops": False})
    first, second = (ablation.make_scan(args, 9, index) for index in (0, 1))
    assert first.object_truth.shape == second.object_truth.shape
    assert not np.allclose(first.object_truth, second.object_truth)
    whole = ablation.make_scan(plain, 9, 0)
    assert np.array_equal(first.positions, whole.positions)  # the images case's scan, another object
    assert not np.allclose(first.object_truth, whole.object_truth)
    amplitude, phase = np.abs(first.object_truth), np.angle(first.object_truth)
    assert amplitude.min() >= 0.5 - 1e-6 and amplitude.max() <= 1 + 1e-6 and np.ptp(amplitude) > 0.2
    assert np.abs(phase).max() <= np.pi / 2 + 1e-6 and np.ptp(phase) > 1.0
    np.testing.assert_array_equal(ablation.make_scan(args, 9, None).object_truth,
                                  ablation.make_scan(plain, 9, None).object_truth)


def test_patch_phase_sync_recovers_per_patch_phase_offsets_at_sub_pixel_positions():
    """``patch_phase_sync.py``: patches of one object at sub-pixel positions, each times its own random
    phase, get those phases back (up to one global phase) from their overlaps alone. The object carries a
    phase ramp of 0.5 rad/px, so a wrong sign or size of the sub-pixel shift would leave errors of tenths of
    a radian."""
    import sys

    import numpy as np
    import torch

    sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location("patch_phase_sync", ROOT / "benchmarks" / "patch_phase_sync.py")
    sync = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sync)

    rng = np.random.default_rng(5)
    period, n, side = 128.0, 16, 8
    waves = [((10.0, 0.0), 1.0)] + [(tuple(rng.integers(-4, 5, 2).astype(float)), 0.3 * rng.standard_normal())
                                    for _ in range(6)]

    def field(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        total = sum(a * np.exp(2j * np.pi * (k[0] * rows + k[1] * cols) / period) for k, a in waves)
        return np.exp(1j * np.angle(total)) * (1.2 + 0.2 * np.real(total) / np.abs(total))

    grid = np.stack(np.meshgrid(np.arange(6) * 3.0, np.arange(6) * 3.0, indexing="ij"), -1).reshape(-1, 2)
    positions = grid + rng.uniform(0, 1, grid.shape)
    u = np.arange(n, dtype=float)
    truth_offsets = rng.uniform(-np.pi, np.pi, len(positions))
    patches = np.stack([field(p[0] + u[:, None], p[1] + u[None, :]) * np.exp(1j * o)
                        for p, o in zip(positions, truth_offsets)])
    weights = torch.zeros(n, n)
    weights[4:4 + side, 4:4 + side] = 1.0
    pairs, products = sync.overlap_products(torch.from_numpy(patches.astype(np.complex64)), positions, weights)
    assert len(pairs) > 50
    theta = sync.synchronised_phases(pairs, products, len(positions))
    error = np.angle(np.exp(1j * (theta - truth_offsets)))
    error = np.angle(np.exp(1j * (error - np.angle(np.exp(1j * error).mean()))))
    assert np.abs(error).max() < 0.05


def test_ablation_log_input_variant_feeds_the_network_log1p_of_the_scaled_amplitudes():
    """``--variants ...+loginput`` is the stored model setting ``input_transform`` log (nothing of the
    package is rebound at run time): the network sees log(1 + a/s); without it, a/s."""
    import torch

    from ptychodus_torch_plugin.config import ModelConfig
    from ptychodus_torch_plugin.models.pinn import PtychoModel

    ablation = _load_ablation()
    probe = torch.ones(16, 16, dtype=torch.complex64)
    seen = []
    amplitudes = torch.rand(3, 1, 16, 16) * 50
    for changes in (ablation.CHANGES["loginput"], {}):
        model = PtychoModel(ModelConfig(patch_size=16, gridsize=1, channels=(4, 8), **changes), probe, 2.0).eval()
        model.generator.forward = lambda x: seen.append(x) or torch.zeros(x.shape, dtype=torch.complex64)
        model(amplitudes)
    torch.testing.assert_close(seen[0], torch.log1p(amplitudes / 2.0))
    torch.testing.assert_close(seen[1], amplitudes / 2.0)


def test_large_scan_benchmark_runs_end_to_end(tmp_path):
    """The scale benchmark on a tiny scan: simulate to HDF5, reconstruct streamed in 1 and 2 processes and
    resident in one, with figures in every row (the real sizes are run by hand; docs/performance.md)."""
    import subprocess
    import sys

    out = tmp_path / "large.json"
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "large_scan.py"), "--sizes", "400",
                             "--patch-size", "16", "--ranks", "1,2", "--epochs", "2", "--memory-budget", "40MB",
                             "--resident-too", "--data-dir", str(tmp_path / "data"), "--json", str(out)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    rows = json.loads(out.read_text())["runs"]
    assert [(r["label"], r["ranks"]) for r in rows] == [("budget", 1), ("budget", 2), ("auto", 1)]
    for row in rows:
        assert row["epochs"] == 2 and all(_positive(v) for v in row["patterns_per_s"] + row["s_per_epoch"])
        assert row["solver_peak_rss_mib"] > 50 and row["process_peak_rss_mib"] >= row["solver_peak_rss_mib"] - 1
