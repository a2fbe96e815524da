"""Run ptychodus's own ``main`` with the entry-point bridge installed first.

Why: the ``ptychodus.plugins`` module only exists in a regular (non-editable) install, because
ptychodus searches only its own folder for plugin modules. The launcher works for every install kind.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from ..errors import MissingExtraError


def run_ptychodus(argv: Sequence[str]) -> int:
    """``ptychodus ARGV...`` in this process, with our libraries available; returns its exit code."""
    try:
        import ptychodus.__main__ as ptychodus_main
    except ModuleNotFoundError as error:
        if error.name and error.name.split(".")[0] == "ptychodus":
            raise MissingExtraError("running ptychodus", "ptychodus", "ptychodus") from error
        raise
    from .bridge import install

    install()
    saved = sys.argv
    sys.argv = ["ptychodus", *argv]  # ptychodus parses sys.argv itself (parse_known_args)
    try:
        return int(ptychodus_main.main() or 0)
    finally:
        sys.argv = saved
