"""Built-in accelerators (cpu, cuda, mps), each its own plugin, and the ``--accelerator`` resolution.

Selection is a lookup by name among everything plugins registered, so a third party adds ``xpu`` by
returning one more :class:`Accelerator`. ``auto`` picks the available accelerator with the highest
``auto_priority`` (built-ins: cuda 30, mps 20, cpu 0), so a machine with a GPU never falls back to CPU
silently.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

from . import hookimpl
from .errors import ConfigError

AUTO = "auto"


@dataclass(frozen=True)
class Accelerator:
    """A kind of device training and inference can run on."""

    name: str
    device_type: str
    """``torch.device`` type string (``"cuda"`` for ``--accelerator gpu``)."""
    is_available: Callable[[], bool]
    device_count: Callable[[], int]
    aliases: tuple[str, ...] = ()
    auto_priority: int | None = None
    """Takes part in ``auto`` when set; higher wins."""
    description: str = ""

    def device(self, index: int | None = None) -> torch.device:
        return torch.device(self.device_type) if index is None else torch.device(self.device_type, index)


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


class CpuAcceleratorPlugin:
    """Registers ``cpu``: always available."""

    @hookimpl
    def ptychodus_torch_register_accelerators(self) -> list[Accelerator]:
        return [Accelerator("cpu", "cpu", lambda: True, lambda: 1, auto_priority=0, description="host CPU")]


class CudaAcceleratorPlugin:
    """Registers ``cuda`` (alias ``gpu``): NVIDIA or ROCm GPUs through torch.cuda."""

    @hookimpl
    def ptychodus_torch_register_accelerators(self) -> list[Accelerator]:
        return [
            Accelerator(
                "cuda",
                "cuda",
                torch.cuda.is_available,
                torch.cuda.device_count,
                aliases=("gpu",),
                auto_priority=30,
                description="CUDA/ROCm GPU; 'cuda:1' selects the second one",
            )
        ]


class MpsAcceleratorPlugin:
    """Registers ``mps``: Apple-silicon GPUs."""

    @hookimpl
    def ptychodus_torch_register_accelerators(self) -> list[Accelerator]:
        return [
            Accelerator(
                "mps",
                "mps",
                _mps_available,
                lambda: 1 if _mps_available() else 0,
                auto_priority=20,
                description="Apple Metal GPU",
            )
        ]


cpu_plugin = CpuAcceleratorPlugin()
cuda_plugin = CudaAcceleratorPlugin()
mps_plugin = MpsAcceleratorPlugin()


def _split_index(spec: str) -> tuple[str, int | None]:
    name, sep, index = spec.strip().casefold().partition(":")
    if not sep:
        return name, None
    if not index.isdigit():
        raise ConfigError(f"accelerator '{spec}': the part after ':' must be a device index such as 'cuda:1'")
    return name, int(index)


def resolve_device(spec: str, accelerators: Mapping[str, Accelerator]) -> torch.device:
    """Turn ``--accelerator`` (``auto``, ``cpu``, ``gpu``, ``cuda:1``, ``xpu``...) into a torch device.

    Raises :class:`ConfigError` naming what is available when the request cannot be met.
    """
    name, index = _split_index(spec)
    available = sorted(a.name for a in accelerators.values() if a.is_available())
    if name == AUTO:
        if index is not None:
            raise ConfigError("'auto' takes no device index; name the accelerator, e.g. 'cuda:1'")
        candidates = [a for a in accelerators.values() if a.auto_priority is not None and a.is_available()]
        if not candidates:
            raise ConfigError("no accelerator is available for 'auto'")
        return max(candidates, key=lambda a: a.auto_priority or 0).device()
    by_name = {alias: a for a in accelerators.values() for alias in (a.name, *a.aliases)}
    accelerator = by_name.get(name)
    if accelerator is None:
        known = ", ".join(sorted(by_name) + [AUTO])
        raise ConfigError(f"unknown accelerator '{spec}'. Registered: {known}")
    if not accelerator.is_available():
        raise ConfigError(
            f"accelerator '{spec}' is not available on this machine. Available: {', '.join(available)} "
            f"(or '{AUTO}')"
        )
    if index is not None and index >= accelerator.device_count():
        raise ConfigError(
            f"accelerator '{spec}': index {index} is out of range; this machine has "
            f"{accelerator.device_count()} {accelerator.name} device(s)"
        )
    return accelerator.device(index)
