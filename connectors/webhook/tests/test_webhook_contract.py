"""The contract suite of core-connectors, run against the webhook connector and a local HTTP stand-in."""

from __future__ import annotations

import asyncio

import pytest
from flyteidl.core.execution_pb2 import TaskExecution

from core_connectors.literals import python_to_literal_map
from core_connectors.testing import SyncConnectorContract

pytestmark = [pytest.mark.network, pytest.mark.usefixtures("secret_env")]


class TestWebhookContract(SyncConnectorContract):
    entry_point = "webhook"
    vendor_modules = ("httpx", "httpcore")

    @pytest.fixture
    def connector(self, make_connector):
        return make_connector()

    @pytest.fixture
    def task_template(self, stand_in, template, secret_env):
        authorized = {"Authorization": f"Bearer {secret_env}"}
        stand_in.expect_request("/hook", method="POST", headers=authorized).respond_with_json({"ok": True})
        yield template(
            url=stand_in.url_for("/hook"),
            headers={"Authorization": "Bearer {secrets.webhook_token}"},
            data={"n": "{inputs.n}"},
            dynamic_inputs={"n": int},
        )
        stand_in.check_assertions()  # every request the suite made matched: the secret went out

    @pytest.fixture
    def inputs(self):
        return python_to_literal_map({"n": 3})

    @pytest.fixture
    def failing_case(self, stand_in, template, secret_env):
        # The receiver refuses the token and quotes it back: the task's message must not repeat it.
        stand_in.expect_request("/denied").respond_with_data(f"invalid token {secret_env}", status=403)
        tt = template(url=stand_in.url_for("/denied"), headers={"X-Token": "{secrets.webhook_token}"})
        return tt, None

    def test_the_contract_task_succeeds(self, connector, task_template, inputs, tmp_path):
        """The checks above ran a webhook that was delivered, not one that failed everywhere alike."""
        resource = asyncio.run(connector.do(task_template=task_template, inputs=inputs, output_prefix=str(tmp_path)))
        assert (resource.phase, resource.message) == (TaskExecution.SUCCEEDED, "Webhook was successfully invoked!")
