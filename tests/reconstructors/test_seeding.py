"""Seeding the iterative reconstructor from another object: the one real gain between a network's units and
the scan's counts, fitted on an even spread of the scan's patterns."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ptychodus_torch_plugin.reconstructors.seeding import amplitude_gain, spread_indices

CPU = torch.device("cpu")


def test_spread_indices_cover_the_scan_evenly_without_repeats():
    assert spread_indices(5, 256).tolist() == [0, 1, 2, 3, 4]
    chosen = spread_indices(1500, 256)
    assert len(chosen) == 256 and chosen[0] == 0 and chosen[-1] == 1499
    assert len(set(chosen.tolist())) == 256
    assert np.diff(chosen).max() <= 7  # 1499 / 255 = 5.9 rounded either way


@pytest.mark.parametrize("max_patterns", [40, 100_000], ids=["subset", "every pattern"])
def test_gain_undoes_a_known_scale_of_the_true_object(noiseless_scan, max_patterns):
    """Noiseless data, the truth divided by 3: the fitted gain is 3, from 40 patterns as from all 120."""
    gain = amplitude_gain(noiseless_scan.object_truth / 3.0, noiseless_scan, CPU, max_patterns=max_patterns)
    assert gain == pytest.approx(3.0, rel=1e-4)


def test_gain_from_a_subset_matches_the_full_fit_on_noisy_data(spiral_scan):
    """With Poisson noise the subset's gain is an estimate; a flat object's gain from 40 of 200 patterns
    is within 2 % of the all-pattern fit."""
    flat = np.ones(spiral_scan.object_shape, dtype=np.complex64)
    full = amplitude_gain(flat, spiral_scan, CPU, max_patterns=spiral_scan.n_patterns)
    assert amplitude_gain(flat, spiral_scan, CPU, max_patterns=40) == pytest.approx(full, rel=0.02)
