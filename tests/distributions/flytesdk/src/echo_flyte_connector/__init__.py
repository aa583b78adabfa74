"""A flyte-sdk connector: create receives native inputs and the connection's secrets as keyword arguments,
get answers RUNNING once and then SUCCEEDED with native outputs."""

from dataclasses import dataclass

from flyte.connectors import AsyncConnector, ConnectorRegistry, Resource, ResourceMeta
from flyteidl2.core.execution_pb2 import TaskExecution, TaskLog


@dataclass
class EchoMeta(ResourceMeta):
    x: int
    polls: int
    keyed: bool


class EchoConnector(AsyncConnector):
    name = "Echo Flyte Connector"
    task_type_name = "flyte_echo"
    metadata_type = EchoMeta

    async def create(self, task_template, output_prefix, inputs=None, task_execution_metadata=None, **kwargs):
        if not isinstance(inputs["x"], int):
            raise TypeError(f"x arrived as {type(inputs['x']).__name__}, not as a native int")
        return EchoMeta(x=inputs["x"], polls=0, keyed=kwargs.get("api_key") == "k-123456")

    async def get(self, resource_meta: EchoMeta, **kwargs):
        link = TaskLog(name="Echo", uri=f"https://echo.example/{resource_meta.x}", ready=True)
        if resource_meta.x < 0:
            return Resource(phase=TaskExecution.RUNNING, message="still echoing", log_links=[link])
        message = "keyed" if resource_meta.keyed else "anonymous"
        if kwargs.get("api_key"):
            message += ", key at get"
        return Resource(
            phase=TaskExecution.SUCCEEDED,
            message=message,
            log_links=[link],
            outputs={"y": resource_meta.x * 2, "label": f"echo {resource_meta.x}"},
            custom_info={"region": kwargs.get("region", "")},
        )

    async def delete(self, resource_meta: EchoMeta, **kwargs):
        if resource_meta.x == 13:
            raise RuntimeError("unlucky job cannot be deleted")


ConnectorRegistry.register(EchoConnector())
