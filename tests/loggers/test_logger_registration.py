"""Each built-in backend module is a plugin on its own, registered the way a third-party one would be."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pluggy

from ptychodus_torch_plugin import PROJECT_NAME, hookspecs
from ptychodus_torch_plugin.loggers.base import LoggerBackend

BUILTIN_LOGGER_MODULES = [
    "ptychodus_torch_plugin.loggers.csv_logger",
    "ptychodus_torch_plugin.loggers.tensorboard_logger",
    "ptychodus_torch_plugin.loggers.mlflow_logger",
    "ptychodus_torch_plugin.loggers.null_logger",
]


def test_every_module_registers_its_backend() -> None:
    manager = pluggy.PluginManager(PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    for name in BUILTIN_LOGGER_MODULES:
        manager.register(importlib.import_module(name))
    answers = manager.hook.ptychodus_torch_register_loggers()
    backends = [b for answer in answers for b in answer]
    assert all(isinstance(b, LoggerBackend) and b.description and callable(b.create) for b in backends)
    assert sorted(b.name for b in backends) == ["csv", "mlflow", "none", "tensorboard"]


def test_importing_the_backends_stays_light() -> None:
    code = (
        "import importlib, sys\n"
        f"for m in {BUILTIN_LOGGER_MODULES!r}: importlib.import_module(m)\n"
        "heavy = sorted({k.split('.')[0] for k in sys.modules} & {'tensorboard', 'mlflow', 'matplotlib'})\n"
        "assert not heavy and 'torch.utils.tensorboard' not in sys.modules, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
