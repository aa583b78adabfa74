"""BigQueryTask: the template it renders, and a local run through the connector against the stand-in."""

from __future__ import annotations

import asyncio
import sys

import pytest
from flyteidl.core import tasks_pb2, types_pb2
from google.protobuf import json_format

from core_connectors.local import TaskFailed
from core_connectors_bigquery import BigQueryConfig, BigQueryTask

pytestmark = pytest.mark.network


def query_task(**kwargs) -> BigQueryTask:
    return BigQueryTask(
        name="daily.count",
        query_template="SELECT COUNT(*) FROM `proj.ds.events` WHERE day = @day AND n > @n",
        task_config=BigQueryConfig(ProjectID="proj", Location="EU", QueryJobConfig={"useQueryCache": False}),
        inputs={"day": str, "n": int},
        progress=False,
        **kwargs,
    )


def test_the_template_has_flytekits_shape() -> None:
    template = query_task(output_structured_dataset_type=True).task_template()
    assert (template.type, template.task_type_version) == ("bigquery_query_job_task", 0)
    assert json_format.MessageToDict(template.custom) == {
        "ProjectID": "proj",
        "Location": "EU",
        "Domain": "development",
        "useQueryCache": False,
    }
    assert template.sql.statement.endswith("AND n > @n")
    assert template.interface.inputs.variables["n"].type.simple == types_pb2.INTEGER
    assert template.interface.outputs.variables["results"].type.HasField("structured_dataset_type")
    assert not query_task().task_template().interface.outputs.variables


@pytest.mark.skipif(sys.version_info >= (3, 13), reason="flytekit 1.16 does not import on Python 3.13")
def test_the_sql_is_what_flytekit_writes() -> None:
    """flytekitplugins-bigquery 1.16 asks for ``Sql.Dialect.ANSI``, which is 0 in flytekit's model: UNDEFINED in
    flyteidl, whose ANSI is 1. The same bytes here, not what the names suggest."""
    flytekit_bigquery = pytest.importorskip("flytekitplugins.bigquery")
    flytekit_task = flytekit_bigquery.BigQueryTask(
        name="daily.count",
        query_template="SELECT 1 WHERE @n > 0",
        task_config=flytekit_bigquery.BigQueryConfig(ProjectID="proj"),
        inputs={"n": int},
    )
    ours = BigQueryTask(
        name="daily.count", query_template="SELECT 1 WHERE @n > 0", task_config=BigQueryConfig(ProjectID="proj")
    )
    theirs = flytekit_task.get_sql(None).to_flyte_idl()  # the settings are not read
    assert theirs.dialect == tasks_pb2.Sql.UNDEFINED
    assert ours.task_template().sql == theirs


def test_a_query_job_config_object_gives_its_query_settings() -> None:
    from google.cloud import bigquery

    config = BigQueryConfig(ProjectID="proj", QueryJobConfig=bigquery.QueryJobConfig(priority="BATCH", dry_run=True))
    task = BigQueryTask(name="t", query_template="SELECT 1", task_config=config)
    custom = json_format.MessageToDict(task.task_template().custom)
    assert custom == {"ProjectID": "proj", "Location": None, "Domain": "development", "priority": "BATCH"}


def test_a_local_run_returns_the_results_table(fake_bq) -> None:
    fake_bq.plan(states=["PENDING", "RUNNING", "DONE"])
    uri = query_task(output_structured_dataset_type=True)(day="2024-05-01", n=3)
    (job,) = fake_bq.jobs.values()
    assert uri == f"bq://proj:_anon.anon_{job.job_id}"
    assert job.location == "EU"
    params = {p["name"]: p["parameterValue"]["value"] for p in job.configuration["query"]["queryParameters"]}
    assert params == {"day": "2024-05-01", "n": "3"}


async def test_a_local_run_inside_an_event_loop(fake_bq) -> None:
    assert await query_task().acall(day="2024-05-01", n=1) is None
    await asyncio.sleep(0)
    assert len(fake_bq.jobs) == 1


def test_a_failed_query_raises_with_bigquerys_message(fake_bq) -> None:
    fake_bq.plan(states=["DONE"], error_result={"reason": "invalidQuery", "location": "query", "message": "bad"})
    with pytest.raises(TaskFailed, match="invalidQuery at query: bad"):
        query_task()(day="x", n=1)
