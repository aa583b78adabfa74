"""flytekitplugins-bigquery's own BigQueryTask templates through our service over gRPC, as propeller sends them.

The task is flytekit's ``BigQueryTask``, serialized by flytekit; inputs are written and outputs read by
flytekit's TypeEngine; the BigQuery behind the connector is the local stand-in, reached by the real client.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections import OrderedDict
from typing import Any

import pytest
from flyteidl.admin import agent_pb2
from flyteidl.core.execution_pb2 import TaskExecution

if sys.version_info >= (3, 13):
    pytest.skip("flytekit 1.16 does not import on Python 3.13", allow_module_level=True)

import flytekit
from flytekit import StructuredDataset
from flytekit.configuration import ImageConfig, SerializationSettings
from flytekit.core.type_engine import TypeEngine
from flytekit.models.literals import LiteralMap
from flytekit.tools.translator import get_serializable
from flytekitplugins.bigquery import BigQueryConfig, BigQueryTask
from google.cloud import bigquery

from core_connectors_bigquery import BigQueryConnector
from core_connectors_bigquery.testing import FakeBigQuery, make_metadata

pytestmark = pytest.mark.network

IMAGES = ImageConfig.from_images("ghcr.io/flyteorg/flytekit:py3.12-1.16.31")  # auto_default_image() fails on 3.13

DEADLINE = 10  # seconds: propeller's default for each call
CATEGORY = agent_pb2.TaskCategory(name="bigquery_query_job_task", version=0)
INPUTS = {"day": dt.datetime, "n": int, "tags": list[str], "extra": dict}


@pytest.fixture
def fake(monkeypatch, tmp_path):
    monkeypatch.setenv("FLYTE_SECRETS_DEFAULT_DIR", str(tmp_path))
    monkeypatch.delenv("_FSEC_GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    with FakeBigQuery() as server:
        monkeypatch.setenv("BIGQUERY_EMULATOR_HOST", server.url)
        yield server


@pytest.fixture
def service(connector_service, fake):
    return connector_service(BigQueryConnector())


def flytekit_task(**config: Any) -> BigQueryTask:
    return BigQueryTask(
        name="reports.daily",
        inputs=INPUTS,
        query_template="SELECT * FROM `p.ds.t` WHERE day = @day AND n > @n AND tag IN UNNEST(@tags)",
        task_config=BigQueryConfig(
            ProjectID="bq-proj",
            Location="EU",
            QueryJobConfig=bigquery.QueryJobConfig(
                use_query_cache=False, maximum_bytes_billed=10**9, priority="BATCH", **config
            ),
        ),
        output_structured_dataset_type=StructuredDataset,
    )


def template_of(task: Any):
    settings = SerializationSettings(image_config=IMAGES, domain="production")
    return get_serializable(OrderedDict(), settings, task).template.to_flyte_idl()


def literals(values: dict[str, Any], types: dict[str, Any]):
    ctx = flytekit.FlyteContextManager.current_context()
    return TypeEngine.dict_to_literal_map(ctx, values, types).to_flyte_idl()


def get(service, meta: bytes) -> agent_pb2.Resource:
    request = agent_pb2.GetTaskRequest(task_category=CATEGORY, resource_meta=meta)
    return service.async_stub.GetTask(request, timeout=DEADLINE).resource


def test_flytekits_bigquery_task_runs_through_create_get_delete(service, fake):
    fake.plan(states=["PENDING", "PENDING", "RUNNING", "DONE"])
    values = {"day": dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc), "n": 3, "tags": ["a", "b"], "extra": {"k": 1}}
    request = agent_pb2.CreateTaskRequest(
        template=template_of(flytekit_task()),
        inputs=literals(values, INPUTS),
        output_prefix="/tmp/out",
        task_execution_metadata=make_metadata(execution="f1a2b3"),
    )
    created = service.async_stub.CreateTask(request, timeout=DEADLINE)
    assert created.resource_meta.startswith(b'{"job_id": ')

    phases = [get(service, created.resource_meta).phase for _ in range(3)]
    assert phases == [TaskExecution.INITIALIZING, TaskExecution.RUNNING, TaskExecution.SUCCEEDED]
    done = get(service, created.resource_meta)
    (job,) = fake.jobs.values()
    assert done.log_links[0].name == "BigQuery Console"
    assert done.log_links[0].uri == (
        f"https://console.cloud.google.com/bigquery?project=bq-proj&j=bq:EU:{job.job_id}&page=queryresults"
    )
    ctx = flytekit.FlyteContextManager.current_context()
    assert done.outputs.literals["results"].scalar.structured_dataset.uri == f"bq://bq-proj:_anon.anon_{job.job_id}"
    outputs = TypeEngine.literal_map_to_kwargs(
        ctx, LiteralMap.from_flyte_idl(done.outputs), {"results": StructuredDataset}
    )
    assert isinstance(outputs["results"], StructuredDataset)  # flytekit reads it as it reads its own connector's

    (insert,) = fake.requests_to("POST", "insert")
    configuration = insert.body["configuration"]
    query = configuration["query"]
    assert (query["useQueryCache"], query["maximumBytesBilled"], query["priority"]) == (False, "1000000000", "BATCH")
    params = {p["name"]: p for p in query["queryParameters"]}
    assert params["day"]["parameterType"]["type"] == "TIMESTAMP"
    assert params["n"]["parameterType"]["type"] == "INT64"
    assert params["tags"]["parameterType"] == {"type": "ARRAY", "arrayType": {"type": "STRING"}}
    assert params["extra"]["parameterType"]["type"] == "JSON"
    assert configuration["labels"]["flyte-execution"] == "f1a2b3"
    assert insert.body["jobReference"]["location"] == "EU"

    service.async_stub.DeleteTask(
        agent_pb2.DeleteTaskRequest(task_category=CATEGORY, resource_meta=created.resource_meta), timeout=DEADLINE
    )
    assert len(fake.requests_to("POST", "cancel")) == 1


def test_a_retried_create_task_adopts_the_first_job(service, fake):
    request = agent_pb2.CreateTaskRequest(
        template=template_of(flytekit_task()),
        inputs=literals({"day": dt.datetime(2024, 1, 1), "n": 1, "tags": [], "extra": {}}, INPUTS),
        task_execution_metadata=make_metadata(execution="retry1"),
    )
    first = service.async_stub.CreateTask(request, timeout=DEADLINE)
    second = service.async_stub.CreateTask(request, timeout=DEADLINE)
    assert first.resource_meta == second.resource_meta
    assert len(fake.jobs) == 1


def test_metadata_written_by_flytekits_connector_is_polled_and_cancelled(service, fake):
    from flytekitplugins.bigquery.connector import BigQueryMetadata as FlytekitMetadata

    fake.add_job("legacy-proj", "bqjob_r123", location="US", states=["RUNNING"])
    meta = FlytekitMetadata(job_id="bqjob_r123", project="legacy-proj", location="US").encode()
    assert get(service, meta).phase == TaskExecution.RUNNING
    service.async_stub.DeleteTask(agent_pb2.DeleteTaskRequest(task_category=CATEGORY, resource_meta=meta), timeout=10)
    assert get(service, meta).phase == TaskExecution.ABORTED


def test_an_input_bigquery_cannot_take_fails_the_task_not_the_call(service, fake):
    task = BigQueryTask(
        name="bad",
        inputs={"wait": dt.timedelta},
        query_template="SELECT @wait",
        task_config=BigQueryConfig(ProjectID="bq-proj"),
    )
    request = agent_pb2.CreateTaskRequest(
        template=template_of(task), inputs=literals({"wait": dt.timedelta(seconds=1)}, {"wait": dt.timedelta})
    )
    created = service.async_stub.CreateTask(request, timeout=DEADLINE)
    resource = get(service, created.resource_meta)
    assert resource.phase == TaskExecution.FAILED
    assert "input 'wait'" in resource.message
    assert fake.requests == []


def test_a_job_failure_is_a_phase_with_bigquerys_reason(service, fake):
    fake.plan(states=["DONE"], error_result={"reason": "backendError", "location": "", "message": "try again"})
    request = agent_pb2.CreateTaskRequest(
        template=template_of(flytekit_task()),
        inputs=literals({"day": dt.datetime(2024, 1, 1), "n": 1, "tags": ["x"], "extra": {}}, INPUTS),
    )
    created = service.async_stub.CreateTask(request, timeout=DEADLINE)
    resource = get(service, created.resource_meta)
    assert resource.phase == TaskExecution.RETRYABLE_FAILED
    assert resource.message == "backendError: try again"
