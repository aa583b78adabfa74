"""The reference connector: stateless, fails bad durations as tasks, never as server errors."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time

import pytest
from flyteidl.core import execution_pb2, tasks_pb2

from core_connectors import ConnectorRegistry
from core_connectors.literals import python_to_literal_map
from core_connectors.testing import modules_after_discovery
from core_connectors_sleep import SleepConnector, SleepMetadata

TE = execution_pb2.TaskExecution


def template(custom=None) -> tasks_pb2.TaskTemplate:
    tt = tasks_pb2.TaskTemplate(type="sleep")
    if custom is not None:
        tt.custom.update(custom)
    return tt


@pytest.fixture
def connector():
    return SleepConnector()


async def test_duration_input_as_timedelta(connector):
    inputs = python_to_literal_map({"duration": dt.timedelta(seconds=30)})
    meta = await connector.create(task_template=template(), output_prefix="", inputs=inputs)
    assert 29 < meta.deadline - time.time() <= 30
    resource = await connector.get(resource_meta=meta)
    assert resource.phase == TE.RUNNING
    assert resource.message.endswith("s left") and 29 < resource.custom_info["seconds_left"] <= 30


@pytest.mark.parametrize("value", [0, 0.0])
async def test_zero_duration_succeeds_at_once(connector, value):
    meta = await connector.create(task_template=template(), inputs=python_to_literal_map({"duration": value}))
    assert (await connector.get(resource_meta=meta)).phase == TE.SUCCEEDED


async def test_custom_duration_when_no_input(connector):
    meta = await connector.create(task_template=template({"duration": 5}), inputs=None)
    assert 4 < meta.deadline - time.time() <= 5


async def test_input_wins_over_custom(connector):
    inputs = python_to_literal_map({"duration": 0})
    meta = await connector.create(task_template=template({"duration": 500}), inputs=inputs)
    assert (await connector.get(resource_meta=meta)).phase == TE.SUCCEEDED


@pytest.mark.parametrize(
    ("custom", "inputs", "message"),
    [
        (None, None, "no duration"),
        ({"duration": -1}, None, "non-negative"),
        (None, {"duration": "soon"}, "got str"),
        (None, {"duration": float("inf")}, "finite"),
    ],
)
async def test_bad_duration_fails_the_task_permanently(connector, custom, inputs, message):
    lm = python_to_literal_map(inputs) if inputs else None
    meta = await connector.create(task_template=template(custom), inputs=lm)
    resource = await connector.get(resource_meta=SleepMetadata.decode(meta.encode()))
    assert resource.phase == TE.FAILED and message in resource.message


async def test_stateless_any_replica_can_answer(connector):
    meta = await connector.create(task_template=template({"duration": 0}))
    other_replica = SleepConnector()
    assert (await other_replica.get(resource_meta=SleepMetadata.decode(meta.encode()))).phase == TE.SUCCEEDED


async def test_delete_is_an_idempotent_no_op(connector):
    meta = SleepMetadata(deadline=time.time() + 100)
    assert await connector.delete(resource_meta=meta) is None
    assert await connector.delete(resource_meta=meta) is None


def test_discovered_through_its_entry_point():
    with ConnectorRegistry.isolated(discover=True):
        assert isinstance(ConnectorRegistry.get_connector("sleep"), SleepConnector)
        (agent,) = [a for a in ConnectorRegistry.list_connectors() if a.name == "Sleep Connector"]
        assert [(c.name, c.version) for c in agent.supported_task_categories] == [("sleep", 0)]


def test_discovery_loads_no_server_and_no_local_runner():
    loaded = modules_after_discovery()
    assert "core_connectors_sleep" in loaded
    assert not {m for m in loaded if m.split(".")[0] in ("grpc", "prometheus_client", "rich", "asyncio")}


def test_listed_by_the_cli_from_a_subprocess():
    out = subprocess.run(
        [sys.executable, "-m", "core_connectors", "list", "--json"], capture_output=True, text=True, check=True
    ).stdout
    assert "Sleep Connector" in [c["name"] for c in json.loads(out)["connectors"]]
