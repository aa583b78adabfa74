"""Flyte 2's connector services (flyteidl2.connector) over the wire, with the flyteidl2 stubs, beside the v1 ones."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import grpc
import pytest
from flyteidl.admin import agent_pb2
from flyteidl.core import execution_pb2, literals_pb2, metrics_pb2, tasks_pb2
from flyteidl2.connector import connector_pb2, service_pb2_grpc
from flyteidl2.core import interface_pb2 as interface2
from flyteidl2.core import literals_pb2 as literals2
from flyteidl2.core import security_pb2
from flyteidl2.core import tasks_pb2 as tasks2
from flyteidl2.core import types_pb2 as types2
from flyteidl2.task import common_pb2
from google.protobuf import struct_pb2
from google.protobuf.descriptor import FieldDescriptor
from prometheus_client import CollectorRegistry, generate_latest

from core_connectors import (
    AsyncConnectorBase,
    Resource,
    ResourceMeta,
    RetryableFailure,
    SecretNotFound,
    SyncConnectorBase,
    get_connector_secret,
)
from core_connectors.literals import literal_map_to_python
from core_connectors.secrets import connection_secrets, scrub
from core_connectors.server import _flyte2

Phase = execution_pb2.TaskExecution
TIMEOUT = 5
SECRET = "s3cr3t-value-only-in-the-connection"


@dataclass
class JobMeta(ResourceMeta):
    job_id: str


class JobConnector(AsyncConnectorBase):
    """Records what it receives; reads the secret ``api_key`` in create (async) and get (a plain def)."""

    name = "Job Connector"

    def __init__(self) -> None:
        super().__init__(task_type_name="job", metadata_type=JobMeta)
        self.received: list[
            tuple[tasks_pb2.TaskTemplate, literals_pb2.LiteralMap, agent_pb2.TaskExecutionMetadata]
        ] = []
        self.secrets: list[str | None] = []
        self.deleted: list[str] = []

    async def create(self, task_template, output_prefix, inputs=None, task_execution_metadata=None, **kwargs):
        self.received.append((task_template, inputs, task_execution_metadata))
        self.secrets.append(_secret_or_none())
        if task_template.custom["fail"] if "fail" in task_template.custom else False:
            raise RuntimeError(f"vendor refused key {get_connector_secret('api_key')}")
        return JobMeta(job_id=task_template.custom["job_id"] if "job_id" in task_template.custom else "j1")

    def get(self, resource_meta: JobMeta, **kwargs):
        self.secrets.append(_secret_or_none())
        if resource_meta.job_id == "running":
            return Resource(phase=Phase.RUNNING, message="still going")
        if resource_meta.job_id == "legacy-state":  # a connector still setting the deprecated state only
            return agent_pb2.Resource(state=agent_pb2.SUCCEEDED)
        if resource_meta.job_id == "echo-key":  # a vendor's reply that repeats the key it was given
            return Resource(phase=Phase.FAILED, message=f"vendor refused key {get_connector_secret('api_key')}")
        if resource_meta.job_id == "retry":
            raise RetryableFailure("the vendor is rate limiting, try later")
        if resource_meta.job_id == "agent-error":
            return agent_pb2.Resource(phase=Phase.FAILED, agent_error=agent_pb2.AgentError(code="QUOTA_EXCEEDED"))
        return Resource(phase=Phase.SUCCEEDED, message="done", outputs={"n": 3, "s": "x"}, custom_info={"k": "v"})

    async def delete(self, resource_meta: JobMeta, **kwargs):
        self.deleted.append(resource_meta.job_id)

    async def get_metrics(self, resource_meta: JobMeta, **kwargs):
        return agent_pb2.GetTaskMetricsResponse(results=[metrics_pb2.ExecutionMetricResult(metric="cpu")])

    def get_logs(self, resource_meta: JobMeta, **kwargs):
        return (agent_pb2.GetTaskLogsResponse(body=agent_pb2.GetTaskLogsResponseBody(results=[s])) for s in "ab")


class EchoSync(SyncConnectorBase):
    """A sync connector: ``do`` answers at once with the input ``x`` doubled, or ``size`` bytes of text."""

    name = "Echo Sync"

    def __init__(self) -> None:
        super().__init__(task_type_name="echo")

    def do(self, task_template, output_prefix, inputs=None, **kwargs):
        values = literal_map_to_python(inputs) if inputs is not None else {}
        if "size" in values:
            return Resource(phase=Phase.SUCCEEDED, outputs={"text": "z" * values["size"]})
        return Resource(phase=Phase.SUCCEEDED, outputs={"y": values["x"] * 2})


def _secret_or_none() -> str | None:
    try:
        return get_connector_secret("api_key")
    except SecretNotFound:
        return None


def _int(v: int) -> literals2.Literal:
    return literals2.Literal(scalar=literals2.Scalar(primitive=literals2.Primitive(integer=v)))


def template(task_type: str, **custom) -> tasks2.TaskTemplate:
    s = struct_pb2.Struct()
    s.update(custom)
    int_type = types2.LiteralType(simple=types2.INTEGER)
    interface = interface2.TypedInterface(
        outputs=interface2.VariableMap(
            variables=[interface2.VariableEntry(key="y", value=interface2.Variable(type=int_type))]
        )
    )
    return tasks2.TaskTemplate(type=task_type, custom=s, interface=interface if task_type == "echo" else None)


def connection(**secrets: str) -> security_pb2.Connection:
    return security_pb2.Connection(secrets=secrets)


@pytest.fixture
def service(connector_service):
    job, echo = JobConnector(), EchoSync()
    svc = connector_service(job, echo, metrics_registry=CollectorRegistry())
    svc.job, svc.echo = job, echo
    svc.v2 = service_pb2_grpc.AsyncConnectorServiceStub(svc.channel)
    svc.v2_metadata = service_pb2_grpc.ConnectorMetadataServiceStub(svc.channel)
    return svc


def category(name: str) -> connector_pb2.TaskCategory:
    return connector_pb2.TaskCategory(name=name, version=0)


def test_wire_compatible_messages_have_no_conflicting_fields():
    """The re-parse of v2 bytes as v1 (and back) rests on this: no field number means two different things."""
    from flyteidl.admin import agent_pb2 as v1

    pairs = [
        (v1.CreateTaskRequest, connector_pb2.CreateTaskRequest),
        (literals_pb2.LiteralMap, common_pb2.Inputs),
        (literals_pb2.LiteralMap, common_pb2.Outputs),
        (v1.GetTaskResponse, connector_pb2.GetTaskResponse),
        (v1.GetTaskMetricsResponse, connector_pb2.GetTaskMetricsResponse),
        (v1.GetTaskLogsResponse, connector_pb2.GetTaskLogsResponse),
    ]
    conflicts: list[str] = []
    seen: set[tuple[str, str]] = set()

    def compare(a, b, path):
        if (a.full_name, b.full_name) in seen:
            return
        seen.add((a.full_name, b.full_name))
        theirs = {f.number: f for f in b.fields}
        for f in a.fields:
            g = theirs.get(f.number)
            if g is None:
                continue
            if f.type != g.type or f.is_repeated != g.is_repeated:
                conflicts.append(f"{path}.{f.name} (#{f.number}) vs {g.name}")
            elif f.type == FieldDescriptor.TYPE_MESSAGE:
                compare(f.message_type, g.message_type, f"{path}.{f.name}")

    for a, b in pairs:
        compare(a.DESCRIPTOR, b.DESCRIPTOR, a.DESCRIPTOR.name)
    assert not conflicts
    assert len(seen) > 40  # templates, literals, types and logs were all walked


def test_create_get_delete_over_v2(service):
    inputs = common_pb2.Inputs(
        literals=[common_pb2.NamedLiteral(name="a", value=_int(7))],
        context=[literals2.KeyValuePair(key="k", value="v")],
    )
    meta = connector_pb2.TaskExecutionMetadata(namespace="ns", labels={"team": "a"})
    created = service.v2.CreateTask(
        connector_pb2.CreateTaskRequest(
            template=template("job", job_id="running"),
            inputs=inputs,
            output_prefix="s3://out",
            task_execution_metadata=meta,
        ),
        timeout=TIMEOUT,
    )
    received_template, received_inputs, received_meta = service.job.received[-1]
    assert isinstance(received_template, tasks_pb2.TaskTemplate)
    assert received_template.type == "job" and received_template.custom["job_id"] == "running"
    assert isinstance(received_inputs, literals_pb2.LiteralMap)
    assert literal_map_to_python(received_inputs) == {"a": 7}
    assert isinstance(received_meta, agent_pb2.TaskExecutionMetadata)
    assert received_meta.namespace == "ns" and dict(received_meta.labels) == {"team": "a"}
    assert (
        received_inputs.SerializeToString()
        == literals_pb2.LiteralMap(literals=received_inputs.literals).SerializeToString()
    )

    running = service.v2.GetTask(
        connector_pb2.GetTaskRequest(resource_meta=created.resource_meta, task_category=category("job")),
        timeout=TIMEOUT,
    )
    assert running.resource.phase == Phase.RUNNING and running.resource.message == "still going"

    done_meta = JobMeta(job_id="j1").encode()
    done = service.v2.GetTask(
        connector_pb2.GetTaskRequest(resource_meta=done_meta, task_category=category("job")), timeout=TIMEOUT
    ).resource
    assert done.phase == Phase.SUCCEEDED
    assert isinstance(done.outputs, common_pb2.Outputs)
    outputs = {nl.name: nl.value for nl in done.outputs.literals}
    assert outputs["n"].scalar.primitive.integer == 3 and outputs["s"].scalar.primitive.string_value == "x"
    assert dict(done.custom_info) == {"k": "v"}

    service.v2.DeleteTask(
        connector_pb2.DeleteTaskRequest(resource_meta=created.resource_meta, task_category=category("job")),
        timeout=TIMEOUT,
    )
    assert service.job.deleted == ["running"]


def test_metrics_and_logs_over_v2(service):
    meta = JobMeta(job_id="j1").encode()
    metrics = service.v2.GetTaskMetrics(
        connector_pb2.GetTaskMetricsRequest(resource_meta=meta, task_category=category("job")), timeout=TIMEOUT
    )
    assert [r.metric for r in metrics.results] == ["cpu"]
    logs = service.v2.GetTaskLogs(
        connector_pb2.GetTaskLogsRequest(resource_meta=meta, task_category=category("job")), timeout=TIMEOUT
    )
    assert [list(r.body.results) for r in logs] == [["a"], ["b"]]
    with pytest.raises(grpc.RpcError) as e:
        service.v2.GetTaskMetrics(
            connector_pb2.GetTaskMetricsRequest(resource_meta=b"", task_category=category("echo")), timeout=TIMEOUT
        )
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_connection_secrets_reach_the_connector_only_during_the_call(service):
    service.v2.CreateTask(
        connector_pb2.CreateTaskRequest(template=template("job"), connection=connection(api_key=SECRET)),
        timeout=TIMEOUT,
    )
    service.v2.GetTask(  # get is a plain def: the secret goes along into the service's thread pool
        connector_pb2.GetTaskRequest(
            resource_meta=JobMeta("j1").encode(), task_category=category("job"), connection=connection(api_key=SECRET)
        ),
        timeout=TIMEOUT,
    )
    service.v2.GetTask(  # a call without the connection does not see the previous call's secret
        connector_pb2.GetTaskRequest(resource_meta=JobMeta("j1").encode(), task_category=category("job")),
        timeout=TIMEOUT,
    )
    assert service.job.secrets == [SECRET, SECRET, None]
    assert _secret_or_none() is None  # nor does anyone after it
    seen_in_pool: list[str | None] = []
    worker = threading.Thread(target=lambda: seen_in_pool.append(_secret_or_none()))
    worker.start()
    worker.join()
    assert seen_in_pool == [None]


def test_a_connection_secret_never_appears_in_a_reply_or_the_log(service, caplog):
    with pytest.raises(grpc.RpcError) as e:
        service.v2.CreateTask(
            connector_pb2.CreateTaskRequest(template=template("job", fail=True), connection=connection(api_key=SECRET)),
            timeout=TIMEOUT,
        )
    assert e.value.code() == grpc.StatusCode.INTERNAL
    assert "vendor refused key [redacted]" in e.value.details()
    assert SECRET not in e.value.details()
    assert "vendor refused key" in caplog.text and SECRET not in caplog.text


def test_a_sync_connector_is_served_as_async(service):
    inputs = common_pb2.Inputs(literals=[common_pb2.NamedLiteral(name="x", value=_int(21))])
    created = service.v2.CreateTask(
        connector_pb2.CreateTaskRequest(template=template("echo"), inputs=inputs), timeout=TIMEOUT
    )
    assert created.resource_meta.startswith(_flyte2.SYNC_RESULT_MAGIC)
    got = service.v2.GetTask(
        connector_pb2.GetTaskRequest(resource_meta=created.resource_meta, task_category=category("echo")),
        timeout=TIMEOUT,
    ).resource
    assert got.phase == Phase.SUCCEEDED
    assert [(nl.name, nl.value.scalar.primitive.integer) for nl in got.outputs.literals] == [("y", 42)]
    service.v2.DeleteTask(
        connector_pb2.DeleteTaskRequest(resource_meta=created.resource_meta, task_category=category("echo")),
        timeout=TIMEOUT,
    )
    with pytest.raises(grpc.RpcError) as e:  # metadata some other connector wrote
        service.v2.GetTask(
            connector_pb2.GetTaskRequest(resource_meta=b'{"job_id": "x"}', task_category=category("echo")),
            timeout=TIMEOUT,
        )
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize(
    "stored",
    [
        b"\xff\xff not a Resource",
        agent_pb2.Resource(phase=99, state=agent_pb2.SUCCEEDED).SerializeToString(),  # no such phase
    ],
)
def test_a_stored_sync_result_made_up_by_the_caller_is_invalid_argument(service, stored):
    request = connector_pb2.GetTaskRequest(
        resource_meta=_flyte2.SYNC_RESULT_MAGIC + stored, task_category=category("echo")
    )
    with pytest.raises(grpc.RpcError) as e:
        service.v2.GetTask(request, timeout=TIMEOUT)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "the stored result is not a Resource" in e.value.details()


def test_a_sync_result_over_the_limit_is_a_clear_error(service):
    size = _flyte2.SYNC_RESULT_LIMIT + 1
    inputs = common_pb2.Inputs(literals=[common_pb2.NamedLiteral(name="size", value=_int(size))])
    with pytest.raises(grpc.RpcError) as e:
        service.v2.CreateTask(
            connector_pb2.CreateTaskRequest(template=template("echo"), inputs=inputs), timeout=TIMEOUT
        )
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "256 KiB" in e.value.details() and "resource metadata" in e.value.details()


def test_unknown_task_type_is_not_found(service):
    with pytest.raises(grpc.RpcError) as e:
        service.v2.CreateTask(connector_pb2.CreateTaskRequest(template=template("nope")), timeout=TIMEOUT)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    assert "Cannot find connector for task type: nope." in e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        service.v2.GetTask(connector_pb2.GetTaskRequest(resource_meta=b"{}", task_category=category("nope")))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    "method",
    [
        "AsyncConnectorService/CreateTask",
        "AsyncConnectorService/GetTask",
        "AsyncConnectorService/DeleteTask",
        "AsyncConnectorService/GetTaskMetrics",
        "ConnectorMetadataService/GetConnector",
    ],
)
def test_bytes_that_do_not_parse_are_invalid_argument(service, method):
    call = service.channel.unary_unary(f"/flyteidl2.connector.{method}")
    with pytest.raises(grpc.RpcError) as e:
        call(b"\x0a\xff\xff", timeout=TIMEOUT)  # a length-delimited field longer than the message
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "the request is not a valid flyteidl2.connector." in e.value.details()
    assert service.v2_metadata.ListConnectors(connector_pb2.ListConnectorsRequest(), timeout=TIMEOUT).connectors


def test_requests_missing_what_the_call_needs_are_invalid_argument(service):
    with pytest.raises(grpc.RpcError) as e:
        service.v2.CreateTask(connector_pb2.CreateTaskRequest(output_prefix="s3://x"), timeout=TIMEOUT)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "no task template" in e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        service.v2.GetTask(connector_pb2.GetTaskRequest(resource_meta=b"{}"), timeout=TIMEOUT)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as e:
        service.v2.GetTask(
            connector_pb2.GetTaskRequest(resource_meta=b"not json", task_category=category("job")), timeout=TIMEOUT
        )
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_list_and_get_connectors(service):
    listed = service.v2_metadata.ListConnectors(connector_pb2.ListConnectorsRequest(), timeout=TIMEOUT)
    assert {(c.name, tuple((t.name, t.version) for t in c.supported_task_categories)) for c in listed.connectors} == {
        ("Job Connector", (("job", 0),)),
        ("Echo Sync", (("echo", 0),)),
    }
    got = service.v2_metadata.GetConnector(connector_pb2.GetConnectorRequest(name="Echo Sync"), timeout=TIMEOUT)
    assert got.connector.name == "Echo Sync"
    with pytest.raises(grpc.RpcError) as e:
        service.v2_metadata.GetConnector(connector_pb2.GetConnectorRequest(name="nope"), timeout=TIMEOUT)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_health_and_reflection_name_the_v2_services(service):
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    health = health_pb2_grpc.HealthStub(service.channel)
    for name in ("flyteidl2.connector.AsyncConnectorService", "flyteidl2.connector.ConnectorMetadataService"):
        reply = health.Check(health_pb2.HealthCheckRequest(service=name), timeout=TIMEOUT)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    stub = reflection_pb2_grpc.ServerReflectionStub(service.channel)
    (reply,) = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    names = {s.name for s in reply.list_services_response.service}
    assert {"flyteidl2.connector.AsyncConnectorService", "flyteidl2.connector.ConnectorMetadataService"} <= names
    assert "flyteidl.service.AsyncAgentService" in names


def test_metrics_carry_the_protocol_label(service):
    meta = JobMeta("j1").encode()
    service.async_stub.GetTask(
        agent_pb2.GetTaskRequest(resource_meta=meta, task_category=agent_pb2.TaskCategory(name="job"))
    )
    service.v2.GetTask(connector_pb2.GetTaskRequest(resource_meta=meta, task_category=category("job")))
    service.v2.GetTask(connector_pb2.GetTaskRequest(resource_meta=meta, task_category=category("job")))
    text = generate_latest(service.server.metrics_registry).decode()
    assert 'flyte_connector_requests_success_total{operation="get",protocol="v1",task_type="job"} 1.0' in text
    assert 'flyte_connector_requests_success_total{operation="get",protocol="v2",task_type="job"} 2.0' in text


def test_v1_and_v2_calls_interleave_on_one_server(service):
    from concurrent.futures import ThreadPoolExecutor

    meta = JobMeta("j1").encode()

    def v1(_):
        request = agent_pb2.GetTaskRequest(resource_meta=meta, task_category=agent_pb2.TaskCategory(name="job"))
        return service.async_stub.GetTask(request, timeout=TIMEOUT).resource.phase

    def v2(_):
        request = connector_pb2.GetTaskRequest(resource_meta=meta, task_category=category("job"))
        return service.v2.GetTask(request, timeout=TIMEOUT).resource.phase

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(v1 if i % 2 else v2, i) for i in range(40)]
        assert {f.result() for f in futures} == {Phase.SUCCEEDED}


def test_without_flyteidl2_the_service_starts_and_says_v2_is_off(tmp_path):
    """flyteidl2 made unimportable in a fresh interpreter: `serve` starts, serves v1, and logs that v2 is off."""
    import subprocess
    import sys

    code = "import sys; sys.modules['flyteidl2'] = None; from core_connectors._cli import main; main()"
    argv = [sys.executable, "-c", code, "serve", "--host", "127.0.0.1", "--port", "0", "--prometheus-port", "0"]
    result = subprocess.run([*argv, "--timeout", "0.5"], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Flyte 2 protocol (flyteidl2.connector) off: pip install 'core-connectors[flyte2]'" in result.stderr
    assert "serving" in result.stderr
    with_it = subprocess.run(
        argv[:1] + ["-m", "core_connectors"] + argv[3:] + ["--timeout", "0.5"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert "Flyte 2 protocol (flyteidl2.connector) on" in with_it.stderr


def test_without_flyteidl2_only_the_v1_services_are_registered(connector_service, monkeypatch):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from core_connectors.server import _app as app

    monkeypatch.setattr(app, "flyte2", None)
    svc = connector_service(JobConnector())
    health = health_pb2_grpc.HealthStub(svc.channel)
    with pytest.raises(grpc.RpcError) as e:
        health.Check(health_pb2.HealthCheckRequest(service="flyteidl2.connector.AsyncConnectorService"), timeout=5)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as e:
        service_pb2_grpc.AsyncConnectorServiceStub(svc.channel).GetTask(connector_pb2.GetTaskRequest(), timeout=5)
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
    listed = svc.metadata_stub.ListAgents(agent_pb2.ListAgentsRequest(), timeout=5)
    assert [a.name for a in listed.agents] == ["Job Connector"]


def test_v1_only_resource_fields_are_carried_over_as_v2_has_them(service):
    def get(job_id):
        request = connector_pb2.GetTaskRequest(resource_meta=JobMeta(job_id).encode(), task_category=category("job"))
        return service.v2.GetTask(request, timeout=TIMEOUT).resource

    assert get("legacy-state").phase == Phase.SUCCEEDED
    failed = get("agent-error")
    assert failed.phase == Phase.FAILED and failed.message == "QUOTA_EXCEEDED"
    raw = service.channel.unary_unary("/flyteidl2.connector.AsyncConnectorService/GetTask")(
        connector_pb2.GetTaskRequest(
            resource_meta=JobMeta("agent-error").encode(), task_category=category("job")
        ).SerializeToString(),
        timeout=TIMEOUT,
    )
    as_v1 = agent_pb2.GetTaskResponse.FromString(raw).resource  # nothing v2 does not know rides along
    assert not as_v1.HasField("agent_error") and as_v1.state == 0


# ------------------------------------------------------------------------ the v1 policies apply to v2 as well
def test_a_connection_secret_is_scrubbed_from_a_returned_resource(service):
    got = service.v2.GetTask(
        connector_pb2.GetTaskRequest(
            resource_meta=JobMeta("echo-key").encode(),
            task_category=category("job"),
            connection=connection(api_key=SECRET),
        ),
        timeout=TIMEOUT,
    ).resource
    assert got.phase == Phase.FAILED and got.message == "vendor refused key [redacted]"


def test_scrub_knows_the_connection_secrets_only_during_the_call():
    text = f"echoed {SECRET} back"
    assert scrub(text) == text  # the cached values were computed without the connection
    with connection_secrets({"api_key": SECRET}):
        assert scrub(text) == "echoed [redacted] back"
    assert scrub(text) == text


def test_a_retryable_failure_is_a_real_phase_over_v2_even_with_retryable_as_state(connector_service):
    """--retryable-as-state is for v1 propellers before flyte 1.16.0: v2's Resource has no state to carry it."""
    svc = connector_service(JobConnector(), retryable_as_state=True, metrics_registry=CollectorRegistry())
    v2 = service_pb2_grpc.AsyncConnectorServiceStub(svc.channel)
    meta = JobMeta("retry").encode()
    got = v2.GetTask(connector_pb2.GetTaskRequest(resource_meta=meta, task_category=category("job")), timeout=TIMEOUT)
    assert got.resource.phase == Phase.RETRYABLE_FAILED
    assert got.resource.message == "the vendor is rate limiting, try later"
    v1 = svc.async_stub.GetTask(
        agent_pb2.GetTaskRequest(resource_meta=meta, task_category=agent_pb2.TaskCategory(name="job")),
        timeout=TIMEOUT,
    )
    assert (v1.resource.phase, v1.resource.state) == (Phase.UNDEFINED, agent_pb2.RETRYABLE_FAILURE)


def test_signed_metadata_over_v2(connector_service):
    svc = connector_service(JobConnector(), EchoSync(), metadata_keys=[b"k1"], metrics_registry=CollectorRegistry())
    v2 = service_pb2_grpc.AsyncConnectorServiceStub(svc.channel)
    meta = v2.CreateTask(connector_pb2.CreateTaskRequest(template=template("job")), timeout=TIMEOUT).resource_meta
    assert b"#hmac-sha256:" in meta
    got = v2.GetTask(connector_pb2.GetTaskRequest(resource_meta=meta, task_category=category("job")), timeout=TIMEOUT)
    assert got.resource.phase == Phase.SUCCEEDED
    v1 = svc.async_stub.GetTask(  # one signature for both generations
        agent_pb2.GetTaskRequest(resource_meta=meta, task_category=agent_pb2.TaskCategory(name="job")),
        timeout=TIMEOUT,
    )
    assert v1.resource.phase == Phase.SUCCEEDED
    inputs = common_pb2.Inputs(literals=[common_pb2.NamedLiteral(name="x", value=_int(21))])
    result = v2.CreateTask(
        connector_pb2.CreateTaskRequest(template=template("echo"), inputs=inputs), timeout=TIMEOUT
    ).resource_meta
    got = v2.GetTask(connector_pb2.GetTaskRequest(resource_meta=result, task_category=category("echo")), timeout=5)
    assert got.resource.phase == Phase.SUCCEEDED
    forged_result = result.replace(b"\x08\x2a", b"\x08\x2b")  # y = 42 made 43: the tag no longer matches
    assert forged_result != result
    for name, forged in (("job", JobMeta("someone-elses-job").encode()), ("echo", forged_result)):
        with pytest.raises(grpc.RpcError) as e:
            v2.GetTask(connector_pb2.GetTaskRequest(resource_meta=forged, task_category=category(name)), timeout=5)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, name
        assert "signed" in e.value.details() or "signature" in e.value.details()


class BoundedJob(AsyncConnectorBase):
    name = "Bounded Job"
    max_concurrent_calls = 1

    def __init__(self) -> None:
        super().__init__(task_type_name="bounded", metadata_type=JobMeta)
        self.release = asyncio.Event()

    async def create(self, task_template, output_prefix, inputs=None, task_execution_metadata=None, **kwargs):
        return JobMeta("b")

    async def get(self, resource_meta, **kwargs):
        await asyncio.wait_for(self.release.wait(), 30)
        return Resource(phase=Phase.SUCCEEDED)

    async def delete(self, resource_meta, **kwargs):
        pass


def test_the_bulkhead_counts_v1_and_v2_calls_together(connector_service):
    connector = BoundedJob()
    svc = connector_service(connector, metrics_registry=CollectorRegistry())
    v2 = service_pb2_grpc.AsyncConnectorServiceStub(svc.channel)
    request = connector_pb2.GetTaskRequest(resource_meta=JobMeta("b").encode(), task_category=category("bounded"))
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(  # a v1 call holds the only slot
            svc.async_stub.GetTask,
            agent_pb2.GetTaskRequest(
                resource_meta=request.resource_meta, task_category=agent_pb2.TaskCategory(name="bounded")
            ),
            timeout=10,
        )
        time.sleep(0.2)
        with pytest.raises(grpc.RpcError) as e:
            v2.GetTask(request, timeout=TIMEOUT)
        svc.loop.call_soon_threadsafe(connector.release.set)
        assert first.result(10).resource.phase == Phase.SUCCEEDED
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "Bounded Job is at its limit of 1 concurrent calls" in e.value.details()


def test_a_v2_request_over_the_size_limit_names_the_flag(connector_service):
    svc = connector_service(JobConnector(), max_message_mb=1, metrics_registry=CollectorRegistry())
    v2 = service_pb2_grpc.AsyncConnectorServiceStub(svc.channel)
    big = template("job", blob="z" * (3 * 2**19))  # 1.5 MiB
    with pytest.raises(grpc.RpcError) as e:
        v2.CreateTask(connector_pb2.CreateTaskRequest(template=big), timeout=TIMEOUT)
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "--max-message-mb" in e.value.details()
