"""``ptychodus-torch ptychodus ...`` / ``python -m ptychodus_torch_plugin.cli.ptychodus_cmd ...``:
ptychodus (GUI or ``-b`` batch mode) with this package's algorithms added, for any install kind.

ptychodus 1.7's own options are declared here too (argparse cannot pass a leading ``-b`` through a
sub-command untouched); they are handed back to ptychodus unchanged, anything after ``--`` as well.
"""

from __future__ import annotations

import argparse
import sys

HELP = "run ptychodus (GUI or -b batch mode) with the ptychodus-torch algorithms available"

#: (flags, dest, takes a value) for ptychodus 1.7's command line (``ptychodus/__main__.py``).
_PTYCHODUS_OPTIONS: tuple[tuple[tuple[str, ...], str, bool], ...] = (
    (("-b", "--batch"), "batch", True),
    (("-i", "--input-directory"), "input_directory", True),
    (("-o", "--output-directory"), "output_directory", True),
    (("-s", "--settings"), "settings", True),
    (("--log-level",), "log_level", True),
    (("-v", "--version"), "version", False),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-b", "--batch", choices=("reconstruct", "train"), help="run non-interactively")
    parser.add_argument("-i", "--input-directory", metavar="INPUT_DIR", help="batch input folder")
    parser.add_argument("-o", "--output-directory", metavar="OUTPUT_DIR", help="batch output folder")
    parser.add_argument("-s", "--settings", metavar="SETTINGS_FILE", help="ptychodus settings file")
    parser.add_argument("--log-level", help="Python logging level (integer)")
    parser.add_argument("-v", "--version", action="store_true", help="ptychodus's version")
    parser.add_argument("ptychodus_args", nargs=argparse.REMAINDER, help="passed on to ptychodus (after --)")


def forwarded_arguments(args: argparse.Namespace) -> list[str]:
    """The ptychodus command line rebuilt from the parsed options."""
    argv: list[str] = []
    for flags, dest, takes_value in _PTYCHODUS_OPTIONS:
        value = getattr(args, dest, None)
        if takes_value and value is not None:
            argv += [flags[-1], str(value)]
        elif not takes_value and value:
            argv.append(flags[-1])
    rest = list(getattr(args, "ptychodus_args", []) or [])
    return argv + (rest[1:] if rest[:1] == ["--"] else rest)


def run(args: argparse.Namespace) -> int:
    from ..ptychodus.launcher import run_ptychodus

    return run_ptychodus(forwarded_arguments(args))


def main(argv: list[str] | None = None) -> int:
    from .main import run_standalone

    return run_standalone("ptychodus-torch ptychodus", HELP, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
