"""Each setting declared once, on its dataclass field: help, flag, choices, how text becomes a value, and
whether ptychodus shows it.

Why: a setting written in four places (the dataclass, the command line's flags, the code that builds the
dataclass from them, ptychodus's settings group) drifts; ptychodus lacked half the training settings. Now
:mod:`.cli.flags` makes the flags, :mod:`.ptychodus.settings` the ptychodus group and ``config.json`` is
read back by the same declarations, so a new field needs one line.

    learning_rate: float = setting(1e-3, help="Adam's learning rate", aliases=("--lr",), minimum=0.0)
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import MISSING, dataclass
from pathlib import Path
from typing import Any

#: Key of :class:`Setting` in a dataclass field's metadata.
METADATA_KEY = "ptychodus_torch_setting"


@dataclass(frozen=True)
class Setting:
    """What the command line and ptychodus need to know about one dataclass field."""

    help: str
    flag: str | None = None
    """The command-line flag; default ``--`` + the field's name in kebab-case. Its snake_case spelling is
    accepted too (PtychoPINN's scripts use it), without being shown."""
    aliases: tuple[str, ...] = ()
    """More accepted spellings, not shown in the help."""
    choices: tuple[str, ...] | None = None
    parse: Callable[[str], Any] | None = None
    """Text to value, for the command line and ptychodus's string settings (default: the field's type)."""
    show: Callable[[Any], str] | None = None
    """Value to text, for ptychodus's string settings (default ``str``)."""
    metavar: str | None = None
    nargs: str | None = None
    required: bool = False
    cli: bool = True
    """False: not a flag (set by the program, e.g. ``quiet`` inside ptychodus)."""
    ptychodus: str | bool = True
    """The name in ptychodus's ``[PtychodusTorch]`` group: True = the field's name, False = not shown there."""
    minimum: float | None = None
    """Smallest value ptychodus's editor accepts (the dataclass's ``validate`` still checks everything)."""
    unset: Any = None
    """For an optional number in ptychodus, which has no empty numbers: the value that means None."""


def setting(default: Any = MISSING, *, default_factory: Any = MISSING, **declaration: Any) -> Any:
    """A dataclass field carrying its :class:`Setting` (keyword arguments as in :class:`Setting`)."""
    metadata = {METADATA_KEY: Setting(**declaration)}
    if default_factory is not MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclass(frozen=True)
class Declared:
    """One declared field of a settings dataclass, with its resolved type."""

    name: str
    setting: Setting
    kind: type
    """The field's type without ``None`` (``int`` for ``int | None``)."""
    optional: bool
    """The field accepts None."""
    default: Any

    @property
    def flag(self) -> str:
        return self.setting.flag or "--" + self.name.replace("_", "-")

    @property
    def ptychodus_name(self) -> str | None:
        name = self.setting.ptychodus
        return None if name is False else (self.name if name is True else str(name))

    def parse(self, text: str) -> Any:
        """Text (a flag's value, a ptychodus string) as this field's value."""
        if self.setting.parse is not None:
            return self.setting.parse(text)
        if self.kind is bool:
            return parse_bool(text)
        return self.kind(text)

    def show(self, value: Any) -> str:
        if self.setting.show is not None:
            return self.setting.show(value)
        return "" if value is None else str(value)


def parse_bool(text: str) -> bool:
    lowered = str(text).strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def _resolve(hint: Any) -> tuple[type, bool]:
    """``int | None`` -> (int, True); ``Path | tuple[Path, ...]`` -> (Path, False)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        optional = type(None) in args
        first = next(arg for arg in args if arg is not type(None))
        return _resolve(first)[0], optional
    if origin is tuple:
        return tuple, False
    return hint, False


def declared(cls: type) -> Iterator[Declared]:
    """The fields of ``cls`` that carry a :class:`Setting`, in declaration order."""
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        declaration = field.metadata.get(METADATA_KEY)
        if declaration is None:
            continue
        kind, optional = _resolve(hints[field.name])
        if field.default is not MISSING:
            default = field.default
        elif field.default_factory is not MISSING:
            default = field.default_factory()
        else:
            default = None
        yield Declared(field.name, declaration, kind, optional, default)


def make_options(cls: type, values: Mapping[str, Any], *, where: str) -> Any:
    """An instance of the settings dataclass ``cls`` from ``values`` (field name -> value, or text to be
    parsed as the field's type), then its ``validate()``. An unknown name or a text that does not parse
    is a ConfigError naming ``where`` (e.g. "reconstructor 'epie'") and what it accepts."""
    from .errors import ConfigError

    items = {item.name: item for item in declared(cls)}
    converted: dict[str, Any] = {}
    for name, value in values.items():
        key = name.replace("-", "_")
        if key not in items:
            accepted = ", ".join(items) or "no settings"
            raise ConfigError(f"{where} has no setting '{name}'; it accepts: {accepted}")
        item = items[key]
        if isinstance(value, str) and item.kind is not str:
            try:
                value = item.parse(value) if value.strip() or not item.optional else None
            except (TypeError, ValueError) as error:
                raise ConfigError(f"{where}: {name}={value!r}: {error}") from error
        converted[key] = value
    instance = cls(**converted)
    validate = getattr(instance, "validate", None)
    if callable(validate):  # the class's own words first
        validate()
    for item in items.values():
        value = getattr(instance, item.name)
        if item.setting.choices and value is not None and value not in item.setting.choices:
            raise ConfigError(f"{where}: {item.name}={value!r}: choose one of {', '.join(item.setting.choices)}")
    return instance


def describe_options(cls: type | None) -> list[dict[str, Any]]:
    """Each declared setting as the ``plugins`` listing shows it."""
    if cls is None:
        return []
    return [{"name": item.name, "flag": item.flag, "type": item.kind.__name__ + (" | None" if item.optional else ""),
             "default": item.show(item.default) if item.default is not None else None,
             "choices": list(item.setting.choices or ()), "help": item.setting.help} for item in declared(cls)]


def values_from_record(cls: type, record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """The declared fields of ``cls`` found in a flat record (``config.json``), keyed ``prefix + name``,
    converted back from their JSON form (paths from strings, tuples from lists)."""
    values: dict[str, Any] = {}
    for item in declared(cls):
        key = prefix + item.name
        if key not in record:
            continue
        value = record[key]
        if value is not None:
            if isinstance(value, list):
                value = tuple(Path(v) if item.kind is Path else v for v in value)
            elif item.kind is Path:
                value = Path(value)
        values[item.name] = value
    return values
