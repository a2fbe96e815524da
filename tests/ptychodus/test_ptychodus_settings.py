"""Settings group -> config dataclasses, the launcher's argument forwarding, and life without ptychodus."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

pytest.importorskip("ptychodus", reason="ptychodus is not installed (pip install 'ptychodus-torch-plugin[ptychodus]')")

from ptychodus_torch_plugin.errors import ConfigError, MissingExtraError  # noqa: E402


@pytest.fixture
def settings():
    from ptychodus.api.settings import SettingsRegistry

    from ptychodus_torch_plugin.ptychodus.settings import TorchSettings

    return TorchSettings(SettingsRegistry())


def test_defaults_match_the_command_line(settings):
    from ptychodus_torch_plugin.config import ExecutionConfig, ModelConfig, TrainingConfig

    config = settings.training_config("pinn", Path("data.npz"), Path("out"))
    reference = TrainingConfig(train_data_file=Path("data.npz"), output_dir=Path("out"), quiet=True,
                               model=ModelConfig())
    assert config == reference
    assert settings.execution_config().accelerator == ExecutionConfig().accelerator
    assert settings.execution_config().performance == ExecutionConfig().performance
    assert settings.model_file_path() is None


def test_values_from_a_settings_file(tmp_path):
    from ptychodus.api.settings import SettingsRegistry

    from ptychodus_torch_plugin.ptychodus.settings import TorchSettings

    registry = SettingsRegistry()
    settings = TorchSettings(registry)
    ini = tmp_path / "settings.ini"
    ini.write_text("[PtychodusTorch]\nchannels = 8, 16\npatch_size = 32\ngridsize = 2\nmax_epochs = 3\n"
                   "scheduler = Cosine\noutput_dir = /runs\nmodel_file = /m/model.pt\naccelerator = cpu\n"
                   "precision = BF16\nnormalization = None\npool_last_stage = False\n")
    registry.open_settings(ini)
    config = settings.training_config("supervised", Path("d"), Path("ptychodus_out"))
    assert config.model.channels == (8, 16) and config.model.patch_size == 32 and config.model.gridsize == 2
    assert config.model.model_type == "supervised" and config.model.normalization == "none"
    assert config.model.pool_last_stage is False
    assert config.max_epochs == 3 and config.scheduler == "cosine"
    assert config.output_dir == Path("/runs")  # the setting wins over ptychodus's folder
    assert settings.model_file_path() == Path("/m/model.pt")
    assert settings.execution_config().accelerator == "cpu"
    assert settings.execution_config().performance.precision == "bf16"
    registry.save_settings(tmp_path / "saved.ini")
    assert "channels = 8, 16" in (tmp_path / "saved.ini").read_text()


def test_invalid_settings_are_config_errors(settings):
    settings.channels.set_value("8,x")
    with pytest.raises(ConfigError, match="channels"):
        settings.training_config("pinn", Path("d"), Path("o"))
    settings.channels.set_value("8,16,32")
    settings.patch_size.set_value(36)
    with pytest.raises(ConfigError, match="divisible"):
        settings.training_config("pinn", Path("d"), Path("o"))
    settings.precision.set_value("half")
    with pytest.raises(ConfigError, match="unknown precision 'half'"):
        settings.execution_config()


def test_launcher_forwards_ptychodus_options():
    from ptychodus_torch_plugin.cli import ptychodus_cmd

    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command")
    ptychodus_cmd.add_arguments(commands.add_parser("ptychodus"))
    args = parser.parse_args(["ptychodus", "-b", "train", "-i", "in", "-o", "out", "-s", "s.ini", "--", "-style", "x"])
    assert ptychodus_cmd.forwarded_arguments(args) == [
        "--batch", "train", "--input-directory", "in", "--output-directory", "out", "--settings", "s.ini",
        "-style", "x"]


def test_launcher_without_ptychodus_names_the_extra(monkeypatch):
    from ptychodus_torch_plugin.ptychodus.launcher import run_ptychodus

    monkeypatch.setitem(sys.modules, "ptychodus.__main__", None)
    with pytest.raises(MissingExtraError, match=r"ptychodus-torch-plugin\[ptychodus\]"):
        run_ptychodus(["-v"])


def test_package_imports_without_ptychodus(tmp_path):
    import subprocess

    code = ("import sys\n"
            "class Block:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name == 'ptychodus' or name.startswith('ptychodus.'):\n"
            "            raise ModuleNotFoundError(name, name=name)\n"
            "sys.meta_path.insert(0, Block())\n"
            "import ptychodus_torch_plugin, ptychodus_torch_plugin.ptychodus, ptychodus_torch_plugin.cli.ptychodus_cmd\n"
            "import ptychodus_torch_plugin.cli.main, ptychodus_torch_plugin.training.trainer\n"
            "from ptychodus_torch_plugin.ptychodus.bridge import install\n"
            "assert install() is False\n"
            "assert not any(m == 'ptychodus' or m.startswith('ptychodus.') for m in sys.modules)\n"
            "print('OK')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "OK" in done.stdout, done.stderr[-2000:]


def test_iterative_settings_default_to_the_dataclass_and_read_the_file(tmp_path):
    from ptychodus.api.settings import SettingsRegistry

    from ptychodus_torch_plugin.ptychodus.settings import TorchSettings
    from ptychodus_torch_plugin.reconstructors.iterative.config import IterativeConfig

    registry = SettingsRegistry()
    settings = TorchSettings(registry)
    assert settings.iterative_config() == IterativeConfig()
    ini = tmp_path / "settings.ini"
    ini.write_text("[PtychodusTorch]\niterative_epochs = 7\nnoise_model = Poisson\nrefine_probe_from = 3\n"
                   "refine_positions_from = 0\nmomentum = 0.5\n")
    registry.open_settings(ini)
    config = settings.iterative_config()
    assert (config.epochs, config.noise_model, config.momentum) == (7, "poisson", 0.5)
    assert config.refine_probe_from == 3 and config.refine_positions_from is None
    settings.noise_model.set_value("cauchy")
    with pytest.raises(ConfigError, match="unknown noise model 'cauchy'"):
        settings.iterative_config()
