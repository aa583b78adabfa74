"""The service around the RPCs: health, reflection, Prometheus metrics, cancellation, the thread pool, the
loop watchdog, draining and TLS, all over the wire on loopback."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
import urllib.request
from dataclasses import dataclass

import grpc
import pytest
from flyteidl.admin import agent_pb2
from flyteidl.core import execution_pb2, tasks_pb2
from flyteidl.service import agent_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from core_connectors import AsyncConnectorBase, Resource, ResourceMeta
from core_connectors._registry import Registry
from core_connectors.literals import python_to_literal_map
from core_connectors.server import ConnectorServer, TlsConfig
from core_connectors.server.testing import ServiceThread, make_certificates

Phase = execution_pb2.TaskExecution
SERVICES = (
    "flyteidl.service.AsyncAgentService",
    "flyteidl.service.SyncAgentService",
    "flyteidl.service.AgentMetadataService",
)


@dataclass
class Meta(ResourceMeta):
    seconds: float = 0.0


class SlowConnector(AsyncConnectorBase):
    """``async def`` methods that wait: create for ``custom["seconds"]``, get for ``resource_meta.seconds``."""

    name = "Slow Connector"

    def __init__(self) -> None:
        super().__init__(task_type_name="slow", metadata_type=Meta)
        self.cancelled = threading.Event()
        self.started = threading.Event()

    async def create(self, task_template, output_prefix, inputs=None, task_execution_metadata=None, **kwargs):
        seconds = task_template.custom["seconds"] if "seconds" in task_template.custom else 0.0
        self.started.set()
        await asyncio.sleep(seconds)
        return Meta(seconds=seconds)

    async def get(self, resource_meta: Meta, **kwargs):
        self.started.set()
        try:
            await asyncio.sleep(resource_meta.seconds)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        return Resource(phase=Phase.SUCCEEDED)

    async def delete(self, resource_meta, **kwargs):
        return None


class BlockingConnector(AsyncConnectorBase):
    """A plain ``def get`` that holds its thread 50 ms, and an ``async def delete`` that wrongly blocks the loop."""

    name = "Blocking Connector"

    def __init__(self) -> None:
        super().__init__(task_type_name="blocking", metadata_type=Meta)

    def create(self, task_template, output_prefix, inputs=None, task_execution_metadata=None, **kwargs):
        return Meta()

    def get(self, resource_meta, **kwargs):
        time.sleep(0.05)
        return Resource(phase=Phase.SUCCEEDED)

    async def delete(self, resource_meta: Meta, **kwargs):
        time.sleep(resource_meta.seconds)  # the mistake the watchdog names


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_request(task_type: str, seconds: float = 0.0) -> agent_pb2.GetTaskRequest:
    return agent_pb2.GetTaskRequest(
        task_category=agent_pb2.TaskCategory(name=task_type), resource_meta=Meta(seconds=seconds).encode()
    )


def create_request(task_type: str, seconds: float = 0.0) -> agent_pb2.CreateTaskRequest:
    t = tasks_pb2.TaskTemplate(type=task_type)
    t.custom.update({"seconds": seconds})
    return agent_pb2.CreateTaskRequest(template=t, inputs=python_to_literal_map({"x": 1}))


# ------------------------------------------------------------------------------------------------ health, reflection
def test_health_is_serving_for_the_server_and_each_service(connector_service):
    service = connector_service(SlowConnector())
    health = health_pb2_grpc.HealthStub(service.channel)
    for name in ("", *SERVICES):
        response = health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
        assert response.status == health_pb2.HealthCheckResponse.SERVING, name


def test_health_turns_not_serving_when_draining_starts(connector_service):
    service = connector_service(SlowConnector())
    watch = health_pb2_grpc.HealthStub(service.channel).Watch(health_pb2.HealthCheckRequest(service=""), timeout=10)
    assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
    stopper = threading.Thread(target=service.stop, kwargs={"grace": 0.5})
    stopper.start()
    assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
    stopper.join()


def test_reflection_lists_every_service(connector_service):
    service = connector_service(SlowConnector())
    stub = reflection_pb2_grpc.ServerReflectionStub(service.channel)
    (response,) = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
    names = {s.name for s in response.list_services_response.service}
    assert names >= {*SERVICES, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"}
    (response,) = stub.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(file_containing_symbol="flyteidl.service.AsyncAgentService")]),
        timeout=5,
    )
    assert response.file_descriptor_response.file_descriptor_proto


# ------------------------------------------------------------------------------------------------ metrics
def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_are_scraped_over_http_with_flytekits_names(connector_service):
    port = free_port()
    service = connector_service(SlowConnector(), prometheus_port=port, metrics_registry=CollectorRegistry())
    stub = service.async_stub
    stub.CreateTask(create_request("slow"), timeout=5)
    for _ in range(3):
        stub.GetTask(get_request("slow"), timeout=5)
    with pytest.raises(grpc.RpcError):
        stub.GetTask(get_request("nope"), timeout=5)
    with pytest.raises(grpc.RpcError):
        stub.GetTask(agent_pb2.GetTaskRequest(task_type="slow", resource_meta=b"x"), timeout=5)
    with pytest.raises(grpc.RpcError):
        stub.GetTaskMetrics(agent_pb2.GetTaskMetricsRequest(task_type="slow", resource_meta=b"{}"), timeout=5)
    service.metadata_stub.ListAgents(agent_pb2.ListAgentsRequest(), timeout=5)

    samples = scrape(port)
    ok = "flyte_connector_requests_success_total"
    assert samples[(ok, (("operation", "create"), ("protocol", "v1"), ("task_type", "slow")))] == 1
    assert samples[(ok, (("operation", "get"), ("protocol", "v1"), ("task_type", "slow")))] == 3
    assert samples[(ok, (("operation", "list_agents"), ("protocol", "v1"), ("task_type", "")))] == 1
    failed = "flyte_connector_requests_failure_total"
    assert (
        samples[
            (failed, (("error_code", "404"), ("operation", "get"), ("protocol", "v1"), ("task_type", "(not served)")))
        ]
        == 1
    )
    assert (
        samples[(failed, (("error_code", "400"), ("operation", "get"), ("protocol", "v1"), ("task_type", "slow")))] == 1
    )
    assert (
        samples[
            (failed, (("error_code", "501"), ("operation", "get_metrics"), ("protocol", "v1"), ("task_type", "slow")))
        ]
        == 1
    )
    latency = "flyte_connector_request_latency_seconds"
    assert (
        samples[(f"{latency}_count", (("operation", "get"), ("protocol", "v1"), ("task_type", "slow")))] == 4
    )  # failures are timed too
    assert (
        samples[
            (f"{latency}_bucket", (("le", "+Inf"), ("operation", "get"), ("protocol", "v1"), ("task_type", "slow")))
        ]
        == 4
    )
    assert (
        samples[
            (
                "flyte_connector_input_literal_bytes_count",
                (
                    ("protocol", "v1"),
                    ("task_type", "slow"),
                ),
            )
        ]
        == 1
    )
    assert (
        samples[
            (
                "flyte_connector_input_literal_bytes_sum",
                (
                    ("protocol", "v1"),
                    ("task_type", "slow"),
                ),
            )
        ]
        > 0
    )


def test_a_metrics_port_in_use_is_a_clear_error():
    from core_connectors.server import ServeError

    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        server = ConnectorServer(
            Registry(discover=False),
            host="127.0.0.1",
            port=0,
            prometheus_port=taken.getsockname()[1],
            metrics_registry=CollectorRegistry(),
        )
        with pytest.raises(ServeError, match=r"cannot serve metrics on port \d+: .*--prometheus-port"):
            ServiceThread(server).start()


def test_a_grpc_port_in_use_is_a_clear_error():
    from core_connectors.server import ServeError

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = ConnectorServer(Registry(discover=False), host="127.0.0.1", port=taken.getsockname()[1])
        with pytest.raises(ServeError, match=r"cannot listen on 127.0.0.1:\d+"):
            ServiceThread(server).start()


# ------------------------------------------------------------------------------------------------ cancellation
def test_a_passed_deadline_cancels_the_connectors_coroutine(connector_service):
    connector = SlowConnector()
    service = connector_service(connector)
    with pytest.raises(grpc.RpcError) as info:
        service.async_stub.GetTask(get_request("slow", seconds=30), timeout=0.3)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert connector.cancelled.wait(3), "the connector's coroutine was not cancelled"


def test_a_cancelled_call_cancels_the_connectors_coroutine(connector_service):
    connector = SlowConnector()
    service = connector_service(connector)
    future = service.async_stub.GetTask.future(get_request("slow", seconds=30), timeout=10)
    assert connector.started.wait(3)
    future.cancel()
    assert connector.cancelled.wait(3), "the connector's coroutine was not cancelled"


# ------------------------------------------------------------------------------------------------ concurrency
def test_blocking_plain_def_methods_overlap_in_the_pool(connector_service):
    """64 calls of a `def get` that blocks 50 ms take ~50 ms with the default pool, not 64 x 50 ms."""
    service = connector_service(BlockingConnector())
    stub = service.async_stub
    stub.GetTask(get_request("blocking"), timeout=5)  # warm up the channel
    started = time.perf_counter()
    futures = [stub.GetTask.future(get_request("blocking"), timeout=10) for _ in range(64)]
    assert all(f.result().resource.phase == Phase.SUCCEEDED for f in futures)
    assert time.perf_counter() - started < 1.5  # 3.2 s if they ran one at a time


def test_an_async_method_that_blocks_the_loop_is_named_in_a_warning(connector_service, caplog):
    service = connector_service(BlockingConnector())
    caplog.set_level(logging.WARNING, logger="core_connectors.server")
    request = agent_pb2.DeleteTaskRequest(task_type="blocking", resource_meta=Meta(seconds=0.3).encode())
    service.async_stub.DeleteTask(request, timeout=5)
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and "blocked" not in caplog.text:
        time.sleep(0.02)
    (record,) = [r for r in caplog.records if "blocked" in r.getMessage()]
    assert "Blocking Connector.delete" in record.getMessage()
    assert "test_server_runtime.py" in record.getMessage()
    blocked_ms = float(record.getMessage().split("blocked for ")[1].split(" ms")[0])
    assert 250 <= blocked_ms < 1000


def test_quick_async_methods_raise_no_warning(connector_service, caplog):
    service = connector_service(SlowConnector())
    for _ in range(20):
        service.async_stub.GetTask(get_request("slow", seconds=0.01), timeout=5)
    time.sleep(0.1)
    # On a loaded machine the process itself may wait 100 ms for a core; a quick method is never blamed for it.
    assert [r.getMessage() for r in caplog.records if "Slow Connector" in r.getMessage()] == []


# ------------------------------------------------------------------------------------------------ draining
def test_stop_lets_calls_in_flight_finish_and_refuses_new_ones(connector_service):
    connector = SlowConnector()
    service = connector_service(connector)
    address = service.address
    with grpc.insecure_channel(address) as propeller:  # the caller's own channel: stop() closes only the service's
        stub = agent_pb2_grpc.AsyncAgentServiceStub(propeller)
        future = stub.CreateTask.future(create_request("slow", seconds=0.5), timeout=10)
        assert connector.started.wait(3)
        service.stop(grace=5)
        assert future.result().resource_meta == Meta(seconds=0.5).encode()
    with grpc.insecure_channel(address) as channel, pytest.raises(grpc.RpcError) as info:
        agent_pb2_grpc.AgentMetadataServiceStub(channel).ListAgents(agent_pb2.ListAgentsRequest(), timeout=1)
    assert info.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def test_calls_still_running_after_the_grace_period_are_cancelled(connector_service):
    connector = SlowConnector()
    service = connector_service(connector)
    future = service.async_stub.GetTask.future(get_request("slow", seconds=30), timeout=10)
    assert connector.started.wait(3)
    service.stop(grace=0.2)
    assert connector.cancelled.wait(3)
    with pytest.raises(grpc.RpcError):
        future.result()


# ------------------------------------------------------------------------------------------------ TLS
def _list_agents(address: str, credentials: grpc.ChannelCredentials) -> agent_pb2.ListAgentsResponse:
    with grpc.secure_channel(address, credentials) as channel:
        return agent_pb2_grpc.AgentMetadataServiceStub(channel).ListAgents(agent_pb2.ListAgentsRequest(), timeout=5)


def test_tls_with_a_certificate_the_test_makes(connector_service, tmp_path):
    pytest.importorskip("cryptography")
    certs = make_certificates(tmp_path)
    tls = TlsConfig.from_files(certs.server_cert, certs.server_key)
    service = connector_service(SlowConnector(), tls=tls)
    reply = _list_agents(service.address, grpc.ssl_channel_credentials(root_certificates=certs.ca_pem))
    assert [a.name for a in reply.agents] == ["Slow Connector"]
    with grpc.insecure_channel(service.address) as channel, pytest.raises(grpc.RpcError):
        agent_pb2_grpc.AgentMetadataServiceStub(channel).ListAgents(agent_pb2.ListAgentsRequest(), timeout=2)


def test_mutual_tls_requires_a_client_certificate_from_the_ca(connector_service, tmp_path):
    pytest.importorskip("cryptography")
    certs = make_certificates(tmp_path)
    tls = TlsConfig.from_files(certs.server_cert, certs.server_key, certs.ca_cert)
    service = connector_service(SlowConnector(), tls=tls)
    with_cert = grpc.ssl_channel_credentials(
        certs.ca_pem, private_key=certs.client_key_pem, certificate_chain=certs.client_cert_pem
    )
    assert [a.name for a in _list_agents(service.address, with_cert).agents] == ["Slow Connector"]
    with pytest.raises(grpc.RpcError) as info:
        _list_agents(service.address, grpc.ssl_channel_credentials(root_certificates=certs.ca_pem))
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
