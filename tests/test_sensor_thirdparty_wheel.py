"""A third-party sensor built as a real wheel (hatchling), installed in a fresh venv next to core + sensor."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow

# Runs inside the fresh venv: the service as `core-connectors serve` builds it (every installed plugin
# discovered), called over loopback with propeller's stubs.
POLL = """
import json, sys
from flyteidl.admin import agent_pb2
from flyteidl.core.execution_pb2 import TaskExecution
from core_connectors._registry import Registry
from core_connectors.server.testing import start_service

directory = sys.argv[1]
category = agent_pb2.TaskCategory(name="sensor", version=0)
service = start_service(registry=Registry(discover=True))


def get(module, name, config, inputs):
    fields = {"sensor_module": module, "sensor_name": name, "sensor_config": config, "inputs": inputs}
    request = agent_pb2.GetTaskRequest(task_category=category, resource_meta=json.dumps(fields).encode())
    resource = service.async_stub.GetTask(request).resource
    return [TaskExecution.Phase.Name(resource.phase), resource.message]


try:
    out = {
        "waiting": get("acme.sensors", "MarkerSensor", {"marker": "DONE"}, {"directory": directory}),
        "unknown": get("acme.sensors", "BrokenSensor", None, None),
    }
    open(directory + "/DONE", "w").close()
    out["done"] = get("acme.sensors", "MarkerSensor", {"marker": "DONE"}, {"directory": directory})
    print(json.dumps(out))
finally:
    service.stop()
"""


@pytest.fixture(scope="module")
def venv(build_wheel, fresh_venv):
    return fresh_venv(
        build_wheel(ROOT / "core"),
        build_wheel(ROOT / "connectors" / "sensor"),
        build_wheel(ROOT / "tests" / "distributions" / "sensor_thirdparty"),
    )


def test_a_third_party_sensor_is_served_and_a_broken_one_skipped(venv, tmp_path):
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-c", POLL, str(tmp_path)], capture_output=True, text=True, check=True
    )
    out = json.loads(result.stdout)
    assert out["waiting"] == ["RUNNING", f"waiting for DONE in {tmp_path}"]
    assert out["done"][0] == "SUCCEEDED"
    phase, message = out["unknown"]
    assert phase == "FAILED"
    assert "sensors served here: acme.sensors.MarkerSensor, flytekit.sensor.file_sensor.FileSensor" in message
    assert "broken (acme-sensors)" in message
    assert "skipped sensor plugin 'broken' from acme-sensors" in result.stderr
    assert "acme_sdk_that_is_not_installed" in result.stderr


def test_listed_with_its_distribution(venv):
    out = subprocess.run(
        [str(venv / "bin" / "core-connectors"), "list", "--json"], capture_output=True, text=True, check=True
    ).stdout
    (sensor,) = [c for c in json.loads(out)["connectors"] if c["name"] == "Sensor"]
    assert sensor["distribution"] == "core-connectors-sensor"
    assert sensor["task_categories"] == [{"name": "sensor", "version": 0}]
