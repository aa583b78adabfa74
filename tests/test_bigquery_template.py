"""Our BigQueryTask renders the template flytekitplugins-bigquery's BigQueryTask renders (flytekit made it)."""

from __future__ import annotations

import datetime as dt
import sys
from collections import OrderedDict

import pytest

if sys.version_info >= (3, 13):
    pytest.skip("flytekit 1.16 does not import on Python 3.13", allow_module_level=True)

import flytekitplugins.bigquery as flytekit_bigquery
from flytekit import StructuredDataset
from flytekit.configuration import ImageConfig, SerializationSettings
from flytekit.tools.translator import get_serializable
from google.cloud import bigquery

import core_connectors_bigquery as ours

IMAGES = ImageConfig.from_images("ghcr.io/flyteorg/flytekit:py3.12-1.16.31")  # auto_default_image() fails on 3.13
SQL = "SELECT * FROM `p.ds.t` WHERE day = @day AND n > @n AND tag IN UNNEST(@tags)"
INPUTS = {"day": dt.datetime, "n": int, "ratio": float, "name": str, "flag": bool, "tags": list[str]}


def settings(domain: str) -> SerializationSettings:
    return SerializationSettings(image_config=IMAGES, domain=domain)


@pytest.mark.parametrize("location", ["EU", None])
@pytest.mark.parametrize("with_results", [True, False])
def test_the_same_template_as_flytekits(location, with_results) -> None:
    job_config = bigquery.QueryJobConfig(
        use_query_cache=False,
        maximum_bytes_billed=5000,
        priority="BATCH",
        write_disposition="WRITE_TRUNCATE",
        destination="dst.ds.tbl",
    )
    theirs = flytekit_bigquery.BigQueryTask(
        name="reports.daily",
        query_template=SQL,
        task_config=flytekit_bigquery.BigQueryConfig(ProjectID="bq-proj", Location=location, QueryJobConfig=job_config),
        inputs=INPUTS,
        output_structured_dataset_type=StructuredDataset if with_results else None,
    )
    mine = ours.BigQueryTask(
        name="reports.daily",
        query_template=SQL,
        task_config=ours.BigQueryConfig(ProjectID="bq-proj", Location=location, QueryJobConfig=job_config),
        inputs=INPUTS,
        output_structured_dataset_type=StructuredDataset if with_results else None,
        domain="production",
    )
    expected = get_serializable(OrderedDict(), settings("production"), theirs).template.to_flyte_idl()
    rendered = mine.task_template()

    assert (rendered.type, rendered.task_type_version) == (expected.type, expected.task_type_version)
    assert rendered.custom == expected.custom
    assert rendered.sql == expected.sql
    assert rendered.interface == expected.interface
    assert not rendered.HasField("container") and not expected.HasField("container")
