"""The plugin host: built-ins registered like third-party plugins, lookup by name, isolation of failures."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import pytest
import torch

from ptychodus_torch_plugin import hookimpl
from ptychodus_torch_plugin.accelerators import Accelerator
from ptychodus_torch_plugin.errors import ConfigError, PluginError
from ptychodus_torch_plugin.loggers.base import LoggerBackend
from ptychodus_torch_plugin.plugins import BUILTIN_PLUGINS, build_plugin_host
from ptychodus_torch_plugin.training.context import RunContext


def _logger_plugin(name: str):
    class Plugin:
        @hookimpl
        def ptychodus_torch_register_loggers(self):
            return [LoggerBackend(name, lambda settings: None, "test")]

    return Plugin()


def test_builtins_are_plain_plugins_found_by_name():
    host = build_plugin_host(load_entry_points=False)
    assert set(host.loggers()) >= {"csv", "tensorboard", "mlflow", "none"}
    assert host.logger_backend("CSV").name == "csv"
    for spec in BUILTIN_PLUGINS:
        assert host.manager.has_plugin(spec)
    assert host.loggers()["csv"].plugin == "ptychodus_torch_plugin.loggers.csv_logger"
    assert set(host.accelerators()) >= {"cpu", "cuda", "mps"}


def test_each_host_is_isolated():
    first = build_plugin_host(load_entry_points=False, extra_plugins=[("extra", _logger_plugin("x1"))])
    second = build_plugin_host(load_entry_points=False)
    assert "x1" in first.loggers()
    assert "x1" not in second.loggers()


def test_unknown_logger_lists_registered_names():
    host = build_plugin_host(load_entry_points=False)
    with pytest.raises(ConfigError, match=r"unknown logger 'nope'.*csv.*mlflow.*none.*tensorboard"):
        host.logger_backend("nope")


def test_duplicate_backend_name_names_both_plugins():
    host = build_plugin_host(load_entry_points=False, extra_plugins=[("impostor", _logger_plugin("csv"))])
    with pytest.raises(PluginError, match=r"'csv'.*two plugins.*csv_logger.*impostor|impostor.*csv_logger"):
        host.logger_backend("csv")
    assert any("two plugins" in c for c in host.describe()["conflicts"])


def test_registration_hook_that_raises_is_recorded_not_fatal():
    class Faulty:
        @hookimpl
        def ptychodus_torch_register_loggers(self):
            raise RuntimeError("boom")

    host = build_plugin_host(load_entry_points=False, extra_plugins=[("faulty", Faulty())])
    assert "csv" in host.loggers()
    assert [(b.name, b.stage) for b in host.broken] == [("faulty", "ptychodus_torch_register_loggers")]
    assert "boom" in host.broken[0].error


def test_strict_mode_raises(monkeypatch):
    class Faulty:
        @hookimpl
        def ptychodus_torch_register_loggers(self):
            raise RuntimeError("boom")

    host = build_plugin_host(load_entry_points=False, extra_plugins=[("faulty", Faulty())],
                             env={"PTYCHODUS_TORCH_STRICT_PLUGINS": "1"})
    with pytest.raises(PluginError, match="faulty.*boom"):
        host.loggers()


def test_plugin_implementing_unknown_hook_is_recorded():
    class Typo:
        @hookimpl
        def ptychodus_torch_register_logers(self):  # misspelt on purpose
            return []

    host = build_plugin_host(load_entry_points=False, extra_plugins=[("typo", Typo())])
    assert [(b.name, b.stage) for b in host.broken] == [("typo", "register")]
    assert not host.manager.has_plugin("typo")


def test_plugin_failing_to_import_is_recorded():
    def load():
        raise ImportError("no module named nowhere")

    from ptychodus_torch_plugin.plugins import _register_isolated

    host = build_plugin_host(load_entry_points=False)
    _register_isolated(host, "gone", load, "gone-dist", "1.0")
    assert host.broken[-1].stage == "import"
    assert host.broken[-1].distribution == "gone-dist"


def test_trainer_event_failure_is_reported_once_and_others_still_run(tmp_path):
    calls = []

    class Bad:
        @hookimpl
        def ptychodus_torch_epoch_end(self, run, epoch, metrics):
            raise RuntimeError("bad plugin")

    class Good:
        @hookimpl
        def ptychodus_torch_epoch_end(self, epoch, metrics):  # a subset of the arguments is allowed
            calls.append((epoch, dict(metrics)))

    host = build_plugin_host(load_entry_points=False, extra_plugins=[("bad", Bad()), ("good", Good())])
    run = RunContext(output_dir=tmp_path, run_dir=tmp_path, device="cpu")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        host.epoch_end(run, 0, {"loss": 1.0})
        host.epoch_end(run, 1, {"loss": 0.5})
    assert calls == [(0, {"loss": 1.0}), (1, {"loss": 0.5})]
    assert len([w for w in caught if "bad plugin" in str(w.message)]) == 1


def test_load_plugins_env_restricts_entry_points():
    host = build_plugin_host(env={"PTYCHODUS_TORCH_LOAD_PLUGINS": ""})
    assert all(record.builtin for record in host.records)


def test_describe_lists_hooks_and_backends():
    described = build_plugin_host(load_entry_points=False).describe()
    by_name = {p["name"]: p for p in described["plugins"]}
    csv = by_name["ptychodus_torch_plugin.loggers.csv_logger"]
    assert csv["loggers"] == ["csv"]
    assert csv["hooks"] == ["ptychodus_torch_register_loggers"]
    assert csv["distribution"] == "ptychodus-torch-plugin"
    assert by_name["ptychodus_torch_plugin.accelerators:cuda_plugin"]["accelerators"] == ["cuda"]
    assert described["broken"] == []


# --- accelerators ------------------------------------------------------------------------------------


def test_cpu_and_auto_on_a_machine_without_gpu():
    host = build_plugin_host(load_entry_points=False)
    assert host.resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert host.resolve_device("auto").type == expected


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("spec", ["cuda", "gpu", "cuda:1"])
def test_unavailable_accelerator_is_a_clear_error(spec):
    host = build_plugin_host(load_entry_points=False)
    with pytest.raises(ConfigError, match=r"not available on this machine\. Available: cpu"):
        host.resolve_device(spec)


@pytest.mark.parametrize("spec, message", [("tpu9", "unknown accelerator 'tpu9'"), ("cpu:x", "device index"),
                                           ("auto:0", "takes no device index"), ("cpu:3", "out of range")])
def test_bad_accelerator_specs(spec, message):
    host = build_plugin_host(load_entry_points=False)
    with pytest.raises(ConfigError, match=message):
        host.resolve_device(spec)


def test_third_party_accelerator_takes_part_in_auto():
    class Fake:
        @hookimpl
        def ptychodus_torch_register_accelerators(self):
            return [Accelerator("fakexpu", "meta", lambda: True, lambda: 2, auto_priority=100)]

    host = build_plugin_host(load_entry_points=False, extra_plugins=[("fake", Fake())])
    assert host.resolve_device("auto") == torch.device("meta")
    assert host.resolve_device("fakexpu:1") == torch.device("meta", 1)


# --- light import -----------------------------------------------------------------------------------


def test_importing_package_and_building_host_does_not_import_optional_backends():
    code = (
        "import sys, ptychodus_torch_plugin.plugins as p; h = p.build_plugin_host(); h.loggers(); "
        "print(sorted(m for m in ('tensorboard', 'mlflow', 'torch.utils.tensorboard') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().replace("'", '"')) == []


def test_every_hook_has_a_typed_host_method():
    """One host method per hook (as tox 4 wraps pluggy): registration hooks by kind, events by name."""
    import inspect

    from ptychodus_torch_plugin import hookspecs
    from ptychodus_torch_plugin.plugins import REGISTRATION_HOOKS, PluginHost

    hooks = [name for name, _ in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("ptychodus_torch_")]
    registration = set(REGISTRATION_HOOKS.values())
    for name in hooks:
        method = name.removeprefix("ptychodus_torch_register_") if name in registration else name.removeprefix(
            "ptychodus_torch_")
        assert callable(getattr(PluginHost, method, None)), f"no PluginHost.{method} for {name}"
