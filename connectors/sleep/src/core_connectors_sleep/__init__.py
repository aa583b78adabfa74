"""core-connectors-sleep: the reference connector. Its plugin module is this package (see pyproject)."""

from __future__ import annotations

from core_connectors import hookimpl

from .connector import SleepConnector, SleepMetadata

__all__ = ["SleepConnector", "SleepMetadata", "provide_connectors"]


@hookimpl
def provide_connectors() -> list[SleepConnector]:
    return [SleepConnector()]
