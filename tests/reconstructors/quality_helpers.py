"""Quality thresholds that a real reconstruction passes and a flat object or a blurred truth fails."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ptychodus_torch_plugin.data.scan import ScanData
from ptychodus_torch_plugin.evaluation import QualityReport, evaluate, region_mask


def passes(report: QualityReport, thresholds: dict[str, float]) -> bool:
    values = report.as_dict()
    return all(values[name] > limit for name, limit in thresholds.items())


def impostors(scan: ScanData) -> dict[str, np.ndarray]:
    """A flat object (a collapsed reconstruction) and the truth blurred by a 2 px Gaussian (a reconstruction
    that lost the fine detail)."""
    truth = scan.object_truth
    assert truth is not None
    flat = np.full(truth.shape, np.abs(truth).mean() + 0j)
    blurred = ndimage.gaussian_filter(truth.real, 2) + 1j * ndimage.gaussian_filter(truth.imag, 2)
    return {"flat": flat, "blurred": blurred}


def check_quality(obj: np.ndarray, weights: np.ndarray, scan: ScanData, thresholds: dict[str, float]) -> QualityReport:
    """The reconstruction passes the thresholds and both impostors fail them, over the same region."""
    mask = region_mask(weights)
    report = evaluate(obj, scan.object_truth, mask)
    print("quality:", {k: round(v, 3) for k, v in report.as_dict().items()})
    assert passes(report, thresholds), report
    for name, impostor in impostors(scan).items():
        assert not passes(evaluate(impostor, scan.object_truth, mask), thresholds), name
    return report
