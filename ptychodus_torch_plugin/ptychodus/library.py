"""The ``ReconstructorLibrary`` ptychodus sees: one algorithm per model type and per reconstructor our
plugin host knows.

Model types (built-ins ``pinn`` and ``supervised`` plus any third-party ``ptychodus_torch`` plugin) are
trainable algorithms that reconstruct with their network. Every registered reconstructor whose name is not
a model type's is an algorithm of its own: ``iterative`` (no model file needed), ``pinn+iterative``
(trainable, trained as a ``pinn``), and any third party's, so a plugin shows up in ptychodus with no further
work. The plugin host is built once, here, and shared by every algorithm.
"""

from __future__ import annotations

from collections.abc import Iterator

from ptychodus.api.reconstruct import NullReconstructor, Reconstructor, ReconstructorLibrary
from ptychodus.api.settings import SettingsRegistry

from . import LIBRARY_NAME
from .settings import TorchSettings


class TorchReconstructorLibrary(ReconstructorLibrary):
    """Built by ptychodus (through the bridge) as ``TorchReconstructorLibrary(settings_registry, dev_mode)``."""

    def __init__(self, settings_registry: SettingsRegistry, is_developer_mode_enabled: bool) -> None:
        # The package's root logger: ptychodus attaches its task-monitor handler and log-level control to
        # it, so messages from training, inference and data loading all reach ptychodus's log view.
        super().__init__("ptychodus_torch_plugin")
        self._reconstructors: list[Reconstructor] = []
        try:
            from ..plugins import build_plugin_host
            from .reconstructor import ModelFreeReconstructor, TorchReconstructor

            host = build_plugin_host()
            model_types = host.model_types()
            reconstructors = host.reconstructors()
        except Exception as error:  # a broken plugin setup must not take ptychodus down
            self.get_logger().error("ptychodus-torch algorithms unavailable: %s: %s", type(error).__name__, error)
            self.settings = TorchSettings(settings_registry)
            if is_developer_mode_enabled:
                self._reconstructors = [NullReconstructor("pinn"), NullReconstructor("supervised")]
            return
        # every reconstructor's options in the settings group, the built-ins' first
        backends = sorted((entry.backend for entry in reconstructors.values()),
                          key=lambda backend: backend.name not in ("iterative", "pinn", "pinn+iterative"))
        self.settings = TorchSettings(settings_registry, backends)
        for key in sorted(model_types):
            self._reconstructors.append(TorchReconstructor(model_types[key].backend, self.settings, host))
        for key in sorted(set(reconstructors) - set(model_types)):
            reconstructor = reconstructors[key].backend
            if reconstructor.needs_model:
                self._reconstructors.append(TorchReconstructor(host.model_type("pinn"), self.settings, host,
                                                               reconstructor=reconstructor.name,
                                                               name=reconstructor.name))
            else:
                self._reconstructors.append(ModelFreeReconstructor(reconstructor.name, self.settings, host))

    @property
    def name(self) -> str:
        return LIBRARY_NAME

    def __iter__(self) -> Iterator[Reconstructor]:
        return iter(self._reconstructors)
