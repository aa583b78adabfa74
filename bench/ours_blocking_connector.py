"""Connector for our service whose plain `def get` blocks for 50 ms: task type "blocking".

Loaded by bench/run.py with `core-connectors serve --modules ours_blocking_connector`.
"""

import time
from dataclasses import dataclass

from flyteidl.core.execution_pb2 import TaskExecution

from core_connectors import AsyncConnectorBase, ConnectorRegistry, Resource, ResourceMeta


@dataclass
class BlockingMetadata(ResourceMeta):
    """An opaque job id."""

    job_id: str


class BlockingConnector(AsyncConnectorBase):
    """Every `get` holds its thread for 50 ms, like a synchronous vendor SDK call."""

    name = "Blocking Connector"

    def __init__(self):
        super().__init__(task_type_name="blocking", metadata_type=BlockingMetadata)

    def create(self, task_template, inputs=None, **kwargs) -> BlockingMetadata:
        return BlockingMetadata(job_id="job-1")

    def get(self, resource_meta: BlockingMetadata, **kwargs) -> Resource:
        time.sleep(0.05)
        return Resource(phase=TaskExecution.SUCCEEDED)

    def delete(self, resource_meta: BlockingMetadata, **kwargs) -> None:
        return None


ConnectorRegistry.register(BlockingConnector())
