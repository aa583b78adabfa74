"""Flyte 2's connector protocol (``flyteidl2.connector``) served from the same ``Dispatcher`` as flyteidl's.

``AsyncConnectorService`` (CreateTask, GetTask, DeleteTask, GetTaskMetrics, GetTaskLogs) and
``ConnectorMetadataService`` (ListConnectors, GetConnector), registered on the same grpc.aio server when the
extra ``core-connectors[flyte2]`` (flyteidl2) is installed.

Connectors keep receiving flyteidl's v1 messages. The messages a connector sees are wire-compatible between
the two generations (same field numbers and types; ``flyteidl2.task.Inputs``' named literals are the entries of
v1's ``LiteralMap``), so a v2 request's bytes are parsed straight into the v1 types and v1 replies are written
as v2 bytes; fields that exist in one generation only are dropped (docs/flyte2.md lists them). The handlers take
raw bytes and parse them with ``wire.parse`` (bytes that do not parse are INVALID_ARGUMENT, as over v1) and
return bytes (a v2 reply costs no conversion). Every call goes through the v1 services' ``Dispatcher``:
bulkheads, scrubbing, RetryableFailure, signed metadata and the metrics (labelled ``protocol="v2"``) are the
same; only ``--retryable-as-state`` is not applied (v2's Resource has no state: its callers get the real phase).
Sync connectors are served as async ones: CreateTask runs ``do`` and carries its result in the resource
metadata, which GetTask hands back (no state kept on any replica).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any, TypeVar

import grpc
from flyteidl.admin import agent_pb2
from flyteidl2.connector import connector_pb2, service_pb2
from google.protobuf.message import DecodeError, Message

from .._connector import AsyncConnectorBase, ConnectorBase, Resource, SyncConnectorBase
from .._errors import ConnectorNotFound, RetryableFailure
from ..secrets import connection_secrets
from . import _wire as wire
from ._errors import ServiceError, unimplemented
from ._replies import resource_idl
from ._service import Dispatcher

__all__ = ["SERVICE_NAMES", "SYNC_RESULT_LIMIT", "add_services"]

SERVICE_NAMES = tuple(s.full_name for s in service_pb2.DESCRIPTOR.services_by_name.values())
SYNC_RESULT_LIMIT = 256 * 1024
"""Bytes a sync connector's result may take when served over v2: it travels in the resource metadata, which
Flyte 2 keeps in the task's state (a Kubernetes object, itself limited to 1.5 MiB by etcd)."""

SYNC_RESULT_MAGIC = b"core-connectors/sync-result/1\n"
_Code = grpc.StatusCode
_PROTOCOL = "v2"
_M = TypeVar("_M", bound=Message)


# ------------------------------------------------------------------------------------------- replies
def _resource_reply(resource: agent_pb2.Resource) -> agent_pb2.GetTaskResponse:
    """A v1 Resource as v2's GetTaskResponse (written as bytes, its outputs are ``flyteidl2.task.Outputs``). The
    v1-only ``state`` (deprecated) becomes the phase and ``agent_error`` is dropped, its message kept."""
    if resource.state or resource.HasField("agent_error"):
        resource = _without_v1_only_fields(resource)
    return agent_pb2.GetTaskResponse(resource=resource)


def _without_v1_only_fields(resource: agent_pb2.Resource) -> agent_pb2.Resource:
    copy = Resource.from_flyte_idl(resource).to_flyte_idl_sync()
    if not copy.message and resource.HasField("agent_error"):
        copy.message = resource.agent_error.code
    return copy


def _sync_result(data: bytes) -> bytes:
    if len(data) > SYNC_RESULT_LIMIT:
        raise ServiceError(
            _Code.RESOURCE_EXHAUSTED,
            f"the result of do() takes {len(data)} bytes, more than the {SYNC_RESULT_LIMIT // 1024} KiB a sync "
            "connector's result may take over Flyte 2 (it travels in the resource metadata): return smaller "
            "outputs, or offloaded ones",
        )
    return data


def _stored_result(data: bytes) -> agent_pb2.GetTaskResponse:
    """The reply to a GetTask of a sync connector: the result its CreateTask stored in the metadata (which, unless
    metadata is signed, anyone can write: INVALID_ARGUMENT for what this service would not have stored)."""
    if not data.startswith(SYNC_RESULT_MAGIC):
        raise ServiceError(
            _Code.INVALID_ARGUMENT, "the resource metadata is not the result of a CreateTask of a sync connector"
        )
    try:
        return _resource_reply(agent_pb2.Resource.FromString(data[len(SYNC_RESULT_MAGIC) :]))
    except (DecodeError, ValueError) as e:
        raise ServiceError(_Code.INVALID_ARGUMENT, f"the stored result is not a Resource: {e}") from None


_NO_CONNECTION = contextlib.nullcontext()


def _connection(request: Any) -> contextlib.AbstractContextManager[None]:
    """The request's connection secrets for the call; nothing to set (the common case) when it carries none."""
    if not request.HasField("connection"):
        return _NO_CONNECTION
    return connection_secrets(request.connection.secrets, request.connection.configs)


def _category(request: Any) -> tuple[str, int]:
    return request.task_category.name, request.task_category.version


# ------------------------------------------------------------------------------------------- services
class AsyncConnectorService:
    """flyteidl2.connector.AsyncConnectorService over the Dispatcher; every method takes and returns bytes.

    Each call parses its request first, then runs with the connection's secrets set (so that errors are
    described, and scrubbed, while they are known), and forgets them when it returns.
    """

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.d = dispatcher

    def _parse(self, message_type: type[_M], data: bytes, rpc: str) -> _M:
        return wire.parse(message_type, data, rpc, self.d.max_message_bytes)

    async def CreateTask(self, data: bytes, context: grpc.aio.ServicerContext) -> bytes:
        started = time.perf_counter()
        try:
            v2 = self._parse(connector_pb2.CreateTaskRequest, data, "CreateTask")
            if not v2.HasField("template"):
                raise ServiceError(_Code.INVALID_ARGUMENT, "CreateTask request has no task template")
            request = self._parse(agent_pb2.CreateTaskRequest, data, "CreateTask")  # the same bytes, as v1
            request.DiscardUnknownFields()  # the connection, Inputs.context and other fields only v2 has
        except Exception as e:
            await self.d.fail(context, e, "", "create", started, _PROTOCOL)
        template = request.template
        task_type = template.type
        with _connection(v2):
            try:
                connector = self.d.connector(task_type, template.task_type_version)
                if request.HasField("inputs"):
                    self.d.metrics.input_size(task_type, request.inputs.ByteSize(), _PROTOCOL)
                if isinstance(connector, SyncConnectorBase):
                    result = await self.d.do(connector, template, request.inputs, request.output_prefix)
                    meta = _sync_result(self.d.signed(connector, SYNC_RESULT_MAGIC + result.SerializeToString()))
                else:
                    created = await self.d.call(
                        connector,
                        "create",
                        task_template=template,
                        inputs=request.inputs,
                        output_prefix=request.output_prefix,
                        task_execution_metadata=request.task_execution_metadata,
                    )
                    meta = self.d.encode(connector, created)
                response = agent_pb2.CreateTaskResponse(resource_meta=meta)
                self.d.fits(response, "CreateTask")
            except Exception as e:
                await self.d.fail(context, e, task_type, "create", started, _PROTOCOL)
        self.d.metrics.succeeded(task_type, "create", started, _PROTOCOL)
        return response.SerializeToString()  # the same bytes in v2 (module docstring)

    async def GetTask(self, data: bytes, context: grpc.aio.ServicerContext) -> bytes:
        """The connector's phase as it is: ``--retryable-as-state`` is for old v1 propellers only."""
        started = time.perf_counter()
        try:
            request = self._parse(connector_pb2.GetTaskRequest, data, "GetTask")
        except Exception as e:
            await self.d.fail(context, e, "", "get", started, _PROTOCOL)
        name, version = _category(request)
        with _connection(request):
            try:
                connector = self.d.connector(name, version)
                if isinstance(connector, SyncConnectorBase):
                    response = _stored_result(self.d.verified(connector, request.resource_meta))
                else:
                    meta = self.d.decode(connector, request.resource_meta, "get")
                    try:
                        got = await self.d.call(connector, "get", resource_meta=meta)
                    except RetryableFailure as e:
                        got = self.d.retryable(e, name, "get")
                    response = agent_pb2.GetTaskResponse()
                    resource = resource_idl(got, None, response.resource)  # written in place: no copy
                    if resource.state or resource.HasField("agent_error"):
                        response = _resource_reply(resource)
                self.d.fits(response, "GetTask")
            except Exception as e:
                await self.d.fail(context, e, name, "get", started, _PROTOCOL)
        self.d.metrics.succeeded(name, "get", started, _PROTOCOL)
        return response.SerializeToString()

    async def DeleteTask(self, data: bytes, context: grpc.aio.ServicerContext) -> bytes:
        """A sync connector's task is over once CreateTask answered: deleting it succeeds and does nothing."""
        started = time.perf_counter()
        try:
            request = self._parse(connector_pb2.DeleteTaskRequest, data, "DeleteTask")
        except Exception as e:
            await self.d.fail(context, e, "", "delete", started, _PROTOCOL)
        name, version = _category(request)
        with _connection(request):
            try:
                connector = self.d.connector(name, version)
                if not isinstance(connector, SyncConnectorBase):
                    meta = self.d.decode(connector, request.resource_meta, "delete")
                    await self.d.call(connector, "delete", resource_meta=meta)
            except Exception as e:
                await self.d.fail(context, e, name, "delete", started, _PROTOCOL)
        self.d.metrics.succeeded(name, "delete", started, _PROTOCOL)
        return b""  # DeleteTaskResponse has no fields

    async def GetTaskMetrics(self, data: bytes, context: grpc.aio.ServicerContext) -> bytes:
        started = time.perf_counter()
        name = ""
        try:
            request = self._parse(connector_pb2.GetTaskMetricsRequest, data, "GetTaskMetrics")
            name, version = _category(request)
            connector, meta = self._optional(name, version, request.resource_meta, "get_metrics")
            response = await self.d.call(connector, "get_metrics", resource_meta=meta)
            if not isinstance(response, agent_pb2.GetTaskMetricsResponse):
                raise TypeError(f"get_metrics returned {type(response).__name__}, expected GetTaskMetricsResponse")
            self.d.fits(response, "GetTaskMetrics")
        except Exception as e:
            await self.d.fail(context, unimplemented(e, name, "get_metrics"), name, "get_metrics", started, _PROTOCOL)
        self.d.metrics.succeeded(name, "get_metrics", started, _PROTOCOL)
        return response.SerializeToString()  # the same bytes in v2 (module docstring)

    async def GetTaskLogs(self, data: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        started = time.perf_counter()
        name = ""
        try:
            request = self._parse(connector_pb2.GetTaskLogsRequest, data, "GetTaskLogs")
            name, version = _category(request)
            connector, meta = self._optional(name, version, request.resource_meta, "get_logs")
            result = await self.d.call(connector, "get_logs", resource_meta=meta)
            async for response in self.d.logs(connector, result):
                yield response.SerializeToString()
        except Exception as e:
            await self.d.fail(context, unimplemented(e, name, "get_logs"), name, "get_logs", started, _PROTOCOL)
        self.d.metrics.succeeded(name, "get_logs", started, _PROTOCOL)

    def _optional(self, name: str, version: int, data: bytes, method: str) -> tuple[ConnectorBase, Any]:
        connector = self.d.connector(name, version)
        if not isinstance(connector, AsyncConnectorBase) or not self.d.is_implemented(connector, method):
            raise ServiceError(_Code.UNIMPLEMENTED, f"{connector.name} does not implement {method}")
        return connector, self.d.decode(connector, data, method)


class ConnectorMetadataService:
    """ListConnectors and GetConnector, from the registry (the v1 ListAgents reply, cached, turned into v2)."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.d = dispatcher
        self._agents: agent_pb2.ListAgentsResponse | None = None
        self._reply = b""

    async def ListConnectors(self, data: bytes, context: grpc.aio.ServicerContext) -> bytes:
        started = time.perf_counter()
        try:
            wire.parse(connector_pb2.ListConnectorsRequest, data, "ListConnectors", self.d.max_message_bytes)
        except ServiceError as e:
            await self.d.fail(context, e, "", "list_agents", started, _PROTOCOL)
        agents = self.d.list_agents()  # the same object until the registry changes
        if agents is not self._agents:
            reply = connector_pb2.ListConnectorsResponse(connectors=[_connector(a) for a in agents.agents])
            self._agents, self._reply = agents, reply.SerializeToString()
        self.d.metrics.succeeded("", "list_agents", started, _PROTOCOL)
        return self._reply

    async def GetConnector(self, data: bytes, context: grpc.aio.ServicerContext) -> bytes:
        started = time.perf_counter()
        try:
            request = wire.parse(connector_pb2.GetConnectorRequest, data, "GetConnector", self.d.max_message_bytes)
            try:
                agent = self.d.registry.get_connector_metadata(request.name)
            except ConnectorNotFound:
                raise ServiceError(_Code.NOT_FOUND, f"Cannot find connector for name: {request.name}.") from None
        except Exception as e:
            await self.d.fail(context, e, "", "get_agent", started, _PROTOCOL)
        self.d.metrics.succeeded("", "get_agent", started, _PROTOCOL)
        return connector_pb2.GetConnectorResponse(connector=_connector(agent)).SerializeToString()


def _connector(agent: agent_pb2.Agent) -> connector_pb2.Connector:
    """v2's Connector has no is_sync (every connector is async over v2) nor the deprecated task type names."""
    categories = [connector_pb2.TaskCategory(name=c.name, version=c.version) for c in agent.supported_task_categories]
    return connector_pb2.Connector(name=agent.name, supported_task_categories=categories)


# ------------------------------------------------------------------------------------------- registration
def add_services(dispatcher: Dispatcher, server: grpc.aio.Server) -> tuple[str, ...]:
    """Register both v2 services on ``server`` (raw bytes in and out, see ``wire``); returns their full names
    (for health and reflection)."""
    services = service_pb2.DESCRIPTOR.services_by_name
    wire.add_service(
        server, services["AsyncConnectorService"], AsyncConnectorService(dispatcher), serialized_replies=True
    )
    wire.add_service(
        server, services["ConnectorMetadataService"], ConnectorMetadataService(dispatcher), serialized_replies=True
    )
    return SERVICE_NAMES
