"""Quality metrics: ambiguities removed, collapse detected, data range stated."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from ptychodus_torch_plugin.evaluation import evaluate, fourier_ring_correlation, region_mask


@pytest.fixture(scope="module")
def truth() -> np.ndarray:
    rng = np.random.default_rng(0)
    amplitude = 0.5 + 0.5 * ndimage.gaussian_filter(rng.random((96, 96)), 2)
    amplitude = (amplitude - amplitude.min()) / np.ptp(amplitude) * 0.5 + 0.5
    phase = ndimage.gaussian_filter(rng.standard_normal((96, 96)), 2)
    phase = phase / np.abs(phase).max() * 1.2
    return amplitude * np.exp(1j * phase)


@pytest.fixture(scope="module")
def region() -> np.ndarray:
    mask = np.zeros((96, 96), bool)
    mask[16:80, 16:80] = True
    return mask


def test_identical_images_score_perfectly(truth, region):
    report = evaluate(truth, truth, region)
    assert report.amplitude_ssim == pytest.approx(1) and report.phase_ssim == pytest.approx(1)
    assert report.amplitude_pearson == pytest.approx(1) and report.frc_cutoff == 1.0


def test_unmeasurable_differences_are_removed(truth, region):
    """Global phase, a linear phase ramp, an amplitude gain and a small shift are not errors."""
    rows, cols = np.indices(truth.shape)
    ambiguous = 0.7 * np.roll(truth, (2, -3), axis=(0, 1)) * np.exp(1j * (0.8 + 0.01 * rows - 0.02 * cols))
    report = evaluate(ambiguous, truth, region)
    assert report.shift_px == pytest.approx((-2, 3), abs=0.1)
    assert report.amplitude_ssim > 0.99 and report.phase_ssim > 0.95
    assert report.phase_pearson > 0.97


def test_collapse_to_a_flat_object_is_caught_by_correlation(truth, region):
    flat = np.full(truth.shape, 0.75 + 0j)
    report = evaluate(flat, truth, region)
    assert report.amplitude_pearson == 0.0
    assert report.amplitude_ssim < 0.5 and report.phase_ssim < 0.5


def test_blurred_reconstruction_scores_lower(truth, region):
    blurred = ndimage.gaussian_filter(truth.real, 4) + 1j * ndimage.gaussian_filter(truth.imag, 4)
    sharp = evaluate(truth, truth, region)
    soft = evaluate(blurred, truth, region)
    assert soft.amplitude_ssim < sharp.amplitude_ssim - 0.2
    assert soft.frc_cutoff < 0.5


def test_psnr_uses_the_true_data_range_not_255(truth, region):
    noisy = truth + 0.01 * np.random.default_rng(1).standard_normal(truth.shape)
    report = evaluate(noisy, truth, region)
    assert report.amplitude_range == pytest.approx(np.ptp(np.abs(truth)[16:80, 16:80]))
    assert 20 < report.amplitude_psnr_db < 60  # a 255 peak on unit-scale data would add ~48 dB


def test_frc_of_independent_noise_is_low():
    rng = np.random.default_rng(2)
    _, frc = fourier_ring_correlation(rng.standard_normal((64, 64)), rng.standard_normal((64, 64)))
    assert np.abs(frc[4:]).mean() < 0.2


def test_region_mask_keeps_well_illuminated_pixels():
    weights = np.zeros((10, 10))
    weights[2:8, 2:8] = 1.0
    weights[5, 5] = 4.0
    assert region_mask(weights, 0.3).sum() == 1
    assert region_mask(weights, 0.1).sum() == 36


def test_amplitude_noise_shows_in_the_amplitude_frc_when_the_phase_dominates(region):
    """The pictures cases: phase varying ~6x more than amplitude. Noise on the amplitude alone leaves the
    complex FRC at 1.0 (it follows the phase), so only the amplitude's own FRC tells the two apart."""
    rng = np.random.default_rng(3)
    smooth = ndimage.gaussian_filter(rng.standard_normal((96, 96)), 3)
    truth = (1 + 0.15 * smooth / smooth.std()) * np.exp(1j * 0.9 * ndimage.gaussian_filter(
        rng.standard_normal((96, 96)), 1.5) / 0.1)
    noisy_amplitude = np.abs(truth) + 0.3 * ndimage.gaussian_filter(rng.standard_normal((96, 96)), 1)
    report = evaluate(noisy_amplitude * np.exp(1j * np.angle(truth)), truth, region)
    clean = evaluate(truth, truth, region)
    assert clean.amplitude_frc_cutoff == clean.phase_frc_cutoff == 1.0
    assert report.phase_frc_cutoff == 1.0 and report.amplitude_frc_cutoff < 0.5
    assert report.amplitude_frc_cutoff < report.frc_cutoff


def test_paper_convention_ssim_reads_the_phase_over_2pi(truth, region):
    """PtychoPINN's phase SSIM maps the phase onto [0, 1] over 2pi, which is more lenient than ours (over
    the true phase's own range) whenever that range is below 2pi; a perfect image scores 1 either way, and
    the amplitude's global gain does not count in either."""
    from skimage.metrics import structural_similarity

    clean = evaluate(truth, truth, region)
    assert clean.paper_amplitude_ssim == pytest.approx(1.0) and clean.paper_phase_ssim == pytest.approx(1.0)
    rng = np.random.default_rng(4)
    noisy_phase = np.angle(truth) + 0.3 * rng.standard_normal(truth.shape)
    report = evaluate(np.abs(truth) * np.exp(1j * noisy_phase), truth, region)
    assert report.phase_range < 2 * np.pi
    assert report.phase_ssim < report.paper_phase_ssim < 1.0
    box = (slice(16, 80), slice(16, 80))
    by_hand = structural_similarity((np.angle(truth)[box] + np.pi) / (2 * np.pi), (noisy_phase[box] + np.pi) / (2 * np.pi),
                                    data_range=1.0, win_size=7)
    assert report.paper_phase_ssim == pytest.approx(by_hand, abs=0.01)
    scaled = evaluate(3.0 * truth, truth, region)
    assert scaled.paper_amplitude_ssim == pytest.approx(1.0)


def test_a_six_pixel_region_is_graded_with_a_window_that_fits():
    """A region whose box is 6 x 6 (a tiny scan) gets a 5-pixel SSIM window, not 7 (which skimage refuses)."""
    rng = np.random.default_rng(6)
    truth = (1 + 0.2 * rng.random((12, 12))) * np.exp(1j * rng.random((12, 12)))
    mask = np.zeros((12, 12), bool)
    mask[3:9, 3:9] = True
    report = evaluate(truth, truth, mask)
    assert report.amplitude_ssim == pytest.approx(1.0) and report.paper_phase_ssim == pytest.approx(1.0)


def test_a_large_object_is_scored_on_its_central_square():
    """Scoring works in float64 on the whole region; a region larger than MAX_SCORED_SIDE is scored on its
    central square, and the scores say where."""
    from types import SimpleNamespace

    from ptychodus_torch_plugin.reconstructors.base import Reconstruction
    from ptychodus_torch_plugin.results import MAX_SCORED_SIDE, _central_window, quality_of

    side = MAX_SCORED_SIDE + 300
    rng = np.random.default_rng(4)
    truth = np.exp(1j * rng.random((side, side))).astype(np.complex64) * (0.6 + 0.4 * rng.random((side, side)))
    weights = np.zeros((side, side), np.float32)
    weights[20:-30, 10:-10] = 1.0
    recon = Reconstruction(truth * np.exp(0.3j), weights, 1)
    scores = quality_of(recon, SimpleNamespace(object_truth=truth))
    window = _central_window(weights >= 0.5, MAX_SCORED_SIDE)
    assert scores["scored_side"] == MAX_SCORED_SIDE and scores["scored_row"] == window[0].start
    assert window[0].stop - window[0].start == MAX_SCORED_SIDE == window[1].stop - window[1].start
    assert scores["amplitude_ssim"] > 0.99 and scores["phase_ssim"] > 0.99
    small = Reconstruction(truth[:200, :200], weights[:200, :200] + 1, 1)
    assert "scored_side" not in quality_of(small, SimpleNamespace(object_truth=truth[:200, :200]))
