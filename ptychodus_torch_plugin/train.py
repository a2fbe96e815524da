"""``python -m ptychodus_torch_plugin.train``: the same as ``ptychodus-torch train``."""

import sys

from .cli.train import main

if __name__ == "__main__":
    sys.exit(main())
