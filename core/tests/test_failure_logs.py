"""Failures are logged a few lines per kind and window, over the wire: a connector that fails every call or a
caller that floods bad requests costs the loop no more than successes do, and nothing held back goes uncounted."""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass

import grpc
import pytest
from flyteidl.admin import agent_pb2
from flyteidl.core import execution_pb2

from core_connectors import AsyncConnectorBase, Resource, ResourceMeta, RetryableFailure, failed_resource
from core_connectors._failure_log import LOG_LINES
from core_connectors.server._errors import LogLimit

TIMEOUT = 5
LINES = 3
WINDOW = 1.0


@dataclass
class JobMeta(ResourceMeta):
    job_id: str


class Flaky(AsyncConnectorBase):
    """``get`` fails the way the job id says: "boom" (a bug), "later" (a vendor's 503), else succeeds."""

    name = "Flaky Connector"

    def __init__(self) -> None:
        super().__init__(task_type_name="flaky", metadata_type=JobMeta)

    async def create(self, task_template, output_prefix, inputs=None, task_execution_metadata=None, **kwargs):
        return JobMeta(job_id="j")

    async def get(self, resource_meta: JobMeta, **kwargs):
        if resource_meta.job_id == "boom":
            raise ValueError("kaboom")
        if resource_meta.job_id == "later":
            raise RetryableFailure("the vendor answered 503")
        return Resource(phase=execution_pb2.TaskExecution.SUCCEEDED)

    async def delete(self, resource_meta: JobMeta, **kwargs):
        pass


@pytest.fixture
def service(connector_service):
    service = connector_service(Flaky())
    service.server.dispatcher.log_limit = LogLimit(lines=LINES, seconds=WINDOW)
    return service


def get(service, job_id: str = "boom", task_type: str = "flaky", meta: bytes | None = None):
    request = agent_pb2.GetTaskRequest(
        task_category=agent_pb2.TaskCategory(name=task_type),
        resource_meta=JobMeta(job_id=job_id).encode() if meta is None else meta,
    )
    try:
        return service.async_stub.GetTask(request, timeout=TIMEOUT)
    except grpc.RpcError as e:
        return e


def error_id(error: grpc.RpcError) -> str:
    return re.search(r"error id ([0-9a-f]{8})", error.details()).group(1)


def lines(caplog, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


def test_a_failing_connector_logs_its_first_failures_with_traceback_and_counts_the_rest(service, caplog):
    caplog.set_level(logging.INFO)
    errors = [get(service) for _ in range(10)]
    assert all(e.code() == grpc.StatusCode.INTERNAL for e in errors)
    ids = [error_id(e) for e in errors]
    logged = lines(caplog, "kaboom")
    assert len(logged) == LINES
    for i, line in zip(ids[:LINES], logged, strict=True):  # the first replies' ids are found, with the traceback
        assert i in line and "Traceback" in line
    assert not any(i in caplog.text for i in ids[LINES:])

    time.sleep(WINDOW + 0.1)  # the next window: its first line says how many were held back
    again = get(service)
    latest = lines(caplog, "kaboom")[-1]
    assert error_id(again) in latest and "Traceback" in latest
    assert f"({10 - LINES} more like it not logged" in latest


def test_each_kind_has_its_own_lines(service, caplog):
    for n in range(10):  # unknown task types, each named differently: one kind
        assert get(service, task_type=f"nobody-{n}").code() == grpc.StatusCode.NOT_FOUND
    assert len(lines(caplog, "Cannot find connector")) == LINES
    for _ in range(10):  # metadata that is not JSON: another kind
        assert get(service, meta=b"not json").code() == grpc.StatusCode.INVALID_ARGUMENT
    assert len(lines(caplog, "is not JSON")) == LINES
    error = get(service)  # the connector's own failure is still logged, under the id its reply names
    assert error_id(error) in caplog.text


def test_retryable_failures_are_answered_every_time_and_logged_within_the_limit(service, caplog):
    replies = [get(service, "later") for _ in range(8)]
    assert all(r.resource.phase == execution_pb2.TaskExecution.RETRYABLE_FAILED for r in replies)
    assert all(r.resource.message == "the vendor answered 503" for r in replies)
    assert len(lines(caplog, "retryable failure")) == LINES


def test_what_was_held_back_is_reported_when_the_service_stops(service, caplog):
    for _ in range(7):
        get(service)
    for _ in range(5):
        get(service, task_type="nobody")
    service.stop()
    reports = lines(caplog, "were not logged")
    assert any(r.startswith(f"{7 - LINES} more failures like INTERNAL ValueError flaky get") for r in reports)
    assert any(r.startswith(f"{5 - LINES} more failures like NOT_FOUND get") for r in reports)


class Polled(AsyncConnectorBase):
    """``get`` ends every task the way a connector whose vendor client raised does: with failed_resource."""

    name = "Polled Connector"

    def __init__(self) -> None:
        super().__init__(task_type_name="polled", metadata_type=JobMeta)

    async def create(self, task_template, output_prefix, inputs=None, task_execution_metadata=None, **kwargs):
        return JobMeta(job_id="j")

    async def get(self, resource_meta: JobMeta, **kwargs):
        return failed_resource(_raised(TimeoutError("the vendor is slow")), "PolledClient")

    async def delete(self, resource_meta: JobMeta, **kwargs):
        pass


def test_task_failures_held_back_are_reported_when_the_service_stops(connector_service, caplog):
    service = connector_service(Polled())
    replies = [get(service, "j", task_type="polled") for _ in range(LOG_LINES + 4)]
    assert all(r.resource.phase == execution_pb2.TaskExecution.FAILED for r in replies)
    assert len(lines(caplog, "PolledClient failed")) == LOG_LINES
    service.stop()
    assert "4 more failures like PolledClient TimeoutError were not logged" in " ".join(
        lines(caplog, "were not logged")
    )


def test_successes_between_failures_are_not_affected(service, caplog):
    for _ in range(10):
        get(service)
    ok = get(service, "fine")
    assert ok.resource.phase == execution_pb2.TaskExecution.SUCCEEDED
    assert len(lines(caplog, "kaboom")) == LINES


def _raised(error: Exception) -> Exception:
    try:
        raise error
    except Exception as e:  # with its traceback, as a connector catches it
        return e


def test_a_task_ended_on_an_exception_is_told_as_the_service_tells_its_own_failures(caplog, monkeypatch):
    monkeypatch.setenv("ACME_API_KEY", "sk-acme-5ecret-value-123")
    caplog.set_level(logging.WARNING)
    error = _raised(PermissionError("denied for key sk-acme-5ecret-value-123"))
    resource = failed_resource(error, "AcmeClient")
    assert resource.phase == execution_pb2.TaskExecution.FAILED
    message = resource.message
    assert re.fullmatch(
        r"AcmeClient failed: PermissionError: denied for key \[redacted\] \(error id [0-9a-f]{8}\)", message
    )
    (record,) = [r for r in caplog.records if r.name == "core_connectors.connectors"]
    logged = record.getMessage()
    assert logged.startswith(message) and "Traceback (most recent call last)" in logged  # one id, both places
    assert "sk-acme-5ecret" not in logged
    retryable = failed_resource(_raised(ConnectionResetError()), "AcmeClient", retryable=True)
    assert retryable.phase == execution_pb2.TaskExecution.RETRYABLE_FAILED
    assert retryable.message.startswith("AcmeClient failed: ConnectionResetError (error id ")


def test_a_connectors_own_words_are_told_with_the_error_id_and_scrubbed(caplog, monkeypatch):
    monkeypatch.setenv("ACME_API_KEY", "sk-acme-5ecret-value-123")
    caplog.set_level(logging.WARNING)
    error = _raised(RuntimeError("HTTP 429"))
    told = failed_resource(error, "AcmeClient", message="Acme error 429 (rate_limited) for sk-acme-5ecret-value-123")
    assert re.fullmatch(r"Acme error 429 \(rate_limited\) for \[redacted\] \(error id ([0-9a-f]{8})\)", told.message)
    (record,) = [r for r in caplog.records if r.name == "core_connectors.connectors"]
    assert record.getMessage().startswith(told.message) and "RuntimeError: HTTP 429" in record.getMessage()


def test_a_client_that_fails_every_poll_gets_a_few_log_lines_not_one_per_call(caplog):
    own = logging.getLogger("acme.flood")
    caplog.set_level(logging.WARNING)
    replies = [failed_resource(_raised(TimeoutError("slow")), "FloodClient", logger=own) for _ in range(20)]
    failed_resource(_raised(KeyError("job")), "FloodClient", logger=own)  # another kind: its own lines
    assert len({r.message for r in replies}) == 20  # every reply has its own error id
    lines = [r.getMessage() for r in caplog.records if r.name == "acme.flood"]
    assert sum("TimeoutError" in line for line in lines) == 5 and sum("KeyError" in line for line in lines) == 1
