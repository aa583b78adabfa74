"""A connector whose every call takes a while (``latency`` in the metadata), so calls are in flight when a
replica is signalled or killed. Served with ``--modules slow_connector``; its state lives in the metadata
only, like a real connector's, so any replica answers for a task another replica created."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from flyteidl.core.execution_pb2 import TaskExecution

from core_connectors import AsyncConnectorBase, Resource, ResourceMeta, hookimpl
from core_connectors.templates import custom_dict

TASK_TYPE = "slow"


@dataclass
class SlowMetadata(ResourceMeta):
    deadline: float
    latency: float


class SlowConnector(AsyncConnectorBase):
    name = "Slow Connector"

    def __init__(self) -> None:
        super().__init__(task_type_name=TASK_TYPE, metadata_type=SlowMetadata)

    async def create(self, task_template: Any, **kwargs: Any) -> SlowMetadata:
        custom = custom_dict(task_template)
        latency = float(custom.get("latency", 0.0))
        await asyncio.sleep(latency)
        return SlowMetadata(deadline=time.time() + float(custom.get("duration", 0.0)), latency=latency)

    async def get(self, resource_meta: SlowMetadata, **kwargs: Any) -> Resource:
        await asyncio.sleep(resource_meta.latency)
        if time.time() < resource_meta.deadline:
            return Resource(phase=TaskExecution.RUNNING)
        return Resource(phase=TaskExecution.SUCCEEDED, message="done")

    async def delete(self, resource_meta: SlowMetadata, **kwargs: Any) -> None:
        await asyncio.sleep(resource_meta.latency)


class BlockingConnector(AsyncConnectorBase):
    """Plain ``def`` methods, so that calls occupy the service's thread pool (the pool gauges)."""

    name = "Blocking Connector"

    def __init__(self) -> None:
        super().__init__(task_type_name="blocking", metadata_type=SlowMetadata)

    def create(self, task_template: Any, **kwargs: Any) -> SlowMetadata:
        latency = float(custom_dict(task_template).get("latency", 0.0))
        time.sleep(latency)
        return SlowMetadata(deadline=time.time(), latency=latency)

    def get(self, resource_meta: SlowMetadata, **kwargs: Any) -> Resource:
        time.sleep(resource_meta.latency)
        return Resource(phase=TaskExecution.SUCCEEDED)

    def delete(self, resource_meta: SlowMetadata, **kwargs: Any) -> None:
        time.sleep(resource_meta.latency)


class FailingConnector(AsyncConnectorBase):
    """Fails every GetTask with the connector's own error (INTERNAL), for the failure-ratio alert."""

    name = "Failing Connector"

    def __init__(self) -> None:
        super().__init__(task_type_name="failing", metadata_type=SlowMetadata)

    async def create(self, task_template: Any, **kwargs: Any) -> SlowMetadata:
        return SlowMetadata(deadline=time.time(), latency=0.0)

    async def get(self, resource_meta: SlowMetadata, **kwargs: Any) -> Resource:
        raise RuntimeError("the vendor is down")

    async def delete(self, resource_meta: SlowMetadata, **kwargs: Any) -> None:
        """Nothing to cancel."""


@hookimpl
def provide_connectors() -> list[AsyncConnectorBase]:
    return [SlowConnector(), BlockingConnector(), FailingConnector()]
