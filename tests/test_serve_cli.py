"""`core-connectors serve` as a process: discovery, flags and environment, signals, TLS and --workers."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import grpc
import pytest
from flyteidl.admin import agent_pb2
from flyteidl.core import tasks_pb2
from flyteidl.service import agent_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from core_connectors.server.testing import make_certificates

pytestmark = pytest.mark.slow

CONNECTORS = textwrap.dedent(
    '''
    """Connectors for the serve tests, loaded with --modules."""
    import asyncio
    import os
    from dataclasses import dataclass

    from flyteidl.core.execution_pb2 import TaskExecution

    from core_connectors import AsyncConnectorBase, ConnectorRegistry, Resource, ResourceMeta


    @dataclass
    class PidMeta(ResourceMeta):
        pid: int


    class SlowConnector(AsyncConnectorBase):
        """create waits custom["seconds"] after touching custom["marker"]; get answers its process id."""

        name = "Slow Connector"

        def __init__(self):
            super().__init__(task_type_name="slow", metadata_type=PidMeta)

        async def create(self, task_template, output_prefix, inputs=None, task_execution_metadata=None, **kwargs):
            custom = task_template.custom
            if "marker" in custom:
                open(custom["marker"], "w").close()
            await asyncio.sleep(custom["seconds"] if "seconds" in custom else 0)
            return PidMeta(pid=os.getpid())

        async def get(self, resource_meta, **kwargs):
            return Resource(phase=TaskExecution.SUCCEEDED, message=str(os.getpid()))

        async def delete(self, resource_meta, **kwargs):
            return None


    ConnectorRegistry.register(SlowConnector())
    '''
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    """A `core-connectors serve` process, its log, and a way to call it."""

    def __init__(self, tmp_path: Path, *args: str, env: dict[str, str] | None = None, port: int | None = None):
        self.port = port or free_port()
        self.log_path = tmp_path / f"serve-{self.port}.log"
        (tmp_path / "serve_test_connectors.py").write_text(CONNECTORS)
        argv = [sys.executable, "-m", "core_connectors", "serve", *args]
        if port is None and not any(a.startswith("--port") for a in args):
            argv += ["--port", str(self.port)]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                argv,
                cwd=tmp_path,
                env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "120", **(env or {})},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def channel(self, credentials: grpc.ChannelCredentials | None = None) -> grpc.Channel:
        options = [("grpc.use_local_subchannel_pool", 1)]  # a new connection per channel (--workers)
        if credentials is not None:
            return grpc.secure_channel(f"localhost:{self.port}", credentials, options=options)
        return grpc.insecure_channel(f"localhost:{self.port}", options=options)

    def wait_ready(self, timeout: float = 20.0, credentials: grpc.ChannelCredentials | None = None):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited with {self.proc.returncode}:\n{self.log}")
            with self.channel(credentials) as channel:
                try:
                    stub = agent_pb2_grpc.AgentMetadataServiceStub(channel)
                    return stub.ListAgents(agent_pb2.ListAgentsRequest(), timeout=1)
                except grpc.RpcError:
                    time.sleep(0.05)
        raise AssertionError(f"serve answered no ListAgents within {timeout} s:\n{self.log}")

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 20.0) -> int:
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)


@pytest.fixture
def serve(tmp_path):
    started: list[Served] = []

    def start(*args: str, **kwargs) -> Served:
        served = Served(tmp_path, *args, **kwargs)
        started.append(served)
        return served

    yield start
    for served in started:
        served.kill()


def create_request(seconds: float = 0.0, marker: Path | None = None, task_type: str = "slow"):
    template = tasks_pb2.TaskTemplate(type=task_type)
    template.custom.update({"seconds": seconds, **({"marker": str(marker)} if marker else {})})
    return agent_pb2.CreateTaskRequest(template=template)


def wait_for(path: Path, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


# ------------------------------------------------------------------------------------------------ tests
def test_serves_discovered_connectors_configured_from_the_environment(serve):
    metrics_port = free_port()
    served = serve(
        "--timeout",
        "30",
        env={
            "CORE_CONNECTORS_PROMETHEUS_PORT": str(metrics_port),
            "CORE_CONNECTORS_LOG_FORMAT": "json",
            "CORE_CONNECTORS_HOST": "127.0.0.1",
        },
    )
    agents = served.wait_ready().agents
    assert "Sleep Connector" in {a.name for a in agents}  # found through its entry point

    with served.channel() as channel:
        stub = agent_pb2_grpc.AsyncAgentServiceStub(channel)
        template = tasks_pb2.TaskTemplate(type="sleep")
        template.custom.update({"duration": 0})
        created = stub.CreateTask(agent_pb2.CreateTaskRequest(template=template), timeout=5)
        request = agent_pb2.GetTaskRequest(
            task_category=agent_pb2.TaskCategory(name="sleep"), resource_meta=created.resource_meta
        )
        assert stub.GetTask(request, timeout=5).resource.phase == 3  # SUCCEEDED
    samples = scrape(metrics_port)
    assert (
        samples[
            (
                "flyte_connector_requests_success_total",
                (("operation", "get"), ("protocol", "v1"), ("task_type", "sleep")),
            )
        ]
        == 1
    )

    served.signal(signal.SIGTERM)
    assert served.wait() == 0
    log = served.log
    records = [json.loads(line) for line in log.splitlines()]  # every line is JSON
    assert any(r["message"].startswith("connectors served: ") and "Sleep Connector" in r["message"] for r in records)
    (address,) = [r for r in records if r["message"].startswith("serving ")]
    assert f"on 127.0.0.1:{served.port}" in address["message"] and address["level"] == "INFO"
    assert any("draining" in r["message"] for r in records)
    assert "Traceback" not in log


def test_sigterm_during_a_slow_create_task_lets_it_complete(serve, tmp_path):
    served = serve("--modules", "serve_test_connectors", "--prometheus-port", "0", "--grace", "10")
    served.wait_ready()
    assert re.search(r"Connectors served\n(.*\n)*Slow Connector +slow \(0\) +False", served.log)  # the table
    marker = tmp_path / "create-started"
    with served.channel() as channel:
        future = agent_pb2_grpc.AsyncAgentServiceStub(channel).CreateTask.future(
            create_request(seconds=1.0, marker=marker), timeout=10
        )
        wait_for(marker)
        served.signal(signal.SIGTERM)
        assert json.loads(future.result().resource_meta)["pid"] == served.proc.pid
    assert served.wait() == 0
    assert "SIGTERM: draining" in served.log


def test_a_second_signal_exits_at_once(serve, tmp_path):
    served = serve("--modules", "serve_test_connectors", "--prometheus-port", "0", "--grace", "30")
    served.wait_ready()
    marker = tmp_path / "create-started"
    with served.channel() as channel:
        future = agent_pb2_grpc.AsyncAgentServiceStub(channel).CreateTask.future(
            create_request(seconds=20, marker=marker), timeout=30
        )
        wait_for(marker)
        served.signal(signal.SIGINT)
        time.sleep(0.2)
        started = time.monotonic()
        served.signal(signal.SIGTERM)
        assert served.wait(5) == 128 + signal.SIGTERM
        assert time.monotonic() - started < 2
        with pytest.raises(grpc.RpcError):
            future.result()
    assert "second SIGTERM: exiting at once" in served.log


def test_timeout_serves_then_exits_0(serve):
    served = serve("--prometheus-port", "0", "--timeout", "0.5")
    served.wait_ready()
    assert served.wait() == 0
    assert "--timeout" in served.log


def test_a_prometheus_port_in_use_is_a_clear_error(serve):
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        served = serve("--prometheus_port", str(port))
        assert served.wait() == 1
    assert f"cannot serve metrics on port {port}" in served.log
    assert "Traceback" not in served.log


def test_a_module_that_does_not_import_is_a_clear_error(serve):
    served = serve("--modules", "no_such_module_here", "--prometheus-port", "0")
    assert served.wait() == 1
    assert "cannot import module 'no_such_module_here': ModuleNotFoundError" in served.log
    assert "(given with --modules)" in served.log
    assert "Traceback" not in served.log


def test_tls_flags(serve, tmp_path):
    pytest.importorskip("cryptography")
    certs = make_certificates(tmp_path)
    served = serve("--prometheus-port", "0", "--tls-cert", certs.server_cert, "--tls-key", certs.server_key)
    credentials = grpc.ssl_channel_credentials(root_certificates=certs.ca_pem)
    assert "Sleep Connector" in {a.name for a in served.wait_ready(credentials=credentials).agents}
    assert "with TLS" in served.log
    served.signal(signal.SIGTERM)
    assert served.wait() == 0


def test_two_workers_answer_on_one_port_and_metrics_report_their_totals(serve):
    metrics_port = free_port()
    served = serve(
        "--modules",
        "serve_test_connectors",
        "--workers",
        "2",
        "--prometheus-port",
        str(metrics_port),
        "--host",
        "127.0.0.1",
    )
    served.wait_ready()
    pids, calls = set(), 0
    deadline = time.monotonic() + 20
    while len(pids) < 2 and time.monotonic() < deadline:
        with served.channel() as channel:  # a fresh connection: SO_REUSEPORT spreads connections
            request = agent_pb2.GetTaskRequest(task_type="slow", resource_meta=b'{"pid": 0}')
            try:
                pids.add(
                    int(agent_pb2_grpc.AsyncAgentServiceStub(channel).GetTask(request, timeout=5).resource.message)
                )
                calls += 1
            except grpc.RpcError:  # the second worker may still be starting
                time.sleep(0.05)
    assert len(pids) == 2, served.log
    assert served.proc.pid not in pids  # the supervisor serves metrics, the workers serve gRPC

    key = ("flyte_connector_requests_success_total", (("operation", "get"), ("protocol", "v1"), ("task_type", "slow")))
    deadline = time.monotonic() + 10  # workers write their totals every second
    while scrape(metrics_port).get(key) != calls and time.monotonic() < deadline:
        time.sleep(0.2)
    assert scrape(metrics_port)[key] == calls

    served.signal(signal.SIGTERM)
    assert served.wait() == 0
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert served.log.count("Connectors served") == 1  # one table, from the first worker


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_the_event_loop_can_be_chosen_and_is_logged(serve, loop):
    served = serve("--loop", loop, "--prometheus-port", "0")
    served.wait_ready()
    with served.channel() as channel:
        agents = agent_pb2_grpc.AgentMetadataServiceStub(channel).ListAgents(agent_pb2.ListAgentsRequest(), timeout=5)
    assert "Sleep Connector" in [a.name for a in agents.agents]
    assert f"{loop} loop" in served.log
    served.signal(signal.SIGTERM)
    assert served.wait() == 0
