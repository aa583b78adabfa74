"""Connector for flytekit's service that always fails, as a vendor that is down: task type "failing".

Loaded by bench/run.py with `pyflyte serve connector --modules flytekit_failing_connector` (the mixed-traffic figure).
"""

from dataclasses import dataclass

from flytekit.extend.backend.base_connector import AsyncConnectorBase, ConnectorRegistry, ResourceMeta


@dataclass
class FailingMetadata(ResourceMeta):
    """An opaque job id."""

    job_id: str


class FailingConnector(AsyncConnectorBase):
    """Every call raises, like a vendor SDK whose service is down."""

    name = "Failing Connector"

    def __init__(self):
        super().__init__(task_type_name="failing", metadata_type=FailingMetadata)

    async def create(self, task_template, inputs=None, **kwargs) -> FailingMetadata:
        raise RuntimeError("the vendor is down")

    async def get(self, resource_meta: FailingMetadata, **kwargs):
        raise RuntimeError("the vendor is down")

    async def delete(self, resource_meta: FailingMetadata, **kwargs) -> None:
        raise RuntimeError("the vendor is down")


ConnectorRegistry.register(FailingConnector())
