"""The command line's conventions, for every command: kebab-case flags shown once each with help and a
default, snake_case spellings still accepted; settings declared once reach the flags, ptychodus and
``config.json`` alike; the README's commands parse."""

from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from ptychodus_torch_plugin.cli.main import COMMANDS, build_parser, parse_command_line
from ptychodus_torch_plugin.cli.reconstructor_options import options_for
from ptychodus_torch_plugin.config import ExecutionConfig, ModelConfig, PerformanceConfig, TrainingConfig
from ptychodus_torch_plugin.options import declared
from ptychodus_torch_plugin.plugins import build_plugin_host
from ptychodus_torch_plugin.reconstructors.iterative.config import IterativeConfig

ROOT = Path(__file__).resolve().parents[1]
SETTINGS_CLASSES = (ModelConfig, TrainingConfig, ExecutionConfig, PerformanceConfig, IterativeConfig)


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("command", [c for c in COMMANDS if c != "ptychodus"])
def test_every_flag_is_kebab_case_has_help_and_shows_its_default(command):
    sub = _subparsers()[command]
    text = sub.format_help()
    listing = text.split("\n\n", 1)[1]  # below the usage line
    for action in sub._actions:
        if not action.option_strings or action.help == argparse.SUPPRESS or isinstance(action, argparse._HelpAction):
            continue
        primary = next(name for name in action.option_strings if name.startswith("--"))
        assert "_" not in primary, f"{command}: {primary} is not kebab-case"
        assert action.help, f"{command}: {primary} has no help"
        assert re.search(rf"(  |, ){re.escape(primary)}([ ,\n]|$)", listing, re.M), f"{command}: {primary} not listed"
        snake = [name for name in action.option_strings if "_" in name]
        for name in snake:  # hidden aliases are not listed in the help
            assert f"{name} " not in listing and f"{name}," not in listing, f"{command}: alias {name} shown"
        if not action.required:
            helped = sub._get_formatter()._expand_help(action) if action.help else ""
            assert "default" in helped.lower(), f"{command}: {primary} does not show its default: {helped!r}"


def test_no_flag_is_listed_twice():
    """The old help said ``--epochs ITERATIVE_EPOCHS, --epochs ITERATIVE_EPOCHS``."""
    for command, sub in _subparsers().items():
        for line in sub.format_help().splitlines():
            names = re.findall(r"(--[\w-]+)", line.split("  ")[1] if line.startswith("  --") else "")
            assert len(names) == len(set(names)), f"{command}: {line}"


def test_snake_case_spellings_are_still_accepted():
    args = parse_command_line(["train", "--train_data_file", "a.npz", "--output_dir", "out", "--max_epochs", "3",
                               "--learning_rate", "0.01", "--no-probe_trainable", "--lr_gamma", "0.5"])
    assert (args.max_epochs, args.learning_rate, args.lr_gamma, args.probe_trainable) == (3, 0.01, 0.5, False)
    args = parse_command_line(["reconstruct", "--data_file", "s.npz", "--output_dir", "o", "--iterative_batch_size",
                               "8", "--max_position_step", "0.2", "--memory_budget", "1GiB"])
    options = options_for(args, build_plugin_host(load_entry_points=False), "iterative")
    assert (options.batch_size, options.max_position_step_px, args.memory_budget) == (8, 0.2, "1GiB")


def test_train_names_a_model_type_and_reconstruct_a_model_file():
    train = _subparsers()["train"].format_help()
    reconstruct = _subparsers()["reconstruct"].format_help()
    assert "--model-type MODEL_TYPE" in train and "--model " not in train
    assert "--model MODEL" in reconstruct and "model file" in reconstruct
    assert parse_command_line(["train", "--train-data-file", "a", "--output-dir", "o", "--model", "supervised"]
                              ).model_type == "supervised"  # the old spelling still works


def test_every_setting_is_declared_with_help_and_a_unique_ptychodus_name():
    names: dict[str, str] = {}
    for cls in SETTINGS_CLASSES:
        for item in declared(cls):
            assert item.setting.help, f"{cls.__name__}.{item.name}"
            name = item.ptychodus_name
            if name is not None:
                assert name not in names, f"{name} declared by {names[name]} and {cls.__name__}"
                names[name] = cls.__name__
    # the settings the ptychodus group used to lack
    for name in ("step_size", "max_position_step", "patience", "iterative_seed", "warmup_epochs", "lr_gamma",
                 "early_stopping_patience", "channels_last", "cuda_graphs"):
        assert name in names


def test_ptychodus_group_holds_every_declared_setting_with_the_dataclass_default():
    pytest.importorskip("ptychodus")
    from ptychodus.api.settings import SettingsRegistry

    from ptychodus_torch_plugin.ptychodus.settings import TorchSettings

    settings = TorchSettings(SettingsRegistry())
    held = set(settings.group.parameters())
    for cls in SETTINGS_CLASSES:
        for item in declared(cls):
            if item.ptychodus_name is not None:
                assert item.ptychodus_name in held, item.ptychodus_name
    assert settings.iterative_config() == IterativeConfig()
    assert settings.execution_config().performance == PerformanceConfig()


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ptychodus_torch_plugin", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


def test_print_config_then_config_replays_it_with_flags_winning(tmp_path):
    """``--print-config`` prints what config.json would hold; ``--config`` makes it the defaults (the
    required flags included), and a flag given beside it wins."""
    printed = _run(["train", "--train-data-file", "a.npz", "b.npz", "--output-dir", "out", "--max-epochs", "7",
                    "--gridsize", "2", "--scheduler", "cosine", "--precision", "bf16", "--print-config"], tmp_path)
    assert printed.returncode == 0, printed.stderr
    record = json.loads(printed.stdout)
    assert record["max_epochs"] == 7 and record["model.gridsize"] == 2 and record["performance.precision"] == "bf16"
    assert record["train_data_file"] == ["a.npz", "b.npz"]
    (tmp_path / "config.json").write_text(printed.stdout)
    replayed = _run(["train", "--config", "config.json", "--max-epochs", "9", "--print-config"], tmp_path)
    assert replayed.returncode == 0, replayed.stderr
    again = json.loads(replayed.stdout)
    assert again == {**record, "max_epochs": 9}
    broken = _run(["train", "--config", "missing.json", "--print-config"], tmp_path)
    assert broken.returncode == 2 and broken.stderr.strip().count("\n") == 0
    assert "missing.json: file not found" in broken.stderr


def test_compare_refuses_a_single_reconstructor_flag(tmp_path):
    done = _run(["compare", "--data-file", "s.npz", "--output-dir", "o", "--reconstructor", "iterative"], tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "--reconstructors" in done.stderr and done.stderr.strip().count("\n") == 0


def _readme_commands() -> list[list[str]]:
    """``ptychodus-torch ...`` lines of the README's code blocks, continuation lines joined."""
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    commands = []
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("#")[0].strip()
            if line.startswith("ptychodus-torch ") and not line.startswith("ptychodus-torch ptychodus"):
                commands.append(shlex.split(line)[1:])
            elif line.startswith("torchrun") and "ptychodus_torch_plugin.reconstruct" in line:
                words = shlex.split(line)
                commands.append(["reconstruct", *words[words.index("ptychodus_torch_plugin.reconstruct") + 1:]])
    return commands


def test_the_readme_commands_parse():
    commands = _readme_commands()
    assert len(commands) >= 6
    for argv in commands:
        parse_command_line(argv)  # an unknown flag exits with status 2


def test_reconstructor_settings_come_from_its_options_class_and_foreign_flags_are_refused():
    """The built-ins' settings are made exactly as a plugin's are: flags shared by name, each reconstructor
    converting and validating its own; a flag the chosen one does not take is refused, not ignored."""
    from ptychodus_torch_plugin.errors import ConfigError
    from ptychodus_torch_plugin.reconstructors.network_options import (
        NetworkOptions,
        NetworkThenIterativeOptions,
    )

    host = build_plugin_host(load_entry_points=False)
    args = parse_command_line(["reconstruct", "--data-file", "s", "--output-dir", "o", "--epochs", "7",
                               "--inference-batch-size", "32", "--option", "momentum=0.5"])
    seeded = options_for(args, host, "pinn+iterative")
    assert isinstance(seeded, NetworkThenIterativeOptions)
    assert (seeded.epochs, seeded.inference_batch_size, seeded.momentum) == (7, 32, 0.5)
    with pytest.raises(ConfigError, match="--epochs is a setting of iterative, pinn\\+iterative, not of the reconstructor 'pinn'"):
        options_for(args, host, "pinn")
    only_network = parse_command_line(["reconstruct", "--data-file", "s", "--output-dir", "o",
                                       "--inference-batch-size", "0"])
    with pytest.raises(ConfigError, match="inference_batch_size=.0.: must be a positive integer"):
        options_for(only_network, host, "pinn")
    assert options_for(parse_command_line(["reconstruct", "--data-file", "s", "--output-dir", "o"]), host,
                       "pinn") == NetworkOptions()
    with pytest.raises(ConfigError, match="reconstructor 'iterative' has no setting 'alpha'"):
        options_for(parse_command_line(["reconstruct", "--data-file", "s", "--output-dir", "o", "--option",
                                        "alpha=1"]), host, "iterative")


def test_the_specification_s_settings_tables_are_the_declarations():
    """The tables are made by scripts/settings_tables.py; rerun it with --write after changing a setting."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("settings_tables", ROOT / "scripts" / "settings_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = module.SPEC.read_text()
    assert len(module.BLOCK.findall(text)) == len(module.CLASSES)
    assert module.render(text) == text, "run: python scripts/settings_tables.py --write"
