"""Builds the plugin manager: built-ins first, then third-party plugins from entry points.

Built-in backends are plugins like any other: they are registered with the same ``hookimpl`` marker and
found by name. Third-party plugins come from the entry-point group ``ptychodus_torch``. A plugin that
cannot be imported, validated or asked for its backends is recorded in :attr:`PluginHost.broken` and the
host carries on, unless ``PTYCHODUS_TORCH_STRICT_PLUGINS=1`` asks for the error to be raised.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import pluggy

from . import PROJECT_NAME, __version__, hookspecs
from .errors import ConfigError, PluginError

if TYPE_CHECKING:  # annotations only: building the host must not import torch-heavy modules
    import torch

    from .accelerators import Accelerator
    from .loggers.base import LoggerBackend, RunStatus
    from .models.base import ModelType
    from .plugin_types import RunContext
    from .reconstructors.base import Reconstructor

ENTRY_POINT_GROUP = "ptychodus_torch"
LOAD_PLUGINS_ENV = "PTYCHODUS_TORCH_LOAD_PLUGINS"
STRICT_PLUGINS_ENV = "PTYCHODUS_TORCH_STRICT_PLUGINS"
DISTRIBUTION = "ptychodus-torch-plugin"

#: Built-in plugins as ``module`` or ``module:attribute``; registered in this order under these names.
BUILTIN_PLUGINS: tuple[str, ...] = (
    "ptychodus_torch_plugin.loggers.csv_logger",
    "ptychodus_torch_plugin.loggers.tensorboard_logger",
    "ptychodus_torch_plugin.loggers.mlflow_logger",
    "ptychodus_torch_plugin.loggers.null_logger",
    "ptychodus_torch_plugin.accelerators:cpu_plugin",
    "ptychodus_torch_plugin.accelerators:cuda_plugin",
    "ptychodus_torch_plugin.accelerators:mps_plugin",
    "ptychodus_torch_plugin.models.builtin",
    "ptychodus_torch_plugin.reconstructors.builtin",
)

#: Registration hooks and the key under which ``plugins`` lists what each one registered.
REGISTRATION_HOOKS: dict[str, str] = {
    "loggers": "ptychodus_torch_register_loggers",
    "accelerators": "ptychodus_torch_register_accelerators",
    "model_types": "ptychodus_torch_register_model_types",
    "reconstructors": "ptychodus_torch_register_reconstructors",
}

_log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class PluginRecord:
    """A plugin that loaded."""

    name: str
    distribution: str | None
    version: str | None
    builtin: bool


@dataclass(frozen=True)
class BrokenPlugin:
    """A plugin that failed; ``stage`` is ``import``, ``register`` or the name of the hook that raised."""

    name: str
    distribution: str | None
    version: str | None
    stage: str
    error: str


@dataclass(frozen=True)
class Registered(Generic[T]):
    """A backend together with the plugin that registered it."""

    backend: T
    plugin: str


def _normalise(dist_name: str) -> str:
    return re.sub(r"[-_.]+", "-", dist_name).lower()


def _requested_distributions(env: Mapping[str, str]) -> set[str] | None:
    """``None`` = load every third-party plugin; an empty set = load none."""
    raw = env.get(LOAD_PLUGINS_ENV)
    if raw is None:
        return None
    return {_normalise(part) for part in raw.split(",") if part.strip()}


def _is_strict(env: Mapping[str, str]) -> bool:
    return env.get(STRICT_PLUGINS_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def _import_object(spec: str) -> object:
    module_name, _, attribute = spec.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attribute) if attribute else module


def _error_text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


@dataclass
class PluginHost:
    """A typed front to the pluggy manager: backend lookup by name and isolated trainer events."""

    manager: pluggy.PluginManager
    records: list[PluginRecord] = field(default_factory=list)
    broken: list[BrokenPlugin] = field(default_factory=list)
    strict: bool = False
    _registries: dict[str, dict[str, Registered[Any]]] = field(default_factory=dict)
    _failed_event_plugins: set[str] = field(default_factory=set)

    # -- registration hooks ---------------------------------------------------------------------------

    def _registry(self, kind: str) -> dict[str, Registered[Any]]:
        """Ask every plugin for its backends of one kind, once, and index them by name."""
        if kind in self._registries:
            return self._registries[kind]
        registry: dict[str, Registered[Any]] = {}
        for impl in reversed(self._implementations(REGISTRATION_HOOKS[kind])):
            try:
                backends = list(impl.function() or [])
                for backend in backends:
                    if not isinstance(getattr(backend, "name", None), str) or not backend.name:
                        raise PluginError(f"returned {backend!r}, which has no 'name'")
            except Exception as error:  # a plugin's bug must not break the host
                self._record_hook_failure(impl.plugin_name, REGISTRATION_HOOKS[kind], error)
                continue
            for backend in backends:
                key = backend.name.casefold()
                if key in registry:
                    raise PluginError(
                        f"{kind[:-1].replace('_', ' ')} '{backend.name}' is registered by two plugins: "
                        f"'{registry[key].plugin}' and '{impl.plugin_name}'. Uninstall or disable one "
                        f"(see {LOAD_PLUGINS_ENV})."
                    )
                registry[key] = Registered(backend, impl.plugin_name)
        self._registries[kind] = registry
        return registry

    def _implementations(self, hook_name: str) -> list[pluggy.HookImpl]:
        return list(getattr(self.manager.hook, hook_name).get_hookimpls())

    def _record_hook_failure(self, plugin_name: str, stage: str, error: BaseException) -> None:
        if self.strict:
            raise PluginError(f"plugin '{plugin_name}' failed in {stage}: {_error_text(error)}") from error
        record = self._record_for(plugin_name)
        self.broken.append(
            BrokenPlugin(plugin_name, record.distribution if record else None,
                         record.version if record else None, stage, _error_text(error))
        )
        _log.warning("plugin %r failed in %s: %s", plugin_name, stage, _error_text(error))

    def _record_for(self, plugin_name: str) -> PluginRecord | None:
        return next((r for r in self.records if r.name == plugin_name), None)

    def _find(self, kind: str, name: str, flag: str) -> Registered[Any]:
        registry = self._registry(kind)
        found = registry.get(name.casefold())
        if found is None:
            known = ", ".join(sorted(r.backend.name for r in registry.values())) or "none"
            raise ConfigError(f"unknown {flag} '{name}'. Registered: {known}")
        return found

    def loggers(self) -> dict[str, Registered[LoggerBackend]]:
        return dict(self._registry("loggers"))

    def logger_backend(self, name: str) -> LoggerBackend:
        """The logger backend registered as ``name`` (``--logger NAME``)."""
        backend: LoggerBackend = self._find("loggers", name, "logger").backend
        return backend

    def accelerators(self) -> dict[str, Accelerator]:
        """Every registered accelerator by name."""
        return {key: r.backend for key, r in self._registry("accelerators").items()}

    def resolve_device(self, spec: str) -> torch.device:
        """``--accelerator`` to a ``torch.device``; see :func:`.accelerators.resolve_device`."""
        from .accelerators import resolve_device

        return resolve_device(spec, self.accelerators())

    def model_types(self) -> dict[str, Registered[ModelType]]:
        return dict(self._registry("model_types"))

    def model_type(self, name: str) -> ModelType:
        """The model type registered as ``name`` (``--model NAME``)."""
        model_type: ModelType = self._find("model_types", name, "model type").backend
        return model_type

    def reconstructors(self) -> dict[str, Registered[Reconstructor]]:
        return dict(self._registry("reconstructors"))

    def reconstructor(self, name: str) -> Registered[Reconstructor]:
        """The :class:`~.reconstructors.base.Reconstructor` registered as ``name`` (``--reconstructor
        NAME``), with the plugin that registered it (named when it fails)."""
        return self._find("reconstructors", name, "reconstructor")

    # -- trainer events: one typed method per hook ----------------------------------------------------

    def train_start(self, run: RunContext) -> None:
        self.notify("ptychodus_torch_train_start", run=run)

    def epoch_end(self, run: RunContext, epoch: int, metrics: Mapping[str, float]) -> None:
        self.notify("ptychodus_torch_epoch_end", run=run, epoch=epoch, metrics=metrics)

    def checkpoint_saved(self, run: RunContext, path: Path, kind: str) -> None:
        self.notify("ptychodus_torch_checkpoint_saved", run=run, path=path, kind=kind)

    def train_end(self, run: RunContext, status: RunStatus, metrics: Mapping[str, float]) -> None:
        self.notify("ptychodus_torch_train_end", run=run, status=status, metrics=metrics)

    def train_failed(self, run: RunContext, error: BaseException) -> None:
        self.notify("ptychodus_torch_train_failed", run=run, error=error)

    def notify(self, hook_name: str, **kwargs: Any) -> None:
        """Call a trainer-event hook on every plugin; one that raises is reported once and skipped.

        Each implementation is called on its own (not through one pluggy call) so that a faulty
        third-party plugin cannot stop the others, nor the training run.
        """
        for impl in self._implementations(hook_name):
            try:
                impl.function(**{arg: kwargs[arg] for arg in impl.argnames})
            except Exception as error:
                if self.strict:
                    raise
                if impl.plugin_name not in self._failed_event_plugins:
                    self._failed_event_plugins.add(impl.plugin_name)
                    warnings.warn(
                        f"plugin '{impl.plugin_name}' raised in {hook_name}: {_error_text(error)} "
                        "(reported once; training goes on)",
                        RuntimeWarning,
                        stacklevel=2,
                    )

    # -- listing --------------------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """Everything ``ptychodus-torch plugins`` prints: loaded plugins, their hooks and backends, and
        the broken ones."""
        registered: dict[str, dict[str, list[str]]] = {}
        conflicts: list[str] = []
        for kind in REGISTRATION_HOOKS:
            try:
                for item in self._registry(kind).values():
                    registered.setdefault(item.plugin, {}).setdefault(kind, []).append(item.backend.name)
            except PluginError as error:
                conflicts.append(str(error))
        plugins = []
        for record in self.records:
            plugin = self.manager.get_plugin(record.name)
            if plugin is None:
                continue
            hooks = sorted(caller.name for caller in self.manager.get_hookcallers(plugin) or [])
            plugins.append({**record.__dict__, "hooks": hooks, **registered.get(record.name, {})})
        try:
            settings = {item.backend.name: item.backend.describe()["options"]
                        for item in self._registry("reconstructors").values()}
        except PluginError:
            settings = {}
        return {
            "plugins": plugins,
            "reconstructor_settings": settings,
            "broken": [b.__dict__ for b in self.broken],
            "conflicts": conflicts,
        }


def build_plugin_host(
    *,
    load_entry_points: bool = True,
    extra_plugins: Iterable[tuple[str, object]] = (),
    env: Mapping[str, str] | None = None,
) -> PluginHost:
    """A fresh plugin host: hook specs, built-ins, then third-party entry points.

    Each call builds a new manager, so tests (and a host application) never share plugin state.
    ``extra_plugins`` are ``(name, plugin)`` pairs registered after the built-ins, for tests and for a
    host that wants to inject its own plugin without packaging it.
    """
    env = os.environ if env is None else env
    manager = pluggy.PluginManager(PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    host = PluginHost(manager, strict=_is_strict(env))
    for spec in BUILTIN_PLUGINS:
        manager.register(_import_object(spec), name=spec)
        host.records.append(PluginRecord(spec, DISTRIBUTION, __version__, builtin=True))
    for name, plugin in extra_plugins:
        _register_isolated(host, name, lambda plugin=plugin: plugin, None, None)
    if load_entry_points:
        wanted = _requested_distributions(env)
        for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = entry_point.dist
            dist_name = dist.metadata["Name"] if dist is not None else None
            if wanted is not None and (dist_name is None or _normalise(dist_name) not in wanted):
                continue
            _register_isolated(host, entry_point.name, entry_point.load, dist_name,
                               dist.version if dist is not None else None)
    return host


def _register_isolated(
    host: PluginHost,
    name: str,
    load: Callable[[], object],
    distribution: str | None,
    version: str | None,
) -> None:
    """Import, register and validate one plugin; a failure is recorded (or raised when strict)."""
    manager = host.manager
    stage = "import"
    try:
        plugin = load()
        stage = "register"
        if manager.has_plugin(name):
            raise PluginError(f"a plugin named '{name}' is already registered")
        manager.register(plugin, name=name)
        try:
            manager.check_pending()  # an implementation of a hook that does not exist
        except pluggy.PluginValidationError:
            manager.unregister(name=name)
            raise
    except Exception as error:
        if host.strict:
            raise PluginError(f"plugin '{name}' ({distribution}) failed to {stage}: {_error_text(error)}") from error
        host.broken.append(BrokenPlugin(name, distribution, version, stage, _error_text(error)))
        _log.warning("plugin %r from %s failed to %s: %s", name, distribution, stage, _error_text(error))
        return
    host.records.append(PluginRecord(name, distribution, version, builtin=False))
