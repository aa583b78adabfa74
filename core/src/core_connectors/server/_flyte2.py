"""Flyte 2's connector protocol (``flyteidl2.connector``) served from the same ``Dispatcher`` as flyteidl's.

``AsyncConnectorService`` (CreateTask, GetTask, DeleteTask, GetTaskMetrics, GetTaskLogs) and
``ConnectorMetadataService`` (ListConnectors, GetConnector), registered on the same grpc.aio server when the
extra ``core-connectors[flyte2]`` (flyteidl2) is installed.

Connectors keep receiving flyteidl's v1 messages. The messages a connector sees are wire-compatible between
the two generations (same field numbers and types; ``flyteidl2.task.Inputs``' named literals are the entries of
v1's ``LiteralMap``), so a v2 request's bytes are parsed straight into the v1 types and v1 replies are written
as v2 bytes; fields that exist in one generation only are dropped (docs/flyte2.md lists them). The handlers take
raw bytes and parse them with one function per RPC, so bytes that do not parse are INVALID_ARGUMENT, and so that
a v2 reply costs no conversion. Sync connectors are served as async ones: CreateTask runs ``do`` and carries its
result in the resource metadata, which GetTask hands back (no state kept on any replica).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from flyteidl.admin import agent_pb2
from flyteidl2.connector import connector_pb2, service_pb2
from flyteidl2.core import security_pb2
from google.protobuf.message import DecodeError, Message

from ..base_connector import AsyncConnectorBase, ConnectorBase, Resource, SyncConnectorBase, is_terminal_phase
from ..errors import ConnectorNotFound
from ..secrets import connection_secrets
from .errors import ServiceError
from .service import Dispatcher, _decode, _logs_response, _output_types, _phase_name, _resource_idl, _unimplemented

__all__ = ["SERVICE_NAMES", "SYNC_RESULT_LIMIT", "add_services"]

SERVICE_NAMES = tuple(s.full_name for s in service_pb2.DESCRIPTOR.services_by_name.values())
SYNC_RESULT_LIMIT = 256 * 1024
"""Bytes a sync connector's result may take when served over v2: it travels in the resource metadata, which
Flyte 2 keeps in the task's state (a Kubernetes object, itself limited to 1.5 MiB by etcd)."""

SYNC_RESULT_MAGIC = b"core-connectors/sync-result/1\n"
_Code = grpc.StatusCode
_PROTOCOL = "v2"
_M = TypeVar("_M", bound=Message)


# ------------------------------------------------------------------------------------------- parsing
# One function per RPC: raw request bytes in, what the handler needs out, INVALID_ARGUMENT for bytes that do not
# parse or a request that lacks what the call needs.
def _parse(message_type: type[_M], data: bytes, rpc: str) -> _M:
    try:
        return message_type.FromString(data)
    except DecodeError as e:
        raise ServiceError(_Code.INVALID_ARGUMENT, f"{rpc} request does not parse as flyteidl2: {e}") from None


@dataclass(frozen=True)
class CreateCall:
    """A v2 CreateTask as a connector receives it: the v1 request, and the connection's secrets."""

    request: agent_pb2.CreateTaskRequest
    connection: security_pb2.Connection


def parse_create(data: bytes) -> CreateCall:
    v2 = _parse(connector_pb2.CreateTaskRequest, data, "CreateTask")
    if not v2.HasField("template"):
        raise ServiceError(_Code.INVALID_ARGUMENT, "CreateTask request has no task template")
    v1 = _parse(agent_pb2.CreateTaskRequest, data, "CreateTask")  # the same bytes as v1 (module docstring)
    v1.DiscardUnknownFields()  # the connection, Inputs.context and other fields only v2 has
    return CreateCall(v1, v2.connection)


def parse_get(data: bytes) -> connector_pb2.GetTaskRequest:
    return _parse(connector_pb2.GetTaskRequest, data, "GetTask")


def parse_delete(data: bytes) -> connector_pb2.DeleteTaskRequest:
    return _parse(connector_pb2.DeleteTaskRequest, data, "DeleteTask")


def parse_metrics(data: bytes) -> connector_pb2.GetTaskMetricsRequest:
    return _parse(connector_pb2.GetTaskMetricsRequest, data, "GetTaskMetrics")


def parse_logs(data: bytes) -> connector_pb2.GetTaskLogsRequest:
    return _parse(connector_pb2.GetTaskLogsRequest, data, "GetTaskLogs")


def parse_get_connector(data: bytes) -> connector_pb2.GetConnectorRequest:
    return _parse(connector_pb2.GetConnectorRequest, data, "GetConnector")


# ------------------------------------------------------------------------------------------- replies
def _resource_reply(resource: agent_pb2.Resource) -> bytes:
    """A v1 Resource written as v2's GetTaskResponse (outputs become ``flyteidl2.task.Outputs``). The v1-only
    ``state`` (deprecated) becomes the phase and ``agent_error`` is dropped, its message kept."""
    if resource.state or resource.HasField("agent_error"):
        resource = _without_v1_only_fields(resource)
    return agent_pb2.GetTaskResponse(resource=resource).SerializeToString()


def _without_v1_only_fields(resource: agent_pb2.Resource) -> agent_pb2.Resource:
    copy = Resource.from_flyte_idl(resource).to_flyte_idl_sync()
    if not copy.message and resource.HasField("agent_error"):
        copy.message = resource.agent_error.code
    return copy


def _sync_result(resource: agent_pb2.Resource) -> bytes:
    data = SYNC_RESULT_MAGIC + resource.SerializeToString()
    if len(data) > SYNC_RESULT_LIMIT:
        raise ServiceError(
            _Code.RESOURCE_EXHAUSTED,
            f"the result of do() takes {len(data)} bytes, more than the {SYNC_RESULT_LIMIT // 1024} KiB a sync "
            "connector's result may take over Flyte 2 (it travels in the resource metadata): return smaller "
            "outputs, or offloaded ones",
        )
    return data


def _stored_result(data: bytes) -> agent_pb2.Resource:
    if not data.startswith(SYNC_RESULT_MAGIC):
        raise ServiceError(
            _Code.INVALID_ARGUMENT, "the resource metadata is not the result of a CreateTask of a sync connector"
        )
    try:
        return agent_pb2.Resource.FromString(data[len(SYNC_RESULT_MAGIC) :])
    except DecodeError as e:
        raise ServiceError(_Code.INVALID_ARGUMENT, f"the stored result does not parse: {e}") from None


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

    async def CreateTask(self, data: bytes, context: grpc.aio.ServicerContext) -> bytes:
        started = time.perf_counter()
        try:
            call = parse_create(data)
        except Exception as e:
            await self.d.fail(context, e, "", "create", started, _PROTOCOL)
        request = call.request
        template = request.template
        task_type = template.type
        with connection_secrets(call.connection.secrets, call.connection.configs):
            try:
                connector = self.d.connector(task_type, template.task_type_version)
                self.d.metrics.input_size(task_type, request.inputs.ByteSize(), _PROTOCOL)
                if isinstance(connector, SyncConnectorBase):
                    meta = _sync_result(await self._do(connector, request))
                else:
                    created = await self.d.call(
                        connector,
                        "create",
                        task_template=template,
                        inputs=request.inputs,
                        output_prefix=request.output_prefix,
                        task_execution_metadata=request.task_execution_metadata,
                    )
                    meta = created.encode()
            except Exception as e:
                await self.d.fail(context, e, task_type, "create", started, _PROTOCOL)
        self.d.metrics.succeeded(task_type, "create", started, _PROTOCOL)
        return agent_pb2.CreateTaskResponse(resource_meta=meta).SerializeToString()

    async def _do(self, connector: SyncConnectorBase, request: agent_pb2.CreateTaskRequest) -> agent_pb2.Resource:
        template = request.template
        resource = await self.d.call(
            connector, "do", task_template=template, inputs=request.inputs, output_prefix=request.output_prefix
        )
        idl = _resource_idl(resource, _output_types(template))
        if not is_terminal_phase(idl.phase):
            raise RuntimeError(
                f"do() returned the non-terminal phase {_phase_name(idl.phase)}; "
                "a sync connector must return SUCCEEDED, FAILED, RETRYABLE_FAILED or ABORTED"
            )
        return idl

    async def GetTask(self, data: bytes, context: grpc.aio.ServicerContext) -> bytes:
        started = time.perf_counter()
        try:
            request = parse_get(data)
        except Exception as e:
            await self.d.fail(context, e, "", "get", started, _PROTOCOL)
        name, version = _category(request)
        with connection_secrets(request.connection.secrets, request.connection.configs):
            try:
                connector = self.d.connector(name, version)
                if isinstance(connector, SyncConnectorBase):
                    reply = _resource_reply(_stored_result(request.resource_meta))
                else:
                    meta = _decode(connector, request.resource_meta, "get")
                    resource = await self.d.call(connector, "get", resource_meta=meta)
                    reply = _resource_reply(_resource_idl(resource, None))
            except Exception as e:
                await self.d.fail(context, e, name, "get", started, _PROTOCOL)
        self.d.metrics.succeeded(name, "get", started, _PROTOCOL)
        return reply

    async def DeleteTask(self, data: bytes, context: grpc.aio.ServicerContext) -> bytes:
        """A sync connector's task is over once CreateTask answered: deleting it succeeds and does nothing."""
        started = time.perf_counter()
        try:
            request = parse_delete(data)
        except Exception as e:
            await self.d.fail(context, e, "", "delete", started, _PROTOCOL)
        name, version = _category(request)
        with connection_secrets(request.connection.secrets, request.connection.configs):
            try:
                connector = self.d.connector(name, version)
                if not isinstance(connector, SyncConnectorBase):
                    meta = _decode(connector, request.resource_meta, "delete")
                    await self.d.call(connector, "delete", resource_meta=meta)
            except Exception as e:
                await self.d.fail(context, e, name, "delete", started, _PROTOCOL)
        self.d.metrics.succeeded(name, "delete", started, _PROTOCOL)
        return b""  # DeleteTaskResponse has no fields

    async def GetTaskMetrics(self, data: bytes, context: grpc.aio.ServicerContext) -> bytes:
        started = time.perf_counter()
        name = ""
        try:
            request = parse_metrics(data)
            name, version = _category(request)
            connector, meta = self._optional(name, version, request.resource_meta, "get_metrics")
            response = await self.d.call(connector, "get_metrics", resource_meta=meta)
            if not isinstance(response, agent_pb2.GetTaskMetricsResponse):
                raise TypeError(f"get_metrics returned {type(response).__name__}, expected GetTaskMetricsResponse")
        except Exception as e:
            await self.d.fail(context, _unimplemented(e, name, "get_metrics"), name, "get_metrics", started, _PROTOCOL)
        self.d.metrics.succeeded(name, "get_metrics", started, _PROTOCOL)
        return response.SerializeToString()  # the same bytes in v2 (module docstring)

    async def GetTaskLogs(self, data: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        started = time.perf_counter()
        name = ""
        try:
            request = parse_logs(data)
            name, version = _category(request)
            connector, meta = self._optional(name, version, request.resource_meta, "get_logs")
            result = await self.d.call(connector, "get_logs", resource_meta=meta)
            if isinstance(result, agent_pb2.GetTaskLogsResponse):
                yield result.SerializeToString()
            elif hasattr(result, "__aiter__"):
                async for item in result:
                    yield _logs_response(item).SerializeToString()
            elif hasattr(result, "__iter__"):
                async for item in self._iterate_in_pool(iter(result)):
                    yield _logs_response(item).SerializeToString()
            else:
                raise TypeError(f"get_logs returned {type(result).__name__}, expected GetTaskLogsResponse(s)")
        except Exception as e:
            await self.d.fail(context, _unimplemented(e, name, "get_logs"), name, "get_logs", started, _PROTOCOL)
        self.d.metrics.succeeded(name, "get_logs", started, _PROTOCOL)

    def _optional(self, name: str, version: int, data: bytes, method: str) -> tuple[ConnectorBase, Any]:
        connector = self.d.connector(name, version)
        if not isinstance(connector, AsyncConnectorBase) or not self.d.is_implemented(connector, method):
            raise ServiceError(_Code.UNIMPLEMENTED, f"{connector.name} does not implement {method}")
        return connector, _decode(connector, data, method)

    async def _iterate_in_pool(self, it: Iterator[Any]) -> AsyncIterator[Any]:
        """Each ``next`` of a plain generator may block (it is connector code): run it in the pool."""
        loop = asyncio.get_running_loop()
        done = object()
        while (item := await loop.run_in_executor(self.d.executor, next, it, done)) is not done:
            yield item


class ConnectorMetadataService:
    """ListConnectors and GetConnector, from the registry (the v1 ListAgents reply, cached, turned into v2)."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.d = dispatcher
        self._agents: agent_pb2.ListAgentsResponse | None = None
        self._reply = b""

    async def ListConnectors(self, data: bytes, context: grpc.aio.ServicerContext) -> bytes:
        started = time.perf_counter()
        agents = self.d.list_agents()  # the same object until the registry changes
        if agents is not self._agents:
            reply = connector_pb2.ListConnectorsResponse(connectors=[_connector(a) for a in agents.agents])
            self._agents, self._reply = agents, reply.SerializeToString()
        self.d.metrics.succeeded("", "list_agents", started, _PROTOCOL)
        return self._reply

    async def GetConnector(self, data: bytes, context: grpc.aio.ServicerContext) -> bytes:
        started = time.perf_counter()
        try:
            request = parse_get_connector(data)
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
    """Register both v2 services on ``server``; returns their full names (for health and reflection)."""
    tasks = AsyncConnectorService(dispatcher)
    metadata = ConnectorMetadataService(dispatcher)
    unary: Callable[..., grpc.RpcMethodHandler] = grpc.unary_unary_rpc_method_handler
    services = {
        "flyteidl2.connector.AsyncConnectorService": {
            "CreateTask": unary(tasks.CreateTask),
            "GetTask": unary(tasks.GetTask),
            "DeleteTask": unary(tasks.DeleteTask),
            "GetTaskMetrics": unary(tasks.GetTaskMetrics),
            "GetTaskLogs": grpc.unary_stream_rpc_method_handler(tasks.GetTaskLogs),
        },
        "flyteidl2.connector.ConnectorMetadataService": {
            "ListConnectors": unary(metadata.ListConnectors),
            "GetConnector": unary(metadata.GetConnector),
        },
    }
    for name, methods in services.items():
        if hasattr(server, "add_registered_method_handlers"):  # grpcio >= 1.63: looked up without the generic scan
            server.add_registered_method_handlers(name, methods)
        else:
            server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(name, methods),))
    return SERVICE_NAMES
