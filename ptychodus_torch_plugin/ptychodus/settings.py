"""Our settings as a ptychodus parameter group, made from the settings' declarations (:mod:`..options`),
and their translation into the package's config dataclasses.

Why a ptychodus group: values then persist in ptychodus's INI settings file (section
``[PtychodusTorch]``) and are set in batch mode through ``settings.ini``, like every built-in library.
Every declared field with a ptychodus name is in the group, under that name, with the dataclass's
default; a new field appears here without a line of this module.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ptychodus.api.settings import SettingsRegistry

from ..config import ExecutionConfig, ModelConfig, PerformanceConfig, TrainingConfig
from ..errors import ConfigError
from ..options import Declared, declared, make_options
from ..reconstructors.iterative.config import IterativeConfig
from .run_config import PtychodusRunConfig

#: Settings-file section holding every parameter below.
GROUP_NAME = "PtychodusTorch"


#: The settings classes shown in the group, in the order of the settings file; each reconstructor's options
#: class follows (the built-ins' first).
SECTIONS: tuple[type, ...] = (ModelConfig, TrainingConfig, ExecutionConfig, PerformanceConfig, PtychodusRunConfig)


def optional_path(value: Path) -> Path | None:
    """ptychodus stores an unset path as '' which reads back as '.'; both mean 'not set'."""
    return None if str(value) in ("", ".") else Path(value)


@dataclass(frozen=True)
class _Entry:
    """One field's parameter in the group."""

    item: Declared
    parameter: Any

    def value(self) -> Any:
        """The parameter's value as the field's value; a bad text is a ConfigError naming the setting."""
        item, raw = self.item, self.parameter.get_value()
        if item.kind is Path:
            return optional_path(raw)
        if isinstance(raw, (bool, int, float)):  # a number or switch parameter (see _create)
            return None if item.optional and raw == item.setting.unset else raw
        text = str(raw).strip()
        if not text:
            return item.default
        if item.setting.choices:
            text = text.lower()
        try:
            return item.parse(text)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"[{GROUP_NAME}] {item.ptychodus_name}: {error}") from error


def _create(group: Any, name: str, item: Declared) -> Any:
    """A ptychodus parameter of the field's kind: numbers and switches as such, anything else as text."""
    minimum = item.setting.minimum
    default = item.setting.unset if item.default is None else item.default  # numbers have no empty value
    if item.kind is bool and not item.optional:
        return group.create_boolean_parameter(name, bool(item.default))
    if item.kind is int:
        return group.create_integer_parameter(name, int(default), minimum=None if minimum is None else int(minimum))
    if item.kind is float:
        return group.create_real_parameter(name, float(default), minimum=minimum)
    if item.kind is Path:
        return group.create_path_parameter(name, Path() if item.default is None else Path(item.default))
    return group.create_string_parameter(name, item.show(item.default))


class TorchSettings:
    """The ``[PtychodusTorch]`` parameter group; one instance is shared by all our reconstructors.

    Each parameter is also an attribute under its settings-file name (``settings.max_epochs``). Every
    registered reconstructor's options are in the group too, under their declared names; a field that
    another reconstructor already declared alike (same name and type) shares its parameter, and one that
    clashes is prefixed with its reconstructor's name (``epie_epochs``)."""

    def __init__(self, registry: SettingsRegistry, reconstructors: Iterable[Any] | None = None) -> None:
        if reconstructors is None:
            from ..reconstructors.builtin import BUILTIN_RECONSTRUCTORS

            reconstructors = BUILTIN_RECONSTRUCTORS
        group = registry.create_group(GROUP_NAME)
        self.group = group
        self._entries: dict[Any, dict[str, _Entry]] = {}
        self._by_name: dict[str, _Entry] = {}
        self._options: dict[str, type] = {}
        for cls in SECTIONS:
            self._entries[cls] = {}
            for item in declared(cls):
                if item.ptychodus_name is not None:
                    self._entries[cls][item.name] = self._add(item.ptychodus_name, item)
        for reconstructor in reconstructors:
            if reconstructor.options is None:
                continue
            self._options[reconstructor.name] = reconstructor.options
            entries = self._entries.setdefault(reconstructor.name, {})
            for item in declared(reconstructor.options):
                name = item.ptychodus_name
                if name is None:
                    continue
                known = self._by_name.get(name)
                if known is not None and (known.item.kind, known.item.optional) != (item.kind, item.optional):
                    name = f"{reconstructor.name}_{name}"
                    known = self._by_name.get(name)
                entries[item.name] = known if known is not None else self._add(name, item)

    def _add(self, name: str, item: Declared) -> _Entry:
        if name in self._by_name:
            raise RuntimeError(f"two settings are named {name!r} in [{GROUP_NAME}]")
        entry = _Entry(item, _create(self.group, name, item))
        self._by_name[name] = entry
        return entry

    def __getattr__(self, name: str) -> Any:
        by_name = self.__dict__.get("_by_name", {})
        if name in by_name:
            return by_name[name].parameter
        raise AttributeError(name)

    def _values(self, key: Any) -> dict[str, Any]:
        return {name: entry.value() for name, entry in self._entries[key].items()}

    def model_config(self, model_type: str) -> ModelConfig:
        return ModelConfig(model_type=model_type, **self._values(ModelConfig))

    def training_config(self, model_type: str, train_data_file: Path, output_dir: Path) -> TrainingConfig:
        """``output_dir`` is ptychodus's output folder; the ``output_dir`` setting, when set, wins."""
        values = self._values(TrainingConfig)
        values["output_dir"] = values.get("output_dir") or Path(output_dir)
        config = TrainingConfig(train_data_file=Path(train_data_file), **values,
                                quiet=True,  # no progress bars inside ptychodus; progress goes through TrainOutput
                                model=self.model_config(model_type))
        config.validate()
        return config

    def execution_config(self) -> ExecutionConfig:
        performance = PerformanceConfig(**self._values(PerformanceConfig))
        performance.validate()
        return ExecutionConfig(**self._values(ExecutionConfig), run_name="ptychodus", performance=performance)

    def reconstructor_options(self, name: str) -> Any:
        """The options of reconstructor ``name`` as the settings hold them (validated); None for a
        reconstructor that declares none."""
        if name not in self._options:
            return None
        return make_options(self._options[name], self._values(name), where=f"[{GROUP_NAME}] reconstructor '{name}'")

    def iterative_config(self) -> IterativeConfig:
        return self.reconstructor_options("iterative")

    def run_config(self) -> PtychodusRunConfig:
        return PtychodusRunConfig(**self._values(PtychodusRunConfig))

    def model_file_path(self) -> Path | None:
        return self.run_config().model_file
