"""The contract suite of core-connectors, run against the Sensor connector with its installed file sensor."""

from __future__ import annotations

import pytest
from flyteidl.core import identifier_pb2, interface_pb2, tasks_pb2, types_pb2

from core_connectors.literals import python_to_literal_map
from core_connectors.testing import AsyncConnectorContract
from core_connectors_sensor import SensorConnector


class TestSensorContract(AsyncConnectorContract):
    entry_point = "sensor"
    vendor_modules = ("fsspec",)
    idempotent_create = True  # create starts nothing: it copies the template's sensor and the inputs

    @pytest.fixture
    def connector(self):
        return SensorConnector()  # the installed sensors: the file sensor's entry point

    @pytest.fixture
    def task_template(self):
        # What flytekit 1.16's FileSensor writes (test_flytekit_file_sensor checks it against flytekit's own).
        template = tasks_pb2.TaskTemplate(
            id=identifier_pb2.Identifier(resource_type=identifier_pb2.TASK, name="wait_for_file"), type="sensor"
        )
        template.custom.update(
            {"sensor_module": "flytekit.sensor.file_sensor", "sensor_name": "FileSensor", "sensor_config": None}
        )
        string = types_pb2.LiteralType(simple=types_pb2.STRING)
        template.interface.inputs.variables["path"].CopyFrom(interface_pb2.Variable(type=string))
        return template

    @pytest.fixture
    def inputs(self, tmp_path):
        (tmp_path / "ready.csv").write_text("a,b\n")
        return python_to_literal_map({"path": str(tmp_path / "ready.csv")})

    @pytest.fixture
    def failing_case(self, task_template):
        return task_template, python_to_literal_map({"path": "nosuchproto://bucket/key"})

    @pytest.fixture
    def metadata_samples(self):
        # flytekit 1.16's SensorMetadata, as its engine wrote it (json.dumps(asdict(...))).
        return [
            b'{"sensor_module": "flytekit.sensor.file_sensor", "sensor_name": "FileSensor", "sensor_config": null, '
            b'"inputs": {"path": "s3://bucket/ready.csv"}}'
        ]
