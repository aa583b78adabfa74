"""WebhookTask run locally (no flytekit, no service), and how the plugin loads: lightly, by its entry point."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import core_connectors_webhook
from core_connectors import ConnectorRegistry
from core_connectors.local import TaskFailed
from core_connectors.testing import modules_after_discovery
from core_connectors_webhook import WebhookConnector, WebhookTask


@pytest.fixture
def webhook_registry(connector_registry, connector):
    connector_registry.register(connector)
    return connector_registry


@pytest.mark.network
def test_a_local_run_returns_info(webhook_registry, stand_in):
    stand_in.expect_request("/items/7", method="GET", query_string="q=hi").respond_with_data("item 7")
    task = WebhookTask(
        name="get-item",
        url=stand_in.url_for("/items/{inputs.item_id}"),
        method="GET",
        data={"q": "{inputs.s}"},
        dynamic_inputs={"s": str, "item_id": int},
        show_url=True,
    )
    assert task(s="hi", item_id=7) == {
        "status_code": 200,
        "response_data": "item 7",
        "url": stand_in.url_for("/items/7"),
    }


@pytest.mark.network
async def test_a_local_run_inside_a_running_loop(webhook_registry, stand_in):
    stand_in.expect_request("/hook", method="POST").respond_with_data("", status=204)
    task = WebhookTask(name="notify", url=stand_in.url_for("/hook"), data={"text": "done"})
    assert task()["status_code"] == 204
    assert (await task.acall())["status_code"] == 204


@pytest.mark.network
def test_a_failed_call_raises_with_the_connectors_message(webhook_registry, stand_in):
    stand_in.expect_request("/hook").respond_with_data("nope", status=404)
    with pytest.raises(
        TaskFailed, match=r"^Failed to run the task hook with error: Webhook failed with status code 404"
    ):
        WebhookTask(name="hook", url=stand_in.url_for("/hook"))()


def test_the_template_is_flytekits_shape():
    template = WebhookTask(name="hook", url="http://h", method="GET", timeout=3, follow_redirects=True).task_template()
    assert (template.type, template.task_type_version) == ("webhook", 0)
    assert dict(template.custom) == {
        "url": "http://h",
        "method": "GET",
        "headers": {},
        "data": {},
        "show_data": False,
        "show_url": False,
        "timeout_sec": 3.0,
        "follow_redirects": True,
    }
    assert list(template.interface.outputs.variables) == ["info"]


def test_discovered_through_its_entry_point():
    with ConnectorRegistry.isolated(discover=True):
        assert isinstance(ConnectorRegistry.get_connector("webhook"), WebhookConnector)
        (agent,) = [a for a in ConnectorRegistry.list_connectors() if a.name == "Webhook Connector"]
        assert agent.is_sync
        assert [(c.name, c.version) for c in agent.supported_task_categories] == [("webhook", 0)]


def test_discovery_loads_no_http_client():
    loaded = modules_after_discovery()
    assert "core_connectors_webhook" in loaded
    assert not {m for m in loaded if m.split(".")[0] in ("httpx", "httpcore", "anyio", "h11", "grpc", "asyncio")}
    assert "core_connectors.local" not in loaded and "core_connectors_webhook._http" not in loaded


def test_webhook_task_is_exported_lazily():
    assert "WebhookTask" in core_connectors_webhook.__all__
    assert core_connectors_webhook.WebhookTask is WebhookTask
    with pytest.raises(AttributeError):
        core_connectors_webhook.NoSuchThing  # noqa: B018
    code = "import sys, core_connectors_webhook; sys.exit('core_connectors.local' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


def test_listed_by_the_cli_from_a_subprocess():
    out = subprocess.run(
        [sys.executable, "-m", "core_connectors", "list", "--json"], capture_output=True, text=True, check=True
    ).stdout
    assert "Webhook Connector" in [c["name"] for c in json.loads(out)["connectors"]]


def test_a_bad_environment_setting_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("CORE_CONNECTORS_WEBHOOK_MAX_RESPONSE_BYTES", "1MB")
    with pytest.raises(ValueError, match="CORE_CONNECTORS_WEBHOOK_MAX_RESPONSE_BYTES must be a whole number"):
        WebhookConnector()
