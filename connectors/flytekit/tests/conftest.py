"""Two services side by side: `core-connectors serve` with the bridge, and flytekit's `pyflyte serve connector`,
each a process on a free loopback port, with the vendor APIs behind local stand-ins that both reach."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import pytest
from flyteidl.admin import agent_pb2
from flyteidl.service import agent_pb2_grpc

pytest.importorskip("flytekit", reason="flytekit 1.16 does not import on Python 3.13")

from core_connectors_bigquery.testing import FakeBigQuery
from core_connectors_openai.testing import FakeOpenAI

API_KEY = "sk-side-by-side-0123456789"
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Service:
    """A connector service process, its log, and stubs to call it."""

    def __init__(self, argv: list[str], port: int, log_path: Path, cwd: Path, env: dict[str, str]) -> None:
        self.port = port
        self.log_path = log_path
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen(
                argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.async_stub = agent_pb2_grpc.AsyncAgentServiceStub(self.channel)
        self.sync_stub = agent_pb2_grpc.SyncAgentServiceStub(self.channel)
        self.metadata_stub = agent_pb2_grpc.AgentMetadataServiceStub(self.channel)

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 60.0) -> agent_pb2.ListAgentsResponse:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.proc.args[:3]} exited with {self.proc.returncode}:\n{self.log}")
            try:
                return self.metadata_stub.ListAgents(agent_pb2.ListAgentsRequest(), timeout=1)
            except grpc.RpcError:
                time.sleep(0.1)
        raise AssertionError(f"no ListAgents within {timeout} s:\n{self.log}")

    def execute_sync(self, template: Any, inputs: Any, output_prefix: str = "") -> Any:
        header = agent_pb2.ExecuteTaskSyncRequest(
            header=agent_pb2.CreateRequestHeader(template=template, output_prefix=output_prefix)
        )
        replies = list(
            self.sync_stub.ExecuteTaskSync(iter([header, agent_pb2.ExecuteTaskSyncRequest(inputs=inputs)]), timeout=10)
        )
        assert len(replies) == 1
        return replies[0].header.resource

    def stop(self) -> None:
        self.channel.close()
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


class FakeWebhook:
    """A local HTTP endpoint that answers every request with 200 and the JSON body it got."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, bytes]] = []

        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                owner.requests.append((self.command, self.path, body))
                received = json.loads(body) if body else self.path  # echoed in a canonical order
                reply = json.dumps({"received": received}, sort_keys=True).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            do_GET = do_POST = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _service_account(path: Path, token_uri: str) -> Path:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    account = {
        "type": "service_account",
        "project_id": "bq-proj",
        "private_key_id": "k1",
        "private_key": pem.decode(),
        "client_email": "connector@bq-proj.iam.gserviceaccount.com",
        "token_uri": token_uri,
    }
    path.write_text(json.dumps(account))
    return path


class Stands:
    """The vendor stand-ins and the environment that points both services at them."""

    def __init__(self, tmp: Path) -> None:
        self.openai = FakeOpenAI(api_key=API_KEY).start()
        self.bigquery = FakeBigQuery().__enter__()
        self.webhook = FakeWebhook()
        credentials = _service_account(tmp / "service-account.json", f"{self.bigquery.url}/token")
        self.env = {
            "_FSEC_FLYTE_OPENAI_API_KEY": API_KEY,
            "OPENAI_BASE_URL": self.openai.base_url,
            "BIGQUERY_EMULATOR_HOST": self.bigquery.url,
            "GOOGLE_APPLICATION_CREDENTIALS": str(credentials),
            "FLYTE_SECRETS_DEFAULT_DIR": str(tmp / "secrets"),
        }

    def stop(self) -> None:
        self.openai.stop()
        self.bigquery.__exit__(None, None, None)
        self.webhook.stop()


def _base_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CORE_CONNECTORS_DISABLE", "OPENAI_API_KEY")}
    return {**env, "PYTHONUNBUFFERED": "1", "COLUMNS": "200", **extra}


@pytest.fixture(scope="module")
def stands(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stands]:
    stands = Stands(tmp_path_factory.mktemp("stands"))
    yield stands
    stands.stop()


def start_ours(tmp: Path, env: dict[str, str], *args: str) -> Service:
    port = free_port()
    argv = [str(BIN / "core-connectors"), "serve", "--port", str(port), "--prometheus-port", "0", *args]
    return Service(argv, port, tmp / f"ours-{port}.log", tmp, _base_env(env))


def start_pyflyte(tmp: Path, env: dict[str, str], *args: str) -> Service:
    port = free_port()
    argv = [str(BIN / "pyflyte"), "serve", "connector", "--port", str(port), "--prometheus_port", str(free_port())]
    return Service([*argv, *args], port, tmp / f"pyflyte-{port}.log", tmp, _base_env(env))


@pytest.fixture(scope="module", params=["bridge", "service"], ids=["bridge-loop", "service-loop"])
def side_by_side(
    stands: Stands, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[tuple[Service, Service]]:
    """Ours (native openai and bigquery disabled, so the bridged flytekit connectors serve) and pyflyte's; ours
    once with bridged calls on the bridge's loop, once on the service's (--flytekit-loop): the same bytes."""
    tmp = tmp_path_factory.mktemp("services")
    ours = start_ours(
        tmp, {**stands.env, "CORE_CONNECTORS_DISABLE": "openai,bigquery"}, "--flytekit-loop", request.param
    )
    theirs = start_pyflyte(tmp, stands.env)
    try:
        ours.wait_ready()
        theirs.wait_ready()
        yield ours, theirs
    finally:
        ours.stop()
        theirs.stop()


class Tools:
    """What the tests use to start services and run the command, as one fixture."""

    bin = BIN
    start_ours = staticmethod(start_ours)
    start_pyflyte = staticmethod(start_pyflyte)
    env = staticmethod(_base_env)


@pytest.fixture(scope="session")
def tools() -> type[Tools]:
    return Tools
