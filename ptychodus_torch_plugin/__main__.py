"""``python -m ptychodus_torch_plugin`` is the same as ``ptychodus-torch``."""

import sys

from .cli.main import main

sys.exit(main())
