"""Fault injection against a real service on loopback: connectors that hang, raise, return the wrong type,
return a huge message, block the event loop or leak a secret; each answered with the right status while the
rest of the service keeps serving.
"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import grpc
import pytest
from flyteidl.admin import agent_pb2
from flyteidl.core import execution_pb2
from flyteidl.core.literals_pb2 import LiteralMap
from flyteidl.core.tasks_pb2 import TaskTemplate
from flyteidl.service import agent_pb2_grpc

from core_connectors import (
    AsyncConnectorBase,
    Resource,
    ResourceMeta,
    RetryableFailure,
    SyncConnectorBase,
    get_connector_secret,
)
from core_connectors.server._metrics import Metrics

Phase = execution_pb2.TaskExecution
TIMEOUT = 5
SECRET = "vendor-key-5be1c0ffee"


@dataclass
class JobMeta(ResourceMeta):
    job_id: str


def get_request(task_type: str, job_id: str = "j1") -> agent_pb2.GetTaskRequest:
    return agent_pb2.GetTaskRequest(
        task_category=agent_pb2.TaskCategory(name=task_type), resource_meta=JobMeta(job_id=job_id).encode()
    )


class _Base(AsyncConnectorBase):
    def __init__(self, task_type: str) -> None:
        super().__init__(task_type_name=task_type, metadata_type=JobMeta)

    def create(self, task_template, output_prefix, inputs=None, task_execution_metadata=None, **kwargs):
        return JobMeta(job_id="j1")

    def delete(self, resource_meta, **kwargs):
        pass


# ------------------------------------------------------------------------------------------------ secrets
class LeakyConnector(_Base):
    """Echoes a vendor's error that contains the API key into everything it returns."""

    name = "Leaky Connector"

    def __init__(self) -> None:
        super().__init__("leaky")

    def get(self, resource_meta, **kwargs):
        key = get_connector_secret("vendor_api_key")
        return Resource(
            phase=Phase.RETRYABLE_FAILED,
            message=f"vendor said: 401 for key {key}",
            log_links=[execution_pb2.TaskLog(name=f"console ({key})", uri=f"https://vendor.example/jobs?key={key}")],
            custom_info={"error": {"detail": [f"key={key}", 3]}, "job": "j1"},
        )

    def get_logs(self, resource_meta, **kwargs):
        key = get_connector_secret("vendor_api_key")
        yield agent_pb2.GetTaskLogsResponse(
            body=agent_pb2.GetTaskLogsResponseBody(results=["starting", f"auth with {key} failed"])
        )


def test_a_secret_is_scrubbed_from_everything_a_connector_returns(connector_service, monkeypatch):
    monkeypatch.setenv("_FSEC_VENDOR_API_KEY", SECRET)
    service = connector_service(LeakyConnector())
    resource = service.async_stub.GetTask(get_request("leaky"), timeout=TIMEOUT).resource
    assert SECRET not in str(resource)
    assert resource.message == "vendor said: 401 for key [redacted]"
    assert resource.log_links[0].name == "console ([redacted])"
    assert resource.log_links[0].uri == "https://vendor.example/jobs?key=[redacted]"
    custom = resource.custom_info.fields
    assert custom["error"].struct_value.fields["detail"].list_value.values[0].string_value == "key=[redacted]"
    assert custom["job"].string_value == "j1"
    request = agent_pb2.GetTaskLogsRequest(
        task_category=agent_pb2.TaskCategory(name="leaky"), resource_meta=JobMeta(job_id="j1").encode()
    )
    logs = list(service.async_stub.GetTaskLogs(request, timeout=TIMEOUT))
    assert [list(r.body.results) for r in logs] == [["starting", "auth with [redacted] failed"]]


class LeakyIdlConnector(_Base):
    """Returns flyteidl's own Resource, with the vendor's error code (the key in it) as its agent_error."""

    name = "Leaky Idl Connector"

    def __init__(self) -> None:
        super().__init__("leaky-idl")

    def get(self, resource_meta, **kwargs):
        key = get_connector_secret("vendor_api_key")
        return agent_pb2.Resource(
            phase=Phase.FAILED, message=f"denied: {key}", agent_error=agent_pb2.AgentError(code=f"401/{key}")
        )


def test_a_secret_is_scrubbed_from_flyteidls_own_resource_too(connector_service, monkeypatch):
    monkeypatch.setenv("_FSEC_VENDOR_API_KEY", SECRET)
    service = connector_service(LeakyIdlConnector())
    resource = service.async_stub.GetTask(get_request("leaky-idl"), timeout=TIMEOUT).resource
    assert SECRET not in str(resource)
    assert (resource.message, resource.agent_error.code) == ("denied: [redacted]", "401/[redacted]")


# ------------------------------------------------------------------------------------------------ bulkheads
class HangingConnector(_Base):
    """A vendor that stops answering: every plain ``def get`` blocks until the test lets go."""

    name = "Hanging Connector"

    def __init__(self, task_type: str = "hang") -> None:
        super().__init__(task_type)
        self.release = threading.Event()

    def get(self, resource_meta, **kwargs):
        self.release.wait(30)
        return Resource(phase=Phase.SUCCEEDED)


class HealthyConnector(_Base):
    name = "Healthy Connector"

    def __init__(self) -> None:
        super().__init__("healthy")

    def get(self, resource_meta, **kwargs):
        return Resource(phase=Phase.RUNNING)


class BoundedAsyncConnector(_Base):
    """An ``async def`` connector that declares its own bound."""

    name = "Bounded Async Connector"
    max_concurrent_calls = 1

    def __init__(self) -> None:
        super().__init__("bounded")
        self.release = asyncio.Event()

    async def get(self, resource_meta, **kwargs):
        await asyncio.wait_for(self.release.wait(), 30)
        return Resource(phase=Phase.SUCCEEDED)


def _failures(service, task_type: str, error_code: str) -> float:
    registry = Metrics.for_registry().registry
    sample = registry.get_sample_value(
        "flyte_connector_requests_failure_total",
        {"task_type": task_type, "operation": "get", "error_code": error_code, "protocol": "v1"},
    )
    return sample or 0.0


def test_a_hanging_connector_cannot_starve_a_healthy_one(connector_service):
    hanging, healthy = HangingConnector(), HealthyConnector()
    service = connector_service(hanging, healthy, threads=8)  # the hanging one may take 4 threads
    stub = service.async_stub
    before = _failures(service, "hang", "429")
    with ThreadPoolExecutor(12) as pool:
        try:
            stuck = [pool.submit(stub.GetTask, get_request("hang"), timeout=20) for _ in range(8)]
            time.sleep(0.3)  # the first four are in the pool, the others wait for a slot
            took = []
            for _ in range(20):
                started = time.perf_counter()
                assert stub.GetTask(get_request("healthy"), timeout=TIMEOUT).resource.phase == Phase.RUNNING
                took.append(time.perf_counter() - started)
            assert max(took) < 0.5, took  # answered promptly while the other connector hangs
            time.sleep(1.5)  # past the short wait of the four over the bound
            refused = [f.exception() for f in stuck if f.done()]
        finally:
            hanging.release.set()
        assert len(refused) == 4
        assert [f.result(10).resource.phase for f in stuck if f.exception() is None] == [Phase.SUCCEEDED] * 4
    for error in refused:
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "Hanging Connector is at its limit of 4 concurrent calls" in error.details()
    assert _failures(service, "hang", "429") - before == 4


class FollowingLogsConnector(_Base):
    """A plain ``def get_logs`` that follows a job's log: each next line blocks until the vendor sends it."""

    name = "Following Logs Connector"

    def __init__(self) -> None:
        super().__init__("follow")
        self.release = threading.Event()

    def get(self, resource_meta, **kwargs):
        return Resource(phase=Phase.RUNNING)

    def get_logs(self, resource_meta, **kwargs):
        while not self.release.wait(30):
            yield agent_pb2.GetTaskLogsResponse()


def test_streams_that_follow_logs_share_their_connectors_bound(connector_service):
    """Each step of a plain generator is a call of its connector, within its bound: log streams that wait on a
    vendor cannot take the threads other connectors need."""
    following, healthy = FollowingLogsConnector(), HealthyConnector()
    service = connector_service(following, healthy, threads=4)  # a bound of 2 calls each
    request = agent_pb2.GetTaskLogsRequest(
        task_category=agent_pb2.TaskCategory(name="follow"), resource_meta=JobMeta(job_id="j1").encode()
    )
    with ThreadPoolExecutor(4) as pool:
        try:
            streams = [pool.submit(lambda: list(service.async_stub.GetTaskLogs(request, timeout=20))) for _ in range(4)]
            time.sleep(0.3)
            started = time.perf_counter()
            assert service.async_stub.GetTask(get_request("healthy"), timeout=TIMEOUT).resource.phase == Phase.RUNNING
            assert time.perf_counter() - started < 1.0
            time.sleep(1.0)  # past the short wait of the two over the bound
            refused = [f.exception() for f in streams if f.done()]
        finally:
            following.release.set()
    assert [e.code() for e in refused] == [grpc.StatusCode.RESOURCE_EXHAUSTED] * 2
    assert all("Following Logs Connector is at its limit of 2 concurrent calls" in e.details() for e in refused)


def test_a_connector_class_attribute_bounds_its_async_calls(connector_service):
    connector = BoundedAsyncConnector()
    service = connector_service(connector)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(service.async_stub.GetTask, get_request("bounded"), timeout=10)
        time.sleep(0.2)
        with pytest.raises(grpc.RpcError) as caught:
            service.async_stub.GetTask(get_request("bounded"), timeout=TIMEOUT)
        service.loop.call_soon_threadsafe(connector.release.set)
        assert first.result(10).resource.phase == Phase.SUCCEEDED
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "Bounded Async Connector is at its limit of 1 concurrent calls" in caught.value.details()


def test_the_serve_option_overrides_the_bound(connector_service):
    connector = HangingConnector()
    service = connector_service(connector, threads=64, max_concurrent_calls={"hang": 2})
    with ThreadPoolExecutor(3) as pool:
        try:
            stuck = [pool.submit(service.async_stub.GetTask, get_request("hang"), timeout=10) for _ in range(3)]
            time.sleep(1.5)  # past the short wait of the one over the bound
            (refused,) = [f.exception() for f in stuck if f.done()]
        finally:
            connector.release.set()
    assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "limit of 2 concurrent calls" in refused.details()


def test_a_caller_that_gives_up_does_not_free_the_slot_of_a_call_still_running(connector_service):
    """The slot belongs to the thread: a deadline that expires does not let a hanging vendor take more threads."""
    connector = HangingConnector()
    service = connector_service(connector, threads=64, max_concurrent_calls={"hang": 1})
    try:
        with pytest.raises(grpc.RpcError) as first:
            service.async_stub.GetTask(get_request("hang"), timeout=0.3)
        assert first.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        with pytest.raises(grpc.RpcError) as second:
            service.async_stub.GetTask(get_request("hang"), timeout=TIMEOUT)
        assert second.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        connector.release.set()
    time.sleep(0.1)
    assert service.async_stub.GetTask(get_request("hang"), timeout=TIMEOUT).resource.phase == Phase.SUCCEEDED


# ------------------------------------------------------------------------------------------------ sizes
class HugeConnector(_Base):
    name = "Huge Connector"

    def __init__(self) -> None:
        super().__init__("huge")

    async def get(self, resource_meta, **kwargs):
        return Resource(phase=Phase.SUCCEEDED, message="x" * (2 * 2**20))


def test_a_reply_over_the_size_limit_names_the_flag(connector_service):
    service = connector_service(HugeConnector(), max_message_mb=1)
    with pytest.raises(grpc.RpcError) as caught:
        service.async_stub.GetTask(get_request("huge"), timeout=TIMEOUT)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "GetTask: the reply is 2.0 MiB, over the limit of 1 MiB (--max-message-mb)" in caught.value.details()


def test_a_request_over_the_size_limit_names_the_flag(connector_service):
    service = connector_service(HealthyConnector(), max_message_mb=1)
    request = get_request("healthy")
    request.resource_meta = b" " * (3 * 2**19)  # 1.5 MiB
    channel = grpc.insecure_channel(service.address, options=[("grpc.max_send_message_length", 8 * 2**20)])
    with channel, pytest.raises(grpc.RpcError) as caught:
        agent_pb2_grpc.AsyncAgentServiceStub(channel).GetTask(request, timeout=TIMEOUT)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "GetTask: the request is 1.5 MiB, over the limit of 1 MiB (--max-message-mb)" in caught.value.details()


# ------------------------------------------------------------------------------------------------ retryable
class FlakyVendorConnector(_Base):
    """A vendor that answers 503: the connector says so with RetryableFailure, the key in the vendor's words."""

    name = "Flaky Vendor Connector"

    def __init__(self) -> None:
        super().__init__("flaky")

    def create(self, task_template, output_prefix, inputs=None, task_execution_metadata=None, **kwargs):
        raise RetryableFailure("vendor answered 503, try later")

    async def get(self, resource_meta, **kwargs):
        raise RetryableFailure(f"vendor answered 503 for key {get_connector_secret('vendor_api_key')}")


class FlakySyncConnector(SyncConnectorBase):
    name = "Flaky Sync Connector"

    def __init__(self) -> None:
        super().__init__(task_type_name="flaky-sync")

    def do(self, task_template, output_prefix, inputs=None, **kwargs):
        raise RetryableFailure("rate limited (429)")


def _execute_sync(service, task_type: str) -> agent_pb2.Resource:
    messages = [
        agent_pb2.ExecuteTaskSyncRequest(header=agent_pb2.CreateRequestHeader(template=TaskTemplate(type=task_type))),
        agent_pb2.ExecuteTaskSyncRequest(inputs=LiteralMap()),
    ]
    (reply,) = service.sync_stub.ExecuteTaskSync(iter(messages), timeout=TIMEOUT)
    return reply.header.resource


def test_a_retryable_failure_is_a_resource_propeller_retries(connector_service, monkeypatch):
    monkeypatch.setenv("_FSEC_VENDOR_API_KEY", SECRET)
    service = connector_service(FlakyVendorConnector(), FlakySyncConnector())
    resource = service.async_stub.GetTask(get_request("flaky"), timeout=TIMEOUT).resource
    assert resource.phase == Phase.RETRYABLE_FAILED
    assert resource.message == "vendor answered 503 for key [redacted]"
    synced = _execute_sync(service, "flaky-sync")
    assert (synced.phase, synced.message) == (Phase.RETRYABLE_FAILED, "rate limited (429)")
    with pytest.raises(grpc.RpcError) as caught:
        service.async_stub.CreateTask(agent_pb2.CreateTaskRequest(template=TaskTemplate(type="flaky")))
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "RetryableFailure: vendor answered 503, try later" in caught.value.details()


def test_retryable_as_state_answers_what_propellers_before_1_16_read_as_retryable(connector_service, monkeypatch):
    """flyte < 1.16.0 fails a task on the phase RETRYABLE_FAILED ("unknown execution phase"); with the phase
    UNDEFINED it reads the deprecated state, and RETRYABLE_FAILURE there is a retryable failure."""
    monkeypatch.setenv("_FSEC_VENDOR_API_KEY", SECRET)
    service = connector_service(FlakyVendorConnector(), FlakySyncConnector(), retryable_as_state=True)
    for resource in (
        service.async_stub.GetTask(get_request("flaky"), timeout=TIMEOUT).resource,
        _execute_sync(service, "flaky-sync"),
    ):
        assert resource.phase == Phase.UNDEFINED
        assert resource.state == agent_pb2.RETRYABLE_FAILURE
        assert resource.message
    assert Resource.from_flyte_idl(resource).phase == Phase.RETRYABLE_FAILED  # read back the old way


# ------------------------------------------------------------------------------------------------ misbehaving
class MisbehavingConnector(_Base):
    """What ``get`` does is chosen by the job id in the metadata."""

    name = "Misbehaving Connector"

    def __init__(self) -> None:
        super().__init__("misbehaving")

    async def get(self, resource_meta, **kwargs):
        job = resource_meta.job_id
        if job == "hang":
            await asyncio.sleep(3600)
        if job == "raise":
            raise ZeroDivisionError("division by zero in the connector")
        if job == "exit":  # a library calling sys.exit (argparse on a bad argument)
            raise SystemExit(2)
        if job == "interrupt":
            raise KeyboardInterrupt
        if job == "wrong type":
            return {"phase": "SUCCEEDED"}
        if job == "block the loop":
            time.sleep(0.3)  # an async def that blocks: every other call waits meanwhile
        return Resource(phase=Phase.SUCCEEDED)


@pytest.mark.parametrize(
    "job, code, words",
    [
        ("hang", grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"),
        ("raise", grpc.StatusCode.INTERNAL, "ZeroDivisionError: division by zero in the connector (error id "),
        ("wrong type", grpc.StatusCode.INTERNAL, "TypeError: the connector returned dict, expected a Resource"),
        ("block the loop", grpc.StatusCode.OK, ""),
        ("exit", grpc.StatusCode.INTERNAL, "RuntimeError: the connector raised SystemExit: 2 (error id "),
        ("interrupt", grpc.StatusCode.INTERNAL, "RuntimeError: the connector raised KeyboardInterrupt (error id "),
    ],
)
def test_a_misbehaving_connector_gets_a_clear_status_and_the_service_keeps_serving(
    connector_service, caplog, job, code, words
):
    service = connector_service(MisbehavingConnector(), HealthyConnector())
    try:
        reply = service.async_stub.GetTask(get_request("misbehaving", job), timeout=1)
        assert code == grpc.StatusCode.OK and reply.resource.phase == Phase.SUCCEEDED
    except grpc.RpcError as e:
        assert e.code() == code
        assert words in e.details() and "Traceback" not in e.details()
    if job == "block the loop":  # the watchdog names the method that blocked the loop
        deadline = time.monotonic() + 2
        while "Misbehaving Connector.get" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "Misbehaving Connector.get" in caplog.text
    assert service.async_stub.GetTask(get_request("healthy"), timeout=TIMEOUT).resource.phase == Phase.RUNNING


class ExitingPlainConnector(_Base):
    """Plain ``def`` methods (run in the pool) that call sys.exit: get at once, get_logs after a line."""

    name = "Exiting Plain Connector"

    def __init__(self) -> None:
        super().__init__("exiting")

    def get(self, resource_meta, **kwargs):
        raise SystemExit("bye")

    def get_logs(self, resource_meta, **kwargs):
        yield agent_pb2.GetTaskLogsResponse()
        raise SystemExit(1)


def test_sys_exit_in_a_plain_connector_fails_the_call_not_the_service(connector_service):
    service = connector_service(ExitingPlainConnector(), HealthyConnector())
    with pytest.raises(grpc.RpcError) as caught:
        service.async_stub.GetTask(get_request("exiting"), timeout=TIMEOUT)
    assert caught.value.code() == grpc.StatusCode.INTERNAL
    assert "the connector raised SystemExit: bye" in caught.value.details()
    request = agent_pb2.GetTaskLogsRequest(
        task_category=agent_pb2.TaskCategory(name="exiting"), resource_meta=JobMeta(job_id="j1").encode()
    )
    stream = service.async_stub.GetTaskLogs(request, timeout=TIMEOUT)
    next(stream)  # the first line arrives, then the generator exits
    with pytest.raises(grpc.RpcError) as caught:
        next(stream)
    assert caught.value.code() == grpc.StatusCode.INTERNAL
    assert "the connector raised SystemExit: 1" in caught.value.details()
    assert service.async_stub.GetTask(get_request("healthy"), timeout=TIMEOUT).resource.phase == Phase.RUNNING


def test_retryable_failure_is_public_where_connector_authors_import_from():
    import core_connectors
    from core_connectors import base_connector

    assert "RetryableFailure" in core_connectors.__all__ and "RetryableFailure" in base_connector.__all__
    assert base_connector.RetryableFailure is core_connectors.RetryableFailure is RetryableFailure
