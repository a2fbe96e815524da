"""Image quality of a reconstruction against a known object: SSIM, PSNR, Pearson correlation and FRC.

A reconstruction is only defined up to things no measurement can see: a global phase offset, a linear
phase ramp, a global amplitude gain (shared with the probe), and a small translation. These are removed
first, in that spirit: registration (sub-pixel, by cross-correlation of the amplitudes), then a
least-squares phase plane and a least-squares amplitude gain over the compared region. Every metric
states its data range: PSNR and SSIM use the true image's range over the region (not 255, which would
inflate PSNR by ~48 dB on unit-scale data). The Pearson correlation is what exposes a collapsed
(flat) reconstruction that MAE alone would miss.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class QualityReport:
    amplitude_ssim: float
    phase_ssim: float
    amplitude_psnr_db: float
    phase_psnr_db: float
    amplitude_pearson: float
    phase_pearson: float
    frc_cutoff: float
    """Spatial frequency (fraction of Nyquist, 0..1) where the FRC of the complex object first drops
    below 0.5. Where the phase varies far more than the amplitude (the pictures cases: 0.9 rad against
    0.15 in amplitude) it is the phase's FRC, and stays at 1.0 while the amplitude is still noisy."""
    amplitude_range: float
    phase_range: float
    shift_px: tuple[float, float]
    amplitude_frc_cutoff: float = 1.0
    """The same for the amplitude image alone (mean removed, so the first ring is not the mean's)."""
    phase_frc_cutoff: float = 1.0
    """The same for the phase image alone (mean removed)."""
    paper_amplitude_ssim: float = float("nan")
    """Amplitude SSIM as PtychoPINN computes it (:func:`paper_convention_ssim`), for reading its figures."""
    paper_phase_ssim: float = float("nan")
    """Phase SSIM as PtychoPINN computes it: over a 2π data range, not the true phase's range."""

    def as_dict(self) -> dict[str, float]:
        values = asdict(self)
        shift = values.pop("shift_px")
        return {**values, "shift_row_px": float(shift[0]), "shift_col_px": float(shift[1])}


def region_mask(weights: np.ndarray, fraction: float = 0.5) -> np.ndarray:
    """Pixels illuminated at least ``fraction`` of the best-covered pixel: where the scan determines the
    object. Evaluating outside it would grade the network's guesses at unmeasured pixels."""
    weights = np.asarray(weights, dtype=np.float64)
    return weights >= fraction * weights.max() if weights.max() > 0 else np.zeros(weights.shape, bool)


def _bounding_box(mask: np.ndarray) -> tuple[slice, slice]:
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        raise ValueError("the evaluation region is empty")
    return slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1)


def register(reference: np.ndarray, moving: np.ndarray, region: np.ndarray, max_shift_px: float = 8.0,
             upsample: int = 20) -> tuple[np.ndarray, tuple[float, float]]:
    """Shift complex ``moving`` onto ``reference`` by sub-pixel cross-correlation over ``region``.

    Both complex fields are compared (amplitude *and* phase carry structure; the correlation magnitude
    ignores a global phase), mean-free and zeroed outside the region, so the bright-dark edge of the
    scanned area cannot dominate. A peak further than ``max_shift_px`` is not a registration of the same
    object but a spurious match, so the images are then compared unshifted.
    """
    from skimage.registration import phase_cross_correlation

    ref = np.where(region, reference - reference[region].mean(), 0)
    mov = np.where(region, moving - moving[region].mean(), 0)
    if not np.abs(ref).any() or not np.abs(mov).any():  # a flat image has nothing to register
        return moving.astype(np.complex128), (0.0, 0.0)
    shift, _, _ = phase_cross_correlation(ref, mov, upsample_factor=upsample, normalization=None)
    if np.abs(shift).max() > max_shift_px:
        return moving.astype(np.complex128), (0.0, 0.0)
    # Spline interpolation is local: unlike a Fourier shift, a phase ramp that is not periodic across
    # the image does not ring into the compared region.
    moved = (ndimage.shift(moving.real, shift, order=3, mode="nearest")
             + 1j * ndimage.shift(moving.imag, shift, order=3, mode="nearest"))
    return moved, (float(shift[0]), float(shift[1]))


def remove_phase_plane(reconstruction: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Multiply by exp(-i(a + b·row + c·col)) fitted to the phase difference over ``mask``."""
    offset = np.angle(np.sum((truth * np.conj(reconstruction))[mask]))
    aligned = reconstruction * np.exp(1j * offset)
    difference = np.angle(aligned * np.conj(truth))
    rows, cols = np.nonzero(mask)
    design = np.column_stack([np.ones(rows.size), rows, cols])
    coeffs, *_ = np.linalg.lstsq(design, difference[mask], rcond=None)
    rr, cc = np.indices(reconstruction.shape)
    return aligned * np.exp(-1j * (coeffs[0] + coeffs[1] * rr + coeffs[2] * cc))


def fourier_ring_correlation(a: np.ndarray, b: np.ndarray, n_rings: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """FRC of two same-shape images: (ring frequencies as fraction of Nyquist, correlation per ring)."""
    window = np.outer(np.hanning(a.shape[0]), np.hanning(a.shape[1]))
    fa = np.fft.fftshift(np.fft.fft2(a * window))
    fb = np.fft.fftshift(np.fft.fft2(b * window))
    rows, cols = np.indices(a.shape)
    radius = np.hypot((rows - a.shape[0] // 2) / (a.shape[0] / 2), (cols - a.shape[1] // 2) / (a.shape[1] / 2))
    n_rings = n_rings or min(a.shape) // 2
    ring = np.minimum((radius * n_rings).astype(int), n_rings)
    cross = np.bincount(ring.ravel(), (fa * np.conj(fb)).real.ravel(), n_rings + 1)[:n_rings]
    pa = np.bincount(ring.ravel(), (np.abs(fa) ** 2).ravel(), n_rings + 1)[:n_rings]
    pb = np.bincount(ring.ravel(), (np.abs(fb) ** 2).ravel(), n_rings + 1)[:n_rings]
    frc = cross / np.sqrt(np.maximum(pa * pb, 1e-30))
    return (np.arange(n_rings) + 0.5) / n_rings, frc


def frc_cutoff(a: np.ndarray, b: np.ndarray, threshold: float = 0.5, skip_first_ring: bool = False) -> float:
    """First ring frequency (fraction of Nyquist) where the FRC of ``a`` and ``b`` drops below
    ``threshold``; 1.0 when it never does. ``skip_first_ring`` for mean-removed images, whose first ring
    holds (almost) no power and so no correlation to speak of."""
    _, frc = fourier_ring_correlation(a, b)
    below = np.nonzero(frc[1:] < threshold)[0] + 1 if skip_first_ring else np.nonzero(frc < threshold)[0]
    return float((below[0] + 0.5) / len(frc)) if below.size else 1.0


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    # A (numerically) constant image has no correlation with anything: report 0, not rounding noise.
    if min(np.std(a) / (np.abs(a).mean() + 1e-30), np.std(b) / (np.abs(b).mean() + 1e-30)) < 1e-6:
        return 0.0
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def ssim_window(shape: tuple[int, ...]) -> int:
    """SSIM's 7-pixel window, or the largest odd size that fits a smaller image (an even side of 4 or 6
    would otherwise ask for 5 or 7 and fail)."""
    side = min(7, *shape)
    return max(3, side if side % 2 else side - 1)


def paper_convention_ssim(amplitude: np.ndarray, phase: np.ndarray, true_amp: np.ndarray,
                          true_phase: np.ndarray) -> tuple[float, float]:
    """(amplitude, phase) SSIM in PtychoPINN's convention (``ptycho/evaluation.py::eval_reconstruction``),
    on images already registered and phase-plane aligned.

    Why a second pair: the papers' figures are computed this way, and the phase part is more lenient than
    ours. The amplitude is scaled to the truth's mean (ours: least-squares gain) with the true range as data
    range, as ours; the phase is mapped by (phi + pi) / 2pi onto [0, 1] with data range 1, i.e. a 2pi range
    where ours takes the true phase's own range (1.75 rad on compare_ptychi's paperlines scan). SSIM's
    stabilising constants grow with the square of the data range, so the same image scores higher.
    """
    from skimage.metrics import structural_similarity

    window = ssim_window(true_amp.shape)
    scaled = amplitude * (true_amp.mean() / amplitude.mean()) if amplitude.mean() > 0 else amplitude
    amp_range = float(np.ptp(true_amp)) or 1.0
    amplitude_ssim = structural_similarity(true_amp, scaled, data_range=amp_range, win_size=window)
    true_unit, unit = ((values + np.pi) / (2 * np.pi) for values in (true_phase, phase))  # the paper's mapping
    phase_ssim = structural_similarity(true_unit, unit, data_range=1.0, win_size=window)
    return float(amplitude_ssim), float(phase_ssim)


def evaluate(reconstruction: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> QualityReport:
    """Compare a complex reconstruction with the true object over ``mask`` (same shape, object pixels)."""
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    reconstruction = np.asarray(reconstruction, dtype=np.complex128)
    truth = np.asarray(truth, dtype=np.complex128)
    if reconstruction.shape != truth.shape:
        raise ValueError(f"reconstruction {reconstruction.shape} and truth {truth.shape} differ in shape")
    box = _bounding_box(mask)
    truth_c, region = truth[box], mask[box]
    moved, shift = register(truth_c, reconstruction[box], region)
    moved = remove_phase_plane(moved, truth_c, region)
    amplitude = np.abs(moved)
    gain = np.sum(amplitude[region] * np.abs(truth_c)[region]) / max(np.sum(amplitude[region] ** 2), 1e-30)
    amplitude = amplitude * gain
    true_amp, true_phase, phase = np.abs(truth_c), np.angle(truth_c), np.angle(moved)
    # Compare inside the largest rectangle of the region only (SSIM needs a full image).
    amp_range = float(np.ptp(true_amp[region])) or 1.0
    phase_range = float(np.ptp(true_phase[region])) or 1.0
    window = ssim_window(true_amp.shape)
    paper_amplitude, paper_phase = paper_convention_ssim(np.abs(moved), phase, true_amp, true_phase)
    return QualityReport(
        amplitude_ssim=float(structural_similarity(true_amp, amplitude, data_range=amp_range, win_size=window)),
        phase_ssim=float(structural_similarity(true_phase, phase, data_range=phase_range, win_size=window)),
        amplitude_psnr_db=float(peak_signal_noise_ratio(true_amp, amplitude, data_range=amp_range)),
        phase_psnr_db=float(peak_signal_noise_ratio(true_phase, phase, data_range=phase_range)),
        amplitude_pearson=_pearson(true_amp[region], amplitude[region]),
        phase_pearson=_pearson(true_phase[region], phase[region]),
        frc_cutoff=frc_cutoff(amplitude * np.exp(1j * phase), truth_c),
        amplitude_range=amp_range,
        phase_range=phase_range,
        shift_px=shift,
        amplitude_frc_cutoff=frc_cutoff(amplitude - amplitude.mean(), true_amp - true_amp.mean(), skip_first_ring=True),
        phase_frc_cutoff=frc_cutoff(phase - phase.mean(), true_phase - true_phase.mean(), skip_first_ring=True),
        paper_amplitude_ssim=paper_amplitude,
        paper_phase_ssim=paper_phase,
    )
