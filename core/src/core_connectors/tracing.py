"""Optional OpenTelemetry tracing: a span for every RPC the service answers, and ``vendor_span`` for the calls
a connector makes to its vendor, so that a slow GetTask shows where its time went.

Off unless the ``otel`` extra is installed (``pip install core-connectors[otel]``) and tracing is asked for
with ``core-connectors serve --tracing`` (or ``CORE_CONNECTORS_TRACING=1``). OpenTelemetry's own variables
configure the rest: ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_EXPORTER_OTLP_ENDPOINT``, ...
(spans go out over OTLP). When off, the service installs no interceptor and ``vendor_span`` is a no-op that
imports nothing, so the hot path costs what it did.

RPC spans carry ``rpc.system``, ``rpc.service``, ``rpc.method``, ``rpc.grpc.status_code``, and the
connector's ``flyte.task_type``, ``flyte.operation`` and, on a failure, ``flyte.error_id`` (the id the reply
and the server log name).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import grpc
from google.protobuf import descriptor_pool, message_factory

__all__ = ["TracingInterceptor", "enable_tracing", "tracing_enabled", "vendor_span"]

_INSTRUMENTATION = "core_connectors"
_tracer: Any = None  # an opentelemetry Tracer once tracing is enabled
_ERROR_ID = re.compile(r"\(error id ([0-9a-f]+)\)")
_OPERATIONS = {
    "CreateTask": "create",
    "GetTask": "get",
    "DeleteTask": "delete",
    "GetTaskMetrics": "get_metrics",
    "GetTaskLogs": "get_logs",
    "ExecuteTaskSync": "do",
    "ListAgents": "list_agents",
    "GetAgent": "get_agent",
    "ListConnectors": "list_agents",  # Flyte 2's metadata calls, named as the metrics name them
    "GetConnector": "get_agent",
}


def tracing_enabled() -> bool:
    return _tracer is not None


def enable_tracing(tracer_provider: Any = None) -> None:
    """Turn tracing on. Without a provider: the global one if something (``opentelemetry-instrument``) set
    it, else an SDK provider exporting over OTLP as the ``OTEL_*`` variables say. Raises ImportError naming
    the extra when OpenTelemetry is not installed."""
    global _tracer
    try:
        from opentelemetry import trace
    except ImportError as e:
        raise ImportError("tracing needs OpenTelemetry: pip install 'core-connectors[otel]'") from e
    if tracer_provider is None:
        tracer_provider = trace.get_tracer_provider()
        if type(tracer_provider).__name__ in ("ProxyTracerProvider", "NoOpTracerProvider"):
            tracer_provider = _otlp_provider()
            trace.set_tracer_provider(tracer_provider)
    from . import __version__

    _tracer = tracer_provider.get_tracer(_INSTRUMENTATION, __version__)


def disable_tracing() -> None:
    global _tracer
    _tracer = None


def _otlp_provider() -> Any:
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create())  # OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))  # OTEL_EXPORTER_OTLP_*
    return provider


@contextlib.contextmanager
def vendor_span(name: str, **attributes: Any) -> Iterator[Any]:
    """A span around a call to a vendor (``with vendor_span("bigquery.jobs.get", job_id=...):``), a child of
    the RPC's span; an exception is recorded on it and re-raised. Yields the span, or None when off."""
    if _tracer is None:
        yield None
        return
    with _tracer.start_as_current_span(name, attributes={f"vendor.{k}": v for k, v in attributes.items()}) as span:
        yield span


def _request_type(service: str, method: str) -> Any:
    """The request message class of ``service/method``, or None for a method protobuf does not know."""
    try:
        found = descriptor_pool.Default().FindServiceByName(service).methods_by_name[method]
    except KeyError:
        return None
    return message_factory.GetMessageClass(found.input_type)


def _task_type(request: Any, request_type: Any) -> str:
    """The task type a request names, the way the service routes it. The service's handlers take the raw bytes
    (``server.wire``), so the span parses its own copy: a cost paid only with tracing on."""
    if isinstance(request, bytes):
        try:
            request = request_type.FromString(request)
        except Exception:  # the handler answers INVALID_ARGUMENT; the span just has no task type
            return ""
    category = getattr(request, "task_category", None)
    if category is not None and category.name:
        return str(category.name)
    if hasattr(request, "template"):
        return str(request.template.type)
    if hasattr(request, "header"):
        return str(request.header.template.type)
    return str(getattr(request, "task_type", ""))


class TracingInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """A span per RPC, around the handler; installed by the server only when tracing is on."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or _tracer is None:
            return handler
        service, _, method = handler_call_details.method.lstrip("/").rpartition("/")
        if service.startswith(("grpc.health", "grpc.reflection")):
            return handler
        operation = _OPERATIONS.get(method, method)
        base = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": method, "flyte.operation": operation}
        name = f"{service}/{method}"
        request_type = _request_type(service, method)

        def start(request: Any) -> Any:
            attributes = dict(base)
            if request is not None:
                attributes["flyte.task_type"] = _task_type(request, request_type)
            return _tracer.start_as_current_span(
                name, kind=_server_kind(), attributes=attributes, record_exception=False, set_status_on_exception=False
            )

        if handler.unary_unary is not None:
            inner_uu = handler.unary_unary

            async def unary_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                with start(request) as span:
                    try:
                        return await inner_uu(request, context)
                    finally:
                        _finish(span, context)

            return grpc.unary_unary_rpc_method_handler(
                unary_unary, handler.request_deserializer, handler.response_serializer
            )
        if handler.unary_stream is not None:
            inner_us = handler.unary_stream

            async def unary_stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
                with start(request) as span:
                    try:
                        async for item in inner_us(request, context):
                            yield item
                    finally:
                        _finish(span, context)

            return grpc.unary_stream_rpc_method_handler(
                unary_stream, handler.request_deserializer, handler.response_serializer
            )
        if handler.stream_stream is not None:
            inner_ss = handler.stream_stream

            async def stream_stream(requests: Any, context: grpc.aio.ServicerContext) -> Any:
                first: list[Any] = []

                async def remember() -> Any:
                    async for request in requests:
                        if not first:
                            first.append(request)
                            span.set_attribute("flyte.task_type", _task_type(request, request_type))
                        yield request

                with start(None) as span:
                    try:
                        async for item in inner_ss(remember(), context):
                            yield item
                    finally:
                        _finish(span, context)

            return grpc.stream_stream_rpc_method_handler(
                stream_stream, handler.request_deserializer, handler.response_serializer
            )
        return handler


def _server_kind() -> Any:
    from opentelemetry.trace import SpanKind

    return SpanKind.SERVER


def _finish(span: Any, context: grpc.aio.ServicerContext) -> None:
    from opentelemetry.trace import Status, StatusCode

    code = context.code() or grpc.StatusCode.OK
    if isinstance(code, int):  # grpc.aio keeps the raw value once the handler has aborted
        code = next((c for c in grpc.StatusCode if c.value[0] == code), grpc.StatusCode.UNKNOWN)
    span.set_attribute("rpc.grpc.status_code", code.value[0])
    if code != grpc.StatusCode.OK:
        details = context.details() or ""
        if isinstance(details, bytes):
            details = details.decode("utf-8", "replace")
        match = _ERROR_ID.search(details)
        if match:
            span.set_attribute("flyte.error_id", match.group(1))
        span.set_status(Status(StatusCode.ERROR, code.name))
