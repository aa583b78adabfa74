"""The Batch connector against the stand-in, through the real openai client."""

from __future__ import annotations

import json
import logging
import pickle

import pytest
from flyteidl.admin import agent_pb2
from flyteidl.core import identifier_pb2
from flyteidl.core.execution_pb2 import TaskExecution

from core_connectors import ResourceMetaDecodeError
from core_connectors.literals import MSGPACK_TAG, literal_to_python, python_to_literal_map
from core_connectors_openai import BatchEndpointConnector, BatchEndpointMetadata, _client
from core_connectors_openai.testing import batch_template

pytestmark = pytest.mark.network

API_KEY = "sk-proj-DISTINCTIVEsecret0123456789abcdef"  # as in conftest
P = TaskExecution


def inputs(**values):
    return python_to_literal_map(values)


async def start(fake, jsonl_file, *steps, config=None, org=None):
    """Upload the input, script the batch's progression, create it; return the connector and handle."""
    if steps:
        fake.script_batches(list(steps))
    file_id = fake.add_file(jsonl_file.read_bytes())
    connector = BatchEndpointConnector()
    meta = await connector.create(batch_template(config, org), "", inputs(input_file_id=file_id), None)
    return connector, meta


async def test_a_batch_goes_from_validating_to_succeeded_with_its_result(fake, jsonl_file):
    connector, meta = await start(fake, jsonl_file, "validating", "in_progress", "finalizing", "completed")
    assert meta.error is None and meta.batch_id.startswith("batch")
    phases = []
    for _ in range(4):
        resource = await connector.get(meta)
        phases.append(resource.phase)
        if resource.phase != P.SUCCEEDED:
            assert resource.outputs is None  # outputs only on SUCCEEDED
    assert phases == [P.INITIALIZING, P.RUNNING, P.RUNNING, P.SUCCEEDED]
    assert resource.custom_info["request_counts"] == {"total": 2, "completed": 2, "failed": 0}
    assert resource.message == "2 of 2 requests done, 0 failed"
    assert resource.log_links[0].uri == f"https://platform.openai.com/batches/{meta.batch_id}"

    result = resource.outputs.literals["result"]
    assert result.scalar.binary.tag == MSGPACK_TAG  # a STRUCT as flytekit 1.16 writes it
    value = literal_to_python(result)
    assert value["id"] == meta.batch_id and value["status"] == "completed" and value["output_file_id"]


async def test_flytekit_reads_the_result_as_a_dict(fake, jsonl_file, flytekit_openai):
    import flytekit
    from flytekit.core.type_engine import TypeEngine
    from flytekit.models.literals import Literal

    connector, meta = await start(fake, jsonl_file, "completed")
    resource = await connector.get(meta)
    literal = Literal.from_flyte_idl(resource.outputs.literals["result"])
    ctx = flytekit.FlyteContextManager.current_context()
    for python_type in (dict, dict):
        value = TypeEngine.to_python_value(ctx, literal, python_type)
        assert value["id"] == meta.batch_id and value["request_counts"]["total"] == 2


async def test_the_config_defaults_and_overrides_reach_the_api(fake, jsonl_file):
    await start(fake, jsonl_file, config={"metadata": {"run": "7"}}, org="org-9")
    request = fake.requests[-1]
    assert request.body["completion_window"] == "24h" and request.body["endpoint"] == "/v1/chat/completions"
    assert request.body["metadata"] == {"run": "7"}
    assert request.headers["openai-organization"] == "org-9"

    await start(fake, jsonl_file, config={"endpoint": "/v1/embeddings"})
    assert fake.requests[-1].body["endpoint"] == "/v1/embeddings"


def execution(attempt=0, name="f1a2b3"):
    """What propeller sends with CreateTask (the same for its retries of one call)."""
    node = identifier_pb2.NodeExecutionIdentifier(
        node_id="n0", execution_id=identifier_pb2.WorkflowExecutionIdentifier(project="p", domain="d", name=name)
    )
    return agent_pb2.TaskExecutionMetadata(
        task_execution_id=identifier_pb2.TaskExecutionIdentifier(node_execution_id=node, retry_attempt=attempt)
    )


async def test_a_retried_create_adopts_the_batch_it_started(fake, jsonl_file):
    """Propeller retries a CreateTask whose reply it did not get: one batch runs, and both handles name it."""
    file_id = fake.add_file(jsonl_file.read_bytes())
    connector = BatchEndpointConnector()
    template = batch_template({"metadata": {"run": "7"}})
    first = await connector.create(template, "", inputs(input_file_id=file_id), execution())
    again = await connector.create(template, "", inputs(input_file_id=file_id), execution())
    assert again == first and len(fake.batches) == 1
    assert fake.batches[first.batch_id].data["metadata"] == {"run": "7", "flyte_task_execution": "p/d/f1a2b3/n0/0"}
    assert fake.paths("POST").count("/v1/batches") == 1


async def test_a_new_attempt_or_a_cancelled_batch_gets_a_batch_of_its_own(fake, jsonl_file):
    file_id = fake.add_file(jsonl_file.read_bytes())
    connector = BatchEndpointConnector()
    first = await connector.create(batch_template(), "", inputs(input_file_id=file_id), execution(0))
    second = await connector.create(batch_template(), "", inputs(input_file_id=file_id), execution(1))
    assert second.batch_id != first.batch_id
    await connector.delete(second)  # cancelled: a retry of attempt 1 must not adopt it
    third = await connector.create(batch_template(), "", inputs(input_file_id=file_id), execution(1))
    assert len({first.batch_id, second.batch_id, third.batch_id}) == 3


async def test_the_handle_is_json_and_round_trips(fake, jsonl_file):
    connector, meta = await start(fake, jsonl_file, org="org-1")
    data = meta.encode()
    assert json.loads(data) == {"batch_id": meta.batch_id, "openai_org": "org-1", "error": None, "retryable": False}
    assert BatchEndpointMetadata.decode(data) == meta
    assert BatchEndpointMetadata.decode(b'{"batch_id": "b", "openai_org": null}').batch_id == "b"


class _Trap:
    """Unpickling this would create a file: the proof that a pickle is never loaded."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def test_a_pickled_handle_from_flytekit_is_refused_with_a_reason_and_never_loaded(tmp_path):
    trap = tmp_path / "unpickled"
    for data in (pickle.dumps(_Trap(trap), protocol=5), pickle.dumps(_Trap(trap), protocol=2)):
        with pytest.raises(ResourceMetaDecodeError, match="pickle.*flytekitplugins-openai"):
            BatchEndpointMetadata.decode(data)
    assert not trap.exists()


def test_flytekits_own_handle_bytes_are_refused(flytekit_openai):
    from flytekitplugins.openai.batch.connector import BatchEndpointMetadata as Theirs

    data = Theirs(openai_org="org", batch_id="batch_1").encode()  # cloudpickle, as their service wrote it
    with pytest.raises(ResourceMetaDecodeError, match="never unpickled.*batch batch_1 may still run"):
        BatchEndpointMetadata.decode(data)


def _errors(*lines):
    return {"object": "list", "data": [{"code": c, "line": n, "message": m, "param": None} for n, c, m in lines]}


async def test_a_failed_batch_summarises_every_error_line(fake, jsonl_file):
    errors = _errors((1, "invalid_request", "model missing"), (2, "invalid_json", "bad line"), (None, "x", None))
    connector, meta = await start(fake, jsonl_file, {"status": "failed", "errors": errors})
    resource = await connector.get(meta)
    assert resource.phase == P.FAILED and resource.outputs is None
    assert resource.message.splitlines() == [
        "batch failed (0 of 2 requests done, 0 failed):",
        "line 1: invalid_request: model missing",
        "line 2: invalid_json: bad line",
        "x",
    ]


@pytest.mark.parametrize(
    "status, phase",
    [("expired", P.FAILED), ("cancelled", P.ABORTED), ("cancelling", P.RUNNING), ("finalizing", P.RUNNING)],
)
async def test_statuses_map_onto_phases(fake, jsonl_file, status, phase):
    connector, meta = await start(fake, jsonl_file, status)
    resource = await connector.get(meta)
    assert resource.phase == phase and resource.outputs is None


async def test_an_unknown_status_keeps_running_with_a_message(fake, jsonl_file):
    connector, meta = await start(fake, jsonl_file, "paused_for_lunch")
    resource = await connector.get(meta)
    assert resource.phase == P.RUNNING
    assert "unknown batch status 'paused_for_lunch'" in resource.message


async def test_a_partly_failed_batch_succeeds_and_says_so(fake, jsonl_file):
    connector, meta = await start(
        fake, jsonl_file, {"status": "completed", "request_counts": {"total": 2, "completed": 1, "failed": 1}}
    )
    resource = await connector.get(meta)
    assert resource.phase == P.SUCCEEDED and resource.outputs is not None
    assert resource.message.startswith("completed with failures: 1 of 2 requests done, 1 failed (error file file-")


@pytest.mark.parametrize(
    "status, phase, text",
    [(400, P.FAILED, "Invalid 'input_file_id'"), (429, P.RETRYABLE_FAILED, "429"), (500, P.RETRYABLE_FAILED, "500")],
)
async def test_a_batch_that_cannot_be_created_fails_at_the_first_poll(fake, status, phase, text):
    if status != 400:
        fake.respond("POST", "/v1/batches", status, headers={"retry-after": "0"}, times=2)
    connector = BatchEndpointConnector()
    meta = await connector.create(batch_template(), "", inputs(input_file_id="file-nope"), None)
    assert meta.error and text in meta.error
    resource = await connector.get(BatchEndpointMetadata.decode(meta.encode()))
    assert resource.phase == phase and text in resource.message
    await connector.delete(meta)  # nothing to cancel
    assert fake.paths("GET") == []


async def test_a_missing_input_fails_without_calling_the_api(fake):
    meta = await BatchEndpointConnector().create(batch_template(), "", inputs(), None)
    resource = await BatchEndpointConnector().get(meta)
    assert resource.phase == P.FAILED and "input_file_id" in resource.message
    assert fake.requests == []


@pytest.mark.parametrize("config", ["abc", 5, ["x"]])
async def test_a_config_that_is_not_a_dict_fails_without_calling_the_api(fake, config):
    template = batch_template({})
    template.custom.update({"config": config})
    meta = await BatchEndpointConnector().create(template, "", inputs(input_file_id="file-1"), None)
    resource = await BatchEndpointConnector().get(meta)
    assert resource.phase == P.FAILED and "config must be a dict" in resource.message
    assert fake.requests == []


async def test_a_poll_that_fails_briefly_keeps_the_task_running(fake, jsonl_file):
    connector, meta = await start(fake, jsonl_file)
    fake.respond("GET", "/v1/batches/", 503, headers={"retry-after": "0"}, times=2)
    resource = await connector.get(meta)
    assert resource.phase == P.RUNNING and "status unknown, will ask again" in resource.message
    assert (await connector.get(meta)).phase == P.RUNNING  # the next poll reads the batch again


async def test_a_slow_poll_is_bounded_by_the_timeout(fake, jsonl_file):
    connector, meta = await start(fake, jsonl_file)
    fake.respond("GET", "/v1/batches/", 200, None, delay=3, times=2)
    resource = await BatchEndpointConnector(timeout=0.3, max_retries=0).get(meta)
    assert resource.phase == P.RUNNING and "did not answer" in resource.message


async def test_an_unknown_batch_or_a_refused_key_fails(fake, jsonl_file, caplog):
    caplog.set_level(logging.DEBUG)
    resource = await BatchEndpointConnector().get(BatchEndpointMetadata(batch_id="batch-404"))
    assert resource.phase == P.FAILED and "404" in resource.message

    connector, meta = await start(fake, jsonl_file)
    fake.api_key = "sk-another-valid-key-only"
    resource = await connector.get(meta)
    assert resource.phase == P.FAILED and "401" in resource.message
    assert API_KEY not in resource.message and API_KEY not in caplog.text


async def test_delete_cancels_and_is_idempotent(fake, jsonl_file):
    connector, meta = await start(fake, jsonl_file, "in_progress")
    await connector.get(meta)
    await connector.delete(meta)
    assert fake.paths("POST")[-1] == f"/v1/batches/{meta.batch_id}/cancel"
    assert (await connector.get(meta)).phase == P.ABORTED
    await connector.delete(meta)  # already cancelled: 409, fine
    await connector.delete(BatchEndpointMetadata(batch_id="batch-unknown"))  # 404, fine


async def test_delete_of_a_finished_batch_is_fine(fake, jsonl_file):
    connector, meta = await start(fake, jsonl_file, "completed")
    await connector.get(meta)
    await connector.delete(meta)


async def test_delete_raises_a_clean_error_when_the_api_is_down(fake, jsonl_file):
    connector, meta = await start(fake, jsonl_file)
    fake.respond("POST", "/v1/batches/", 500, headers={"retry-after": "0"}, times=2)
    with pytest.raises(_client.OpenAIConnectorError, match="cannot cancel batch .*500") as info:
        await connector.delete(meta)
    assert info.value.__cause__ is None and info.value.__suppress_context__  # no SDK error with request details


async def test_a_429_asking_to_wait_longer_than_the_budget_keeps_running(fake, jsonl_file):
    connector, meta = await start(fake, jsonl_file)
    fake.respond("GET", "/v1/batches/", 429, headers={"retry-after": "60"}, times=2)
    resource = await BatchEndpointConnector(timeout=0.3).get(meta)
    assert resource.phase == P.RUNNING and "did not answer within 0.3 s" in resource.message


async def test_a_key_of_any_shape_is_kept_out_of_messages(fake, jsonl_file, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    odd_key = "azure0123456789abcdefDISTINCT"
    monkeypatch.setenv("_FSEC_FLYTE_OPENAI_API_KEY", odd_key)  # refused by the stand-in, which echoes it
    meta = await BatchEndpointConnector().create(batch_template(), "", inputs(input_file_id="file-1"), None)
    resource = await BatchEndpointConnector().get(meta)
    assert resource.phase == P.FAILED and "401" in resource.message
    assert odd_key not in resource.message and odd_key not in caplog.text
