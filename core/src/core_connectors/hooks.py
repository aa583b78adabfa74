"""The pluggy hook a connector distribution implements to announce its connectors.

A distribution names a module (or object) in the ``flytekit.connectors`` entry-point group; the module
implements ``provide_connectors``::

    from core_connectors import hookimpl

    @hookimpl
    def provide_connectors():
        return [SleepConnector()]
"""

from __future__ import annotations

from typing import Any

import pluggy

__all__ = ["ENTRY_POINT_GROUP", "ConnectorHookSpec", "hookimpl", "hookspec"]

PROJECT_NAME = "core_connectors"
ENTRY_POINT_GROUP = "flytekit.connectors"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


class ConnectorHookSpec:
    @hookspec
    def provide_connectors(self) -> Any:
        """Return the connectors this plugin provides: instances of, or classes derived from, ConnectorBase
        (classes are instantiated without arguments). A bridge to another framework's connectors returns
        ``registry.Bridged`` items (which yield to native connectors) and ``registry.PluginFailure`` for each of
        that framework's plugins that failed to load."""
