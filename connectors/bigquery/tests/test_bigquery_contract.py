"""The contract suite of core-connectors, run against the BigQuery connector and the BigQuery stand-in."""

from __future__ import annotations

import pytest

from core_connectors.testing import AsyncConnectorContract
from core_connectors_bigquery import BigQueryConnector
from core_connectors_bigquery.testing import make_inputs, make_template

pytestmark = [pytest.mark.network, pytest.mark.usefixtures("fake_bq")]


class TestBigQueryContract(AsyncConnectorContract):
    entry_point = "bigquery"
    vendor_modules = ("google.cloud.bigquery", "google.auth", "google.api_core")
    idempotent_create = True  # the job id comes from the task execution id

    @pytest.fixture
    def connector(self):
        return BigQueryConnector()

    @pytest.fixture
    def task_template(self):
        return make_template(sql="SELECT * FROM t WHERE n = @n", inputs={"n": int})

    @pytest.fixture
    def inputs(self, task_template):
        return make_inputs(task_template, n=3)

    @pytest.fixture
    def failing_case(self):
        template = make_template(custom={"ProjectID": ""})
        return template, None

    @pytest.fixture
    def metadata_samples(self):
        # flytekitplugins-bigquery 1.16's BigQueryMetadata, as its connector wrote it.
        return [b'{"job_id": "flyte_abc", "project": "proj", "location": "US"}']
