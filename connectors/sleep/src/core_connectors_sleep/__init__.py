"""core-connectors-sleep: the reference connector. Its plugin module is this package (see pyproject)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core_connectors import hookimpl

from .connector import SleepConnector, SleepMetadata

if TYPE_CHECKING:
    from .task import SleepTask

__version__ = "0.1.0"

__all__ = ["SleepConnector", "SleepMetadata", "SleepTask", "provide_connectors"]


@hookimpl
def provide_connectors() -> list[SleepConnector]:
    return [SleepConnector()]


def __getattr__(name: str) -> Any:
    # SleepTask pulls in the local runner (asyncio); loading the plugin for `list` or the service must not.
    if name == "SleepTask":
        from .task import SleepTask

        return SleepTask
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
