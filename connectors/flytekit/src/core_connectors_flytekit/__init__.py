"""core-connectors-flytekit: serve the connectors registered in flytekit's own ConnectorRegistry, unchanged.

Installed beside flytekit, this plugin loads flytekit's plugins (``flytekit.plugins`` entry points) each on
its own, and offers every connector flytekit then knows (flytekitplugins-*, flytekit's Sensor and Webhook,
and those that ``--modules`` register into flytekit's registry) to the core, wrapped so that each receives
flytekit's model classes and answers what ``pyflyte serve connector`` would. A native connector of the same
task category wins. Importing this module does not import flytekit: discovery does.
"""

from __future__ import annotations

from typing import Any

from core_connectors import ServeOption, hookimpl

from ._loop import LOOP_ENV, LOOPS

__version__ = "0.1.0"

__all__ = ["provide_connectors", "serve_options"]


@hookimpl
def provide_connectors() -> list[Any]:
    """flytekit's connectors as ``Bridged`` items, and a ``PluginFailure`` for each flytekit plugin that broke."""
    from ._discovery import bridged_connectors

    return bridged_connectors()


@hookimpl
def serve_options() -> list[ServeOption]:
    """``core-connectors serve --flytekit-loop``."""
    return [
        ServeOption(
            "--flytekit-loop",
            LOOP_ENV,
            "Where bridged flytekit connectors' async methods run: bridge (their own loop and thread, the default: "
            "one that blocks inside async def stalls nothing else) or service (the service's loop, as pyflyte "
            "runs them: faster, for connectors that never block).",
            metavar="|".join(LOOPS),
        )
    ]
