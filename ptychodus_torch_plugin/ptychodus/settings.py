"""Our settings as a ptychodus parameter group, made from the settings' declarations (:mod:`..options`),
and their translation into the package's config dataclasses.

Why a ptychodus group: values then persist in ptychodus's INI settings file (section
``[PtychodusTorch]``) and are set in batch mode through ``settings.ini``, like every built-in library.
Every declared field with a ptychodus name is in the group, under that name, with the dataclass's
default; a new field appears here without a line of this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ptychodus.api.settings import SettingsRegistry

from ..config import ExecutionConfig, ModelConfig, PerformanceConfig, TrainingConfig
from ..errors import ConfigError
from ..options import Declared, declared, setting
from ..reconstructors.iterative.config import IterativeConfig

#: Settings-file section holding every parameter below.
GROUP_NAME = "PtychodusTorch"


@dataclass(frozen=True)
class PtychodusRunConfig:
    """Settings that only a run inside ptychodus has."""

    model_file: Path | None = setting(None, cli=False, help="model file to reconstruct with (unset: the one "
                                                            "loaded or trained in ptychodus)")
    inference_batch_size: int = setting(256, cli=False, minimum=1, help="groups per network pass")
    snapshot_every: int = setting(10, cli=False, minimum=0,
                                  help="hand ptychodus the current object every N epochs of an iterative "
                                       "reconstruction (0: only the result); batch mode saves each as a "
                                       "product file")
    """ptychodus saves every product a reconstructor yields (``product.NNNNNN.h5`` in batch mode), so one
    per epoch would write a file per epoch; pty-chi's backend likewise yields every few epochs."""


#: The settings classes shown in the group, in the order of the settings file.
SECTIONS: tuple[type, ...] = (ModelConfig, TrainingConfig, ExecutionConfig, PerformanceConfig, IterativeConfig,
                              PtychodusRunConfig)


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
    if item.kind is bool and not item.optional:
        return group.create_boolean_parameter(name, bool(item.default))
    if item.kind is int:
        default = item.setting.unset if item.default is None else item.default
        return group.create_integer_parameter(name, int(default), minimum=None if minimum is None else int(minimum))
    if item.kind is float:
        return group.create_real_parameter(name, float(item.default), minimum=minimum)
    if item.kind is Path:
        return group.create_path_parameter(name, Path() if item.default is None else Path(item.default))
    return group.create_string_parameter(name, item.show(item.default))


class TorchSettings:
    """The ``[PtychodusTorch]`` parameter group; one instance is shared by all our reconstructors.

    Each parameter is also an attribute under its settings-file name (``settings.max_epochs``)."""

    def __init__(self, registry: SettingsRegistry) -> None:
        group = registry.create_group(GROUP_NAME)
        self.group = group
        self._entries: dict[type, dict[str, _Entry]] = {}
        self._by_name: dict[str, Any] = {}
        for cls in SECTIONS:
            entries = self._entries.setdefault(cls, {})
            for item in declared(cls):
                name = item.ptychodus_name
                if name is None:
                    continue
                if name in self._by_name:
                    raise RuntimeError(f"two settings are named {name!r} in [{GROUP_NAME}]")
                entries[item.name] = _Entry(item, _create(group, name, item))
                self._by_name[name] = entries[item.name].parameter

    def __getattr__(self, name: str) -> Any:
        by_name = self.__dict__.get("_by_name", {})
        if name in by_name:
            return by_name[name]
        raise AttributeError(name)

    def _values(self, cls: type) -> dict[str, Any]:
        return {name: entry.value() for name, entry in self._entries[cls].items()}

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

    def iterative_config(self) -> IterativeConfig:
        config = IterativeConfig(**self._values(IterativeConfig))
        config.validate()
        return config

    def run_config(self) -> PtychodusRunConfig:
        return PtychodusRunConfig(**self._values(PtychodusRunConfig))

    def model_file_path(self) -> Path | None:
        return self.run_config().model_file
