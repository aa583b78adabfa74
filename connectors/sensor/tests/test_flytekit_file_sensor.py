"""Templates and metadata written by the real flytekit 1.16, sent over gRPC to our service."""

from __future__ import annotations

import asyncio
import json
import sys
from collections import OrderedDict
from dataclasses import asdict, dataclass

import pytest

if sys.version_info >= (3, 13):
    pytest.importorskip("flytekit", reason="flytekit 1.16 does not import on Python 3.13")

from flyteidl.admin import agent_pb2
from flyteidl.core import execution_pb2, tasks_pb2
from flytekit import FlyteContextManager
from flytekit.configuration import ImageConfig, SerializationSettings
from flytekit.core.type_engine import TypeEngine
from flytekit.models.literals import LiteralMap
from flytekit.models.task import TaskTemplate
from flytekit.sensor.file_sensor import FileSensor as FlytekitFileSensor
from flytekit.sensor.sensor_engine import SensorEngine
from flytekit.tools.translator import get_serializable

from core_connectors_sensor import SensorConnector, SensorMetadata

TE = execution_pb2.TaskExecution
CATEGORY = agent_pb2.TaskCategory(name="sensor", version=0)
SETTINGS = SerializationSettings(image_config=ImageConfig.from_images("ghcr.io/flyteorg/flytekit:py3.12-1.16.31"))


@dataclass
class StoreConfig:
    """A flytekit SensorConfig: storage options for the FileSensor."""

    anon: bool | None = None
    endpoint_url: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> StoreConfig:
        return cls(**d)


def flytekit_template(**kwargs) -> tasks_pb2.TaskTemplate:
    """What `pyflyte register` sends for a FileSensor: serialized by flytekit itself."""
    task = FlytekitFileSensor(name="wait_for_file", **kwargs)
    return get_serializable(OrderedDict(), SETTINGS, task).template.to_flyte_idl()


def flytekit_inputs(path: str):
    ctx = FlyteContextManager.current_context()
    return TypeEngine.dict_to_literal_map(ctx, {"path": path}, {"path": str})


@pytest.fixture
def service(connector_service):
    return connector_service(SensorConnector())  # the installed sensors: the file sensor's entry point


def create(service, template, path: str) -> bytes:
    request = agent_pb2.CreateTaskRequest(template=template, inputs=flytekit_inputs(path).to_flyte_idl())
    return service.async_stub.CreateTask(request).resource_meta


def get(service, meta: bytes) -> agent_pb2.Resource:
    return service.async_stub.GetTask(agent_pb2.GetTaskRequest(task_category=CATEGORY, resource_meta=meta)).resource


def test_the_template_is_what_we_read():
    template = flytekit_template()
    assert (template.type, template.task_type_version) == ("sensor", 0)
    assert dict(template.custom) == {
        "sensor_module": "flytekit.sensor.file_sensor",
        "sensor_name": "FileSensor",
        "sensor_config": None,
        "inputs": None,
    }
    assert list(template.interface.inputs.variables) == ["path"]


def test_a_file_that_appears_later(service, tmp_path):
    path = tmp_path / "later.csv"
    meta = create(service, flytekit_template(), str(path))
    for _ in range(2):
        running = get(service, meta)
        assert (running.phase, running.message) == (TE.RUNNING, f"waiting for {path} to exist")
    path.write_text("a,b\n")
    assert get(service, meta).phase == TE.SUCCEEDED


def test_a_missing_file_keeps_the_task_running(service, tmp_path):
    meta = create(service, flytekit_template(), f"file://{tmp_path}/never/there")
    assert [get(service, meta).phase for _ in range(3)] == [TE.RUNNING] * 3


def test_a_path_no_filesystem_serves_fails_the_task(service):
    resource = get(service, create(service, flytekit_template(), "nosuchproto://bucket/key"))
    assert resource.phase == TE.FAILED
    assert resource.message.startswith("FileSensor failed: ValueError") and "nosuchproto" in resource.message


def test_our_metadata_is_byte_for_byte_flytekits(service, tmp_path):
    template, path = flytekit_template(), str(tmp_path / "x")
    inputs = LiteralMap.from_flyte_idl(flytekit_inputs(path).to_flyte_idl())
    theirs = asyncio.run(SensorEngine().create(task_template=TaskTemplate.from_flyte_idl(template), inputs=inputs))
    assert create(service, template, path) == theirs.encode()


def test_metadata_written_by_flytekits_engine_is_polled_by_ours(service, tmp_path):
    path = tmp_path / "from_flytekit"
    template = TaskTemplate.from_flyte_idl(flytekit_template())
    inputs = LiteralMap.from_flyte_idl(flytekit_inputs(str(path)).to_flyte_idl())
    meta = asyncio.run(SensorEngine().create(task_template=template, inputs=inputs)).encode()  # flytekit's service
    assert json.loads(meta)["inputs"] == {"path": str(path)}
    assert get(service, meta).phase == TE.RUNNING
    path.touch()
    assert get(service, meta).phase == TE.SUCCEEDED
    assert SensorMetadata.decode(meta).encode() == meta


def test_sensor_config_is_honoured_within_the_options_allowed(service, tmp_path):
    anon = flytekit_template(sensor_config=StoreConfig(anon=True))
    meta = create(service, anon, str(tmp_path / "f"))
    assert json.loads(meta)["sensor_config"] == {"anon": True, "endpoint_url": None}
    assert get(service, meta).phase == TE.RUNNING
    (tmp_path / "f").touch()
    assert get(service, meta).phase == TE.SUCCEEDED

    elsewhere = flytekit_template(sensor_config=StoreConfig(endpoint_url="https://attacker.invalid"))
    resource = get(service, create(service, elsewhere, "s3://bucket/key"))
    assert resource.phase == TE.FAILED
    assert resource.message.startswith("FileSensor failed: ValueError: sensor_config option 'endpoint_url' refused")


def test_metadata_naming_an_arbitrary_module_imports_nothing(service, tmp_path, monkeypatch):
    witness = tmp_path / "imported"
    (tmp_path / "acme_payload.py").write_text(f"open({str(witness)!r}, 'w').close()\nclass Evil: pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))  # importable, were anything to import it
    meta = json.dumps(
        {"sensor_module": "acme_payload", "sensor_name": "Evil", "sensor_config": None, "inputs": {"x": 1}}
    ).encode()
    resource = get(service, meta)
    assert resource.phase == TE.FAILED
    assert resource.message.startswith("no installed sensor serves acme_payload.Evil; sensors served here: ")
    assert "flytekit.sensor.file_sensor.FileSensor" in resource.message
    assert "acme_payload" not in sys.modules and not witness.exists()
