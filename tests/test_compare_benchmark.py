"""The side-by-side benchmark's bookkeeping (no pty-chi needed): its paperlines case simulates, and a
stored run is retabulated from its curves without re-running anything; --train-only prepares networks."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _load():
    path = ROOT / "benchmarks" / "compare_ptychi.py"
    spec = importlib.util.spec_from_file_location("compare_ptychi_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def test_paperlines_case_simulates_the_papers_sample():
    bench = _load()
    scan = bench.CASES["paperlines"].scan({"seed": 2}, 16)
    assert scan.amplitudes.shape == (16, 64, 64) and scan.object_truth is not None
    amplitude, phase = np.abs(scan.object_truth), np.angle(scan.object_truth)
    assert 0 <= amplitude.min() and amplitude.max() <= 1.0 + 1e-6
    assert np.corrcoef(amplitude.ravel(), phase.ravel())[0, 1] > 0.9  # the phase is a function of the amplitude


def test_retabulate_adds_the_tolerance_time_from_the_stored_curve(tmp_path, capsys):
    bench = _load()
    target = {"amplitude_ssim": 0.99997, "phase_ssim": 0.9725}
    curve = [[1, 1.0, 0.9990, 0.90], [2, 2.0, 0.99980, 0.9720], [3, 3.0, 0.99998, 0.9730]]
    row = {"method": "pinn+iterative", "epochs": 3, "seconds": 3.0, "amplitude_ssim": 0.99998, "phase_ssim": 0.973,
           "amplitude_psnr_db": 60.0, "phase_psnr_db": 50.0, "frc_cutoff": 1.0, "seconds_to_lsqml_quality": 3.0,
           "curve": curve}
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"results": [{"case": "paperlines", "lsqml_target": target, "rows": [row]}]}))
    bench.retabulate(path)
    stored = json.loads(path.read_text())["results"][0]
    assert stored["rows"][0]["seconds_to_within_tolerance"] == 2.0  # within 0.001 at epoch 2, exactly at 3
    assert stored["rows"][0]["seconds_to_lsqml_quality"] == 3.0 and stored["reach_tolerance"] == 0.001
    assert "pinn+iterative" in capsys.readouterr().out



def test_train_only_finds_or_trains_the_networks_and_runs_nothing_else(tmp_path, monkeypatch, capsys):
    """``--train-only`` needs no pty-chi and compares nothing: it stops once every case has its network.
    A network already in --pinn-dir is reused; a missing one is trained on simulated scans of other
    objects (the training command is stood in for: it writes the run's model file)."""
    bench = _load()
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "model.pt").write_bytes(b"kept")
    commands = []

    def fake_train(command, check):
        commands.append(command)
        run = Path(command[command.index("--output_dir") + 1]) / "lightning_logs" / "version_0"
        run.mkdir(parents=True)
        (run / "model.pt").write_bytes(b"trained")

    monkeypatch.setattr(bench.subprocess, "run", fake_train)
    monkeypatch.setattr(bench, "ptychi_available", lambda: "pty-chi must not be needed")
    monkeypatch.setattr(bench, "compare", lambda *a: (_ for _ in ()).throw(AssertionError("nothing is compared")))
    argv = ["--cases", "images,lowdose", "--train-only", "--pinn-dir", str(tmp_path), "--train-scans", "2",
            "--train-positions", "16", "--train-epochs", "3"]
    assert bench.main(argv) == 0
    out = capsys.readouterr().out
    assert f"[images] {tmp_path / 'images' / 'model.pt'}\n" in out and "[images] " + str(tmp_path) in out
    assert len(commands) == 1  # one training, for lowdose only
    files = commands[0][commands[0].index("--train_data_file") + 1: commands[0].index("--output_dir")]
    assert [Path(f).name for f in files] == ["lowdose_train0.npz", "lowdose_train1.npz"]
    assert (tmp_path / "images" / "model.pt").read_bytes() == b"kept"
    assert (tmp_path / "lowdose" / "model.pt").read_bytes() == b"trained"
    assert "trained in" in out and json.loads((tmp_path / "lowdose" / "training.json").read_text())["positions_per_scan"] == 16
