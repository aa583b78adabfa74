"""The ``Sensor`` connector: flytekit's task type ``sensor``, served by installed sensors only.

Its metadata is flytekit's ``SensorMetadata``, field for field, so GetTask decodes what a flytekit service
wrote and a flytekit service decodes ours. Everything ``get`` needs is in that metadata (no state in the
process), so any replica can answer.
"""

from __future__ import annotations

import datetime as dt
import inspect
import logging
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any

from flyteidl.core.execution_pb2 import TaskExecution

from core_connectors import AsyncConnectorBase, Resource, ResourceMeta, failed_resource
from core_connectors.literals import literal_map_to_python
from core_connectors.templates import custom_dict

from .catalog import SensorCatalog
from .sensor import Sensor

__all__ = ["SensorConnector", "SensorMetadata"]

TASK_TYPE = "sensor"

logger = logging.getLogger("core_connectors_sensor")


@dataclass
class SensorMetadata(ResourceMeta):
    """flytekit's ``SensorMetadata``: the flytekit sensor named by the template, its config, the poke inputs."""

    sensor_module: str
    sensor_name: str
    sensor_config: dict[str, Any] | None = None
    inputs: dict[str, Any] | None = None


class SensorConnector(AsyncConnectorBase[SensorMetadata]):
    name = "Sensor"

    def __init__(self, catalog: SensorCatalog | None = None) -> None:
        super().__init__(task_type_name=TASK_TYPE, metadata_type=SensorMetadata)
        self.catalog = catalog or SensorCatalog()

    async def create(
        self,
        task_template: Any,
        output_prefix: str = "",
        inputs: Any = None,
        task_execution_metadata: Any = None,
        **kwargs: Any,
    ) -> SensorMetadata:
        """Copy the template's sensor and the inputs into the metadata; ``get`` judges them (a template
        naming no sensor, or one not installed, fails the task there rather than costing a retry here)."""
        custom = custom_dict(task_template)
        config = custom.get("sensor_config")
        values = {name: _jsonable(value, name) for name, value in literal_map_to_python(inputs).items()}
        return SensorMetadata(
            sensor_module=str(custom.get("sensor_module") or ""),
            sensor_name=str(custom.get("sensor_name") or ""),
            sensor_config=config if isinstance(config, dict) else None,
            inputs=values or None,
        )

    def get(self, resource_meta: SensorMetadata, **kwargs: Any) -> Resource | Awaitable[Resource]:
        """Poke once. A plain ``def``: the service runs it in its pool, so a blocking ``poke`` is fine; for an
        ``async def poke`` it hands back a coroutine, which the service awaits on its loop."""
        sensor_class = self.catalog.find(resource_meta.sensor_module, resource_meta.sensor_name)
        if sensor_class is None:
            return Resource(phase=TaskExecution.FAILED, message=self._not_served(resource_meta))
        inputs = resource_meta.inputs or {}
        try:
            sensor = sensor_class(resource_meta.sensor_config)
        except Exception as e:  # a sensor_config the sensor refuses
            return failed_resource(e, sensor_class.__name__, logger=logger)
        signature = inspect.signature(sensor.poke)
        try:
            signature.bind(**inputs)
        except TypeError as e:
            given = ", ".join(inputs) or "none"
            message = f"{sensor_class.__name__}.poke{signature} cannot take the task's inputs ({given}): {e}"
            return Resource(phase=TaskExecution.FAILED, message=message)
        if inspect.iscoroutinefunction(sensor.poke):
            return self._poke_async(sensor, inputs)
        try:
            held = sensor.poke(**inputs)
        except Exception as e:
            return failed_resource(e, sensor_class.__name__, retryable=sensor.is_transient(e), logger=logger)
        return _resource(sensor, bool(held), inputs)

    async def _poke_async(self, sensor: Sensor, inputs: Mapping[str, Any]) -> Resource:
        try:
            held = await sensor.poke(**inputs)  # type: ignore[misc]  # checked: a coroutine function
        except Exception as e:
            return failed_resource(e, type(sensor).__name__, retryable=sensor.is_transient(e), logger=logger)
        return _resource(sensor, bool(held), inputs)

    async def delete(self, resource_meta: SensorMetadata, **kwargs: Any) -> None:
        """A sensor holds nothing anywhere: there is nothing to cancel, and deleting twice is fine."""

    def _not_served(self, meta: SensorMetadata) -> str:
        served = ", ".join(self.catalog.served()) or "none"
        if not meta.sensor_module or not meta.sensor_name:
            what = "the task names no sensor (custom.sensor_module and custom.sensor_name are empty)"
        else:
            what = f"no installed sensor serves {meta.sensor_module}.{meta.sensor_name}"
        message = f"{what}; sensors served here: {served}"
        if self.catalog.failures:
            message += "; sensor plugins that failed to load: " + ", ".join(
                f"{f.entry_point} ({f.distribution or 'unknown distribution'})" for f in self.catalog.failures
            )
        return message


def _resource(sensor: Sensor, held: bool, inputs: Mapping[str, Any]) -> Resource:
    if held:
        return Resource(phase=TaskExecution.SUCCEEDED, message=f"{type(sensor).__name__}: condition met")
    return Resource(phase=TaskExecution.RUNNING, message=sensor.awaiting(**inputs))


def _jsonable(value: Any, where: str) -> Any:
    """An input as the JSON value it travels as in the metadata (flytekit's engine would fail to encode a
    datetime; here it becomes ISO 8601 text, a duration seconds)."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, list):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {str(k): _jsonable(v, f"{where}[{k!r}]") for k, v in value.items()}
    raise TypeError(f"sensor input {where!r} is {type(value).__name__}, which a sensor cannot receive")
