"""The ``ptychodus-torch`` command: one sub-command per module in :data:`COMMANDS`.

Every error the package raises on purpose (:class:`PtychodusTorchError`) ends in one line on stderr and
exit status 2; Ctrl-C ends with status 130. Set ``PTYCHODUS_TORCH_TRACEBACK=1`` to see the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from .. import __version__
from ..errors import PtychodusTorchError
from .flags import HelpFormatter

#: Sub-command name -> module with ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``.
COMMANDS: dict[str, str] = {
    "plugins": "ptychodus_torch_plugin.cli.plugins",
    "simulate": "ptychodus_torch_plugin.cli.simulate",
    "train": "ptychodus_torch_plugin.cli.train",
    "reconstruct": "ptychodus_torch_plugin.cli.reconstruct",
    "compare": "ptychodus_torch_plugin.cli.compare",
    "ptychodus": "ptychodus_torch_plugin.cli.ptychodus_cmd",
}


def build_parser() -> argparse.ArgumentParser:
    return _build_parsers()[0]


def _build_parsers() -> tuple[argparse.ArgumentParser, dict[str, tuple[argparse.ArgumentParser, object]]]:
    """The top-level parser, and each command's sub-parser with its module (for ``--config``)."""
    parser = argparse.ArgumentParser(prog="ptychodus-torch", description="PyTorch ptychography backend",
                                     formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    subparsers: dict[str, tuple[argparse.ArgumentParser, object]] = {}
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        sub = commands.add_parser(name, help=getattr(module, "HELP", None),
                                  description=getattr(module, "HELP", None), formatter_class=HelpFormatter)
        module.add_arguments(sub)
        sub.set_defaults(_run=module.run)
        subparsers[name] = (sub, module)
    return parser, subparsers


def apply_config(parser: argparse.ArgumentParser, module: object, argv: Sequence[str]) -> None:
    """``--config FILE`` (commands whose module has ``config_defaults``): the file's settings become the
    parser's defaults, so flags on the command line still win, and flags it supplies are no longer
    required. Read before parsing, wherever ``--config`` stands."""
    reader = getattr(module, "config_defaults", None)
    if reader is None:
        return
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", type=Path, default=None)
    known, _ = pre.parse_known_args(list(argv))
    if known.config is None:
        return
    defaults = reader(known.config)
    parser.set_defaults(**defaults)
    for action in parser._actions:
        if action.dest in defaults:
            action.required = False


def parse_command_line(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The top-level parser's arguments, with ``--config`` applied to the chosen command."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, subparsers = _build_parsers()
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    if command in subparsers:
        apply_config(*subparsers[command], argv)
    return parser.parse_args(argv)


def run_command(run, args: argparse.Namespace) -> int:  # type: ignore[no-untyped-def]
    """Run one command with the package's error policy (shared by ``python -m`` entry modules)."""
    try:
        return int(run(args) or 0)
    except PtychodusTorchError as error:
        if os.environ.get("PTYCHODUS_TORCH_TRACEBACK"):
            raise
        print(f"ptychodus-torch: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ptychodus-torch: interrupted", file=sys.stderr)
        return 130


def run_standalone(prog: str, description: str, add_arguments: Callable[[argparse.ArgumentParser], None],
                   run: Callable[[argparse.Namespace], int | None], argv: Sequence[str] | None) -> int:
    """One command as its own program (``python -m ptychodus_torch_plugin.train``, ...): its parser, then
    :func:`run_command`."""
    parser = argparse.ArgumentParser(prog=prog, description=description, formatter_class=HelpFormatter)
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        add_arguments(parser)  # may build the plugin host, which refuses a broken plugin when strict
        apply_config(parser, sys.modules[run.__module__], argv)
    except PtychodusTorchError as error:
        print(f"ptychodus-torch: error: {error}", file=sys.stderr)
        return 2
    return run_command(run, parser.parse_args(argv))


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parse_command_line(argv)
    except PtychodusTorchError as error:  # an unreadable --config, a broken plugin when strict
        print(f"ptychodus-torch: error: {error}", file=sys.stderr)
        return 2
    return run_command(args._run, args)


if __name__ == "__main__":
    sys.exit(main())
