"""core-connectors-bigquery: BigQuery query jobs, wire-compatible with flytekitplugins-bigquery.

This module is the plugin's entry point. It must stay light: google-cloud-bigquery is imported by the
connector's methods (``_gcp``), and the task class only when asked for.
"""

from __future__ import annotations

from typing import Any

from core_connectors import hookimpl

from .connector import BigQueryConnector, BigQueryMetadata

__version__ = "0.1.0"

__all__ = ["BigQueryConfig", "BigQueryConnector", "BigQueryMetadata", "BigQueryTask", "provide_connectors"]


@hookimpl
def provide_connectors() -> list[BigQueryConnector]:
    return [BigQueryConnector()]


def __getattr__(name: str) -> Any:
    if name in ("BigQueryTask", "BigQueryConfig"):
        from . import task

        return getattr(task, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
