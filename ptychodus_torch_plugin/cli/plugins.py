"""``ptychodus-torch plugins``: what loaded, what each plugin registered, and what failed."""

from __future__ import annotations

import argparse
import json
import sys

HELP = "list loaded plugins, their hooks and backends, and broken plugins, as JSON"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--indent", type=int, default=2, help="JSON indentation (default 2)")


def run(args: argparse.Namespace) -> int:
    from ..plugins import build_plugin_host

    host = build_plugin_host()
    json.dump(host.describe(), sys.stdout, indent=args.indent or None)
    sys.stdout.write("\n")
    return 0
