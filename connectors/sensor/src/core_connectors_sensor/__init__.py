"""core-connectors-sensor: flytekit's ``Sensor`` connector (task type ``sensor``), safe to expose.

flytekit's engine imports whatever module a request names; this one serves only the sensors installed in
the ``core_connectors.sensors`` entry-point group, each declaring the flytekit classes it answers for.
Its plugin module is this package (see pyproject).
"""

from __future__ import annotations

from core_connectors import hookimpl

from .catalog import ENTRY_POINT_GROUP, SensorCatalog, SensorPluginFailure
from .connector import SensorConnector, SensorMetadata
from .file import FileSensor
from .sensor import Sensor, is_transient_error

__version__ = "0.1.0"

__all__ = [
    "ENTRY_POINT_GROUP",
    "FileSensor",
    "Sensor",
    "SensorCatalog",
    "SensorConnector",
    "SensorMetadata",
    "SensorPluginFailure",
    "is_transient_error",
    "provide_connectors",
]


@hookimpl
def provide_connectors() -> list[SensorConnector]:
    return [SensorConnector()]
