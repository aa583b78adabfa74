"""docs/porting-from-flytekit.md, followed: flytekitplugins-bigquery's released connector ported step by step
(tests/porting/bigquery_connector.py) runs in a fresh venv without flytekit, served by our service over gRPC
against the BigQuery stand-in, its StructuredDataset output a real structured-dataset literal."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow

SCRIPT = textwrap.dedent(
    """
    import importlib.util, json, os, sys
    assert importlib.util.find_spec("flytekit") is None, "this venv must not have flytekit"

    from flyteidl.admin import agent_pb2
    from core_connectors import ConnectorRegistry
    from core_connectors.server.testing import start_service
    from core_connectors_bigquery.testing import FakeBigQuery, make_inputs, make_metadata, make_template

    with FakeBigQuery() as fake:
        os.environ["BIGQUERY_EMULATOR_HOST"] = fake.url
        with open(os.environ["GOOGLE_APPLICATION_CREDENTIALS"], "w") as f:  # tokens from the stand-in
            json.dump({**json.loads(os.environ.pop("SERVICE_ACCOUNT")), "token_uri": fake.url + "/token"}, f)
        fake.plan(states=["DONE"])
        with ConnectorRegistry.isolated() as registry:
            sys.path.insert(0, sys.argv[1])
            import bigquery_connector  # registers at import, as the released connector does
            with start_service(registry=registry) as service:
                template = make_template("SELECT @n", custom={"ProjectID": "bq-proj", "Location": "EU"},
                                         inputs={"n": int, "day": str})
                created = service.async_stub.CreateTask(agent_pb2.CreateTaskRequest(
                    template=template, inputs=make_inputs(template, n=3, day="mon"),
                    task_execution_metadata=make_metadata()), timeout=10)
                category = agent_pb2.TaskCategory(name="bigquery_query_job_task")
                resource = service.async_stub.GetTask(agent_pb2.GetTaskRequest(
                    task_category=category, resource_meta=created.resource_meta), timeout=10).resource
        (insert,) = fake.requests_to("POST", "insert")
        print(json.dumps({
            "meta": json.loads(created.resource_meta),
            "phase": resource.phase,
            "results": resource.outputs.literals["results"].scalar.WhichOneof("value"),
            "uri": resource.outputs.literals["results"].scalar.structured_dataset.uri,
            "parameters": insert.body["configuration"]["query"]["queryParameters"],
            "flytekit": [m for m in sys.modules if m.split(".")[0] == "flytekit"],
        }))
    """
)


def _account() -> dict[str, str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return {
        "type": "service_account",
        "project_id": "bq-proj",
        "private_key_id": "k1",
        "private_key": pem.decode(),
        "client_email": "connector@bq-proj.iam.gserviceaccount.com",
    }


def test_the_ported_bigquery_connector_runs_without_flytekit(build_wheel, fresh_venv, tmp_path):
    venv = fresh_venv(build_wheel(ROOT / "core"), build_wheel(ROOT / "connectors" / "bigquery"))
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("GOOGLE_", "BIGQUERY_", "_FSEC_", "CORE_CONNECTORS"))
    }
    env.update(GOOGLE_APPLICATION_CREDENTIALS=str(tmp_path / "adc.json"), SERVICE_ACCOUNT=json.dumps(_account()))
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-c", SCRIPT, str(ROOT / "tests" / "porting")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found["flytekit"] == []
    assert found["meta"]["project"] == "bq-proj" and found["meta"]["location"] == "EU"
    assert found["phase"] == 3  # SUCCEEDED
    assert found["results"] == "structured_dataset" and found["uri"].startswith("bq://")
    types = {p["name"]: p["parameterType"]["type"] for p in found["parameters"]}
    assert types == {"n": "INT64", "day": "STRING"}
