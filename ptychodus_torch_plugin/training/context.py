"""What the trainer hands to trainer-event hooks (:class:`RunContext`, kept in :mod:`..plugin_types`)."""

from __future__ import annotations

from ..plugin_types import RunContext

__all__ = ["RunContext"]
