"""Command-line flags made from the settings' declarations (:mod:`..options`), and the help's conventions.

Conventions, the same for every command: flags are kebab-case (``--max-epochs``); the snake_case spelling
(``--max_epochs``, PtychoPINN's) and older aliases are accepted but not shown; every flag has help and the
help shows its default.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..options import Declared, declared, values_from_record


class Switch(argparse.BooleanOptionalAction):
    """``--x`` / ``--no-x``; the usage line shows the primary pair only, not the snake_case aliases."""

    def format_usage(self) -> str:
        return " | ".join(self.option_strings[:2])


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """One spelling per flag (the first: kebab-case; ``--x, --no-x`` for a switch; ``-h, --help``) and each
    flag's default, unless the help already says it."""

    def _format_action_invocation(self, action: argparse.Action) -> str:
        if not action.option_strings or isinstance(action, argparse._HelpAction):
            return super()._format_action_invocation(action)
        strings = action.option_strings
        short = [name for name in strings if not name.startswith("--")]
        if isinstance(action, argparse.BooleanOptionalAction):
            shown = strings[:2]
        else:
            shown = short + [next((name for name in strings if name.startswith("--")), strings[0])]
            shown = list(dict.fromkeys(shown))
        if action.nargs == 0:
            return ", ".join(shown)
        metavar = self._format_args(action, self._get_default_metavar_for_optional(action))
        return ", ".join(f"{name} {metavar}" for name in shown)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "%(default)" in text or "default" in text.lower() or action.default is argparse.SUPPRESS \
                or action.required or not action.option_strings \
                or isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            return text
        return f"{text} (default: {default_text(action.default)})"


def default_text(value: Any, item: Declared | None = None) -> str:
    """A default as the help shows it: on/off for a switch, none for None, else the declared text."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if value is None or value == []:
        return "none"
    return item.show(value) if item is not None else str(value)


def flag_metavar(item: Declared, flag: str) -> str:
    """The value's name in the help: the declared one, else the flag's name in capitals."""
    return item.setting.metavar or flag[2:].replace("-", "_").upper()


def spellings(primary: str, *aliases: str) -> list[str]:
    """The primary flag, its snake_case spelling and the aliases, each once."""
    names = [primary, "--" + primary[2:].replace("-", "_"), *aliases]
    return list(dict.fromkeys(names))


def _converter(item: Declared) -> Any:
    """argparse's ``type``: the field's own type where it has no parser of its own (argparse's messages
    then name it), else the declared parser with its ValueError as argparse's error."""
    if item.setting.parse is None:
        return item.kind

    def convert(text: str) -> Any:
        try:
            return item.parse(text)
        except (TypeError, ValueError) as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    convert.__name__ = item.kind.__name__
    return convert


def add_declared_flags(parser: argparse.ArgumentParser | Any, cls: type, *, dest_prefix: str = "",
                       only: tuple[str, ...] | None = None, skip: tuple[str, ...] = ()) -> None:
    """One flag per declared field of ``cls`` (or of those named in ``only``, less ``skip``) on a parser or
    an argument group, stored as ``dest_prefix + field name``."""
    for item in declared(cls):
        declaration = item.setting
        if not declaration.cli or item.name in skip or (only is not None and item.name not in only):
            continue
        kwargs: dict[str, Any] = {"dest": dest_prefix + item.name, "help": declaration.help}
        if item.kind is bool:
            kwargs["action"] = Switch
        else:
            kwargs["type"] = _converter(item)
            if declaration.choices:
                kwargs["choices"] = declaration.choices
            if declaration.metavar or not declaration.choices:
                kwargs["metavar"] = flag_metavar(item, item.flag)
            if declaration.nargs:
                kwargs["nargs"] = declaration.nargs
        if declaration.required:
            kwargs["required"] = True
        else:
            kwargs["default"] = item.default
        parser.add_argument(*spellings(item.flag, *declaration.aliases), **kwargs)


def values_from_args(args: argparse.Namespace, cls: type, *, dest_prefix: str = "") -> dict[str, Any]:
    """The declared fields of ``cls`` that the parsed arguments hold."""
    return {item.name: getattr(args, dest_prefix + item.name) for item in declared(cls)
            if hasattr(args, dest_prefix + item.name)}


def read_config_record(path: Path) -> dict[str, Any]:
    """A ``config.json`` as a flat mapping; JSON only (nothing a user was sent is unpickled)."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise ConfigError(f"--config {path}: file not found") from error
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise ConfigError(f"--config {path}: not a readable JSON configuration ({error})") from error
    if not isinstance(record, dict):
        raise ConfigError(f"--config {path}: expected a JSON object of settings, got {type(record).__name__}")
    return record


def defaults_from_record(record: dict[str, Any], sections: list[tuple[type, str, str]]) -> dict[str, Any]:
    """Parser defaults (by dest) from a record, for ``(cls, record key prefix, dest prefix)`` sections."""
    defaults: dict[str, Any] = {}
    for cls, prefix, dest_prefix in sections:
        for name, value in values_from_record(cls, record, prefix).items():
            defaults[dest_prefix + name] = value
    return defaults
