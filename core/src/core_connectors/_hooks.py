"""The pluggy hook a connector distribution implements to announce its connectors.

A distribution names a module (or object) in the ``flytekit.connectors`` entry-point group; the module
implements ``provide_connectors``::

    from core_connectors import hookimpl

    @hookimpl
    def provide_connectors():
        return [SleepConnector()]

and may implement ``serve_options`` to add flags to ``core-connectors serve``, each bound to an environment
variable that the plugin's connectors read (the flag, when given, sets the variable before they are made)::

    @hookimpl
    def serve_options():
        return [ServeOption("--sleep-max", "CORE_CONNECTORS_SLEEP_MAX", help="Longest sleep, in seconds.")]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pluggy

__all__ = ["ENTRY_POINT_GROUP", "ConnectorHookSpec", "ServeOption", "hookimpl", "hookspec"]

PROJECT_NAME = "core_connectors"
ENTRY_POINT_GROUP = "flytekit.connectors"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@dataclass(frozen=True)
class ServeOption:
    """A ``core-connectors serve`` flag that sets an environment variable, so connector packages need not
    import click and the variable alone keeps working. A ``multiple`` flag is repeatable; its values are
    joined with commas."""

    flag: str
    envvar: str
    help: str = ""
    multiple: bool = False
    metavar: str = "TEXT"


class ConnectorHookSpec:
    @hookspec
    def provide_connectors(self) -> Any:
        """Return the connectors this plugin provides: instances of, or classes derived from, ConnectorBase
        (classes are instantiated without arguments). A bridge to another framework's connectors returns
        ``registry.Bridged`` items (which yield to native connectors) and ``registry.PluginFailure`` for each of
        that framework's plugins that failed to load."""

    @hookspec
    def serve_options(self) -> Any:
        """Return the ``ServeOption`` flags this plugin adds to ``core-connectors serve``. Called before any
        connector is made: it must stay as light as loading the plugin (no vendor SDK)."""
