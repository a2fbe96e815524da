"""Adds every ``ReconstructorLibrary`` registered in the entry-point group
``ptychodus.reconstructor_libraries`` to ptychodus 1.7, which itself knows only a hard-coded list.

Mechanism: ``ModelCore.__init__`` builds its built-in libraries and passes them, as the fourth argument,
to ``ProcessingCore(task_manager, settings_registry, product_api, algorithm_libraries)``, after
``PluginRegistry.load_plugins()`` has run. :func:`install` wraps ``ProcessingCore.__init__`` (once,
idempotently) so that the list it receives is extended with the entry-point libraries, each constructed
as ``Library(settings_registry, is_developer_mode_enabled)`` exactly like the built-ins. Nothing in
ptychodus is edited; ``ModelCore``, the GUI and batch mode all see the extended list.

Each library is loaded in isolation: an import error, a constructor that raises, a name containing
``_`` or clashing with a known library, or an iteration that fails is logged and that library skipped.
This module imports ptychodus lazily and never lets an exception escape into ptychodus's plugin loader.
Before patching it checks that ptychodus is a release it was written for (:data:`SUPPORTED_SERIES`) and
that the wrapped ``__init__`` still takes the arguments it expects; otherwise it logs why and leaves
ptychodus as it is, which then starts without our algorithms rather than not at all.
"""

from __future__ import annotations

import functools
import inspect
import logging
import sys
from collections.abc import Callable, Iterable, Sequence
from importlib import metadata
from typing import Any

from . import ENTRY_POINT_GROUP

#: Attribute set on the wrapper so a second :func:`install` (plugin module + launcher) is a no-op.
_MARK = "__ptychodus_entry_point_bridge__"
#: ptychodus releases whose ``ProcessingCore`` the bridge was written against (major.minor).
SUPPORTED_SERIES = ("1.7",)
#: The leading parameters of ``ProcessingCore.__init__`` that :func:`_wrap` relies on.
WRAPPED_PARAMETERS = ("self", "task_manager", "settings_registry", "product_api", "algorithm_libraries")

_log = logging.getLogger(__name__)


def is_developer_mode_enabled() -> bool:
    """Same rule as ``ModelCore.is_developer_mode_enabled`` (its logger at DEBUG or below)."""
    return logging.getLogger("ptychodus.model.core").getEffectiveLevel() <= logging.DEBUG


def _validate(library: Any, known: set[str]) -> None:
    name = library.name
    if not isinstance(name, str) or not name:
        raise ValueError(f"library name {name!r} is not a non-empty string")
    if "_" in name:
        raise ValueError(f"library name '{name}' contains '_' (ptychodus splits algorithm keys at the first '_')")
    if name.casefold() in known:
        raise ValueError(f"a library named '{name}' is already loaded")
    reconstructors = list(library)
    for reconstructor in reconstructors:
        if not isinstance(getattr(reconstructor, "name", None), str):
            raise ValueError(f"reconstructor {reconstructor!r} has no name")


def load_libraries(
    settings_registry: Any,
    developer_mode: bool,
    existing: Iterable[Any] = (),
    entry_points: Iterable[metadata.EntryPoint] | None = None,
) -> list[Any]:
    """Construct every library in :data:`ENTRY_POINT_GROUP`; broken ones are logged and skipped."""
    known = {str(library.name).casefold() for library in existing}
    found = metadata.entry_points(group=ENTRY_POINT_GROUP) if entry_points is None else entry_points
    libraries: list[Any] = []
    for entry_point in sorted(found, key=lambda ep: ep.name):
        try:
            factory = entry_point.load()
            library = factory(settings_registry, developer_mode)
            _validate(library, known)
        except Exception as error:
            _log.error("skipping reconstructor library '%s' (%s) from entry point group %s: %s: %s",
                       entry_point.name, entry_point.value, ENTRY_POINT_GROUP, type(error).__name__, error)
            continue
        known.add(library.name.casefold())
        libraries.append(library)
        _log.info("loaded reconstructor library '%s' from %s", library.name, entry_point.value)
    return libraries


def _wrap(original: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(original)
    def __init__(self: Any, task_manager: Any, settings_registry: Any, product_api: Any,
                 algorithm_libraries: Sequence[Any], *args: Any, **kwargs: Any) -> None:
        libraries = list(algorithm_libraries)
        try:
            libraries += load_libraries(settings_registry, is_developer_mode_enabled(), libraries)
        except Exception as error:  # never stop ptychodus from starting
            _log.error("entry-point reconstructor libraries not loaded: %s: %s", type(error).__name__, error)
        original(self, task_manager, settings_registry, product_api, libraries, *args, **kwargs)

    setattr(__init__, _MARK, True)
    return __init__


def upstream_loads_entry_points() -> bool:
    """True for a ptychodus that loads the group itself (the change in docs/upstream-entry-points.md)."""
    core = sys.modules.get("ptychodus.model.core")
    if core is None:
        try:
            import ptychodus.model.core as core
        except Exception:
            return False
    return getattr(core, "RECONSTRUCTOR_LIBRARY_GROUP", None) == ENTRY_POINT_GROUP


def incompatibility(version: str | None, init: Callable[..., None]) -> str | None:
    """Why the bridge must not patch this ptychodus (None when it may): another release series, or an
    ``__init__`` whose leading parameters are not :data:`WRAPPED_PARAMETERS`."""
    series = ".".join((version or "").split(".")[:2])
    if series not in SUPPORTED_SERIES:
        return (f"ptychodus {version or '(unknown version)'} is not a release this bridge supports "
                f"({', '.join(s + '.x' for s in SUPPORTED_SERIES)})")
    try:
        names = tuple(inspect.signature(init).parameters)[:len(WRAPPED_PARAMETERS)]
    except (TypeError, ValueError) as error:
        return f"ProcessingCore.__init__ cannot be inspected ({error})"
    if names != WRAPPED_PARAMETERS:
        return f"ProcessingCore.__init__ takes ({', '.join(names)}), not ({', '.join(WRAPPED_PARAMETERS)})"
    return None


def _ptychodus_version() -> str | None:
    try:
        return metadata.version("ptychodus")
    except metadata.PackageNotFoundError:
        return None


def install() -> bool:
    """Patch ``ProcessingCore.__init__``; True if the bridge is active (now or already), False if not."""
    try:
        from ptychodus.model.processing.core import ProcessingCore
    except Exception as error:
        _log.error("ptychodus is not importable; bridge not installed: %s: %s", type(error).__name__, error)
        return False
    if getattr(ProcessingCore.__init__, _MARK, False) or upstream_loads_entry_points():
        return True
    problem = incompatibility(_ptychodus_version(), ProcessingCore.__init__)
    if problem is not None:
        _log.error("ptychodus-torch algorithms not added (ptychodus starts without them): %s; install "
                   "ptychodus-torch-plugin[ptychodus] for a supported release", problem)
        return False
    ProcessingCore.__init__ = _wrap(ProcessingCore.__init__)  # type: ignore[method-assign]
    return True


def is_installed() -> bool:
    from ptychodus.model.processing.core import ProcessingCore

    return bool(getattr(ProcessingCore.__init__, _MARK, False))
