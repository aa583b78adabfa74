"""The connector service over the wire, on loopback, with the flyteidl stubs propeller uses.

Each RPC's success path and each error path, for connectors written with ``def`` and with ``async def``.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import threading
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from flyteidl.admin import agent_pb2
from flyteidl.core import execution_pb2, interface_pb2, literals_pb2, metrics_pb2, tasks_pb2, types_pb2

from core_connectors import AsyncConnectorBase, Resource, ResourceMeta, SyncConnectorBase, get_connector_secret
from core_connectors._registry import Registry
from core_connectors.literals import literal_map_to_python, python_to_literal_map

Phase = execution_pb2.TaskExecution
ERROR_ID = r"\(error id [0-9a-f]{8}\)"
TIMEOUT = 5


@dataclass
class JobMeta(ResourceMeta):
    job_id: str
    attempt: int | None = None


def _behave(job_id: str) -> None:
    """Job ids that make a test connector fail the way a real one might."""
    if job_id == "boom":
        raise ValueError("kaboom")
    if job_id == "timeout":
        raise TimeoutError("the vendor API timed out")
    if job_id == "secret":
        raise RuntimeError(f"login refused for token {os.environ['TEST_API_TOKEN']} and {os.environ['_FSEC_PW']}")
    if job_id == "file-secret":
        raise RuntimeError(f"vendor said: bad key {get_connector_secret('vendor_key')}")
    if job_id == "empty":
        raise KeyError
    if job_id.startswith("pad:"):  # a long message with a secret where it is cut for the reply
        raise RuntimeError("." * int(job_id[4:]) + f" token {os.environ['TEST_API_TOKEN']}")
    if job_id == "emoji":  # 12,000 bytes of UTF-8: 36,000 characters once percent-encoded into a header
        raise RuntimeError("\N{GRINNING FACE}" * 3000)


class AsyncDefConnector(AsyncConnectorBase):
    """Every method an ``async def``; get_logs is an async generator."""

    name = "Async Def Connector"

    def __init__(self) -> None:
        super().__init__(task_type_name="async-def", metadata_type=JobMeta)
        self.created: list[dict[str, Any]] = []
        self.deleted: list[str] = []
        self.threads: list[str] = []

    async def create(self, task_template, output_prefix, inputs=None, task_execution_metadata=None, **kwargs):
        self.threads.append(threading.current_thread().name)
        self.created.append(
            dict(task_template=task_template, output_prefix=output_prefix, inputs=inputs, meta=task_execution_metadata)
        )
        _behave(task_template.custom["job_id"] if "job_id" in task_template.custom else "j1")
        return JobMeta(job_id="j1", attempt=1)

    async def get(self, resource_meta: JobMeta, **kwargs):
        self.threads.append(threading.current_thread().name)
        _behave(resource_meta.job_id)
        if resource_meta.job_id == "running":
            return Resource(phase=Phase.RUNNING, message="still going", custom_info={"progress": 0.5})
        return Resource(phase=Phase.SUCCEEDED, message="done", outputs={"n": 1, "s": "x"})

    async def delete(self, resource_meta: JobMeta, **kwargs):
        _behave(resource_meta.job_id)
        self.deleted.append(resource_meta.job_id)

    async def get_metrics(self, resource_meta: JobMeta, **kwargs):
        _behave(resource_meta.job_id)
        return agent_pb2.GetTaskMetricsResponse(results=[metrics_pb2.ExecutionMetricResult(metric="cpu")])

    async def get_logs(self, resource_meta: JobMeta, **kwargs):
        _behave(resource_meta.job_id)
        for line in ("one", "two"):
            yield agent_pb2.GetTaskLogsResponse(body=agent_pb2.GetTaskLogsResponseBody(results=[line]))


class PlainDefConnector(AsyncConnectorBase):
    """Every method a plain ``def`` (run in the service's pool); no get_metrics; get_logs a generator."""

    name = "Plain Def Connector"

    def __init__(self) -> None:
        super().__init__(task_type_name="plain-def", metadata_type=JobMeta)
        self.threads: list[str] = []
        self.deleted: list[str] = []

    def create(self, task_template, output_prefix, inputs=None, task_execution_metadata=None, **kwargs):
        self.threads.append(threading.current_thread().name)
        return JobMeta(job_id=task_template.custom["job_id"] if "job_id" in task_template.custom else "p1")

    def get(self, resource_meta: JobMeta, **kwargs):
        self.threads.append(threading.current_thread().name)
        _behave(resource_meta.job_id)
        return Resource(phase=Phase.SUCCEEDED, outputs={"total": 2.5})

    def delete(self, resource_meta: JobMeta, **kwargs):
        _behave(resource_meta.job_id)
        self.deleted.append(resource_meta.job_id)

    def get_logs(self, resource_meta: JobMeta, **kwargs):
        if resource_meta.job_id == "single":
            return agent_pb2.GetTaskLogsResponse(body=agent_pb2.GetTaskLogsResponseBody(results=["all"]))
        return (
            agent_pb2.GetTaskLogsResponse(body=agent_pb2.GetTaskLogsResponseBody(results=[str(i)])) for i in range(3)
        )


class RaisingMetricsConnector(PlainDefConnector):
    name = "Raising Metrics Connector"

    def __init__(self) -> None:
        AsyncConnectorBase.__init__(self, task_type_name="raising-metrics", metadata_type=JobMeta)

    def get_metrics(self, resource_meta, **kwargs):
        raise NotImplementedError("metrics are not collected for this job")


class VersionedConnector(PlainDefConnector):
    name = "Versioned Connector"

    def __init__(self) -> None:
        AsyncConnectorBase.__init__(self, task_type_name="versioned", task_type_version=1, metadata_type=JobMeta)
        self.threads = []


class SyncDefConnector(SyncConnectorBase):
    """``do`` as a plain def: the output ``out`` is an int that the interface declares a FLOAT."""

    name = "Sync Def Connector"

    def __init__(self, task_type: str = "sync-def") -> None:
        super().__init__(task_type_name=task_type)
        self.seen: list[dict[str, Any]] = []

    def do(self, task_template, output_prefix, inputs=None, **kwargs):
        self.seen.append(dict(inputs=literal_map_to_python(inputs), output_prefix=output_prefix))
        custom = task_template.custom
        if "fail" in custom:
            raise ValueError(custom["fail"])
        phase = Phase.Phase.Value(custom["phase"]) if "phase" in custom else Phase.SUCCEEDED
        return Resource(phase=phase, outputs={"out": 3})


class SyncAsyncConnector(SyncDefConnector):
    name = "Sync Async Connector"

    def __init__(self) -> None:
        super().__init__("sync-async")

    async def do(self, task_template, output_prefix, inputs=None, **kwargs):
        return super().do(task_template, output_prefix, inputs, **kwargs)


@pytest.fixture
def connectors():
    return {
        "async-def": AsyncDefConnector(),
        "plain-def": PlainDefConnector(),
        "raising-metrics": RaisingMetricsConnector(),
        "versioned": VersionedConnector(),
        "sync-def": SyncDefConnector(),
        "sync-async": SyncAsyncConnector(),
    }


@pytest.fixture
def service(connector_service, connectors):
    return connector_service(*connectors.values(), threads=8)


# ------------------------------------------------------------------------------------------------ helpers
def template(task_type: str, version: int = 0, outputs: dict[str, int] | None = None, **custom: Any):
    t = tasks_pb2.TaskTemplate(type=task_type, task_type_version=version)
    t.custom.update(custom)
    for name, simple in (outputs or {}).items():
        t.interface.outputs.variables[name].CopyFrom(interface_pb2.Variable(type=types_pb2.LiteralType(simple=simple)))
    return t


def meta(job_id: str, **extra: Any) -> bytes:
    return JobMeta(job_id=job_id, **extra).encode()


def category(name: str, version: int = 0) -> agent_pb2.TaskCategory:
    return agent_pb2.TaskCategory(name=name, version=version)


def rpc_error(call, *args, **kwargs) -> grpc.RpcError:
    kwargs.setdefault("timeout", TIMEOUT)
    with pytest.raises(grpc.RpcError) as info:
        result = call(*args, **kwargs)
        if hasattr(result, "__iter__") and not hasattr(result, "DESCRIPTOR"):
            list(result)
    return info.value


def execute(service, *messages, timeout: float = TIMEOUT) -> list[agent_pb2.ExecuteTaskSyncResponse]:
    return list(service.sync_stub.ExecuteTaskSync(iter(messages), timeout=timeout))


def header(t: tasks_pb2.TaskTemplate, output_prefix: str = "s3://out") -> agent_pb2.ExecuteTaskSyncRequest:
    return agent_pb2.ExecuteTaskSyncRequest(
        header=agent_pb2.CreateRequestHeader(template=t, output_prefix=output_prefix)
    )


def inputs(**values: Any) -> agent_pb2.ExecuteTaskSyncRequest:
    return agent_pb2.ExecuteTaskSyncRequest(inputs=python_to_literal_map(values))


def assert_healthy(service) -> None:
    """After an error the server keeps answering."""
    agents = service.metadata_stub.ListAgents(agent_pb2.ListAgentsRequest(), timeout=TIMEOUT).agents
    assert {a.name for a in agents} >= {"Async Def Connector", "Sync Def Connector"}


# ------------------------------------------------------------------------------------------------ CreateTask
@pytest.mark.parametrize("task_type", ["async-def", "plain-def"])
def test_create_task_answers_the_encoded_resource_meta(service, connectors, task_type):
    request = agent_pb2.CreateTaskRequest(
        template=template(task_type, job_id="j1"),
        inputs=python_to_literal_map({"x": 1}),
        output_prefix="s3://bucket/out",
        task_execution_metadata=agent_pb2.TaskExecutionMetadata(namespace="ns"),
    )
    response = service.async_stub.CreateTask(request, timeout=TIMEOUT)
    expected = JobMeta(job_id="j1", attempt=1) if task_type == "async-def" else JobMeta(job_id="j1")
    assert response.resource_meta == expected.encode()
    assert json.loads(response.resource_meta)["job_id"] == "j1"


def test_create_task_passes_the_wire_messages_as_keyword_arguments(service, connectors):
    t = template("async-def")
    request = agent_pb2.CreateTaskRequest(
        template=t,
        inputs=python_to_literal_map({"x": 1}),
        output_prefix="s3://bucket/out",
        task_execution_metadata=agent_pb2.TaskExecutionMetadata(namespace="ns"),
    )
    service.async_stub.CreateTask(request, timeout=TIMEOUT)
    (call,) = connectors["async-def"].created
    assert isinstance(call["task_template"], tasks_pb2.TaskTemplate) and call["task_template"] == t
    assert isinstance(call["inputs"], literals_pb2.LiteralMap) and literal_map_to_python(call["inputs"]) == {"x": 1}
    assert call["output_prefix"] == "s3://bucket/out"
    assert isinstance(call["meta"], agent_pb2.TaskExecutionMetadata) and call["meta"].namespace == "ns"


def test_async_def_methods_run_on_the_loop_and_plain_def_methods_in_the_pool(service, connectors):
    for task_type in ("async-def", "plain-def"):
        created = service.async_stub.CreateTask(agent_pb2.CreateTaskRequest(template=template(task_type)))
        service.async_stub.GetTask(
            agent_pb2.GetTaskRequest(task_category=category(task_type), resource_meta=created.resource_meta)
        )
    assert set(connectors["async-def"].threads) == {"connector-service"}  # the service's event loop thread
    assert all(name.startswith("connector_") for name in connectors["plain-def"].threads)


def test_create_task_with_a_versioned_task_type(service):
    response = service.async_stub.CreateTask(
        agent_pb2.CreateTaskRequest(template=template("versioned", version=1, job_id="v")), timeout=TIMEOUT
    )
    assert json.loads(response.resource_meta)["job_id"] == "v"


def test_create_task_connector_error_is_internal_with_type_message_and_error_id(service, caplog):
    error = rpc_error(
        service.async_stub.CreateTask, agent_pb2.CreateTaskRequest(template=template("async-def", job_id="boom"))
    )
    assert error.code() == grpc.StatusCode.INTERNAL
    assert re.fullmatch(rf"failed to create async-def task with error: ValueError: kaboom {ERROR_ID}", error.details())
    assert "Traceback" not in error.details()
    error_id = re.search(r"error id ([0-9a-f]{8})", error.details()).group(1)
    logged = [r for r in caplog.records if error_id in r.getMessage()]
    assert logged and "Traceback" in logged[0].getMessage() and "kaboom" in logged[0].getMessage()
    assert_healthy(service)


@pytest.mark.parametrize(
    "request_, code, details",
    [
        (
            agent_pb2.CreateTaskRequest(template=template("nope")),
            "NOT_FOUND",
            "Cannot find connector for task type: nope.",
        ),
        (
            agent_pb2.CreateTaskRequest(template=template("async-def", version=3)),
            "NOT_FOUND",
            "Cannot find connector for task type: async-def (version 3).",
        ),
        (agent_pb2.CreateTaskRequest(), "INVALID_ARGUMENT", "CreateTask request has no task template"),
        (agent_pb2.CreateTaskRequest(template=template("sync-def")), "FAILED_PRECONDITION", "is a sync connector"),
    ],
)
def test_create_task_refusals(service, request_, code, details):
    error = rpc_error(service.async_stub.CreateTask, request_)
    assert error.code() == getattr(grpc.StatusCode, code)
    assert details in error.details()


# ------------------------------------------------------------------------------------------------ GetTask
@pytest.mark.parametrize("task_type", ["async-def", "plain-def"])
def test_get_task_routes_by_task_category(service, task_type):
    response = service.async_stub.GetTask(
        agent_pb2.GetTaskRequest(task_category=category(task_type), resource_meta=meta("j1")), timeout=TIMEOUT
    )
    assert response.resource.phase == Phase.SUCCEEDED
    assert literal_map_to_python(response.resource.outputs) in ({"n": 1, "s": "x"}, {"total": 2.5})


def test_get_task_routes_by_the_deprecated_task_type(service):
    response = service.async_stub.GetTask(
        agent_pb2.GetTaskRequest(task_type="async-def", resource_meta=meta("j1")), timeout=TIMEOUT
    )
    assert response.resource.phase == Phase.SUCCEEDED and response.resource.message == "done"


def test_get_task_category_wins_over_task_type_and_carries_the_version(service):
    response = service.async_stub.GetTask(
        agent_pb2.GetTaskRequest(task_type="nope", task_category=category("versioned", 1), resource_meta=meta("v")),
        timeout=TIMEOUT,
    )
    assert response.resource.phase == Phase.SUCCEEDED
    error = rpc_error(
        service.async_stub.GetTask, agent_pb2.GetTaskRequest(task_type="versioned", resource_meta=meta("v"))
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND


def test_get_task_running_resource_with_custom_info(service):
    response = service.async_stub.GetTask(
        agent_pb2.GetTaskRequest(task_category=category("async-def"), resource_meta=meta("running")), timeout=TIMEOUT
    )
    assert response.resource.phase == Phase.RUNNING
    assert response.resource.message == "still going"
    assert response.resource.custom_info["progress"] == 0.5


@pytest.mark.parametrize(
    "job_id, code, pattern",
    [
        ("boom", "INTERNAL", rf"failed to get async-def task with error: ValueError: kaboom {ERROR_ID}"),
        (
            "timeout",
            "DEADLINE_EXCEEDED",
            rf"failed to get async-def task with error: TimeoutError: the vendor API timed out {ERROR_ID}",
        ),
        ("empty", "INTERNAL", rf"failed to get async-def task with error: KeyError {ERROR_ID}"),
    ],
)
def test_get_task_connector_errors(service, job_id, code, pattern):
    error = rpc_error(
        service.async_stub.GetTask,
        agent_pb2.GetTaskRequest(task_category=category("async-def"), resource_meta=meta(job_id)),
    )
    assert error.code() == getattr(grpc.StatusCode, code)
    assert re.fullmatch(pattern, error.details()), error.details()


@pytest.mark.parametrize(
    "request_, code, details",
    [
        (
            agent_pb2.GetTaskRequest(task_category=category("nope"), resource_meta=meta("j1")),
            "NOT_FOUND",
            "Cannot find connector for task type: nope.",
        ),
        (
            agent_pb2.GetTaskRequest(task_type="nope", resource_meta=meta("j1")),
            "NOT_FOUND",
            "Cannot find connector for task type: nope.",
        ),
        (
            agent_pb2.GetTaskRequest(task_category=category("async-def"), resource_meta=b"not json"),
            "INVALID_ARGUMENT",
            "failed to get async-def task with error: "
            "ResourceMetaDecodeError: cannot decode JobMeta: the metadata is not JSON",
        ),
        (
            agent_pb2.GetTaskRequest(task_category=category("async-def"), resource_meta=pickle.dumps({"job_id": "x"})),
            "INVALID_ARGUMENT",
            "pickle",
        ),
        (
            agent_pb2.GetTaskRequest(task_category=category("async-def"), resource_meta=b'{"job": 1}'),
            "INVALID_ARGUMENT",
            "field 'job_id' is missing",
        ),
        (agent_pb2.GetTaskRequest(resource_meta=meta("j1")), "INVALID_ARGUMENT", "the request names no task type"),
        (
            agent_pb2.GetTaskRequest(task_category=category("sync-def"), resource_meta=meta("j1")),
            "FAILED_PRECONDITION",
            "Sync Def Connector is a sync connector",
        ),
    ],
)
def test_get_task_refusals(service, request_, code, details):
    error = rpc_error(service.async_stub.GetTask, request_)
    assert error.code() == getattr(grpc.StatusCode, code)
    assert details in error.details()
    if code != "NOT_FOUND":
        assert re.search(ERROR_ID, error.details())


def test_no_secret_reaches_the_caller_or_the_log(service, monkeypatch, caplog):
    monkeypatch.setenv("TEST_API_TOKEN", "tok-3f9a77c1e2")
    monkeypatch.setenv("_FSEC_PW", "hunter2-pw-value")
    error = rpc_error(
        service.async_stub.GetTask,
        agent_pb2.GetTaskRequest(task_category=category("async-def"), resource_meta=meta("secret")),
    )
    assert error.code() == grpc.StatusCode.INTERNAL
    assert "tok-3f9a77c1e2" not in error.details() and "hunter2-pw-value" not in error.details()
    assert error.details().count("[redacted]") == 2
    assert "tok-3f9a77c1e2" not in caplog.text and "hunter2-pw-value" not in caplog.text
    assert "login refused" in caplog.text


@pytest.mark.parametrize("pad", [1980, 1984, 1987])  # the cut falls 13, 9 and 6 characters into the token
def test_a_secret_where_a_long_message_is_cut_is_scrubbed_whole(service, monkeypatch, caplog, pad):
    monkeypatch.setenv("TEST_API_TOKEN", "tok-3f9a77c1e2")
    error = rpc_error(
        service.async_stub.GetTask,
        agent_pb2.GetTaskRequest(task_category=category("async-def"), resource_meta=meta(f"pad:{pad}")),
    )
    assert error.code() == grpc.StatusCode.INTERNAL
    assert "tok-3f" not in error.details() and "tok-3f" not in caplog.text


@pytest.mark.parametrize(
    "request_, code",
    [
        (agent_pb2.GetTaskRequest(task_category=category("async-def"), resource_meta=meta("emoji")), "INTERNAL"),
        (agent_pb2.GetTaskRequest(task_category=category("x" * 20_000), resource_meta=meta("j1")), "NOT_FOUND"),
        (agent_pb2.GetTaskRequest(task_category=category("\N{GRINNING FACE}" * 5000)), "NOT_FOUND"),
    ],
)
def test_long_error_details_fit_in_the_status(service, request_, code):
    """Details travel percent-encoded in a header of at most 8 KiB: cut by bytes, the status arrives as it is."""
    error = rpc_error(service.async_stub.GetTask, request_)
    assert error.code() == getattr(grpc.StatusCode, code), error.details()
    assert len(error.details().encode()) < 2100
    if code != "NOT_FOUND":
        assert re.search(ERROR_ID, error.details())


def test_a_secret_read_from_a_mounted_file_is_scrubbed_too(service, monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("FLYTE_SECRETS_DEFAULT_DIR", str(tmp_path))
    (tmp_path / "vendor_key").write_text("file-secret-8c1d2e\n")
    error = rpc_error(
        service.async_stub.GetTask,
        agent_pb2.GetTaskRequest(task_category=category("async-def"), resource_meta=meta("file-secret")),
    )
    assert "vendor said: bad key [redacted]" in error.details()
    assert "file-secret-8c1d2e" not in error.details() and "file-secret-8c1d2e" not in caplog.text


# ------------------------------------------------------------------------------------------------ DeleteTask
@pytest.mark.parametrize("task_type", ["async-def", "plain-def"])
def test_delete_task(service, connectors, task_type):
    response = service.async_stub.DeleteTask(
        agent_pb2.DeleteTaskRequest(task_category=category(task_type), resource_meta=meta("d1")), timeout=TIMEOUT
    )
    assert response == agent_pb2.DeleteTaskResponse()
    service.async_stub.DeleteTask(agent_pb2.DeleteTaskRequest(task_type=task_type, resource_meta=meta("d2")))
    assert connectors[task_type].deleted == ["d1", "d2"]


@pytest.mark.parametrize(
    "request_, code, details",
    [
        (
            agent_pb2.DeleteTaskRequest(task_type="nope", resource_meta=meta("d")),
            "NOT_FOUND",
            "Cannot find connector for task type: nope.",
        ),
        (
            agent_pb2.DeleteTaskRequest(task_category=category("plain-def"), resource_meta=meta("boom")),
            "INTERNAL",
            "failed to delete plain-def task with error: ValueError: kaboom",
        ),
        (
            agent_pb2.DeleteTaskRequest(task_type="plain-def", resource_meta=b"[]"),
            "INVALID_ARGUMENT",
            "expected a JSON object",
        ),
    ],
)
def test_delete_task_refusals(service, request_, code, details):
    error = rpc_error(service.async_stub.DeleteTask, request_)
    assert error.code() == getattr(grpc.StatusCode, code)
    assert details in error.details()


# ------------------------------------------------------------------------------------------------ metrics and logs
def test_get_task_metrics(service):
    response = service.async_stub.GetTaskMetrics(
        agent_pb2.GetTaskMetricsRequest(task_category=category("async-def"), resource_meta=meta("m")), timeout=TIMEOUT
    )
    assert [r.metric for r in response.results] == ["cpu"]


@pytest.mark.parametrize(
    "task_type, job_id, code, details",
    [
        ("plain-def", "m", "UNIMPLEMENTED", "Plain Def Connector does not implement get_metrics"),
        ("raising-metrics", "m", "UNIMPLEMENTED", "metrics are not collected for this job"),
        ("async-def", "boom", "INTERNAL", "failed to get_metrics async-def task with error: ValueError: kaboom"),
        ("nope", "m", "NOT_FOUND", "Cannot find connector for task type: nope."),
    ],
)
def test_get_task_metrics_refusals(service, task_type, job_id, code, details):
    error = rpc_error(
        service.async_stub.GetTaskMetrics,
        agent_pb2.GetTaskMetricsRequest(task_category=category(task_type), resource_meta=meta(job_id)),
    )
    assert error.code() == getattr(grpc.StatusCode, code)
    assert details in error.details()


@pytest.mark.parametrize(
    "task_type, job_id, expected",
    [("async-def", "l", ["one", "two"]), ("plain-def", "l", ["0", "1", "2"]), ("plain-def", "single", ["all"])],
)
def test_get_task_logs_streams_what_the_connector_gives(service, task_type, job_id, expected):
    responses = service.async_stub.GetTaskLogs(
        agent_pb2.GetTaskLogsRequest(task_category=category(task_type), resource_meta=meta(job_id)), timeout=TIMEOUT
    )
    assert [line for r in responses for line in r.body.results] == expected


@pytest.mark.parametrize(
    "task_type, job_id, code, details",
    [
        ("raising-metrics", "l", "OK", None),
        ("async-def", "boom", "INTERNAL", "failed to get_logs async-def task with error: ValueError: kaboom"),
        ("nope", "l", "NOT_FOUND", "Cannot find connector for task type: nope."),
        ("sync-def", "l", "FAILED_PRECONDITION", "is a sync connector"),
    ],
)
def test_get_task_logs_refusals(service, task_type, job_id, code, details):
    request = agent_pb2.GetTaskLogsRequest(task_category=category(task_type), resource_meta=meta(job_id))
    if code == "OK":  # inherits get_logs from PlainDefConnector
        assert list(service.async_stub.GetTaskLogs(request, timeout=TIMEOUT))
        return
    error = rpc_error(service.async_stub.GetTaskLogs, request)
    assert error.code() == getattr(grpc.StatusCode, code)
    assert details in error.details()


def test_get_task_logs_unimplemented(connector_service):
    service = connector_service(RaisingMetricsConnectorWithoutLogs())
    error = rpc_error(
        service.async_stub.GetTaskLogs,
        agent_pb2.GetTaskLogsRequest(task_category=category("no-logs"), resource_meta=meta("l")),
    )
    assert error.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "does not implement get_logs" in error.details()


class RaisingMetricsConnectorWithoutLogs(AsyncConnectorBase):
    name = "No Logs Connector"

    def __init__(self) -> None:
        super().__init__(task_type_name="no-logs", metadata_type=JobMeta)

    async def create(self, task_template, output_prefix, inputs=None, task_execution_metadata=None, **kwargs):
        return JobMeta(job_id="x")

    async def get(self, resource_meta, **kwargs):
        return Resource(phase=Phase.SUCCEEDED)

    async def delete(self, resource_meta, **kwargs):
        return None


# ------------------------------------------------------------------------------------------------ ExecuteTaskSync
@pytest.mark.parametrize("task_type", ["sync-def", "sync-async"])
def test_execute_task_sync_answers_one_terminal_response_typed_by_the_interface(service, connectors, task_type):
    t = template(task_type, outputs={"out": types_pb2.FLOAT})
    (response,) = execute(service, header(t, "s3://prefix"), inputs(a=1, b="two"))
    resource = response.header.resource
    assert resource.phase == Phase.SUCCEEDED
    assert resource.outputs.literals["out"].scalar.primitive.float_value == 3.0  # the int became the declared float
    assert connectors[task_type].seen == [{"inputs": {"a": 1, "b": "two"}, "output_prefix": "s3://prefix"}]


def test_execute_task_sync_without_interface_keeps_the_python_type(service):
    (response,) = execute(service, header(template("sync-def")), inputs())
    assert response.header.resource.outputs.literals["out"].scalar.primitive.integer == 3


@pytest.mark.parametrize(
    "messages, code, details",
    [
        ([], "INVALID_ARGUMENT", "ExecuteTaskSync expects a header first, got nothing"),
        ([inputs(a=1)], "INVALID_ARGUMENT", "ExecuteTaskSync expects a header first, got the inputs"),
        (
            [header(template("sync-def"))],
            "INVALID_ARGUMENT",
            "expects the inputs after the header, got the end of the stream",
        ),
        ([header(template("sync-def")), header(template("sync-def"))], "INVALID_ARGUMENT", "got a second header"),
        ([header(template("nope")), inputs()], "NOT_FOUND", "Cannot find connector for task type: nope."),
        ([header(template("async-def")), inputs()], "FAILED_PRECONDITION", "Async Def Connector is an async connector"),
        (
            [header(template("sync-def", fail="bad input")), inputs()],
            "INTERNAL",
            "failed to do sync-def task with error: ValueError: bad input",
        ),
        (
            [header(template("sync-async", phase="RUNNING")), inputs()],
            "INTERNAL",
            "failed to do sync-async task with error: RuntimeError: do() returned the non-terminal phase RUNNING",
        ),
    ],
)
def test_execute_task_sync_refusals_leave_the_server_healthy(service, messages, code, details):
    error = rpc_error(service.sync_stub.ExecuteTaskSync, iter(messages))
    assert error.code() == getattr(grpc.StatusCode, code)
    assert details in error.details(), error.details()
    assert "Traceback" not in error.details()
    assert_healthy(service)


# ------------------------------------------------------------------------------------------------ metadata
def test_list_agents(service):
    agents = {
        a.name: a for a in service.metadata_stub.ListAgents(agent_pb2.ListAgentsRequest(), timeout=TIMEOUT).agents
    }
    assert set(agents) == {
        "Async Def Connector",
        "Plain Def Connector",
        "Raising Metrics Connector",
        "Versioned Connector",
        "Sync Def Connector",
        "Sync Async Connector",
    }
    assert agents["Sync Def Connector"].is_sync and not agents["Async Def Connector"].is_sync
    versioned = agents["Versioned Connector"].supported_task_categories
    assert [(c.name, c.version) for c in versioned] == [("versioned", 1)]
    assert list(agents["Async Def Connector"].supported_task_types) == ["async-def"]


def test_list_agents_sees_connectors_registered_after_start(connector_service):
    service = connector_service(AsyncDefConnector())
    assert len(service.metadata_stub.ListAgents(agent_pb2.ListAgentsRequest()).agents) == 1
    service.server.registry.register(PlainDefConnector())
    assert len(service.metadata_stub.ListAgents(agent_pb2.ListAgentsRequest()).agents) == 2
    created = service.async_stub.CreateTask(
        agent_pb2.CreateTaskRequest(template=template("plain-def")), timeout=TIMEOUT
    )
    assert json.loads(created.resource_meta)["job_id"] == "p1"


def test_get_agent(service):
    agent = service.metadata_stub.GetAgent(
        agent_pb2.GetAgentRequest(name="Sync Async Connector"), timeout=TIMEOUT
    ).agent
    assert agent.is_sync and agent.supported_task_categories[0].name == "sync-async"
    error = rpc_error(service.metadata_stub.GetAgent, agent_pb2.GetAgentRequest(name="Nobody"))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details() == "Cannot find connector for name: Nobody."


# ------------------------------------------------------------------------------------------- registry changes
class Replacement(AsyncDefConnector):
    name = "Replacement Connector"

    async def get(self, resource_meta: JobMeta, **kwargs):
        return Resource(phase=Phase.SUCCEEDED, message="from the replacement")


def test_a_connector_replaced_after_the_start_is_served(connector_service):
    registry = Registry(discover=False)
    service = connector_service(AsyncDefConnector(), registry=registry)
    request = agent_pb2.GetTaskRequest(task_category=category("async-def"), resource_meta=meta("j1"))
    assert service.async_stub.GetTask(request, timeout=TIMEOUT).resource.message != "from the replacement"
    registry.register(Replacement(), override=True)
    assert service.async_stub.GetTask(request, timeout=TIMEOUT).resource.message == "from the replacement"
    agents = service.metadata_stub.ListAgents(agent_pb2.ListAgentsRequest(), timeout=TIMEOUT).agents
    assert [a.name for a in agents] == ["Replacement Connector"]


class WireResource(Resource):
    """A Resource that carries a wire form of its own, as the flytekit bridge's carries flytekit's bytes."""

    def __init__(self, wire: agent_pb2.Resource) -> None:
        super().__init__(phase=wire.phase, message=wire.message)
        self.wire = wire

    def to_flyte_idl_sync(self, output_types=None):
        return self.wire


class OwnWireForm(AsyncDefConnector):
    async def get(self, resource_meta: JobMeta, **kwargs):
        wire = agent_pb2.Resource(phase=Phase.RUNNING, message="token sk-SCRUBME-0123456789")
        wire.custom_info.update({"written": "by the subclass"})
        return WireResource(wire)


def test_a_resource_with_its_own_wire_form_goes_out_as_written_and_scrubbed(connector_service, monkeypatch):
    monkeypatch.setenv("VENDOR_API_KEY", "sk-SCRUBME-0123456789")
    service = connector_service(OwnWireForm())
    request = agent_pb2.GetTaskRequest(task_category=category("async-def"), resource_meta=meta("j1"))
    resource = service.async_stub.GetTask(request, timeout=TIMEOUT).resource
    assert resource.phase == Phase.RUNNING and dict(resource.custom_info) == {"written": "by the subclass"}
    assert "sk-SCRUBME" not in resource.message
