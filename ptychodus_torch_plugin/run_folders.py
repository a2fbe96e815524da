"""The run-folder layout: ``<output_dir>/lightning_logs/version_<N>/``, one folder per training run.

Why a module of its own: the trainer allocates the folders, ``--resume`` and ``reconstruct --model DIR``
find the newest one, and every logger writes into it; none of them owns the layout.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

#: Folder under ``output_dir`` that holds one ``version_<N>`` folder per run (PyTorch Lightning's layout).
RUNS_FOLDER = "lightning_logs"

_VERSION_PATTERN = re.compile(r"^version_(\d+)$")


def allocate_run_dir(output_dir: Path) -> Path:
    """Create and return the next free ``<output_dir>/lightning_logs/version_<N>`` folder.

    ``os.mkdir`` either creates the folder or fails, so two runs started at once on the same output
    directory can never receive the same version; earlier versions are never touched.
    """
    runs = Path(output_dir) / RUNS_FOLDER
    runs.mkdir(parents=True, exist_ok=True)
    taken = [int(m.group(1)) for p in runs.iterdir() if (m := _VERSION_PATTERN.match(p.name))]
    version = max(taken, default=-1) + 1
    while True:
        candidate = runs / f"version_{version}"
        try:
            os.mkdir(candidate)
            return candidate
        except FileExistsError:
            version += 1


def latest_run_dir(output_dir: Path) -> Path | None:
    """The highest existing ``version_<N>`` folder, used by ``--resume``; ``None`` when there is none."""
    runs = Path(output_dir) / RUNS_FOLDER
    if not runs.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in runs.iterdir() if (m := _VERSION_PATTERN.match(p.name))]
    return max(found)[1] if found else None
