"""The same requests to `core-connectors serve` with the bridge and to flytekit's `pyflyte serve connector`:
real flytekitplugins-openai (ChatGPT, Batch) and -bigquery connectors, flytekit's FileSensor and Webhook,
the vendor APIs behind local stand-ins. Replies are compared field by field, as bytes where deterministic.

A job handle written by one service is polled on the other too: propeller keeps polling across a switch.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path
from typing import Any

import grpc
import pytest
from flyteidl.admin import agent_pb2
from flyteidl.core.execution_pb2 import TaskExecution

pytest.importorskip("flytekit", reason="flytekit 1.16 does not import on Python 3.13")

import flytekit
from flytekit.configuration import ImageConfig, SerializationSettings
from flytekit.core.type_engine import TypeEngine
from flytekit.extras.webhook import WebhookTask
from flytekit.sensor.file_sensor import FileSensor
from flytekit.tools.translator import get_serializable
from flytekitplugins.bigquery import BigQueryConfig, BigQueryTask
from flytekitplugins.openai import BatchEndpointTask, ChatGPTTask

from core_connectors.literals import literal_map_to_python
from core_connectors_bigquery.testing import make_metadata

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

IMAGES = ImageConfig.from_images("ghcr.io/flyteorg/flytekit:py3.12-1.16.31")
DEADLINE = 10


def template_of(task: Any) -> Any:
    settings = SerializationSettings(image_config=IMAGES, domain="development")
    return get_serializable(OrderedDict(), settings, task).template.to_flyte_idl()


def literals(values: dict[str, Any], types: dict[str, Any]) -> Any:
    ctx = flytekit.FlyteContextManager.current_context()
    return TypeEngine.dict_to_literal_map(ctx, values, types).to_flyte_idl()


def as_bytes(message: Any) -> bytes:
    return message.SerializeToString(deterministic=True)


def assert_same(mine: agent_pb2.Resource, theirs: agent_pb2.Resource) -> None:
    """Field by field; outputs as the values they hold, since a dict's msgpack follows the order of a protobuf
    map (the template's custom), which differs from one process to the next even between two pyflyte runs."""
    assert literal_map_to_python(mine.outputs) == literal_map_to_python(theirs.outputs)
    assert [lit.WhichOneof("value") for lit in mine.outputs.literals.values()] == [
        lit.WhichOneof("value") for lit in theirs.outputs.literals.values()
    ]
    mine, theirs = type(mine).FromString(as_bytes(mine)), type(theirs).FromString(as_bytes(theirs))
    mine.ClearField("outputs")
    theirs.ClearField("outputs")
    assert as_bytes(mine) == as_bytes(theirs)


def create(service: Any, template: Any, inputs: Any) -> bytes:
    request = agent_pb2.CreateTaskRequest(
        template=template, inputs=inputs, output_prefix="/tmp/out", task_execution_metadata=make_metadata()
    )
    return service.async_stub.CreateTask(request, timeout=DEADLINE).resource_meta


def get(service: Any, category: str, meta: bytes) -> agent_pb2.Resource:
    request = agent_pb2.GetTaskRequest(task_category=agent_pb2.TaskCategory(name=category), resource_meta=meta)
    return service.async_stub.GetTask(request, timeout=DEADLINE).resource


def delete(service: Any, category: str, meta: bytes) -> None:
    request = agent_pb2.DeleteTaskRequest(task_category=agent_pb2.TaskCategory(name=category), resource_meta=meta)
    service.async_stub.DeleteTask(request, timeout=DEADLINE)


def test_both_serve_the_same_flytekit_connectors(side_by_side):
    ours, theirs = side_by_side
    mine = {a.name: a for a in ours.metadata_stub.ListAgents(agent_pb2.ListAgentsRequest(), timeout=5).agents}
    for agent in theirs.metadata_stub.ListAgents(agent_pb2.ListAgentsRequest(), timeout=5).agents:
        assert as_bytes(mine[agent.name]) == as_bytes(agent), agent.name
    assert {"Sensor", "Webhook Connector", "ChatGPT Connector", "OpenAI Batch Endpoint Connector"} <= set(mine)
    assert "Bigquery Connector" in mine


def test_chatgpt_sync_replies_are_identical(side_by_side, stands):
    ours, theirs = side_by_side
    task = ChatGPTTask(name="chat", openai_organization="org-1", chatgpt_config={"model": "gpt-4o", "temperature": 0.5})
    template, inputs = template_of(task), literals({"message": "hello"}, {"message": str})
    replies = [service.execute_sync(template, inputs) for service in (ours, theirs)]
    assert replies[0].phase == TaskExecution.SUCCEEDED
    assert as_bytes(replies[0]) == as_bytes(replies[1])
    chats = [r for r in stands.openai.requests if r.path.endswith("/chat/completions")][-2:]
    assert chats[0].body == chats[1].body and chats[0].body["messages"][0]["content"] == "hello"
    assert chats[0].headers["authorization"] == f"Bearer {stands.openai.api_key}"


def test_webhook_sync_replies_are_identical(side_by_side, stands):
    ours, theirs = side_by_side
    task = WebhookTask(
        name="hook",
        url=stands.webhook.url,
        method="POST",
        data={"n": "{inputs.n}", "fixed": "x"},
        dynamic_inputs={"n": int},
        show_data=True,
    )
    template, inputs = template_of(task), literals({"n": 7}, {"n": int})
    replies = [service.execute_sync(template, inputs) for service in (ours, theirs)]
    assert replies[0].phase == TaskExecution.SUCCEEDED, replies[0].message
    assert_same(replies[0], replies[1])
    assert literal_map_to_python(replies[0].outputs)["info"]["input_data"] == {"n": 7, "fixed": "x"}
    assert [json.loads(body) for _, _, body in stands.webhook.requests[-2:]] == [{"n": 7, "fixed": "x"}] * 2


def test_batch_async_replies_are_identical_and_handles_poll_across(side_by_side, stands):
    from flytekitplugins.openai.batch.connector import BatchEndpointMetadata

    ours, theirs = side_by_side
    stands.openai.script_batches(["completed"], ["completed"])
    task = BatchEndpointTask(name="batch", openai_organization="org-1", config={"metadata": {"run": "1"}})
    template = template_of(task)
    inputs = literals({"input_file_id": stands.openai.add_file(b'{"custom_id": "1"}\n')}, {"input_file_id": str})
    metas = [create(service, template, inputs) for service in (ours, theirs)]
    handles = [BatchEndpointMetadata.decode(m) for m in metas]  # the connector's own choice: cloudpickle
    assert [h.openai_org for h in handles] == ["org-1", "org-1"] and handles[0].batch_id != handles[1].batch_id
    for meta in metas:  # each handle, on both services: identical replies
        mine, theirs_ = get(ours, "openai-batch", meta), get(theirs, "openai-batch", meta)
        assert mine.phase == TaskExecution.SUCCEEDED
        assert as_bytes(mine) == as_bytes(theirs_)
    for service in (ours, theirs):  # flytekit's connector cancels even a finished batch, which OpenAI refuses
        with pytest.raises(grpc.RpcError) as refused:
            delete(service, "openai-batch", metas[1])
        assert refused.value.code() == grpc.StatusCode.INTERNAL and "409" in refused.value.details()


def test_bigquery_async_replies_are_identical_and_handles_poll_across(side_by_side, stands):
    ours, theirs = side_by_side
    stands.bigquery.plan(states=["DONE"])
    task = BigQueryTask(
        name="reports.daily",
        inputs={"n": int},
        query_template="SELECT * FROM `p.ds.t` WHERE n > @n",
        task_config=BigQueryConfig(ProjectID="bq-proj", Location="EU"),
        output_structured_dataset_type=flytekit.StructuredDataset,
    )
    template, inputs = template_of(task), literals({"n": 3}, {"n": int})
    metas = [create(service, template, inputs) for service in (ours, theirs)]
    decoded = [json.loads(m) for m in metas]
    assert [d.pop("job_id") != "" for d in decoded] == [True, True]
    assert decoded[0] == decoded[1] == {"project": "bq-proj", "location": "EU"}
    for meta in metas:
        mine, theirs_ = get(ours, "bigquery_query_job_task", meta), get(theirs, "bigquery_query_job_task", meta)
        assert mine.phase == TaskExecution.SUCCEEDED
        assert mine.outputs.literals["results"].scalar.structured_dataset.uri.startswith("bq://")
        assert as_bytes(mine) == as_bytes(theirs_)
    inserts = stands.bigquery.requests_to("POST", "insert")[-2:]
    assert inserts[0].body["configuration"] == inserts[1].body["configuration"]
    for meta in metas:
        delete(ours, "bigquery_query_job_task", meta)
        delete(theirs, "bigquery_query_job_task", meta)


def test_file_sensor_replies_are_identical(side_by_side, tmp_path: Path):
    ours, theirs = side_by_side
    target = tmp_path / "arrives-later.csv"
    template = template_of(FileSensor(name="wait_for_file"))
    inputs = literals({"path": str(target)}, {"path": str})
    metas = [create(service, template, inputs) for service in (ours, theirs)]
    assert metas[0] == metas[1]  # SensorMetadata JSON, byte for byte
    waiting = [get(service, "sensor", metas[0]) for service in (ours, theirs)]
    assert waiting[0].phase == TaskExecution.RUNNING and as_bytes(waiting[0]) == as_bytes(waiting[1])
    target.write_text("a,b\n")
    done = [get(service, "sensor", metas[1]) for service in (ours, theirs)]
    assert done[0].phase == TaskExecution.SUCCEEDED and as_bytes(done[0]) == as_bytes(done[1])


def test_errors_get_our_status_codes_and_error_ids(side_by_side, stands):
    ours, theirs = side_by_side
    with pytest.raises(grpc.RpcError) as bad:
        get(ours, "bigquery_query_job_task", b"not json")
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "error id" in bad.value.details() and "Traceback" not in bad.value.details()

    unknown = json.dumps({"job_id": "gone", "project": "bq-proj", "location": "EU"}).encode()
    with pytest.raises(grpc.RpcError) as failed:
        get(ours, "bigquery_query_job_task", unknown)
    assert failed.value.code() == grpc.StatusCode.INTERNAL
    details = failed.value.details()
    assert "NotFound" in details and "error id" in details and "Traceback" not in details
    error_id = details.rsplit("error id ", 1)[1].rstrip(")")
    assert error_id in ours.log and "Traceback" in ours.log  # the operator finds the trace under that id

    with pytest.raises(grpc.RpcError) as theirs_failed:  # flytekit's answer to the same request
        get(theirs, "bigquery_query_job_task", unknown)
    assert theirs_failed.value.code() == grpc.StatusCode.INTERNAL
