"""ptychodus 1.7 itself reads what we write, agrees with our position convention, and we read what it writes.

ptychodus is not a dependency of this package. The check runs in-process when ptychodus is importable,
otherwise in the interpreter named by ``PTYCHODUS_PYTHON`` (or ``/work/venv-ptychodus/bin/python`` if it
exists), and is skipped with the reason when neither has ptychodus.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from ptychodus_torch_plugin.data import ScanData, load_scan, save_ptychodus
from ptychodus_torch_plugin.data.simulate import SimulationConfig, noiseless_intensity, simulate

_DEFAULT_PTYCHODUS_PYTHON = Path("/work/venv-ptychodus/bin/python")

#: Runs under ptychodus's interpreter: read our pair with ptychodus's own API, simulate with its forward
#: model, and rewrite both files with its own writers.
_PTYCHODUS_SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    import numpy as np
    from ptychodus.api.io import load_diffraction_data, load_product, save_diffraction_data, save_product
    from ptychodus.api.reconstruct import prepare_reconstruct_input
    from ptychodus.api.simulate.diffraction import generate_diffraction_data

    folder = Path(sys.argv[1])
    product = load_product(folder / "product.h5")
    assembled = load_diffraction_data(folder / "diffraction.h5")
    prepared = prepare_reconstruct_input(assembled, product)
    geometry = prepared.product.object_.get_geometry()
    positions = prepared.product.probe_positions
    np.savez(
        folder / "ptychodus_view.npz",
        patterns=np.asarray(prepared.diffraction_patterns, dtype=np.float64),
        x_px=geometry.map_probe_positions_to_object_x_px(positions),
        y_px=geometry.map_probe_positions_to_object_y_px(positions),
        simulated=generate_diffraction_data(product).get_patterns(),
        probe_shape=np.array(product.probes.get_array().shape),
        object_shape=np.array(product.object_.get_array().shape),
    )
    rewritten = folder / "rewritten"
    rewritten.mkdir()
    save_product(rewritten / "product.h5", product)
    save_diffraction_data(rewritten / "diffraction.h5", assembled)
    """
)


def _ptychodus_python() -> str | None:
    if importlib.util.find_spec("ptychodus") is not None:
        return sys.executable
    candidate = os.environ.get("PTYCHODUS_PYTHON") or (
        str(_DEFAULT_PTYCHODUS_PYTHON) if _DEFAULT_PTYCHODUS_PYTHON.exists() else None
    )
    if candidate is None:
        return None
    probe = subprocess.run(
        [candidate, "-c", "import ptychodus.api.io"], check=False, capture_output=True, timeout=120
    )
    return candidate if probe.returncode == 0 else None


@pytest.fixture(scope="module")
def ptychodus_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[ScanData, Path, dict[str, np.ndarray]]:
    python = _ptychodus_python()
    if python is None:
        pytest.skip(
            "ptychodus 1.7 is not importable here and no PTYCHODUS_PYTHON interpreter has it; "
            "create one with `python3 -m venv VENV && VENV/bin/pip install ptychodus==1.7.0` "
            "and set PTYCHODUS_PYTHON=VENV/bin/python"
        )
    # Even N = 32 with integer positions (ours) means half-integer ones for ptychodus, which then shifts
    # its smooth probe rather than the object: the two forward models agree closely only if the
    # half-pixel offset between the conventions is right.
    scan = simulate(
        SimulationConfig(patch_size=32, n_positions=9, step_px=4.0, object_size=50, nphotons=None, seed=3)
    )
    assert np.all(scan.positions == np.round(scan.positions))
    folder = tmp_path_factory.mktemp("ptychodus")
    save_ptychodus(scan, folder / "diffraction.h5", folder / "product.h5")
    result = subprocess.run(
        [python, "-c", _PTYCHODUS_SCRIPT, str(folder)],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    with np.load(folder / "ptychodus_view.npz") as view:
        arrays = {key: view[key] for key in view.files}
    return scan, folder, arrays


def test_ptychodus_reads_our_files(ptychodus_run: tuple[ScanData, Path, dict[str, np.ndarray]]) -> None:
    scan, _, view = ptychodus_run
    np.testing.assert_allclose(view["patterns"], scan.amplitudes.astype(np.float64) ** 2, rtol=1e-6)
    assert tuple(view["probe_shape"]) == (1, 1, 32, 32)
    assert tuple(view["object_shape"]) == (1, 50, 50)


def test_ptychodus_positions_are_ours_minus_half_a_pixel(
    ptychodus_run: tuple[ScanData, Path, dict[str, np.ndarray]],
) -> None:
    scan, _, view = ptychodus_run
    np.testing.assert_allclose(view["y_px"], scan.positions[:, 0] - 0.5, atol=1e-9)
    np.testing.assert_allclose(view["x_px"], scan.positions[:, 1] - 0.5, atol=1e-9)


def test_ptychodus_forward_model_agrees_with_ours_only_at_the_right_offset(
    ptychodus_run: tuple[ScanData, Path, dict[str, np.ndarray]],
) -> None:
    scan, _, view = ptychodus_run
    assert scan.object_truth is not None
    theirs = view["simulated"] / view["simulated"].sum(axis=(-2, -1), keepdims=True)

    def mismatch(offset: float) -> float:
        ours = noiseless_intensity(scan.object_truth, scan.probe, scan.positions + offset)
        ours = ours / ours.sum(axis=(-2, -1), keepdims=True)
        return float(np.abs(ours - theirs).max() / theirs.max())

    assert mismatch(0.0) < 2e-3
    assert mismatch(0.5) > 20 * mismatch(0.0) and mismatch(-0.5) > 20 * mismatch(0.0)


def test_we_read_what_ptychodus_writes(ptychodus_run: tuple[ScanData, Path, dict[str, np.ndarray]]) -> None:
    scan, folder, _ = ptychodus_run
    back = load_scan(folder / "rewritten")
    np.testing.assert_allclose(back.amplitudes, scan.amplitudes, rtol=1e-6)
    np.testing.assert_array_equal(back.probe, scan.probe)
    np.testing.assert_allclose(back.positions, scan.positions, atol=1e-9)
    np.testing.assert_array_equal(back.object_truth, scan.object_truth)
