"""``ptychodus -b train`` then ``ptychodus -b reconstruct`` through our launcher, in child processes,
on a simulated scan in ptychodus's batch layout. A fake distribution with broken libraries is on the
path throughout: ptychodus must start regardless. Outputs are checked to exist, because an unknown
algorithm silently becomes ptychodus's null reconstructor (exit 0, nothing written)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest

pytest.importorskip("ptychodus", reason="ptychodus is not installed (pip install 'ptychodus-torch-plugin[ptychodus]')")

from ptychodus_helpers import PYTHON, subprocess_env  # noqa: E402


def _ptychodus(args: list[str], cwd: Path, *paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYTHON, "-m", "ptychodus_torch_plugin.cli.ptychodus_cmd", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300, env=subprocess_env(*paths))


def test_batch_train_then_reconstruct(batch_dir, broken_site, scan, tmp_path):
    train_out = tmp_path / "train_out"
    done = _ptychodus(["-b", "train", "-i", str(batch_dir), "-o", str(train_out)], tmp_path, broken_site)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    assert "skipping reconstructor library 'bbb-raising'" in done.stdout + done.stderr
    model_file = train_out / "model.pt"
    assert model_file.is_file(), (done.stdout + done.stderr)[-4000:]
    assert list(train_out.glob("lightning_logs/version_0/model.pt"))

    recon_in = tmp_path / "recon_in"
    shutil.copytree(batch_dir, recon_in)
    shutil.copyfile(model_file, recon_in / "model.pt")
    recon_out = tmp_path / "recon_out"
    done = _ptychodus(["-b", "reconstruct", "-i", str(recon_in), "-o", str(recon_out)], tmp_path, broken_site)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    products = sorted(recon_out.glob("product.*.h5"))
    assert products, f"no product written; output: {(done.stdout + done.stderr)[-3000:]}"

    with h5py.File(batch_dir / "product.h5") as h5_in, h5py.File(products[-1]) as h5_out:
        obj_in, obj_out = h5_in["object"], h5_out["object"]
        assert obj_out.shape == obj_in.shape
        for key in ("center_x_m", "center_y_m", "pixel_width_m", "pixel_height_m"):
            assert float(obj_out.attrs[key]) == pytest.approx(float(obj_in.attrs[key]))
        np.testing.assert_allclose(h5_out["probe_position_x_m"][()], h5_in["probe_position_x_m"][()])
        array = obj_out[0]
    assert np.all(np.isfinite(array))
    rows = slice(int(scan.positions[:, 0].min()), int(scan.positions[:, 0].max()) + 1)
    cols = slice(int(scan.positions[:, 1].min()), int(scan.positions[:, 1].max()) + 1)
    assert np.std(np.abs(array[rows, cols])) > 1e-4, "the reconstructed object is constant"


def test_batch_iterative_writes_a_snapshot_every_n_epochs_then_the_result(batch_dir, scan, tmp_path):
    """12 epochs with snapshot_every = 5: products at epochs 5 and 10, then the result (3 files, not 12);
    the snapshots hold the object as it was, so they differ from each other and from the result."""
    recon_in = tmp_path / "recon_in"
    shutil.copytree(batch_dir, recon_in)
    settings = (recon_in / "settings.ini").read_text().replace("ptychodus-torch_pinn", "ptychodus-torch_iterative")
    (recon_in / "settings.ini").write_text(settings + "iterative_epochs = 12\nsnapshot_every = 5\n")
    out = tmp_path / "recon_out"
    done = _ptychodus(["-b", "reconstruct", "-i", str(recon_in), "-o", str(out)], tmp_path)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    products = sorted(out.glob("product.*.h5"))
    assert len(products) == 3, products
    objects = []
    for path in products:
        with h5py.File(path) as h5:
            objects.append(h5["object"][0])
    assert all(np.all(np.isfinite(o)) for o in objects)
    assert not np.allclose(objects[0], objects[1]) and not np.allclose(objects[1], objects[2])
