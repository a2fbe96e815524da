"""Installed as ``ptychodus.plugins.ptychodus_torch_bridge`` by ptychodus-torch-plugin.

ptychodus 1.7 imports every module in ``ptychodus.plugins`` and calls its ``register_plugins`` before it
builds its processing core. This one registers nothing in the plugin registry; it installs the bridge
that adds the reconstructor libraries of the entry-point group ``ptychodus.reconstructor_libraries``
(see ``ptychodus_torch_plugin/ptychodus/bridge.py``). It must never raise: ptychodus catches only a few
exception types from plugin modules.
"""

import logging

_log = logging.getLogger(__name__)


def register_plugins(registry: object) -> None:
    try:
        from ptychodus_torch_plugin.ptychodus.bridge import install
    except Exception as error:
        _log.warning("ptychodus-torch bridge unavailable (%s: %s)", type(error).__name__, error)
        return
    try:
        install()
    except Exception as error:
        _log.warning("ptychodus-torch bridge failed (%s: %s)", type(error).__name__, error)
