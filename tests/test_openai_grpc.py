"""flytekitplugins-openai's own templates through our service over gRPC, as propeller sends them.

The tasks are flytekit's ``ChatGPTTask`` and ``BatchEndpointTask``, serialized by flytekit; the inputs are
written and the outputs read by flytekit's TypeEngine; the API behind the connectors is the stand-in.
"""

from __future__ import annotations

import sys
import time
from collections import OrderedDict
from typing import Any

import grpc
import pytest
from flyteidl.admin import agent_pb2
from flyteidl.core.execution_pb2 import TaskExecution

if sys.version_info >= (3, 13):  # flytekitplugins-openai 1.16 raises on import (it has no default image for it)
    pytest.skip("flytekit 1.16 does not import on Python 3.13", allow_module_level=True)

import flytekit
from flytekit.configuration import ImageConfig, SerializationSettings
from flytekit.core.type_engine import TypeEngine
from flytekit.models.literals import LiteralMap
from flytekit.tools.translator import get_serializable
from flytekitplugins.openai import BatchEndpointTask, ChatGPTTask

from core_connectors_openai import BatchEndpointConnector, ChatGPTConnector
from core_connectors_openai.testing import serving_fake_openai

pytestmark = pytest.mark.network

API_KEY = "sk-proj-GRPCdistinctive0123456789abcdef"
DEADLINE = 10  # seconds: propeller's default for each call
BATCH = agent_pb2.TaskCategory(name="openai-batch", version=0)
JSONL = (
    b'{"custom_id": "r1", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "m", "messages": []}}\n'
)


@pytest.fixture
def fake(monkeypatch):
    with serving_fake_openai(monkeypatch, API_KEY) as server:
        yield server


@pytest.fixture
def service(connector_service, fake):
    return connector_service(ChatGPTConnector(), BatchEndpointConnector())


def template_of(task: Any):
    settings = SerializationSettings(image_config=ImageConfig.auto_default_image())
    return get_serializable(OrderedDict(), settings, task).template.to_flyte_idl()


def literals(values: dict[str, Any], types: dict[str, Any]):
    ctx = flytekit.FlyteContextManager.current_context()
    return TypeEngine.dict_to_literal_map(ctx, values, types).to_flyte_idl()


def python_outputs(outputs, types: dict[str, Any]) -> dict[str, Any]:
    ctx = flytekit.FlyteContextManager.current_context()
    return TypeEngine.literal_map_to_kwargs(ctx, LiteralMap.from_flyte_idl(outputs), types)


def execute_sync(service, template, inputs) -> agent_pb2.Resource:
    """ExecuteTaskSync as propeller calls it: the header, then the inputs; exactly one reply."""
    requests = iter(
        [
            agent_pb2.ExecuteTaskSyncRequest(
                header=agent_pb2.CreateRequestHeader(template=template, output_prefix="/tmp/x")
            ),
            agent_pb2.ExecuteTaskSyncRequest(inputs=inputs),
        ]
    )
    (reply,) = list(service.sync_stub.ExecuteTaskSync(requests, timeout=DEADLINE))
    return reply.header.resource


def test_chatgpt_task_of_flytekit_runs_through_execute_task_sync(service, fake):
    task = ChatGPTTask(
        name="chat", openai_organization="org-x", chatgpt_config={"model": "gpt-4o-mini", "max_tokens": 20}
    )
    resource = execute_sync(service, template_of(task), literals({"message": "hello"}, {"message": str}))
    assert resource.phase == TaskExecution.SUCCEEDED
    assert python_outputs(resource.outputs, {"o0": str}) == {"o0": "echo: hello"}
    body = fake.requests[0].body
    assert body["max_tokens"] == 20 and body["messages"] == [{"role": "user", "content": "hello"}]
    assert fake.requests[0].headers["openai-organization"] == "org-x"


def test_chatgpt_errors_are_phases_not_grpc_errors_and_hide_the_key(service, fake):
    fake.api_key = "sk-the-only-valid-key"
    task = ChatGPTTask(name="chat", chatgpt_config={"model": "m"})
    resource = execute_sync(service, template_of(task), literals({"message": "x"}, {"message": str}))
    assert resource.phase == TaskExecution.FAILED and "401" in resource.message
    assert API_KEY not in resource.message

    fake.api_key = API_KEY
    fake.respond("POST", "/v1/chat/completions", 503, headers={"retry-after": "0"}, times=2)
    resource = execute_sync(service, template_of(task), literals({"message": "x"}, {"message": str}))
    assert resource.phase == TaskExecution.RETRYABLE_FAILED and "503" in resource.message


def poll(service, meta: bytes, until=(TaskExecution.SUCCEEDED,)) -> agent_pb2.Resource:
    deadline = time.monotonic() + 10
    while True:
        reply = service.async_stub.GetTask(
            agent_pb2.GetTaskRequest(task_category=BATCH, resource_meta=meta), timeout=DEADLINE
        )
        if reply.resource.phase in until or time.monotonic() > deadline:
            return reply.resource


def test_batch_task_of_flytekit_runs_through_create_get_delete(service, fake):
    fake.script_batches(["validating", "in_progress", "completed"])
    file_id = fake.add_file(JSONL)
    task = BatchEndpointTask(name="batch", config={"metadata": {"run": "1"}})
    created = service.async_stub.CreateTask(
        agent_pb2.CreateTaskRequest(
            template=template_of(task),
            inputs=literals({"input_file_id": file_id}, {"input_file_id": str}),
            output_prefix="/tmp/x",
        ),
        timeout=DEADLINE,
    )
    assert created.resource_meta.startswith(b"{")  # JSON, never a pickle

    phases = []
    for _ in range(3):
        reply = service.async_stub.GetTask(
            agent_pb2.GetTaskRequest(task_category=BATCH, resource_meta=created.resource_meta), timeout=DEADLINE
        )
        phases.append(reply.resource.phase)
    assert phases == [TaskExecution.INITIALIZING, TaskExecution.RUNNING, TaskExecution.SUCCEEDED]
    resource = reply.resource

    result = python_outputs(resource.outputs, {"result": dict})["result"]
    assert result["status"] == "completed" and result["metadata"] == {"run": "1"}
    assert resource.custom_info["request_counts"]["total"] == 1
    assert resource.log_links[0].uri.endswith(result["id"])

    # Deleting a finished batch is fine, and so is deleting it twice.
    for _ in range(2):
        service.async_stub.DeleteTask(
            agent_pb2.DeleteTaskRequest(task_category=BATCH, resource_meta=created.resource_meta), timeout=DEADLINE
        )


def test_deleting_a_running_batch_cancels_it(service, fake):
    fake.script_batches(["in_progress"])
    task = BatchEndpointTask(name="batch", config={})
    inputs = literals({"input_file_id": fake.add_file(JSONL)}, {"input_file_id": str})
    meta = service.async_stub.CreateTask(
        agent_pb2.CreateTaskRequest(template=template_of(task), inputs=inputs), timeout=DEADLINE
    ).resource_meta
    assert poll(service, meta, until=(TaskExecution.RUNNING,)).phase == TaskExecution.RUNNING
    service.async_stub.DeleteTask(
        agent_pb2.DeleteTaskRequest(task_category=BATCH, resource_meta=meta), timeout=DEADLINE
    )
    assert poll(service, meta, until=(TaskExecution.ABORTED,)).phase == TaskExecution.ABORTED


def test_a_handle_written_by_flytekits_connector_is_invalid_argument(service):
    from flytekitplugins.openai.batch.connector import BatchEndpointMetadata

    pickled = BatchEndpointMetadata(openai_org="org", batch_id="batch_1").encode()
    with pytest.raises(grpc.RpcError) as info:
        service.async_stub.GetTask(
            agent_pb2.GetTaskRequest(task_category=BATCH, resource_meta=pickled), timeout=DEADLINE
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "pickle" in info.value.details() and "flytekitplugins-openai" in info.value.details()
    assert "batch batch_1 may still run on OpenAI" in info.value.details()
