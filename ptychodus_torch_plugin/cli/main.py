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

from .. import __version__
from ..errors import PtychodusTorchError

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
    parser = argparse.ArgumentParser(prog="ptychodus-torch", description="PyTorch ptychography backend")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        sub = commands.add_parser(name, help=getattr(module, "HELP", None),
                                  description=getattr(module, "HELP", None))
        module.add_arguments(sub)
        sub.set_defaults(_run=module.run)
    return parser


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
    parser = argparse.ArgumentParser(prog=prog, description=description)
    add_arguments(parser)
    return run_command(run, parser.parse_args(argv))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(args._run, args)


if __name__ == "__main__":
    sys.exit(main())
