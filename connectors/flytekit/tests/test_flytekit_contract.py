"""The contract suite of core-connectors, run against the bridge serving flytekit 1.16's own connectors as
discovery hands them to the service: the Sensor (its FileSensor on a local path) and the Webhook (to the local
stand-in of conftest)."""

from __future__ import annotations

import asyncio
import json
import socket
from collections import OrderedDict

import pytest
from flyteidl.core.execution_pb2 import TaskExecution

pytest.importorskip("flytekit", reason="flytekit 1.16 does not import on Python 3.13")

from flytekit.configuration import ImageConfig, SerializationSettings
from flytekit.extras.webhook import WebhookTask
from flytekit.sensor.file_sensor import FileSensor
from flytekit.tools.translator import get_serializable

from core_connectors import Bridged
from core_connectors.literals import python_to_literal_map
from core_connectors.testing import AsyncConnectorContract, SyncConnectorContract
from core_connectors_flytekit import provide_connectors

SETTINGS = SerializationSettings(image_config=ImageConfig.from_images("ghcr.io/flyteorg/flytekit:py3.12-1.16.31"))


def bridged(task_type: str):
    """The bridge's connector for ``task_type``, as its plugin hook hands it to discovery."""
    (connector,) = [
        item.connector
        for item in provide_connectors()
        if isinstance(item, Bridged) and item.connector.task_category.name == task_type
    ]
    return connector


class BridgedContract:
    """What the contract classes of bridged connectors share: they are served through the bridge's entry point."""

    entry_point = "flytekit"
    vendor_modules = ()  # flytekit and its plugins are what the bridge discovers


class TestBridgedSensorContract(BridgedContract, AsyncConnectorContract):
    idempotent_create = True  # flytekit's SensorEngine.create starts nothing: it copies the template and inputs

    @pytest.fixture
    def connector(self):
        return bridged("sensor")

    @pytest.fixture
    def task_template(self):
        return get_serializable(OrderedDict(), SETTINGS, FileSensor(name="wait_for_file")).template.to_flyte_idl()

    @pytest.fixture
    def inputs(self, tmp_path):
        (tmp_path / "ready.csv").write_text("a,b\n")
        return python_to_literal_map({"path": str(tmp_path / "ready.csv")})

    @pytest.fixture
    def failing_case(self):
        """None: flytekit's SensorEngine has no failed answer, a poke that fails raises out of get (the
        service then answers INTERNAL with an error id, as it does for any connector that raises)."""
        return None

    @pytest.fixture
    def metadata_samples(self):
        """No samples: the bridge's metadata is flytekit's own SensorMetadata, so what flytekit wrote is what
        create makes here, and test_metadata_json_round_trip already decodes it with flytekit's class."""
        return []


@pytest.mark.network
class TestBridgedWebhookContract(BridgedContract, SyncConnectorContract):
    @pytest.fixture
    def connector(self):
        return bridged("webhook")

    @pytest.fixture
    def task_template(self, stands):
        task = WebhookTask(name="hook", url=stands.webhook.url, data={"n": "{inputs.n}"}, dynamic_inputs={"n": int})
        return get_serializable(OrderedDict(), SETTINGS, task).template.to_flyte_idl()

    @pytest.fixture
    def inputs(self):
        return python_to_literal_map({"n": 7})

    @pytest.fixture
    def failing_case(self):
        with socket.socket() as s:  # a loopback port that was free a moment ago: nobody listens there
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        task = WebhookTask(name="hook", url=f"http://127.0.0.1:{port}/hook")
        return get_serializable(OrderedDict(), SETTINGS, task).template.to_flyte_idl(), None

    def test_the_contract_task_succeeds(self, connector, task_template, inputs, stands):
        """The checks above ran a webhook that was delivered, not one that failed everywhere alike."""
        resource = asyncio.run(connector.do(task_template=task_template, output_prefix="", inputs=inputs))
        assert resource.phase == TaskExecution.SUCCEEDED, resource.message
        assert json.loads(stands.webhook.requests[-1][2]) == {"n": 7}
