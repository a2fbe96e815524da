"""What the trainer hands to trainer-event hooks."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class RunContext:
    """One training run, as seen by plugins.

    ``hyperparams`` is the flattened configuration (the same values the logger records); plugins should
    treat every field as read-only.
    """

    output_dir: Path
    run_dir: Path
    device: str
    hyperparams: Mapping[str, Any] = field(default_factory=dict)
    epoch: int = 0
