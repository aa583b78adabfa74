"""The Sensor connector over gRPC, with sensors found through real entry points (no flytekit needed)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import http.server
import json
import socket
import subprocess
import sys
import threading
from importlib import metadata
from pathlib import Path

import grpc
import pytest
from flyteidl.admin import agent_pb2
from flyteidl.core import execution_pb2, literals_pb2, tasks_pb2

from core_connectors import ConnectorRegistry
from core_connectors.literals import python_to_literal_map
from core_connectors.testing import modules_after_discovery
from core_connectors_sensor import (
    ENTRY_POINT_GROUP,
    FileSensor,
    SensorCatalog,
    SensorConnector,
    SensorMetadata,
    is_transient_error,
)

TE = execution_pb2.TaskExecution
CATEGORY = agent_pb2.TaskCategory(name="sensor", version=0)

SENSORS = '''
import asyncio, socket, threading
from core_connectors_sensor import Sensor

STARTED, RELEASE = threading.Event(), threading.Event()


class Flag(Sensor):
    """Holds once the file named by the input exists; async, on the service's loop."""

    flytekit_names = ("acme.sensors.FlagSensor", "acme.legacy.OldFlagSensor")

    async def poke(self, flag: str, at_least: int = 0) -> bool:
        await asyncio.sleep(0)
        with open(flag) as f:
            return len(f.read()) >= at_least

    def awaiting(self, flag: str, at_least: int = 0) -> str:
        return f"waiting for {at_least} bytes in {flag}"


class Refused(Sensor):
    """Connects to a loopback port nobody listens on: a real transient error."""

    flytekit_names = ("acme.sensors.RefusedSensor",)

    def poke(self, port: int) -> bool:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return True


class Blocking(Sensor):
    """A plain def poke that blocks its thread until the test releases it."""

    flytekit_names = ("acme.sensors.BlockingSensor",)

    def poke(self) -> bool:
        STARTED.set()
        return RELEASE.wait(30)


class Denied(Sensor):
    flytekit_names = ("acme.sensors.DeniedSensor",)

    def poke(self) -> bool:
        raise PermissionError("access denied to bucket acme")


class Picky(Sensor):
    flytekit_names = ("acme.sensors.PickySensor",)

    def __init__(self, config=None):
        super().__init__(config)
        if "region" not in self.config:
            raise ValueError("sensor_config needs a region")

    def poke(self) -> bool:
        return True


class Duplicate(Sensor):
    flytekit_names = ("acme.sensors.FlagSensor",)

    def poke(self) -> bool:
        return True


class NotASensor:
    flytekit_names = ("acme.sensors.Nothing",)
'''


@pytest.fixture
def plugins(tmp_path, monkeypatch):
    """Entry points of the sensor group pointing at a module written for the test, and the file sensor's."""
    (tmp_path / "acme_test_sensors.py").write_text(SENSORS)
    monkeypatch.syspath_prepend(str(tmp_path))

    def ep(name: str, value: str) -> metadata.EntryPoint:
        return metadata.EntryPoint(name=name, value=value, group=ENTRY_POINT_GROUP)

    return [
        ep("file", "core_connectors_sensor.file:FileSensor"),
        ep("flag", "acme_test_sensors:Flag"),
        ep("refused", "acme_test_sensors:Refused"),
        ep("denied", "acme_test_sensors:Denied"),
        ep("blocking", "acme_test_sensors:Blocking"),
        ep("picky", "acme_test_sensors:Picky"),
        ep("duplicate", "acme_test_sensors:Duplicate"),
        ep("not_a_sensor", "acme_test_sensors:NotASensor"),
        ep("broken", "acme_sdk_that_is_not_installed.sensors:Broken"),
    ]


@pytest.fixture
def service(connector_service, plugins):
    return connector_service(SensorConnector(SensorCatalog(plugins)))


def template(module: str, name: str, config=None) -> tasks_pb2.TaskTemplate:
    tt = tasks_pb2.TaskTemplate(type="sensor")
    tt.custom.update({"sensor_module": module, "sensor_name": name, "sensor_config": config, "inputs": None})
    return tt


def create(service, tt, **inputs) -> bytes:
    request = agent_pb2.CreateTaskRequest(template=tt, inputs=python_to_literal_map(inputs) if inputs else None)
    return service.async_stub.CreateTask(request).resource_meta


def get(service, meta: bytes) -> agent_pb2.Resource:
    return service.async_stub.GetTask(agent_pb2.GetTaskRequest(task_category=CATEGORY, resource_meta=meta)).resource


def test_an_async_sensor_runs_until_its_condition_holds(service, tmp_path):
    flag = tmp_path / "flag"
    flag.write_text("ab")
    meta = create(service, template("acme.sensors", "FlagSensor"), flag=str(flag), at_least=3)
    assert json.loads(meta)["inputs"] == {"flag": str(flag), "at_least": 3}
    first = get(service, meta)
    assert (first.phase, first.message) == (TE.RUNNING, f"waiting for 3 bytes in {flag}")
    flag.write_text("abc")
    assert get(service, meta).phase == TE.SUCCEEDED


def test_a_blocking_poke_does_not_stall_the_service(service, tmp_path):
    import acme_test_sensors  # the module the entry points loaded

    request = agent_pb2.GetTaskRequest(
        task_category=CATEGORY, resource_meta=create(service, template("acme.sensors", "BlockingSensor"))
    )
    blocked = service.async_stub.GetTask.future(request)
    try:
        assert acme_test_sensors.STARTED.wait(10), "the blocking poke never started"
        (tmp_path / "flag").write_text("x")
        flag = create(service, template("acme.sensors", "FlagSensor"), flag=str(tmp_path / "flag"))
        request_flag = agent_pb2.GetTaskRequest(task_category=CATEGORY, resource_meta=flag)
        assert service.async_stub.GetTask(request_flag, timeout=5).resource.phase == TE.SUCCEEDED
        assert not blocked.done()  # still in its pool thread, while the loop served the other task
    finally:
        acme_test_sensors.RELEASE.set()
    assert blocked.result(timeout=10).resource.phase == TE.SUCCEEDED


def test_every_declared_name_is_served(service, tmp_path):
    (tmp_path / "flag").write_text("x")
    meta = create(service, template("acme.legacy", "OldFlagSensor"), flag=str(tmp_path / "flag"))
    assert get(service, meta).phase == TE.SUCCEEDED


def test_a_connection_error_is_retryable(service):
    with socket.socket() as s:  # a loopback port that was free a moment ago: nobody listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    resource = get(service, create(service, template("acme.sensors", "RefusedSensor"), port=port))
    assert resource.phase == TE.RETRYABLE_FAILED
    assert resource.message.startswith("Refused failed: ConnectionRefusedError") and "error id" in resource.message


def test_a_permanent_error_fails_with_its_message_and_no_traceback(service):
    resource = get(service, create(service, template("acme.sensors", "DeniedSensor")))
    assert resource.phase == TE.FAILED
    assert "PermissionError: access denied to bucket acme" in resource.message
    assert "Traceback" not in resource.message


def test_sensor_config_reaches_the_sensor(service):
    accepted = get(service, create(service, template("acme.sensors", "PickySensor", {"region": "eu"})))
    assert accepted.phase == TE.SUCCEEDED
    refused = get(service, create(service, template("acme.sensors", "PickySensor")))
    assert refused.phase == TE.FAILED and "sensor_config needs a region" in refused.message


def test_inputs_poke_does_not_take_fail_the_task(service, tmp_path):
    resource = get(service, create(service, template("acme.sensors", "FlagSensor"), flog=str(tmp_path)))
    assert resource.phase == TE.FAILED and "flog" in resource.message


def test_an_unknown_pair_fails_listing_what_is_served(service):
    resource = get(service, create(service, template("os", "system")))
    assert resource.phase == TE.FAILED
    assert "no installed sensor serves os.system" in resource.message
    assert (
        "acme.legacy.OldFlagSensor, acme.sensors.BlockingSensor, acme.sensors.DeniedSensor, acme.sensors.FlagSensor"
        in resource.message
    )
    assert "flytekit.sensor.file_sensor.FileSensor" in resource.message
    assert "broken (unknown distribution)" in resource.message  # the plugin that failed is named too


def test_a_template_naming_no_sensor_fails_the_task_not_the_call(service):
    resource = get(service, create(service, tasks_pb2.TaskTemplate(type="sensor")))
    assert resource.phase == TE.FAILED and "names no sensor" in resource.message


def test_delete_is_an_idempotent_no_op(service, tmp_path):
    meta = create(service, template("acme.sensors", "FlagSensor"), flag=str(tmp_path / "never"))
    for _ in range(2):
        service.async_stub.DeleteTask(agent_pb2.DeleteTaskRequest(task_category=CATEGORY, resource_meta=meta))


def test_metadata_that_does_not_decode_is_invalid_argument(service):
    with pytest.raises(grpc.RpcError) as raised:
        get(service, b'{"sensor_module": 3}')
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_any_replica_answers_from_the_metadata_alone(plugins, tmp_path):
    (tmp_path / "flag").write_text("x")
    meta = SensorMetadata("acme.sensors", "FlagSensor", None, {"flag": str(tmp_path / "flag")}).encode()
    other_replica = SensorConnector(SensorCatalog(plugins))
    resource = other_replica.get(SensorMetadata.decode(meta))
    assert asyncio.run(resource).phase == TE.SUCCEEDED  # an async poke: get hands back a coroutine


def test_broken_wrong_and_duplicate_plugins_are_skipped_and_reported(plugins, caplog):
    catalog = SensorCatalog(plugins)
    assert catalog.find("acme.sensors", "FlagSensor").__name__ == "Flag"  # the first to declare it keeps it
    failures = {f.entry_point: f.error for f in catalog.failures}
    assert set(failures) == {"duplicate", "not_a_sensor", "broken"}
    assert "ModuleNotFoundError" in failures["broken"]
    assert "not a Sensor subclass" in failures["not_a_sensor"]
    assert "already served by Flag" in failures["duplicate"]
    assert "skipped sensor plugin 'broken'" in caplog.text


def test_disable_by_name(plugins, monkeypatch):
    monkeypatch.setenv("CORE_CONNECTORS_DISABLE", "sleep, sensor.flag")
    catalog = SensorCatalog(plugins)
    assert catalog.find("acme.sensors", "FlagSensor").__name__ == "Duplicate"
    assert catalog.disabled == ["flag"] and "acme.legacy.OldFlagSensor" not in catalog.served()


def test_finding_never_imports_what_a_request_names(plugins, tmp_path):
    (tmp_path / "acme_request_named.py").write_text("raise SystemExit('imported!')\n")
    catalog = SensorCatalog(plugins)
    assert catalog.find("acme_request_named", "Anything") is None
    assert "acme_request_named" not in sys.modules


def test_file_sensor_on_local_files(tmp_path):
    sensor = FileSensor()
    assert not sensor.poke(str(tmp_path / "missing"))
    (tmp_path / "there").touch()
    assert sensor.poke(str(tmp_path / "there")) and sensor.poke(f"file://{tmp_path}/there")
    assert sensor.awaiting(path="s3://b/k") == "waiting for s3://b/k to exist"


@pytest.fixture
def loopback_web():
    """A web server on a loopback port that answers 404 to everything: its URL, and the requests it got as
    (method, path, Authorization header)."""
    requests: list[tuple[str, str, str | None]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def answer(self) -> None:
            requests.append((self.command, self.path, self.headers.get("Authorization")))
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_HEAD = do_POST = do_PUT = answer

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", requests
    server.shutdown()
    server.server_close()
    thread.join(10)


@pytest.fixture
def aws_credentials(tmp_path, monkeypatch):
    """Credentials of the service's own AWS identity (fake), and no other place botocore could look."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIASERVICEOWN")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "service-secret-access-key")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)


def poke_file_sensor(path: str, config: dict | None = None):
    """GetTask of a flytekit FileSensor task, served by the installed sensors."""
    return SensorConnector().get(SensorMetadata("flytekit.sensor.file_sensor", "FileSensor", config, {"path": path}))


@pytest.mark.network
@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_web_path_is_refused(loopback_web, scheme):
    url, requests = loopback_web
    resource = poke_file_sensor(url.replace("http", scheme, 1) + "/latest/meta-data/iam/security-credentials/")
    assert resource.phase == TE.FAILED
    assert f"FileSensor failed: ValueError: a FileSensor does not check '{scheme}://127.0.0.1" in resource.message
    assert "it checks local paths, file://, s3://, s3a://, gs://, gcs://, abfs://, abfss://, az:// only" in (
        resource.message
    )
    assert requests == []  # not even asked


def test_a_chained_url_is_refused(tmp_path):
    (tmp_path / "there").touch()  # fsspec would find it, through a cache in front of the local filesystem
    resource = poke_file_sensor(f"simplecache::file://{tmp_path}/there")
    assert resource.phase == TE.FAILED
    assert "chains filesystems ('::'), which a FileSensor does not check" in resource.message


@pytest.mark.network
def test_endpoint_url_is_refused(loopback_web, aws_credentials):
    url, requests = loopback_web
    resource = poke_file_sensor("s3://bucket/key", {"endpoint_url": url})
    assert resource.phase == TE.FAILED
    assert "sensor_config option 'endpoint_url' refused: a FileSensor task may set only anon and requester_pays" in (
        resource.message
    )
    assert "FSSPEC_<PROTOCOL>_<OPTION> (e.g. FSSPEC_S3_ENDPOINT_URL=http://minio:9000)" in resource.message
    assert requests == []  # before: a HEAD signed "Credential=AKIASERVICEOWN/..." sent to the task's endpoint


def test_every_other_sensor_config_option_is_refused(tmp_path):
    path = str(tmp_path / "f")  # local: nothing would reach the network even if an option got through
    for key in ("key", "secret", "token", "client_kwargs", "config_kwargs", "protocol", "file", "target_protocol"):
        resource = poke_file_sensor(path, {key: "x", "anon": True})
        assert resource.phase == TE.FAILED and f"sensor_config option {key!r} refused" in resource.message
    resource = poke_file_sensor(path, {"anon": "yes"})
    assert resource.phase == TE.FAILED and "'anon' must be true or false" in resource.message


@pytest.mark.network
def test_anon_checks_without_the_services_credentials(loopback_web, aws_credentials, monkeypatch):
    import fsspec.config

    url, requests = loopback_web
    operator: dict = {}  # the operator's storage options, as fsspec reads them from its variables at import
    fsspec.config.set_conf_env(operator, {"FSSPEC_S3_ENDPOINT_URL": url, "FSSPEC_S3_KEY": "AKIAOPERATOR"})
    monkeypatch.setitem(fsspec.config.conf, "s3", {**operator["s3"], "secret": "operator-secret"})

    assert poke_file_sensor("s3://bucket/key").phase == TE.RUNNING  # 404: not there yet
    assert requests and all(auth and "Credential=AKIAOPERATOR/" in auth for _, _, auth in requests)
    requests.clear()
    assert poke_file_sensor("s3://bucket/key", {"anon": True, "requester_pays": None}).phase == TE.RUNNING
    assert requests and all(auth is None for _, _, auth in requests)  # unsigned, at the operator's endpoint

    gcs, _ = FileSensor({"anon": True}).filesystem("gs://bucket/key")  # the client only: nothing is sent
    assert gcs.credentials.method == "anon"  # gcsfs has no anon option: it takes token="anon"


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (TimeoutError("slow"), True),
        (concurrent.futures.TimeoutError(), True),  # not the builtin one on 3.10
        (ConnectionResetError(), True),
        (OSError(110, "Connection timed out"), True),
        (type("EndpointConnectionError", (Exception,), {})("no route"), True),
        (type("HttpError", (Exception,), {"code": 503})("busy"), True),
        (RuntimeError("wrapped"), False),
        (PermissionError("denied"), False),
        (FileNotFoundError("no bucket"), False),
        (type("HttpError", (Exception,), {"code": 403})("forbidden"), False),
    ],
)
def test_transient_errors(error, transient):
    assert is_transient_error(error) is transient


def test_a_transient_cause_makes_the_error_transient():
    try:
        try:
            raise TimeoutError("read timed out")
        except TimeoutError as cause:
            raise RuntimeError("fetching the listing failed") from cause
    except RuntimeError as e:
        assert is_transient_error(e)


def test_inputs_travel_as_json():
    inputs = python_to_literal_map({"when": dt.datetime(2026, 1, 2, 3, 4, 5), "wait": dt.timedelta(minutes=2)})
    tt = template("acme.sensors", "FlagSensor")
    meta = asyncio.run(SensorConnector().create(task_template=tt, inputs=inputs))
    assert json.loads(meta.encode())["inputs"] == {"when": "2026-01-02T03:04:05+00:00", "wait": 120.0}
    empty = asyncio.run(SensorConnector().create(task_template=tt, inputs=literals_pb2.LiteralMap()))
    assert empty.inputs is None


def test_discovered_through_its_entry_points():
    with ConnectorRegistry.isolated(discover=True):
        connector = ConnectorRegistry.get_connector("sensor")
        assert isinstance(connector, SensorConnector)
        (agent,) = [a for a in ConnectorRegistry.list_connectors() if a.name == "Sensor"]
        assert [(c.name, c.version) for c in agent.supported_task_categories] == [("sensor", 0)]
        assert not agent.is_sync
        assert connector.catalog.find("flytekit.sensor.file_sensor", "FileSensor") is FileSensor


def test_discovery_does_not_import_fsspec():
    loaded = modules_after_discovery()
    assert "core_connectors_sensor" in loaded
    assert not {m for m in loaded if m.split(".")[0] in ("fsspec", "grpc", "asyncio")}


def test_listed_by_the_cli():
    out = subprocess.run(
        [sys.executable, "-m", "core_connectors", "list", "--json"], capture_output=True, text=True, check=True
    ).stdout
    assert "Sensor" in [c["name"] for c in json.loads(out)["connectors"]]


def test_the_readme_example_is_a_working_sensor(tmp_path, monkeypatch):
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    block = readme.split("# acme_sensors/__init__.py, installed next to the service\n")[1].split("```")[0]
    (tmp_path / "acme_client.py").write_text("def depth(queue, **config):\n    return 0 if queue == 'empty' else 4\n")
    (tmp_path / "acme_readme_sensors.py").write_text(block)
    monkeypatch.syspath_prepend(str(tmp_path))
    ep = metadata.EntryPoint(name="queue_empty", value="acme_readme_sensors:QueueEmpty", group=ENTRY_POINT_GROUP)
    connector = SensorConnector(SensorCatalog([ep]))
    waiting = connector.get(SensorMetadata("acme.sensors", "QueueEmptySensor", None, {"queue": "jobs"}))
    assert (waiting.phase, waiting.message) == (TE.RUNNING, "waiting for queue jobs to be empty")
    done = connector.get(SensorMetadata("acme.sensors", "QueueEmptySensor", None, {"queue": "empty"}))
    assert done.phase == TE.SUCCEEDED
