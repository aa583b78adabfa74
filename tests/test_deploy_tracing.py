"""OpenTelemetry spans (the ``otel`` extra): one per RPC with the task type, operation, status code and error
id, and the connector's vendor calls as its children; nothing installed when tracing is off."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
import pytest
from flyteidl.admin import agent_pb2
from flyteidl.core import literals_pb2, tasks_pb2
from flyteidl.core.execution_pb2 import TaskExecution
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from core_connectors import AsyncConnectorBase, Resource, ResourceMeta, SyncConnectorBase
from core_connectors.server import create_server
from core_connectors.server.testing import start_service
from core_connectors.tracing import disable_tracing, enable_tracing, vendor_span


@dataclass
class Meta(ResourceMeta):
    job: str


class Vendor(AsyncConnectorBase):
    name = "vendor"

    def __init__(self):
        super().__init__(task_type_name="vendor", metadata_type=Meta)

    async def create(self, task_template, **kwargs):
        with vendor_span("vendor.jobs.insert", project="p1"):
            return Meta(job="j1")

    def get(self, resource_meta, **kwargs):  # a plain def, run in the pool: the span still nests
        with vendor_span("vendor.jobs.get", job_id=resource_meta.job):
            if resource_meta.job == "broken":
                raise RuntimeError("the vendor answered 500")
        return Resource(phase=TaskExecution.SUCCEEDED)

    async def delete(self, resource_meta, **kwargs):
        pass


class Echo(SyncConnectorBase):
    name = "echo"

    def __init__(self):
        super().__init__(task_type_name="echo")

    async def do(self, task_template, inputs=None, **kwargs):
        return Resource(phase=TaskExecution.SUCCEEDED)


@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    enable_tracing(provider)
    yield exporter
    disable_tracing()


def test_every_rpc_is_a_span_with_task_type_operation_code_and_error_id(spans):
    with start_service(Vendor(), Echo()) as service:
        stub = service.async_stub
        template = tasks_pb2.TaskTemplate(type="vendor")
        stub.CreateTask(agent_pb2.CreateTaskRequest(template=template), timeout=5)
        stub.GetTask(agent_pb2.GetTaskRequest(task_type="vendor", resource_meta=b'{"job": "j1"}'), timeout=5)
        with pytest.raises(grpc.RpcError) as failed:
            stub.GetTask(agent_pb2.GetTaskRequest(task_type="vendor", resource_meta=b'{"job": "broken"}'), timeout=5)
        with pytest.raises(grpc.RpcError):
            stub.GetTask(agent_pb2.GetTaskRequest(task_type="nope", resource_meta=b"{}"), timeout=5)
        header = agent_pb2.CreateRequestHeader(template=tasks_pb2.TaskTemplate(type="echo"))
        requests = iter(
            [
                agent_pb2.ExecuteTaskSyncRequest(header=header),
                agent_pb2.ExecuteTaskSyncRequest(inputs=literals_pb2.LiteralMap()),
            ]
        )
        assert len(list(service.sync_stub.ExecuteTaskSync(requests, timeout=5))) == 1

    finished = spans.get_finished_spans()
    rpcs = [s for s in finished if s.kind == SpanKind.SERVER]
    summary = [
        (
            s.name.rpartition("/")[2],
            s.attributes["flyte.task_type"],
            s.attributes["flyte.operation"],
            s.attributes["rpc.grpc.status_code"],
        )
        for s in rpcs
    ]
    assert summary == [
        ("CreateTask", "vendor", "create", 0),
        ("GetTask", "vendor", "get", 0),
        ("GetTask", "vendor", "get", grpc.StatusCode.INTERNAL.value[0]),
        ("GetTask", "nope", "get", grpc.StatusCode.NOT_FOUND.value[0]),
        ("ExecuteTaskSync", "echo", "do", 0),
    ]
    broken = rpcs[2]
    assert broken.status.status_code == StatusCode.ERROR
    assert broken.attributes["flyte.error_id"] in failed.value.details()
    assert rpcs[0].status.status_code != StatusCode.ERROR

    # vendor calls are children of the RPC that made them, also from the thread pool
    vendor = {s.name: s for s in finished if s.name.startswith("vendor.")}
    assert vendor["vendor.jobs.insert"].parent.span_id == rpcs[0].context.span_id
    assert vendor["vendor.jobs.insert"].attributes["vendor.project"] == "p1"
    gets = [s for s in finished if s.name == "vendor.jobs.get"]
    assert [g.parent.span_id for g in gets] == [rpcs[1].context.span_id, rpcs[2].context.span_id]
    assert gets[1].status.status_code == StatusCode.ERROR  # the vendor's exception is on its span


def test_off_by_default_no_interceptor_and_vendor_span_is_a_no_op():
    server = create_server(port=0)
    assert server._interceptors() is None
    with vendor_span("vendor.call") as span:
        assert span is None
