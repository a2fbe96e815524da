"""Real third-party plugins, pip-installed into a private folder: the example jsonl logger, the example ePIE
reconstructor and a plugin that fails on import. Each is found through its entry point, exactly as an installed package would be."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
JSONL_EXAMPLE = ROOT / "examples" / "jsonl-logger"
EPIE_EXAMPLE = ROOT / "examples" / "epie-reconstructor"
BROKEN_EXAMPLE = ROOT / "tests" / "fixtures" / "plugins" / "broken-plugin"


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory) -> Path:
    """A folder holding the two plugins, installed by pip (not copied), for use on PYTHONPATH."""
    site = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(site), str(JSONL_EXAMPLE), str(EPIE_EXAMPLE), str(BROKEN_EXAMPLE)],
        check=True, capture_output=True, text=True,
    )
    return site


def _run(site: Path, args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PTYCHODUS_TORCH_")}
    environment.update(env, PYTHONPATH=str(site))
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=environment,
                          timeout=120)


def test_plugins_command_lists_installed_and_broken_plugins(plugin_site):
    result = _run(plugin_site, ["-m", "ptychodus_torch_plugin", "plugins"])
    assert result.returncode == 0, result.stderr
    listing = json.loads(result.stdout)
    by_name = {p["name"]: p for p in listing["plugins"]}
    assert by_name["jsonl"]["distribution"] == "ptychodus-torch-jsonl"
    assert by_name["jsonl"]["version"] == "0.1.0"
    assert by_name["jsonl"]["loggers"] == ["jsonl"]
    assert by_name["jsonl"]["builtin"] is False
    builtin_loggers = {name for p in listing["plugins"] if p["builtin"] for name in p.get("loggers", [])}
    assert builtin_loggers == {"csv", "tensorboard", "mlflow", "none"}
    assert by_name["epie"]["reconstructors"] == ["epie"]
    builtin_reconstructors = {name for p in listing["plugins"] if p["builtin"] for name in p.get("reconstructors", [])}
    assert builtin_reconstructors == {"pinn", "iterative", "pinn+iterative"}
    [broken] = listing["broken"]
    assert broken["name"] == "broken"
    assert broken["distribution"] == "ptychodus-torch-broken-example"
    assert broken["stage"] == "import"
    assert "broken on purpose" in broken["error"]


def test_load_plugins_env_selects_distributions(plugin_site):
    result = _run(plugin_site, ["-m", "ptychodus_torch_plugin", "plugins"],
                  PTYCHODUS_TORCH_LOAD_PLUGINS="ptychodus_torch_jsonl")
    listing = json.loads(result.stdout)
    assert "jsonl" in {p["name"] for p in listing["plugins"]}
    assert listing["broken"] == []


def test_strict_mode_turns_a_broken_plugin_into_one_clear_error(plugin_site):
    result = _run(plugin_site, ["-m", "ptychodus_torch_plugin", "plugins"], PTYCHODUS_TORCH_STRICT_PLUGINS="1")
    assert result.returncode == 2
    assert "broken on purpose" in result.stderr
    assert "Traceback" not in result.stderr


def test_installed_jsonl_logger_receives_metrics(plugin_site, tmp_path):
    script = f"""
from pathlib import Path
from ptychodus_torch_plugin.plugins import build_plugin_host
from ptychodus_torch_plugin.loggers.base import LoggerSettings, allocate_run_dir
out = Path({str(tmp_path)!r})
run_dir = allocate_run_dir(out)
logger = build_plugin_host().logger_backend("jsonl").create(LoggerSettings(output_dir=out, run_dir=run_dir))
logger.start()
logger.log_hyperparams({{"lr": 0.001}})
for epoch in range(3):
    logger.log_metrics({{"train_loss": 1.0 / (epoch + 1)}}, epoch=epoch, step=10 * (epoch + 1))
logger.finish("FINISHED")
"""
    result = _run(plugin_site, ["-c", script])
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in
              (tmp_path / "lightning_logs" / "version_0" / "events.jsonl").read_text().splitlines()]
    assert [e["event"] for e in events] == ["start", "hyperparams", "metrics", "metrics", "metrics", "finish"]
    assert [e["metrics"]["train_loss"] for e in events if e["event"] == "metrics"] == [1.0, 0.5, 1.0 / 3]
    assert events[-1]["status"] == "FINISHED"


def test_training_run_with_the_installed_jsonl_logger(plugin_site, tmp_path):
    fixture = ROOT / "tests" / "fixtures" / "pytorch_integration" / "minimal_dataset_v2.npz"
    result = _run(plugin_site, ["-m", "ptychodus_torch_plugin", "train", "--train_data_file", str(fixture),
                                "--output_dir", str(tmp_path), "--n_images", "8", "--max_epochs", "2",
                                "--channels", "8,16,32", "--accelerator", "cpu", "--logger", "jsonl", "--quiet"])
    assert result.returncode == 0, result.stderr
    lines = (tmp_path / "lightning_logs" / "version_0" / "events.jsonl").read_text().splitlines()
    events = [json.loads(line) for line in lines]
    epochs = [e["epoch"] for e in events if e["event"] == "metrics" and "final_amplitude_ssim" not in e["metrics"]]
    assert epochs == [0, 1]
    assert events[-1] == {"event": "finish", "status": "FINISHED"}
    assert any(e["event"] == "artifact" and e["path"].endswith("model.pt") for e in events)


@pytest.fixture(scope="module")
def small_scan(tmp_path_factory) -> Path:
    from ptychodus_torch_plugin.data import save_npz
    from ptychodus_torch_plugin.data.simulate import SimulationConfig, simulate

    scan = simulate(SimulationConfig(patch_size=32, n_positions=150, scan_kind="spiral", nphotons=1e5, seed=4))
    return save_npz(scan, tmp_path_factory.mktemp("scan") / "scan.npz")


def test_installed_reconstructor_runs_through_the_command_and_recovers_the_object(plugin_site, small_scan, tmp_path):
    result = _run(plugin_site, ["-m", "ptychodus_torch_plugin", "reconstruct", "--reconstructor", "epie",
                                "--option", "epochs=8", "--data_file", str(small_scan), "--output_dir", str(tmp_path),
                                "--accelerator", "cpu"])
    assert result.returncode == 0, result.stderr
    quality = json.loads(result.stdout)["quality"]
    # measured 0.73 / 0.87 (amplitude / phase SSIM); a flat object scores about 0 / 0.3
    assert quality["amplitude_ssim"] > 0.5 and quality["phase_ssim"] > 0.7, quality
    assert (tmp_path / "reconstruction.png").is_file()


def test_a_reconstructor_that_raises_is_named_in_one_error_line(plugin_site, small_scan, tmp_path):
    result = _run(plugin_site, ["-m", "ptychodus_torch_plugin", "reconstruct", "--reconstructor", "epie",
                                "--option", "alpha=5", "--data_file", str(small_scan),
                                "--output_dir", str(tmp_path)], PTYCHODUS_TORCH_LOAD_PLUGINS="ptychodus-torch-epie")
    assert result.returncode == 2
    assert "reconstructor 'epie' (plugin 'epie') failed: ValueError" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
