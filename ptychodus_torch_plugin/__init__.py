"""PyTorch physics-informed ptychography backend for ptychodus.

A plugin author needs only :data:`hookimpl` from here; everything else is reached through the plugin
manager built by :func:`ptychodus_torch_plugin.plugins.build_plugin_host`.
"""

import pluggy

__version__ = "0.1.0"

#: Project name shared by hook specs and implementations; third-party plugins use the same marker.
PROJECT_NAME = "ptychodus_torch"

#: Decorate a function (or method) with this to implement one of the hooks in :mod:`.hookspecs`.
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

__all__ = ["PROJECT_NAME", "__version__", "hookimpl"]
