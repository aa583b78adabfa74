"""flyte-sdk connectors served by ours, installed from wheels into a fresh venv: a test distribution written to
flyte-sdk's API, and flyteplugins-bigquery as released (against the BigQuery stand-in), each called over
flyteidl's v1 services and Flyte 2's flyteidl2.connector ones on one `core-connectors serve` process. Our own
BigQuery connector is installed too: flyteplugins-bigquery's serves the same task type and yields to it (a
native connector wins), until the native plugin is disabled.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import grpc
import pytest
from flyteidl.admin import agent_pb2
from flyteidl.core import interface_pb2, tasks_pb2, types_pb2
from flyteidl.core.execution_pb2 import TaskExecution
from flyteidl.service import agent_pb2_grpc
from flyteidl2.connector import connector_pb2, service_pb2_grpc
from flyteidl2.core import security_pb2
from flyteidl2.core import tasks_pb2 as tasks2

from core_connectors.literals import literal_map_to_python, python_to_literal_map
from core_connectors_bigquery.testing import FakeBigQuery, make_inputs, make_template

ROOT = Path(__file__).resolve().parent.parent
DEADLINE = 10
BIGQUERY = "bigquery_query_job_task"

pytestmark = [pytest.mark.slow, pytest.mark.network]


@pytest.fixture(scope="module")
def venv(build_wheel, fresh_venv):
    core = build_wheel(ROOT / "core")
    echo = build_wheel(ROOT / "tests" / "distributions" / "flytesdk")
    native_bigquery = build_wheel(ROOT / "connectors" / "bigquery")
    return fresh_venv(f"{core}[flyte2]", echo, native_bigquery, "flyteplugins-bigquery>=2.0,<3")


@pytest.fixture
def bigquery():
    with FakeBigQuery() as fake:
        yield fake


def service_account(fake: FakeBigQuery) -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    info = {
        "type": "service_account",
        "project_id": "proj",
        "private_key_id": "k1",
        "private_key": pem.decode(),
        "client_email": "connector@proj.iam.gserviceaccount.com",
        "token_uri": f"{fake.url}/token",
    }
    return json.dumps(info)


@pytest.fixture
def served(venv, bigquery, tmp_path):
    """`core-connectors serve` from the venv; v1 calls find Google credentials by the usual variable."""
    credentials = tmp_path / "sa.json"
    credentials.write_text(service_account(bigquery))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log_path = tmp_path / "serve.log"
    env = {
        **os.environ,
        "BIGQUERY_EMULATOR_HOST": bigquery.url,
        "GOOGLE_APPLICATION_CREDENTIALS": str(credentials),
        "PYTHONUNBUFFERED": "1",
        "CORE_CONNECTORS_DISABLE": "bigquery",  # our native BigQuery plugin: flyteplugins-bigquery's serves
    }
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(venv / "bin" / "core-connectors"), "serve", "--host", "127.0.0.1", "--port", str(port)]
            + ["--prometheus-port", "0"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    metadata = service_pb2_grpc.ConnectorMetadataServiceStub(channel)
    deadline = time.monotonic() + 60
    while True:
        try:
            metadata.ListConnectors(connector_pb2.ListConnectorsRequest(), timeout=1)
            break
        except grpc.RpcError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"serve did not start:\n{log_path.read_text()}") from None
            time.sleep(0.1)
    proc.log = log_path  # type: ignore[attr-defined]
    proc.channel = channel  # type: ignore[attr-defined]
    yield proc
    channel.close()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0, log_path.read_text()


def echo_template() -> tasks_pb2.TaskTemplate:
    int_type = types_pb2.LiteralType(simple=types_pb2.INTEGER)
    interface = interface_pb2.TypedInterface(
        inputs=interface_pb2.VariableMap(variables={"x": interface_pb2.Variable(type=int_type)})
    )
    return tasks_pb2.TaskTemplate(type="flyte_echo", interface=interface)


def v2_create(channel, template, inputs, connection=None) -> bytes:
    from flyteidl2.task import common_pb2

    stub = service_pb2_grpc.AsyncConnectorServiceStub(channel)
    request = connector_pb2.CreateTaskRequest(
        template=tasks2.TaskTemplate.FromString(template.SerializeToString()),
        inputs=common_pb2.Inputs.FromString(inputs.SerializeToString()),
        connection=connection,
    )
    return stub.CreateTask(request, timeout=DEADLINE).resource_meta


def v2_get(channel, name, meta, connection=None) -> connector_pb2.Resource:
    stub = service_pb2_grpc.AsyncConnectorServiceStub(channel)
    request = connector_pb2.GetTaskRequest(
        task_category=connector_pb2.TaskCategory(name=name), resource_meta=meta, connection=connection
    )
    return stub.GetTask(request, timeout=DEADLINE).resource


def v1_create(channel, template, inputs) -> bytes:
    stub = agent_pb2_grpc.AsyncAgentServiceStub(channel)
    return stub.CreateTask(
        agent_pb2.CreateTaskRequest(template=template, inputs=inputs), timeout=DEADLINE
    ).resource_meta


def v1_get(channel, name, meta) -> agent_pb2.Resource:
    stub = agent_pb2_grpc.AsyncAgentServiceStub(channel)
    request = agent_pb2.GetTaskRequest(task_category=agent_pb2.TaskCategory(name=name), resource_meta=meta)
    return stub.GetTask(request, timeout=DEADLINE).resource


def listing(venv, disable: str = "") -> dict:
    result = subprocess.run(
        [str(venv / "bin" / "core-connectors"), "list", "--json"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "CORE_CONNECTORS_DISABLE": disable},
    )
    return json.loads(result.stdout)


def test_flyte_sdk_connectors_are_listed_with_their_distributions_and_yield_to_native_ones(venv):
    listed = listing(venv)
    connectors = {(c["name"], c["distribution"]): c for c in listed["connectors"]}
    echo = connectors[("Echo Flyte Connector", "echo-flyte-connector")]
    assert echo["task_categories"] == [{"name": "flyte_echo", "version": 0}]
    assert (echo["entry_point"], echo["via"]) == ("flyte.echo", "flyte-sdk")
    assert "via" not in connectors[("Bigquery Connector", "core-connectors-bigquery")]  # the native one serves
    (shadowed,) = listed["shadowed"]
    assert (shadowed["distribution"], shadowed["entry_point"], shadowed["via"]) == (
        "flyteplugins-bigquery",
        "flyte.bigquery",
        "flyte-sdk",
    )
    assert shadowed["task_categories"] == [{"name": BIGQUERY, "version": 0}]
    assert shadowed["shadowed_by"]["distribution"] == "core-connectors-bigquery"
    assert listed["failed"] == []

    served = listing(venv, disable="bigquery")  # the native plugin off: flyteplugins-bigquery's serves
    assert {(c["name"], c["distribution"]) for c in served["connectors"]} == {
        ("Echo Flyte Connector", "echo-flyte-connector"),
        ("Bigquery Connector", "flyteplugins-bigquery"),
    }
    assert served["shadowed"] == []
    only_ours = listing(venv, disable="flyte.echo,flyte.bigquery")
    assert [(c["name"], c["distribution"]) for c in only_ours["connectors"]] == [
        ("Bigquery Connector", "core-connectors-bigquery")
    ]


def test_our_flyte_sdk_connector_over_v1_and_v2(served):
    template = echo_template()
    inputs = python_to_literal_map({"x": 21})
    connection = security_pb2.Connection(secrets={"api_key": "k-123456"}, configs={"region": "eu"})

    meta = v2_create(served.channel, template, inputs, connection)
    done = v2_get(served.channel, "flyte_echo", meta, connection)
    assert done.phase == TaskExecution.SUCCEEDED
    assert done.message == "keyed, key at get"  # the connection's secret reached create and get as kwargs
    assert dict(done.custom_info) == {"region": "eu"}  # and its configs too
    outputs = {nl.name: nl.value.scalar.primitive for nl in done.outputs.literals}
    assert (outputs["y"].integer, outputs["label"].string_value) == (42, "echo 21")
    assert done.log_links[0].uri == "https://echo.example/21"

    meta = v1_create(served.channel, template, inputs)
    done = v1_get(served.channel, "flyte_echo", meta)
    assert done.phase == TaskExecution.SUCCEEDED and done.message == "anonymous"  # v1 has no connection
    assert literal_map_to_python(done.outputs) == {"y": 42, "label": "echo 21"}

    running = v1_get(served.channel, "flyte_echo", json.dumps({"x": -1, "polls": 0, "keyed": False}).encode())
    assert running.phase == TaskExecution.RUNNING
    stub = service_pb2_grpc.AsyncConnectorServiceStub(served.channel)
    with pytest.raises(grpc.RpcError) as e:
        stub.DeleteTask(
            connector_pb2.DeleteTaskRequest(
                task_category=connector_pb2.TaskCategory(name="flyte_echo"),
                resource_meta=json.dumps({"x": 13, "polls": 0, "keyed": False}).encode(),
            ),
            timeout=DEADLINE,
        )
    assert e.value.code() == grpc.StatusCode.INTERNAL and "unlucky job" in e.value.details()
    assert "Traceback" not in e.value.details()


def test_flyteplugins_bigquery_over_v2_and_v1(served, bigquery):
    template = make_template("SELECT * FROM t WHERE n > @n", inputs={"n": int})
    inputs = make_inputs(template, n=3)

    bigquery.plan(states=["RUNNING", "DONE"])
    connection = security_pb2.Connection(secrets={"google_application_credentials": service_account(bigquery)})
    meta = v2_create(served.channel, template, inputs, connection)
    assert json.loads(meta)["project"] == "proj"
    phases = [v2_get(served.channel, BIGQUERY, meta, connection).phase for _ in range(2)]
    assert phases[-1] == TaskExecution.SUCCEEDED
    done = v2_get(served.channel, BIGQUERY, meta, connection)
    (results,) = done.outputs.literals
    assert results.name == "results" and results.value.scalar.structured_dataset.uri.startswith("bq://proj:")
    assert done.log_links[0].name == "BigQuery Console"
    (insert,) = bigquery.requests_to("POST", "insert")
    assert insert.headers.get("authorization") == "Bearer fake-token"
    assert insert.body["configuration"]["query"]["queryParameters"][0]["parameterValue"]["value"] == "3"

    meta = v1_create(served.channel, template, inputs)  # credentials from GOOGLE_APPLICATION_CREDENTIALS
    for _ in range(3):
        done = v1_get(served.channel, BIGQUERY, meta)
    assert done.phase == TaskExecution.SUCCEEDED
    assert done.outputs.literals["results"].scalar.structured_dataset.uri.startswith("bq://proj:")
