"""``python -m ptychodus_torch_plugin.reconstruct``: the same as ``ptychodus-torch reconstruct``."""

import sys

from .cli.reconstruct import main

if __name__ == "__main__":
    sys.exit(main())
