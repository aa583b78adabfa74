"""The connector packages over Flyte 2's protocol (flyteidl2.connector), with the flyteidl2 stubs, on one server
that serves flyteidl's v1 services too. The vendors behind the connectors are the packages' local stand-ins.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from flyteidl.admin import agent_pb2
from flyteidl.core import literals_pb2, tasks_pb2
from flyteidl.core.execution_pb2 import TaskExecution
from flyteidl2.connector import connector_pb2, service_pb2_grpc
from flyteidl2.core import literals_pb2 as literals2
from flyteidl2.core import security_pb2
from flyteidl2.core import tasks_pb2 as tasks2
from flyteidl2.task import common_pb2

from core_connectors import SecretNotFound, get_connector_secret
from core_connectors.literals import literal_map_to_python, python_to_literal_map
from core_connectors_bigquery import BigQueryConnector
from core_connectors_bigquery.testing import FakeBigQuery, make_inputs, make_metadata, make_template
from core_connectors_openai import BatchEndpointConnector, ChatGPTConnector
from core_connectors_openai.testing import FakeOpenAI, batch_template, chatgpt_template
from core_connectors_sleep import SleepConnector

pytestmark = pytest.mark.network

DEADLINE = 10  # seconds: what the executor gives each call
API_KEY = "sk-proj-FLYTE2distinctive0123456789abcdef"
JSONL = (
    b'{"custom_id": "r1", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "m", "messages": []}}\n'
)


def v2(message, v2_type):
    """A v1 message as Flyte 2 sends it: the same fields, in flyteidl2's type (the test builds templates with
    the packages' v1 helpers)."""
    return v2_type.FromString(message.SerializeToString())


def inputs_of(literal_map) -> common_pb2.Inputs:
    return common_pb2.Inputs(
        literals=[
            common_pb2.NamedLiteral(name=k, value=v2(v, literals2.Literal)) for k, v in literal_map.literals.items()
        ]
    )


def outputs_of(outputs: common_pb2.Outputs) -> dict:
    """v2 outputs read back through the v1 helpers (a named literal list is a literal map on the wire)."""
    return literal_map_to_python(literals_pb2.LiteralMap.FromString(outputs.SerializeToString()))


def category(name: str) -> connector_pb2.TaskCategory:
    return connector_pb2.TaskCategory(name=name, version=0)


class Stubs:
    def __init__(self, service):
        self.service = service
        self.tasks = service_pb2_grpc.AsyncConnectorServiceStub(service.channel)
        self.metadata = service_pb2_grpc.ConnectorMetadataServiceStub(service.channel)

    def create(self, template, inputs=None, **kwargs) -> bytes:
        request = connector_pb2.CreateTaskRequest(
            template=v2(template, tasks2.TaskTemplate),
            inputs=inputs_of(inputs) if inputs is not None else None,
            output_prefix="s3://bucket/out",
            **kwargs,
        )
        return self.tasks.CreateTask(request, timeout=DEADLINE).resource_meta

    def get(self, name: str, meta: bytes, **kwargs) -> connector_pb2.Resource:
        request = connector_pb2.GetTaskRequest(task_category=category(name), resource_meta=meta, **kwargs)
        return self.tasks.GetTask(request, timeout=DEADLINE).resource

    def delete(self, name: str, meta: bytes, **kwargs) -> None:
        request = connector_pb2.DeleteTaskRequest(task_category=category(name), resource_meta=meta, **kwargs)
        self.tasks.DeleteTask(request, timeout=DEADLINE)


# ------------------------------------------------------------------------------------------------ sleep
def test_sleep_runs_then_succeeds_over_v2(connector_service):
    stubs = Stubs(connector_service(SleepConnector()))
    template = tasks_pb2.TaskTemplate(type="sleep")
    template.custom.update({"duration": 0.3})
    meta = stubs.create(template)
    first = stubs.get("sleep", meta)
    assert first.phase == TaskExecution.RUNNING and first.message.endswith("s left")
    assert first.custom_info["seconds_left"] > 0
    time.sleep(0.35)
    assert stubs.get("sleep", meta).phase == TaskExecution.SUCCEEDED
    stubs.delete("sleep", meta)
    listed = stubs.metadata.ListConnectors(connector_pb2.ListConnectorsRequest(), timeout=DEADLINE)
    assert [(c.name, c.supported_task_categories[0].name) for c in listed.connectors] == [("Sleep Connector", "sleep")]


def test_v1_and_v2_calls_interleave_on_one_server(connector_service):
    service = connector_service(SleepConnector())
    stubs = Stubs(service)
    template = tasks_pb2.TaskTemplate(type="sleep")
    template.custom.update({"duration": 0})

    def through_v1(_):
        meta = service.async_stub.CreateTask(agent_pb2.CreateTaskRequest(template=template), timeout=DEADLINE)
        request = agent_pb2.GetTaskRequest(
            task_category=agent_pb2.TaskCategory(name="sleep"), resource_meta=meta.resource_meta
        )
        return "v1", service.async_stub.GetTask(request, timeout=DEADLINE).resource.phase

    def through_v2(_):
        return "v2", stubs.get("sleep", stubs.create(template)).phase

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: (through_v1 if i % 2 else through_v2)(i), range(60)))
    assert sorted(set(results)) == [("v1", TaskExecution.SUCCEEDED), ("v2", TaskExecution.SUCCEEDED)]
    # what one protocol created, the other can poll: the metadata is the same
    meta = stubs.create(template)
    request = agent_pb2.GetTaskRequest(task_category=agent_pb2.TaskCategory(name="sleep"), resource_meta=meta)
    assert service.async_stub.GetTask(request, timeout=DEADLINE).resource.phase == TaskExecution.SUCCEEDED


# ------------------------------------------------------------------------------------------------ bigquery
@pytest.fixture
def bigquery(monkeypatch, tmp_path):
    monkeypatch.setenv("FLYTE_SECRETS_DEFAULT_DIR", str(tmp_path))
    monkeypatch.delenv("_FSEC_GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    with FakeBigQuery() as server:
        monkeypatch.setenv("BIGQUERY_EMULATOR_HOST", server.url)
        yield server


def test_bigquery_create_get_delete_over_v2(connector_service, bigquery):
    stubs = Stubs(connector_service(BigQueryConnector()))
    bigquery.plan(states=["PENDING", "PENDING", "RUNNING", "DONE"])
    template = make_template("SELECT * FROM t WHERE n > @n", inputs={"n": int})
    meta = stubs.create(
        template,
        make_inputs(template, n=3),
        task_execution_metadata=v2(make_metadata(execution="f2exec"), connector_pb2.TaskExecutionMetadata),
    )
    assert meta.startswith(b'{"job_id": ')
    phases = [stubs.get("bigquery_query_job_task", meta).phase for _ in range(3)]
    assert phases == [TaskExecution.INITIALIZING, TaskExecution.RUNNING, TaskExecution.SUCCEEDED]
    done = stubs.get("bigquery_query_job_task", meta)
    (job,) = bigquery.jobs.values()
    (results,) = done.outputs.literals
    assert results.name == "results"
    assert results.value.scalar.structured_dataset.uri == f"bq://proj:_anon.anon_{job.job_id}"
    assert done.log_links[0].name == "BigQuery Console"
    (insert,) = bigquery.requests_to("POST", "insert")
    assert insert.body["configuration"]["labels"]["flyte-execution"] == "f2exec"
    assert {
        p["name"]: p["parameterValue"]["value"] for p in insert.body["configuration"]["query"]["queryParameters"]
    } == {"n": "3"}
    stubs.delete("bigquery_query_job_task", meta)
    assert len(bigquery.requests_to("POST", "cancel")) == 1


# ------------------------------------------------------------------------------------------------ openai
@pytest.fixture
def openai(monkeypatch):
    """The stand-in, with the API key given only through the v2 connection (no secret in the environment)."""
    with FakeOpenAI(api_key=API_KEY) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        for name in ("FLYTE_SECRETS_ENV_PREFIX", "OPENAI_ORG_ID", "OPENAI_API_KEY", "_FSEC_FLYTE_OPENAI_API_KEY"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("FLYTE_SECRETS_DEFAULT_DIR", "/nonexistent")
        yield server


CONNECTION = security_pb2.Connection(task_type="openai", secrets={"FLYTE_OPENAI_API_KEY": API_KEY})


def test_openai_batch_create_get_delete_over_v2_with_the_key_from_the_connection(connector_service, openai):
    stubs = Stubs(connector_service(BatchEndpointConnector()))
    openai.script_batches(["validating", "in_progress", "completed"])
    file_id = openai.add_file(JSONL)
    template = batch_template({"metadata": {"run": "2"}})
    meta = stubs.create(template, python_to_literal_map({"input_file_id": file_id}), connection=CONNECTION)
    phases = [stubs.get("openai-batch", meta, connection=CONNECTION).phase for _ in range(3)]
    assert phases == [TaskExecution.INITIALIZING, TaskExecution.RUNNING, TaskExecution.SUCCEEDED]
    done = stubs.get("openai-batch", meta, connection=CONNECTION)
    result = outputs_of(done.outputs)["result"]
    assert result["status"] == "completed" and result["metadata"] == {"run": "2"}
    assert done.custom_info["request_counts"]["total"] == 1
    stubs.delete("openai-batch", meta, connection=CONNECTION)
    assert all(r.headers["authorization"] == f"Bearer {API_KEY}" for r in openai.requests)
    with pytest.raises(SecretNotFound):  # the connection's key did not outlive the calls
        get_connector_secret("FLYTE_OPENAI_API_KEY")


def test_chatgpt_without_the_connection_has_no_key(connector_service, openai):
    """The key of one call's connection is not there for the next call without one: the task fails."""
    stubs = Stubs(connector_service(ChatGPTConnector()))
    inputs = python_to_literal_map({"message": "hi"})
    stubs.create(chatgpt_template({"model": "m"}), inputs, connection=CONNECTION)
    failed = stubs.get("chatgpt", stubs.create(chatgpt_template({"model": "m"}), inputs))
    assert failed.phase == TaskExecution.FAILED
    assert "FLYTE_OPENAI_API_KEY" in failed.message and API_KEY not in failed.message
    assert len(openai.requests) == 1


def test_chatgpt_a_sync_connector_through_v2(connector_service, openai):
    stubs = Stubs(connector_service(ChatGPTConnector()))
    template = chatgpt_template({"model": "gpt-4o-mini", "max_tokens": 20}, organization="org-x")
    meta = stubs.create(template, python_to_literal_map({"message": "hello"}), connection=CONNECTION)
    resource = stubs.get("chatgpt", meta)  # the result travels in the metadata: no key needed to read it
    assert resource.phase == TaskExecution.SUCCEEDED
    assert outputs_of(resource.outputs) == {"o0": "echo: hello"}
    assert API_KEY.encode() not in meta
    assert openai.requests[0].body["max_tokens"] == 20
    assert openai.requests[0].headers["openai-organization"] == "org-x"
    stubs.delete("chatgpt", meta)  # nothing left to cancel
    listed = stubs.metadata.ListConnectors(connector_pb2.ListConnectorsRequest(), timeout=DEADLINE)
    assert [c.supported_task_categories[0].name for c in listed.connectors] == ["chatgpt"]
