"""flyte-sdk connectors (``flyte.connectors.AsyncConnector``, announced in the ``flyte.connectors`` entry-point
group) served by the core, over flyteidl's v1 services and Flyte 2's alike.

Imported by the registry only when such an entry point is installed, so flyte-sdk (a large import) costs nothing
otherwise. Each flyte-sdk connector is wrapped in ``FlyteSdkConnector``, which gives it what flyte-sdk's own
connector server gives it: flyteidl2 messages, native Python inputs (converted by flyte-sdk's TypeEngine from
the template's interface) and the secrets and configs of the request's connection as keyword arguments; and
which turns its ``Resource`` (native outputs, flyteidl2 log links) back into the core's.
Supported: flyte-sdk 2.x (the API used is the same from 2.0.0 to 2.12.1; tested with 2.12.1).
"""

from __future__ import annotations

import contextlib
import inspect
import sys
import typing
from collections.abc import AsyncIterator, Awaitable
from importlib import metadata
from typing import Any

from flyte.connectors import AsyncConnector, ConnectorRegistry
from flyte.connectors import Resource as FlyteResource
from flyte.types import TypeEngine
from flyteidl.admin import agent_pb2
from flyteidl.core import execution_pb2, literals_pb2, tasks_pb2
from flyteidl2.connector import connector_pb2
from flyteidl2.core import literals_pb2 as literals2
from flyteidl2.core import tasks_pb2 as tasks2

from ._connector import AsyncConnectorBase, ConnectorBase, Resource, ResourceMeta
from .secrets import current_connection

__all__ = ["FlyteSdkConnector", "connectors_of"]


def _drop_flyte_sdk_server_metrics() -> None:
    """flyte-sdk's connector server module (imported by ``flyte.connectors``) registers Prometheus metrics named
    as ours in the default registry; that server never runs here, so its copies go, or ours could not start."""
    from prometheus_client import REGISTRY
    from prometheus_client.metrics import MetricWrapperBase

    server = sys.modules.get("flyte.connectors._server")
    for value in list(vars(server).values()) if server is not None else []:
        if isinstance(value, MetricWrapperBase):
            with contextlib.suppress(KeyError):
                REGISTRY.unregister(value)


_drop_flyte_sdk_server_metrics()


def connectors_of(entry_point: metadata.EntryPoint) -> list[ConnectorBase]:
    """The connectors one ``flyte.connectors`` entry point provides: it names a connector class (as
    flyteplugins-bigquery does), an instance, or a module that registers its connectors in flyte-sdk's
    ConnectorRegistry when imported."""
    loaded = entry_point.load()
    if isinstance(loaded, AsyncConnector):
        found: list[AsyncConnector[Any]] = [loaded]
    elif inspect.isclass(loaded) and issubclass(loaded, AsyncConnector):
        found = [_registered_instance(loaded)]
    else:
        module = getattr(loaded, "__name__", entry_point.module)
        registered = getattr(ConnectorRegistry, "_REGISTRY", {}).values()  # flyte-sdk lists them nowhere else
        found = [c for c in registered if type(c).__module__.split(".")[: module.count(".") + 1] == module.split(".")]
    return [FlyteSdkConnector(c) for c in found]


def _registered_instance(cls: type[AsyncConnector[Any]]) -> AsyncConnector[Any]:
    """The instance the plugin registered at import, else a new one (connector classes take no arguments)."""
    try:
        registered = ConnectorRegistry.get_connector(cls.task_type_name, getattr(cls, "task_type_version", 0))
    except ValueError:  # flyte-sdk's FlyteConnectorNotFound
        registered = None
    return registered if type(registered) is cls else cls()


class FlyteSdkConnector(AsyncConnectorBase[Any]):  # flyte-sdk's own ResourceMeta: typed as Any here
    """One flyte-sdk ``AsyncConnector`` behind the core's contract."""

    def __init__(self, connector: AsyncConnector[Any]) -> None:
        super().__init__(
            task_type_name=connector.task_type_name,
            task_type_version=getattr(connector, "task_type_version", 0),
            metadata_type=connector.metadata_type,  # flyte-sdk's ResourceMeta: the same JSON encode/decode
        )
        self.name = connector.name
        self.connector = connector

    async def create(
        self,
        task_template: tasks_pb2.TaskTemplate,
        output_prefix: str = "",
        inputs: literals_pb2.LiteralMap | None = None,
        task_execution_metadata: agent_pb2.TaskExecutionMetadata | None = None,
        **kwargs: Any,
    ) -> ResourceMeta:
        template = tasks2.TaskTemplate.FromString(task_template.SerializeToString())  # wire-compatible
        meta = None
        if task_execution_metadata is not None:
            meta = connector_pb2.TaskExecutionMetadata.FromString(task_execution_metadata.SerializeToString())
            meta.DiscardUnknownFields()  # v1's overrides
        created: ResourceMeta = await self.connector.create(
            task_template=template,
            output_prefix=output_prefix,
            inputs=await _native_inputs(template, inputs),
            task_execution_metadata=meta,
            **_connection_kwargs(),
        )
        return created

    async def get(self, resource_meta: ResourceMeta, **kwargs: Any) -> Resource:
        return await _resource(await self.connector.get(resource_meta=resource_meta, **_connection_kwargs()))

    async def delete(self, resource_meta: ResourceMeta, **kwargs: Any) -> None:
        await self.connector.delete(resource_meta=resource_meta, **_connection_kwargs())

    async def get_metrics(self, resource_meta: ResourceMeta, **kwargs: Any) -> agent_pb2.GetTaskMetricsResponse:
        response = await self.connector.get_metrics(resource_meta=resource_meta)
        return agent_pb2.GetTaskMetricsResponse.FromString(response.SerializeToString())

    async def get_logs(
        self, resource_meta: ResourceMeta, **kwargs: Any
    ) -> AsyncIterator[agent_pb2.GetTaskLogsResponse]:
        result = self.connector.get_logs(resource_meta=resource_meta, token=kwargs.get("token", ""))
        responses = result if inspect.isasyncgen(result) else _one(await typing.cast(Awaitable[Any], result))
        async for response in responses:
            yield agent_pb2.GetTaskLogsResponse.FromString(response.SerializeToString())


async def _one(item: Any) -> AsyncIterator[Any]:
    yield item


def _connection_kwargs() -> dict[str, str]:
    """What flyte-sdk's server passes: the connection's secrets, then its configs (none over v1)."""
    connection = current_connection()
    if connection is None:
        return {}
    return {**connection.secrets, **connection.configs}


async def _native_inputs(template: tasks2.TaskTemplate, inputs: literals_pb2.LiteralMap | None) -> dict[str, Any]:
    """Inputs as flyte-sdk's server gives them: each literal as the Python type its interface type guesses."""
    if inputs is None or not inputs.literals:
        return {}
    types = {entry.key: entry.value.type for entry in template.interface.inputs.variables}
    native = {}
    for name, literal in inputs.literals.items():
        if name not in types:
            raise ValueError(f"input {name!r} is not in the task's interface")
        value = literals2.Literal.FromString(literal.SerializeToString())
        native[name] = await TypeEngine.to_python_value(value, TypeEngine.guess_python_type(types[name]))
    return native


async def _resource(resource: FlyteResource) -> Resource:
    """flyte-sdk's Resource as the core's: native outputs become literals by their Python types (as flyte-sdk
    does), flyteidl2 log links become v1 ones (their v2-only fields are dropped)."""
    outputs = None
    if resource.outputs:
        outputs = literals_pb2.LiteralMap()
        for name, value in resource.outputs.items():
            python_type = type(value)
            literal = await TypeEngine.to_literal(value, python_type, TypeEngine.to_literal_type(python_type))
            outputs.literals[name].ParseFromString(literal.SerializeToString())
        outputs.DiscardUnknownFields()
    links = []
    for link in resource.log_links or []:
        v1_link = execution_pb2.TaskLog.FromString(link.SerializeToString())
        v1_link.DiscardUnknownFields()
        links.append(v1_link)
    return Resource(
        phase=resource.phase,
        message=resource.message,
        log_links=links or None,
        outputs=outputs,
        custom_info=resource.custom_info,
    )
