"""Sleep connector for flytekit's service: task type "sleep", done once its deadline has passed.

Loaded by bench/run.py with `pyflyte serve connector --modules flytekit_sleep_connector` (bench/ on PYTHONPATH).
"""

import time
from dataclasses import dataclass

from flyteidl.core.execution_pb2 import TaskExecution
from flytekit.extend.backend.base_connector import AsyncConnectorBase, ConnectorRegistry, Resource, ResourceMeta


@dataclass
class SleepMetadata(ResourceMeta):
    """When the sleep ends, in seconds since the epoch."""

    deadline: float


class SleepConnector(AsyncConnectorBase):
    """Sleeps `custom["duration"]` seconds (0 if absent) without holding anything."""

    name = "Sleep Connector"

    def __init__(self):
        super().__init__(task_type_name="sleep", metadata_type=SleepMetadata)

    async def create(self, task_template, inputs=None, **kwargs) -> SleepMetadata:
        duration = float((task_template.custom or {}).get("duration", 0))
        return SleepMetadata(deadline=time.time() + duration)

    async def get(self, resource_meta: SleepMetadata, **kwargs) -> Resource:
        done = time.time() >= resource_meta.deadline
        return Resource(phase=TaskExecution.SUCCEEDED if done else TaskExecution.RUNNING)

    async def delete(self, resource_meta: SleepMetadata, **kwargs) -> None:
        return None


ConnectorRegistry.register(SleepConnector())
