"""The three flyteidl services propeller calls: AsyncAgentService, SyncAgentService, AgentMetadataService.

One ``Dispatcher`` does the shared work: finding the connector (a dict lookup per task category), calling a
connector method (``async def`` on the loop, plain ``def`` in the service's thread pool, decided once per
method), recording metrics and turning exceptions into statuses. Nothing is logged per request unless it
fails.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from concurrent.futures import Executor
from types import CodeType
from typing import Any, NoReturn

import grpc
from flyteidl.admin import agent_pb2
from flyteidl.core import execution_pb2, literals_pb2, tasks_pb2
from google.protobuf.message import Message

from .._connector import AsyncConnectorBase, ConnectorBase, ResourceMeta, SyncConnectorBase
from .._errors import ConnectorNotFound, RetryableFailure
from .._failure_log import one_line
from .._registry import Registry
from ..secrets import scrub
from ._errors import LogLimit, ServiceError, describe_failure, logger, unimplemented
from ._metrics import Metrics
from ._replies import logs_response, resource_idl, terminal_resource
from ._signing import MARK as SIGNATURE_MARK
from ._signing import MetadataSigner
from ._signing import split as split_signature
from ._wire import parse, too_large

__all__ = ["UNSERVED", "AsyncAgentService", "Bulkhead", "Dispatcher", "MetadataService", "SyncAgentService"]

_Code = grpc.StatusCode
_ASYNC, _ASYNC_GEN, _PLAIN = 0, 1, 2
_RETRYABLE_FAILED = execution_pb2.TaskExecution.RETRYABLE_FAILED
_NEWLINE = SIGNATURE_MARK[0]
UNSERVED = "(not served)"
"""The metrics' task_type label of a failed call for a task type this service does not serve: one label for all,
so that callers naming made-up task types cannot grow the metrics (and Prometheus' series) without bound."""


class Dispatcher:
    """Finds connectors, calls their methods the right way, and keeps the books (metrics, errors).

    Routes and the ListAgents reply are cached until the registry changes (a connector registered or
    replaced after the start is found); method kinds are cached per connector.
    """

    def __init__(
        self,
        registry: Registry,
        executor: Executor,
        metrics: Metrics,
        *,
        threads: int = 128,
        limits: Mapping[str, int] | None = None,
        max_message_bytes: int = 4 * 2**20,
        retryable_as_state: bool = False,
        signer: MetadataSigner | None = None,
        log_limit: LogLimit | None = None,
    ) -> None:
        self.registry = registry
        self.executor = executor
        self.metrics = metrics
        self.default_limit = max(1, threads // 2)  # two hanging connectors cannot take the whole pool
        self.limits = dict(limits or {})  # task type -> bound, from --max-concurrent-calls
        self.max_message_bytes = max_message_bytes
        self.retryable_as_state = retryable_as_state
        self.signer = signer
        self.log_limit = log_limit if log_limit is not None else LogLimit(logger=logger)  # log lines per kind
        self._bound: dict[ConnectorBase, Bound] = {}  # kept across registry changes: calls in flight hold slots
        self._routes: dict[tuple[str, int], ConnectorBase] = {}
        self.method_names: dict[CodeType, str] = {}  # for the loop watchdog: code object -> "Connector.method"
        self._agents: agent_pb2.ListAgentsResponse | None = None
        self._served: frozenset[str] | None = None  # task types of the connectors served: the metrics' labels
        self._generation = -1  # the registry's generation the caches were filled at

    # ---------------------------------------------------------------------------------------- lookups
    def connector(self, name: str, version: int = 0) -> ConnectorBase:
        """The connector for a task category; NOT_FOUND in flytekit's words when there is none."""
        if self._generation != self.registry.generation:
            self._forget()
        connector = self._routes.get((name, version))
        if connector is None:
            if not name:
                raise ServiceError(_Code.INVALID_ARGUMENT, "the request names no task type")
            try:
                connector = self.registry.get_connector(name, version)
            except ConnectorNotFound:
                shown = name if version == 0 else f"{name} (version {version})"
                raise ServiceError(_Code.NOT_FOUND, f"Cannot find connector for task type: {shown}.") from None
            self._routes[(name, version)] = connector
        return connector

    def list_agents(self) -> agent_pb2.ListAgentsResponse:
        """Built once and reused (propeller asks every 10 s); rebuilt when the registry has changed."""
        self.registry.ensure_discovered()  # discovery on first use changes the generation
        if self._generation != self.registry.generation:
            self._forget()
        if self._agents is None:
            self._agents = agent_pb2.ListAgentsResponse(agents=self.registry.list_connectors())
        return self._agents

    def label(self, task_type: str) -> str:
        """``task_type`` as the metrics' label: itself when a connector serves it (or empty), else ``UNSERVED``."""
        if not task_type:
            return task_type
        if self._generation != self.registry.generation:
            self._forget()
        if self._served is None:
            agents = self.list_agents().agents
            self._served = frozenset(c.name for agent in agents for c in agent.supported_task_categories)
        return task_type if task_type in self._served else UNSERVED

    def _forget(self) -> None:
        self._routes.clear()
        self._agents = None
        self._served = None
        self._generation = self.registry.generation

    # ---------------------------------------------------------------------------------------- calling
    async def call(self, connector: ConnectorBase, method: str, **kwargs: Any) -> Any:
        """Call a connector method: ``async def`` on the loop (cancelled with the RPC), ``def`` in the pool,
        within the connector's bulkhead (plain ``def`` calls always; ``async def`` ones when a bound is set),
        counted in flight per task type (the in-flight gauge)."""
        bound = self._bound.get(connector) or self._bind(connector)
        fn, kind = bound.methods.get(method) or self._method(bound, method)
        bulkhead = bound.bulkhead
        task_type = bound.task_type
        self.metrics.call_started(task_type)
        try:
            if kind != _PLAIN:
                if not bulkhead.explicit:
                    return await fn(**kwargs) if kind == _ASYNC else fn(**kwargs)
                await bulkhead.enter()
                try:
                    return await fn(**kwargs) if kind == _ASYNC else fn(**kwargs)
                finally:
                    bulkhead.leave()
            result = await self._in_pool(bulkhead, fn, kwargs)
            if inspect.isawaitable(result):  # a plain def that hands back a coroutine (a decorated async def)
                result = await result
            return result
        except (SystemExit, KeyboardInterrupt) as e:
            raise _stopping(e) from e
        finally:
            self.metrics.call_ended(task_type)

    async def _in_pool(self, bulkhead: Bulkhead, fn: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
        """``fn(**kwargs)`` in the service's pool, holding a slot of ``bulkhead`` until the thread is done (not
        until the caller gives up: a hanging call holds it). It runs in this context: a Flyte 2 connection's
        secrets go along."""
        await bulkhead.enter()
        future = self.executor.submit(_call_and_leave, bulkhead, fn, kwargs)
        future.add_done_callback(bulkhead.leave_if_cancelled)
        return await asyncio.wrap_future(future)

    def _bind(self, connector: ConnectorBase) -> Bound:
        category = connector.task_category
        limit = self.limits.get(category.name) or connector.max_concurrent_calls
        bulkhead = Bulkhead(connector.name, limit or self.default_limit, limit is not None)
        bound = self._bound[connector] = Bound(connector, bulkhead)
        return bound

    def decode(self, connector: ConnectorBase, data: bytes, operation: str) -> Any:
        """The connector's ResourceMeta from the request's bytes (its signature checked when signing is on)."""
        bound = self._bound.get(connector) or self._bind(connector)
        if bound.metadata_type is None:
            raise ServiceError(
                _Code.FAILED_PRECONDITION,
                f"{connector.name} is a sync connector: call ExecuteTaskSync, it has no {operation}",
            )
        data = self.verified(connector, data)
        try:
            return bound.metadata_type.decode(data)
        except Exception as e:
            raise ServiceError(_Code.INVALID_ARGUMENT, f"{type(e).__name__}: {e}") from e

    def encode(self, connector: ConnectorBase, meta: ResourceMeta) -> bytes:
        """The metadata's bytes: flytekit's exactly, with a signature appended when signing is on."""
        return self.signed(connector, meta.encode())

    def signed(self, connector: ConnectorBase, data: bytes) -> bytes:
        """Resource metadata going out, signed for the connector's task category when signing is on."""
        if self.signer is None:
            return data
        return self.signer.sign(data, connector.task_category.name, connector.task_category.version)

    def verified(self, connector: ConnectorBase, data: bytes) -> bytes:
        """Resource metadata coming in, its signature checked and removed (INVALID_ARGUMENT when it does not
        verify); with signing off, a signature is only removed: tasks started while it was on keep running."""
        if self.signer is not None:
            category = connector.task_category
            return self.signer.verify(data, category.name, category.version)
        # A signature starts with a newline, which JSON metadata never holds: one memchr when unsigned (an int
        # needle: a bytes one costs ten times as much).
        return split_signature(data)[0] if _NEWLINE in data else data

    def retryable(self, exc: RetryableFailure, task_type: str, operation: str) -> agent_pb2.Resource:
        """A connector's RetryableFailure as the Resource propeller retries on (scrubbed on its way out)."""
        message = str(exc) or type(exc).__name__
        held = self.log_limit.admit(("retryable", type(exc).__name__, task_type, operation))
        if held is not None:
            note = self.log_limit.note(held)
            logger.warning("%s %s task: retryable failure: %s%s", operation, task_type or "a", scrub(message), note)
        return agent_pb2.Resource(phase=_RETRYABLE_FAILED, message=message)

    def for_propeller(self, resource: agent_pb2.Resource) -> agent_pb2.Resource:
        """With ``retryable_as_state`` (propellers before flyte 1.16.0, which call the phase RETRYABLE_FAILED an
        unknown phase, a system error): phase left UNDEFINED and the deprecated state RETRYABLE_FAILURE."""
        if self.retryable_as_state and resource.phase == _RETRYABLE_FAILED:
            resource.phase = execution_pb2.TaskExecution.UNDEFINED
            resource.state = agent_pb2.RETRYABLE_FAILURE
        return resource

    def fits(self, response: Message, rpc: str) -> None:
        """RESOURCE_EXHAUSTED naming --max-message-mb for a reply gRPC would refuse to send."""
        size = response.ByteSize()
        if size > self.max_message_bytes:
            raise ServiceError(
                _Code.RESOURCE_EXHAUSTED, f"{rpc}: the reply is {too_large(size, self.max_message_bytes)}"
            )

    def _method(self, bound: Bound, method: str) -> tuple[Callable[..., Any], int]:
        """A connector method and how to call it, worked out on its first call."""
        fn = getattr(bound.connector, method)
        if inspect.iscoroutinefunction(fn):
            kind = _ASYNC
        elif inspect.isasyncgenfunction(fn):
            kind = _ASYNC_GEN
        else:
            kind = _PLAIN
        code = getattr(getattr(fn, "__func__", fn), "__code__", None)
        if code is not None:
            self.method_names[code] = f"{bound.connector.name}.{method}"
        found = bound.methods[method] = (fn, kind)
        return found

    def is_implemented(self, connector: ConnectorBase, method: str) -> bool:
        """False for get_metrics/get_logs a connector inherits unchanged from AsyncConnectorBase."""
        own = getattr(type(connector), method, None)
        return own is not None and own is not getattr(AsyncConnectorBase, method, None)

    async def do(
        self,
        connector: SyncConnectorBase,
        template: tasks_pb2.TaskTemplate,
        inputs: literals_pb2.LiteralMap,
        output_prefix: str,
    ) -> agent_pb2.Resource:
        """Run a sync connector's ``do``: its terminal Resource, scrubbed (a RetryableFailure as RETRYABLE_FAILED);
        RuntimeError for a phase that is not terminal."""
        try:
            resource = await self.call(
                connector, "do", task_template=template, inputs=inputs, output_prefix=output_prefix
            )
        except RetryableFailure as e:
            resource = self.retryable(e, template.type, "do")
        return terminal_resource(resource, template)

    async def logs(
        self, connector: ConnectorBase, result: Any, rpc: str = "GetTaskLogs"
    ) -> AsyncIterator[agent_pb2.GetTaskLogsResponse]:
        """What the connector's get_logs returned as responses: one, or each item of a (sync or async) iterator;
        each checked, scrubbed and within the size limit."""
        if isinstance(result, agent_pb2.GetTaskLogsResponse):
            items: AsyncIterator[Any] = _one(result)
        elif hasattr(result, "__aiter__"):
            items = result
        elif isinstance(result, Iterator) or hasattr(result, "__iter__"):
            items = self._iterate_in_pool(connector, iter(result))
        else:
            raise TypeError(f"get_logs returned {type(result).__name__}, expected GetTaskLogsResponse(s)")
        try:
            async for item in items:
                response = logs_response(item)
                self.fits(response, rpc)
                yield response
        except (SystemExit, KeyboardInterrupt) as e:
            raise _stopping(e) from e

    async def _iterate_in_pool(self, connector: ConnectorBase, it: Iterator[Any]) -> AsyncIterator[Any]:
        """Each ``next`` of a plain generator may block (it is connector code, which may follow a job's logs for
        as long as it runs): in the pool, within the connector's bulkhead, as its other plain calls."""
        bulkhead = (self._bound.get(connector) or self._bind(connector)).bulkhead
        done = object()
        step = {"it": it, "done": done}
        while (item := await self._in_pool(bulkhead, _next, step)) is not done:
            yield item

    # ---------------------------------------------------------------------------------------- books
    async def fail(
        self,
        context: grpc.aio.ServicerContext,
        exc: BaseException,
        task_type: str,
        operation: str,
        started: float,
        protocol: str = "v1",
    ) -> NoReturn:
        failure = describe_failure(exc, operation, task_type, self.log_limit)
        self.metrics.failed(self.label(task_type), operation, failure.error_code, started, protocol)
        await context.abort(failure.code, failure.details)
        raise AssertionError("unreachable: abort raises")  # pragma: no cover


class Bound:
    """What the dispatcher works out once per connector rather than on every call: its task category, its
    metadata type (None for a sync connector), its bulkhead and its methods with how to call each."""

    __slots__ = ("bulkhead", "connector", "metadata_type", "methods", "task_type")

    def __init__(self, connector: ConnectorBase, bulkhead: Bulkhead) -> None:
        self.connector = connector
        self.task_type = connector.task_category.name
        self.metadata_type = connector.metadata_type if isinstance(connector, AsyncConnectorBase) else None
        self.bulkhead = bulkhead
        self.methods: dict[str, tuple[Callable[..., Any], int]] = {}


BULKHEAD_WAIT = 0.5
"""Seconds a call over its connector's bound waits for a free slot before RESOURCE_EXHAUSTED."""


class Bulkhead:
    """At most ``limit`` calls of one connector at once, counted across threads: a slot taken on the loop is
    given back by the pool thread that ran the call."""

    __slots__ = ("_lock", "explicit", "in_use", "limit", "name")

    def __init__(self, name: str, limit: int, explicit: bool) -> None:
        self.name = name
        self.limit = limit
        self.explicit = explicit  # set by flag or class attribute, not derived from the pool
        self.in_use = 0
        self._lock = threading.Lock()

    def _try_enter(self) -> bool:
        with self._lock:
            if self.in_use < self.limit:
                self.in_use += 1
                return True
            return False

    async def enter(self) -> None:
        if self._try_enter():
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + BULKHEAD_WAIT
        while loop.time() < deadline:  # only when saturated: a short poll costs nothing on the fast path
            await asyncio.sleep(0.01)
            if self._try_enter():
                return
        raise ServiceError(
            _Code.RESOURCE_EXHAUSTED,
            f"{self.name} is at its limit of {self.limit} concurrent calls (--max-concurrent-calls); try again later",
        )

    def leave(self) -> None:
        with self._lock:
            self.in_use -= 1

    def leave_if_cancelled(self, future: concurrent.futures.Future[Any]) -> None:
        if future.cancelled():  # never started: _call_and_leave did not run
            self.leave()


def _stopping(exc: BaseException) -> RuntimeError:
    """SystemExit or KeyboardInterrupt from connector code (a library's ``sys.exit``): raised through the event
    loop, either would stop the whole service; it fails the call that raised it (INTERNAL), nothing more."""
    return RuntimeError(f"the connector raised {one_line(exc)}")


def _next(it: Iterator[Any], done: object) -> Any:
    return next(it, done)


def _call_and_leave(bulkhead: Bulkhead, fn: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    try:
        return fn(**kwargs)
    finally:
        bulkhead.leave()


def _category(request: Any) -> tuple[str, int]:
    """Route by task_category when its name is set, else by the deprecated task_type at version 0."""
    category = request.task_category
    name = category.name
    if name:
        return name, category.version
    return request.task_type, 0


async def _one(item: Any) -> AsyncIterator[Any]:
    yield item


class AsyncAgentService:
    """CreateTask, GetTask, DeleteTask, GetTaskMetrics and the GetTaskLogs stream."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.d = dispatcher

    async def CreateTask(self, data: bytes, context: grpc.aio.ServicerContext) -> agent_pb2.CreateTaskResponse:
        started = time.perf_counter()
        task_type = ""
        try:
            request = parse(agent_pb2.CreateTaskRequest, data, "CreateTask", self.d.max_message_bytes)
            template = request.template
            task_type = template.type
            if not request.HasField("template"):
                raise ServiceError(_Code.INVALID_ARGUMENT, "CreateTask request has no task template")
            connector = self.d.connector(task_type, template.task_type_version)
            if not isinstance(connector, AsyncConnectorBase):
                raise ServiceError(
                    _Code.FAILED_PRECONDITION, f"{connector.name} is a sync connector: call ExecuteTaskSync"
                )
            inputs = request.inputs
            if request.HasField("inputs"):
                self.d.metrics.input_size(task_type, inputs.ByteSize())
            meta = await self.d.call(
                connector,
                "create",
                task_template=template,
                inputs=inputs,
                output_prefix=request.output_prefix,
                task_execution_metadata=request.task_execution_metadata,
            )
            response = agent_pb2.CreateTaskResponse(resource_meta=self.d.encode(connector, meta))
            self.d.fits(response, "CreateTask")
        except Exception as e:
            await self.d.fail(context, e, task_type, "create", started)
        self.d.metrics.succeeded(task_type, "create", started)
        return response

    async def GetTask(self, data: bytes, context: grpc.aio.ServicerContext) -> agent_pb2.GetTaskResponse:
        started = time.perf_counter()
        name = ""
        try:
            request = parse(agent_pb2.GetTaskRequest, data, "GetTask", self.d.max_message_bytes)
            name, version = _category(request)
            connector = self.d.connector(name, version)
            meta = self.d.decode(connector, request.resource_meta, "get")
            try:
                resource = await self.d.call(connector, "get", resource_meta=meta)
            except RetryableFailure as e:
                resource = self.d.retryable(e, name, "get")
            response = agent_pb2.GetTaskResponse()
            self.d.for_propeller(resource_idl(resource, None, response.resource))  # written in place: no copy
            self.d.fits(response, "GetTask")
        except Exception as e:
            await self.d.fail(context, e, name, "get", started)
        self.d.metrics.succeeded(name, "get", started)
        return response

    async def DeleteTask(self, data: bytes, context: grpc.aio.ServicerContext) -> agent_pb2.DeleteTaskResponse:
        started = time.perf_counter()
        name = ""
        try:
            request = parse(agent_pb2.DeleteTaskRequest, data, "DeleteTask", self.d.max_message_bytes)
            name, version = _category(request)
            connector = self.d.connector(name, version)
            meta = self.d.decode(connector, request.resource_meta, "delete")
            await self.d.call(connector, "delete", resource_meta=meta)
        except Exception as e:
            await self.d.fail(context, e, name, "delete", started)
        self.d.metrics.succeeded(name, "delete", started)
        return agent_pb2.DeleteTaskResponse()

    async def GetTaskMetrics(self, data: bytes, context: grpc.aio.ServicerContext) -> agent_pb2.GetTaskMetricsResponse:
        started = time.perf_counter()
        name = ""
        try:
            request = parse(agent_pb2.GetTaskMetricsRequest, data, "GetTaskMetrics", self.d.max_message_bytes)
            name, version = _category(request)
            connector, meta = self._optional(name, version, request.resource_meta, "get_metrics")
            response = await self.d.call(connector, "get_metrics", resource_meta=meta)
            if not isinstance(response, agent_pb2.GetTaskMetricsResponse):
                raise TypeError(f"get_metrics returned {type(response).__name__}, expected GetTaskMetricsResponse")
            self.d.fits(response, "GetTaskMetrics")
        except Exception as e:
            await self.d.fail(context, unimplemented(e, name, "get_metrics"), name, "get_metrics", started)
        self.d.metrics.succeeded(name, "get_metrics", started)
        return response

    async def GetTaskLogs(
        self, data: bytes, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[agent_pb2.GetTaskLogsResponse]:
        """Stream what the connector gives: one response, or each item of a (sync or async) iterator."""
        started = time.perf_counter()
        name = ""
        try:
            request = parse(agent_pb2.GetTaskLogsRequest, data, "GetTaskLogs", self.d.max_message_bytes)
            name, version = _category(request)
            connector, meta = self._optional(name, version, request.resource_meta, "get_logs")
            result = await self.d.call(connector, "get_logs", resource_meta=meta)
            async for response in self.d.logs(connector, result):
                yield response
        except Exception as e:
            await self.d.fail(context, unimplemented(e, name, "get_logs"), name, "get_logs", started)
        self.d.metrics.succeeded(name, "get_logs", started)

    def _optional(self, name: str, version: int, data: bytes, method: str) -> tuple[ConnectorBase, Any]:
        connector = self.d.connector(name, version)
        if isinstance(connector, AsyncConnectorBase) and not self.d.is_implemented(connector, method):
            raise ServiceError(_Code.UNIMPLEMENTED, f"{connector.name} does not implement {method}")
        return connector, self.d.decode(connector, data, method)


class SyncAgentService:
    """ExecuteTaskSync: a header, then the inputs, in; exactly one response with a terminal Resource out.

    Protocol errors get INVALID_ARGUMENT (no message, inputs first, or the stream closed after the header:
    propeller always sends the inputs, an empty LiteralMap when the task has none); a task type served by an
    async connector gets FAILED_PRECONDITION; a ``do`` that returns a non-terminal phase gets INTERNAL.
    """

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.d = dispatcher

    async def ExecuteTaskSync(
        self, request_iterator: AsyncIterator[bytes], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[agent_pb2.ExecuteTaskSyncResponse]:
        started = time.perf_counter()
        task_type = ""
        try:
            first = await self._next_message(request_iterator)
            if first is None or not first.HasField("header"):
                got = "nothing" if first is None else "the inputs"
                raise ServiceError(_Code.INVALID_ARGUMENT, f"ExecuteTaskSync expects a header first, got {got}")
            header = first.header
            template = header.template
            task_type = template.type
            connector = self.d.connector(task_type, template.task_type_version)
            if not isinstance(connector, SyncConnectorBase):
                raise ServiceError(
                    _Code.FAILED_PRECONDITION,
                    f"{connector.name} is an async connector: call CreateTask and GetTask, not ExecuteTaskSync",
                )
            second = await self._next_message(request_iterator)
            if second is None or not second.HasField("inputs"):
                got = "the end of the stream" if second is None else "a second header"
                raise ServiceError(
                    _Code.INVALID_ARGUMENT,
                    f"ExecuteTaskSync expects the inputs after the header, got {got} "
                    "(send an empty LiteralMap for a task without inputs)",
                )
            self.d.metrics.input_size(task_type, second.inputs.ByteSize())
            idl = await self.d.do(connector, template, second.inputs, header.output_prefix)
            reply = agent_pb2.ExecuteTaskSyncResponseHeader(resource=self.d.for_propeller(idl))
            response = agent_pb2.ExecuteTaskSyncResponse(header=reply)
            self.d.fits(response, "ExecuteTaskSync")
        except Exception as e:
            await self.d.fail(context, e, task_type, "do", started)
        yield response
        self.d.metrics.succeeded(task_type, "do", started)

    async def _next_message(self, requests: AsyncIterator[bytes]) -> agent_pb2.ExecuteTaskSyncRequest | None:
        data = await anext(requests, None)
        if data is None:
            return None
        return parse(agent_pb2.ExecuteTaskSyncRequest, data, "ExecuteTaskSync", self.d.max_message_bytes)


class MetadataService:
    """ListAgents (cached) and GetAgent, from the registry."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.d = dispatcher

    async def ListAgents(self, data: bytes, context: grpc.aio.ServicerContext) -> agent_pb2.ListAgentsResponse:
        started = time.perf_counter()
        try:
            parse(agent_pb2.ListAgentsRequest, data, "ListAgents", self.d.max_message_bytes)
        except ServiceError as e:
            await self.d.fail(context, e, "", "list_agents", started)
        response = self.d.list_agents()
        self.d.metrics.succeeded("", "list_agents", started)
        return response

    async def GetAgent(self, data: bytes, context: grpc.aio.ServicerContext) -> agent_pb2.GetAgentResponse:
        started = time.perf_counter()
        try:
            request = parse(agent_pb2.GetAgentRequest, data, "GetAgent", self.d.max_message_bytes)
            agent = self.d.registry.get_connector_metadata(request.name)
        except ConnectorNotFound:
            error = ServiceError(_Code.NOT_FOUND, f"Cannot find connector for name: {request.name}.")
            await self.d.fail(context, error, "", "get_agent", started)
        except ServiceError as e:
            await self.d.fail(context, e, "", "get_agent", started)
        self.d.metrics.succeeded("", "get_agent", started)
        return agent_pb2.GetAgentResponse(agent=agent)
