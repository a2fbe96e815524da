"""Command-line flags for the reconstructors: which one, its starting object, and the settings of every
registered reconstructor, made from its options class (:attr:`~..reconstructors.base.Reconstructor.options`)
the same way for the built-ins and for a plugin's.

A flag belongs to every reconstructor whose options declare it (``--epochs``: ``iterative``,
``pinn+iterative`` and a plugin's ``epochs``); the value is kept as given and converted by the options class
of the reconstructor that runs, so each gets its own type and default. A flag that the chosen reconstructor
does not take is refused, not ignored. ``--option KEY=VALUE`` reaches any field by its name.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..options import Declared, declared, make_options
from .flags import Switch, default_text, flag_metavar, spellings

#: Prefix of a reconstructor setting's name in the parsed arguments (followed by the flag).
OPTION_DEST = "reconstructor_option"


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value


def plugin_host() -> Any:
    """The plugin host whose reconstructors the flags are made for."""
    from ..plugins import build_plugin_host

    return build_plugin_host()


def host_of(args: argparse.Namespace) -> Any:
    """The host the parser was made with (:func:`add_reconstructor_arguments` keeps it), so a run does not
    load the plugins a second time; a fresh one for arguments made elsewhere."""
    return getattr(args, "plugin_host", None) or plugin_host()


def _registered(host: Any) -> list[Any]:
    """The registered reconstructors, built-ins first (the order of the help)."""
    entries = list(host.reconstructors().values())
    entries.sort(key=lambda entry: (not str(entry.plugin).startswith("ptychodus_torch_plugin."), entry.backend.name))
    return [entry.backend for entry in entries]


def option_flags(reconstructors: Iterable[Any]) -> dict[str, list[tuple[str, Declared]]]:
    """Flag -> the (reconstructor, declared field) pairs that take it, in registration order."""
    flags: dict[str, list[tuple[str, Declared]]] = {}
    for reconstructor in reconstructors:
        if reconstructor.options is None:
            continue
        for item in declared(reconstructor.options):
            if item.setting.cli:
                flags.setdefault(item.flag, []).append((reconstructor.name, item))
    return flags


def _dest(flag: str) -> str:
    return f"{OPTION_DEST}{flag}"


def _help(owners: list[tuple[str, Declared]]) -> str:
    """The first owner's help, who takes the flag, and each owner's default (once when they agree)."""
    first = owners[0][1]
    defaults = {name: default_text(item.default, item) for name, item in owners}
    owned = f"{first.setting.help} [{', '.join(name for name, _ in owners)}]"
    if "default" in first.setting.help.lower():
        return owned
    if len(set(defaults.values())) == 1:
        default = f"default: {next(iter(defaults.values()))}"
    else:
        default = "default: " + "; ".join(f"{name} {value}" for name, value in defaults.items())
    return f"{owned} ({default})"


def add_reconstructor_arguments(parser: argparse.ArgumentParser, host: Any, *, choose: bool = True) -> None:
    """``choose``: a ``--reconstructor`` flag (``compare`` takes a list of them instead). The parser keeps
    ``host`` for the run (:func:`host_of`)."""
    parser.set_defaults(plugin_host=host)
    group = parser.add_argument_group("reconstructor (see `ptychodus-torch plugins` for every registered one)")
    if choose:
        group.add_argument("--reconstructor", default=None,
                           help="pinn, iterative, pinn+iterative, or a plugin's (default: pinn with --model, "
                                "else iterative)")
    group.add_argument(*spellings("--initial-object"), dest="initial_object", type=Path, default=None,
                       help="starting object for iterative reconstructors: an NPZ (a reconstruction.npz or a "
                            "scan with objectGuess) or a ptychodus product.h5")
    group.add_argument("--option", dest="options", action="append", type=_key_value, default=[],
                       metavar="KEY=VALUE", help="a setting of the reconstructor by its name, e.g. epochs=40 "
                                                 "(repeatable; see `ptychodus-torch plugins`)")
    reconstructors = _registered(host)
    flags = option_flags(reconstructors)
    shown: set[str] = set()
    taken = {name for action in parser._actions for name in action.option_strings}
    for reconstructor in reconstructors:
        mine = [flag for flag, owners in flags.items() if owners[0][0] == reconstructor.name and flag not in shown]
        if not mine:
            continue
        section = parser.add_argument_group(f"{reconstructor.name} settings")
        for flag in mine:
            owners = flags[flag]
            item = owners[0][1]
            names = [name for name in spellings(flag, *item.setting.aliases) if name not in taken]
            if flag not in names:
                continue  # a plugin's flag that clashes with a command flag: reachable with --option
            kwargs: dict[str, Any] = {"dest": _dest(flag), "default": argparse.SUPPRESS, "help": _help(owners)}
            if item.kind is bool:
                kwargs["action"] = Switch
            else:
                if item.setting.choices:
                    kwargs["choices"] = item.setting.choices
                else:
                    kwargs["metavar"] = flag_metavar(item, flag)
            section.add_argument(*names, **kwargs)
            taken.update(names)
            shown.add(flag)


def options_for(args: argparse.Namespace, host: Any, name: str, *, others: Iterable[str] = ()) -> Any:
    """The options of reconstructor ``name`` from the parsed flags and ``--option``s: an instance of its
    options class (validated), or for a reconstructor without one, the ``--option`` texts.

    A flag given on the command line that neither ``name`` nor any of ``others`` (compare's other
    reconstructors) takes is a ConfigError."""
    reconstructor = host.reconstructor(name).backend
    flags = option_flags(_registered(host))
    runs = {name, *others}
    values: dict[str, Any] = {}
    for flag, owners in flags.items():
        if not hasattr(args, _dest(flag)):
            continue
        mine = [item for owner, item in owners if owner == name]
        if mine:
            values[mine[0].name] = getattr(args, _dest(flag))
        elif not any(owner in runs for owner, _ in owners):
            takers = ", ".join(owner for owner, _ in owners)
            raise ConfigError(f"{flag} is a setting of {takers}, not of the reconstructor '{name}'")
    given = dict(getattr(args, "options", []) or [])
    if reconstructor.options is None:
        return given
    if others:  # compare: an --option is for whichever of the reconstructors takes it
        names = {item.name for item in declared(reconstructor.options)}
        given = {key: value for key, value in given.items() if key.replace("-", "_") in names}
    return make_options(reconstructor.options, {**values, **given}, where=f"reconstructor '{name}'")
