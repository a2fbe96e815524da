"""Reconstruct and export through ptychodus's own workflow API, in-process, with our library loaded by
the bridge; train with our command line on the exported file and load that model back in ptychodus."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ptychodus", reason="ptychodus is not installed (pip install 'ptychodus-torch-plugin[ptychodus]')")

from ptychodus_helpers import ALGORITHM, PYTHON, subprocess_env  # noqa: E402

from ptychodus_torch_plugin.ptychodus.bridge import install  # noqa: E402


@pytest.fixture
def model_core(batch_dir):
    from ptychodus.model import ModelCore

    install()
    with ModelCore(batch_dir / "settings.ini") as model:
        yield model


def _load(model, batch_dir: Path):
    api = model.workflow_api
    diffraction = api.load_assembled_diffraction_data(batch_dir / "diffraction.h5")
    return api.load_product(batch_dir / "product.h5", diffraction=diffraction)


def _check_object(output, product_in, scan) -> np.ndarray:
    """Same grid, pitch and centre as the input; not constant over the scanned region."""
    obj_in, obj_out = product_in.object_, output.object_
    assert obj_out.get_array().shape == obj_in.get_array().shape
    assert obj_out.get_pixel_geometry() == obj_in.get_pixel_geometry()
    assert obj_out.get_center() == obj_in.get_center()
    assert list(obj_out.layer_spacing_m) == list(obj_in.layer_spacing_m)
    array = obj_out.get_array()[0]
    assert np.all(np.isfinite(array))
    half = scan.patch_size // 2
    rows = slice(int(scan.positions[:, 0].min()), int(scan.positions[:, 0].max()) + 1)
    cols = slice(int(scan.positions[:, 1].min()), int(scan.positions[:, 1].max()) + 1)
    centre = array[rows, cols]
    assert np.std(np.abs(centre)) > 1e-4 or np.std(np.angle(centre)) > 1e-4, "the object is constant"
    assert half > 0
    return array


def test_reconstruct_through_workflow_api(model_core, batch_dir, trained_model, scan, tmp_path):
    model_core.processing_core.processing_api.load_model_from_file(trained_model, algorithm=ALGORITHM)
    product_api = _load(model_core, batch_dir)
    product_in = product_api.get_product()
    output = product_api.reconstruct_local(algorithm=ALGORITHM, block=True)
    array = _check_object(output.get_product(), product_in, scan)
    # Same model on the same files through our own reader: the ptychodus path must give the same object.
    from ptychodus_torch_plugin.data.load import load_scan
    from ptychodus_torch_plugin.inference import reconstruct_scan
    from ptychodus_torch_plugin.models.model_file import load_model
    from ptychodus_torch_plugin.plugins import build_plugin_host

    model, _, _ = load_model(trained_model, build_plugin_host())
    direct = reconstruct_scan(model, load_scan(batch_dir), batch_size=64)
    measured = direct.weights > 0
    np.testing.assert_allclose(array[measured], direct.object[measured], rtol=1e-4, atol=1e-5)
    # positions and probe pass through unchanged
    out = output.get_product()
    np.testing.assert_array_equal(out.probe_positions.get_coordinates_x_m(),
                                  product_in.probe_positions.get_coordinates_x_m())
    output.save_product(tmp_path / "out.npz", file_type="NPZ")
    assert (tmp_path / "out.npz").stat().st_size > 0


def test_reconstruct_without_model_fails_loudly(model_core, batch_dir):
    from ptychodus_torch_plugin.errors import ConfigError

    product_api = _load(model_core, batch_dir)
    with pytest.raises(ConfigError, match="has no model"):
        product_api.reconstruct_local(algorithm="ptychodus-torch_supervised", block=True)


def test_export_train_with_cli_and_load_back(model_core, batch_dir, scan, tmp_path):
    from ptychodus_torch_plugin.data.npz import read_npz

    product_api = _load(model_core, batch_dir)
    exported = tmp_path / "training.npz"
    product_api.export_training_data(exported, algorithm=ALGORITHM)
    back = read_npz(exported)
    assert back.amplitudes.shape == scan.amplitudes.shape
    np.testing.assert_allclose(back.positions, scan.positions, atol=1e-6)  # metres -> our pixels, exact
    np.testing.assert_allclose(back.amplitudes, scan.amplitudes, rtol=1e-5, atol=1e-3)

    out = tmp_path / "cli_run"
    done = subprocess.run(
        [PYTHON, "-m", "ptychodus_torch_plugin.train", "--train_data_file", str(exported), "--output_dir", str(out),
         "--channels", "8,16,32", "--max_epochs", "1", "--accelerator", "cpu", "--logger", "none", "--quiet",
         "--image_every_n_epochs", "0"],
        capture_output=True, text=True, timeout=300, env=subprocess_env(),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    model_file = next(out.glob("lightning_logs/version_*/model.pt"))

    processing = model_core.processing_core.processing_api
    processing.load_model_from_file(model_file, algorithm=ALGORITHM)
    reconstructor = processing._algorithm_parameter.get_current_reconstructor()
    assert reconstructor.is_model_loaded()
    output = product_api.reconstruct_local(algorithm=ALGORITHM, block=True)
    _check_object(output.get_product(), product_api.get_product(), scan)
    saved = tmp_path / "saved_model.pt"
    processing.save_model_to_file(saved, algorithm=ALGORITHM)
    assert saved.stat().st_size > 0


def test_iterative_algorithm_reconstructs_without_a_model_file(model_core, batch_dir, scan):
    """``ptychodus-torch_iterative`` needs no model: it starts from ptychodus's blank object and probe and
    reconstructs the object; the result matches the truth (ptychodus's product carries none)."""
    from ptychodus_torch_plugin.evaluation import evaluate, region_mask

    model_core.settings_registry["PtychodusTorch"].parameters()["iterative_epochs"].set_value(20)
    product_api = _load(model_core, batch_dir)
    product_in = product_api.get_product()
    output = product_api.reconstruct_local(algorithm="ptychodus-torch_iterative", block=True)
    array = _check_object(output.get_product(), product_in, scan)
    weights = np.zeros(array.shape)
    rows = slice(int(scan.positions[:, 0].min()), int(scan.positions[:, 0].max()) + 1)
    cols = slice(int(scan.positions[:, 1].min()), int(scan.positions[:, 1].max()) + 1)
    weights[rows, cols] = 1.0  # the scanned area's core, well inside the illuminated region
    report = evaluate(array, scan.object_truth, region_mask(weights))
    assert report.phase_pearson > 0.9 and report.amplitude_pearson > 0.8, report


def test_every_registered_reconstructor_is_an_algorithm(model_core):
    available = list(model_core.workflow_api.available_reconstructors())
    for name in ("pinn", "supervised", "iterative", "pinn+iterative"):
        assert available.count(f"ptychodus-torch_{name}") == 1, available
