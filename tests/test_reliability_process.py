"""Process faults and a short soak, against `core-connectors serve` as a real process on loopback.

- kill -9 and restart: tasks created before finish after (the sleep connector keeps its state in the metadata).
- one of --workers killed: the supervisor restarts it, the port keeps answering, metric totals stay correct.
- a server killed between BigQuery's job insert and its reply: the retried CreateTask adopts the job.
- soak: mixed traffic at concurrency 32 (create, get, delete, bad requests, failing connectors); sampled RSS
  stays flat and no call gets a code it should not. ``CORE_CONNECTORS_SOAK_SECONDS`` sets the length (CI: 20).

SIGTERM during calls in flight and a second signal are shown by tests/test_serve_cli.py.
"""

from __future__ import annotations

import os
import random
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from flyteidl.admin import agent_pb2
from flyteidl.core import execution_pb2, tasks_pb2
from flyteidl.service import agent_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.slow
Phase = execution_pb2.TaskExecution

CONNECTORS = textwrap.dedent(
    '''
    """Connectors for the reliability tests, loaded with --modules."""
    import os
    import time
    from dataclasses import dataclass

    from flyteidl.core.execution_pb2 import TaskExecution

    from core_connectors import AsyncConnectorBase, ConnectorRegistry, Resource, ResourceMeta, RetryableFailure


    @dataclass
    class PidMeta(ResourceMeta):
        pid: int


    class PidConnector(AsyncConnectorBase):
        name = "Pid Connector"

        def __init__(self):
            super().__init__(task_type_name="pid", metadata_type=PidMeta)

        def create(self, task_template, output_prefix, inputs=None, task_execution_metadata=None, **kwargs):
            return PidMeta(pid=os.getpid())

        def get(self, resource_meta, **kwargs):
            return Resource(phase=TaskExecution.SUCCEEDED, message=str(os.getpid()))

        def delete(self, resource_meta, **kwargs):
            return None


    class FailingConnector(AsyncConnectorBase):
        name = "Failing Connector"

        def __init__(self):
            super().__init__(task_type_name="failing", metadata_type=PidMeta)

        async def create(self, task_template, output_prefix, inputs=None, task_execution_metadata=None, **kwargs):
            raise RuntimeError("the vendor is down")

        async def get(self, resource_meta, **kwargs):
            raise RuntimeError("the vendor is down")

        async def delete(self, resource_meta, **kwargs):
            raise RuntimeError("the vendor is down")


    class HangConnector(AsyncConnectorBase):
        """A plain def get that takes two seconds; a RetryableFailure for the job id "flaky"."""

        name = "Hang Connector"

        def __init__(self):
            super().__init__(task_type_name="hang", metadata_type=PidMeta)

        def create(self, task_template, output_prefix, inputs=None, task_execution_metadata=None, **kwargs):
            return PidMeta(pid=0)

        def get(self, resource_meta, **kwargs):
            if resource_meta.pid == -1:
                raise RetryableFailure("the vendor asks to try later")
            time.sleep(2)
            return Resource(phase=TaskExecution.SUCCEEDED)

        def delete(self, resource_meta, **kwargs):
            return None


    ConnectorRegistry.register(PidConnector())
    ConnectorRegistry.register(FailingConnector())
    ConnectorRegistry.register(HangConnector())
    '''
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    """A `core-connectors serve` process on a given port, with its log."""

    def __init__(self, tmp_path: Path, port: int, *args: str, env: dict[str, str] | None = None):
        self.port = port
        (tmp_path / "reliability_connectors.py").write_text(CONNECTORS)
        self.log_path = tmp_path / f"serve-{port}-{time.monotonic_ns()}.log"
        argv = [sys.executable, "-m", "core_connectors", "serve", "--host", "127.0.0.1", "--port", str(port)]
        argv += ["--modules", "reliability_connectors", *args]
        if "--prometheus-port" not in args:  # never the default 9090: other servers may hold it
            argv += ["--prometheus-port", "0"]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                argv,
                cwd=tmp_path,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def channel(self) -> grpc.Channel:
        return grpc.insecure_channel(f"127.0.0.1:{self.port}", options=[("grpc.use_local_subchannel_pool", 1)])

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"serve exited with {self.proc.returncode}:\n{self.log}"
            with self.channel() as channel:
                try:
                    agent_pb2_grpc.AgentMetadataServiceStub(channel).ListAgents(
                        agent_pb2.ListAgentsRequest(), timeout=1
                    )
                    return
                except grpc.RpcError:
                    time.sleep(0.05)
        raise AssertionError(f"no ListAgents within {timeout} s:\n{self.log}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


@pytest.fixture
def serve(tmp_path):
    started: list[Served] = []

    def start(port: int, *args: str, **kwargs) -> Served:
        served = Served(tmp_path, port, *args, **kwargs)
        started.append(served)
        return served

    yield start
    for served in started:
        served.kill()


def sleep_request(seconds: float) -> agent_pb2.CreateTaskRequest:
    template = tasks_pb2.TaskTemplate(type="sleep")
    template.custom.update({"duration": seconds})
    return agent_pb2.CreateTaskRequest(template=template)


def get_request(task_type: str, meta: bytes) -> agent_pb2.GetTaskRequest:
    return agent_pb2.GetTaskRequest(task_category=agent_pb2.TaskCategory(name=task_type), resource_meta=meta)


def rss_kb(pid: int) -> int:
    return int(re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text()).group(1))


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


# ------------------------------------------------------------------------------------------------ kill -9
def test_tasks_created_before_a_kill_9_finish_after_the_restart(serve):
    port = free_port()
    first = serve(port, "--prometheus-port", "0")
    first.wait_ready()
    with first.channel() as channel:
        stub = agent_pb2_grpc.AsyncAgentServiceStub(channel)
        metas = [stub.CreateTask(sleep_request(s), timeout=5).resource_meta for s in (0.5, 1.5, 3.0)]
        assert stub.GetTask(get_request("sleep", metas[-1]), timeout=5).resource.phase == Phase.RUNNING
    first.kill()

    second = serve(port, "--prometheus-port", "0")
    second.wait_ready()
    with second.channel() as channel:
        stub = agent_pb2_grpc.AsyncAgentServiceStub(channel)
        deadline = time.monotonic() + 15
        phases = []
        while time.monotonic() < deadline:
            phases = [stub.GetTask(get_request("sleep", m), timeout=5).resource.phase for m in metas]
            if all(p == Phase.SUCCEEDED for p in phases):
                break
            assert set(phases) <= {Phase.RUNNING, Phase.SUCCEEDED}
            time.sleep(0.2)
    assert phases == [Phase.SUCCEEDED] * 3


# ------------------------------------------------------------------------------------------------ settings
def test_bulkhead_and_retryable_settings_from_the_environment(serve):
    env = {"CORE_CONNECTORS_MAX_CONCURRENT_CALLS": "hang=1", "CORE_CONNECTORS_RETRYABLE_AS_STATE": "true"}
    served = serve(free_port(), env=env)
    served.wait_ready()
    with served.channel() as channel, ThreadPoolExecutor(2) as pool:
        stub = agent_pb2_grpc.AsyncAgentServiceStub(channel)
        first = pool.submit(stub.GetTask, get_request("hang", b'{"pid": 0}'), timeout=10)
        time.sleep(0.5)
        with pytest.raises(grpc.RpcError) as caught:
            stub.GetTask(get_request("hang", b'{"pid": 0}'), timeout=10)
        assert first.result(10).resource.phase == Phase.SUCCEEDED
        flaky = stub.GetTask(get_request("hang", b'{"pid": -1}'), timeout=10).resource
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "Hang Connector is at its limit of 1 concurrent calls" in caught.value.details()
    assert (flaky.phase, flaky.state) == (Phase.UNDEFINED, agent_pb2.RETRYABLE_FAILURE)


def test_a_malformed_bound_is_a_usage_error(serve):
    served = serve(free_port(), "--max-concurrent-calls", "hang")
    assert served.proc.wait(30) == 2
    assert "expected TASK_TYPE=N" in served.log


# ------------------------------------------------------------------------------------------------ --workers
def test_a_killed_worker_is_restarted_and_metric_totals_stay_correct(serve):
    port, metrics_port = free_port(), free_port()
    served = serve(port, "--workers", "2", "--prometheus-port", str(metrics_port))
    served.wait_ready()
    pids: set[int] = set()
    calls = 0

    def call_until(enough) -> None:
        nonlocal calls
        deadline = time.monotonic() + 30
        while not enough() and time.monotonic() < deadline:
            with served.channel() as channel:  # a fresh connection each time: SO_REUSEPORT spreads them
                try:
                    reply = agent_pb2_grpc.AsyncAgentServiceStub(channel).GetTask(
                        get_request("pid", b'{"pid": 0}'), timeout=5
                    )
                except grpc.RpcError as e:  # only while a worker is (re)starting
                    assert e.code() == grpc.StatusCode.UNAVAILABLE, e
                    time.sleep(0.05)
                    continue
                pids.add(int(reply.resource.message))
                calls += 1

    key = ("flyte_connector_requests_success_total", (("operation", "get"), ("protocol", "v1"), ("task_type", "pid")))

    def totals_reach(n: int) -> None:
        deadline = time.monotonic() + 10
        while scrape(metrics_port).get(key) != n and time.monotonic() < deadline:
            time.sleep(0.2)
        assert scrape(metrics_port).get(key) == n

    call_until(lambda: len(pids) == 2)
    totals_reach(calls)  # each worker has written its totals
    victim = min(pids)
    time.sleep(3.5)  # a worker that dies sooner after its start counts as a failed start
    os.kill(victim, signal.SIGKILL)
    before = set(pids)
    call_until(lambda: len(pids - before) >= 1 and calls > 40)  # the restarted worker answers too
    totals_reach(calls)  # the dead worker's last totals still count, so nothing goes backwards
    assert "restarting it" in served.log
    served.proc.send_signal(signal.SIGTERM)
    assert served.proc.wait(20) == 0


# ------------------------------------------------------------------------------------------------ adoption
def test_a_server_killed_between_bigquerys_insert_and_its_reply_adopts_the_job_on_retry(serve):
    """Propeller retries the CreateTask that got no reply; the job id is the same for the same attempt, so the
    new server finds the job the dead one inserted instead of starting a second one."""
    from core_connectors_bigquery.testing import FakeBigQuery, make_metadata, make_template

    with FakeBigQuery() as fake:
        env = {"BIGQUERY_EMULATOR_HOST": fake.url, "FLYTE_SECRETS_DEFAULT_DIR": "/nonexistent"}
        env["GOOGLE_APPLICATION_CREDENTIALS"] = ""
        port = free_port()
        first = serve(port, env=env)
        first.wait_ready()
        request = agent_pb2.CreateTaskRequest(template=make_template(), task_execution_metadata=make_metadata())
        fake.delay(30, method="POST", count=1)  # the insert lands, its answer does not come back in time
        with first.channel() as channel, ThreadPoolExecutor(1) as pool:
            pending = pool.submit(agent_pb2_grpc.AsyncAgentServiceStub(channel).CreateTask, request, timeout=20)
            deadline = time.monotonic() + 10
            while not fake.jobs and time.monotonic() < deadline:
                time.sleep(0.02)
            assert len(fake.jobs) == 1
            first.kill()  # between the vendor's create and our reply
            with pytest.raises(grpc.RpcError):
                pending.result(20)

        second = serve(port, env=env)
        second.wait_ready()
        with second.channel() as channel:
            reply = agent_pb2_grpc.AsyncAgentServiceStub(channel).CreateTask(request, timeout=10)
        assert len(fake.jobs) == 1  # adopted, not started twice
        assert next(iter(fake.jobs.values())).job_id.encode() in reply.resource_meta


# ------------------------------------------------------------------------------------------------ soak
SOAK_SECONDS = float(os.environ.get("CORE_CONNECTORS_SOAK_SECONDS", "20"))
EXPECTED = {  # what each kind of call may get; anything else is an unexpected code
    "create": {grpc.StatusCode.OK},
    "get": {grpc.StatusCode.OK},
    "delete": {grpc.StatusCode.OK},
    "bad bytes": {grpc.StatusCode.INVALID_ARGUMENT},
    "bad meta": {grpc.StatusCode.INVALID_ARGUMENT},
    "unknown type": {grpc.StatusCode.NOT_FOUND},
    "failing": {grpc.StatusCode.INTERNAL},
}


@pytest.mark.timeout(SOAK_SECONDS + 120)
def test_soak_mixed_traffic_at_concurrency_32(serve):
    port = free_port()
    served = serve(port, "--prometheus-port", "0")
    served.wait_ready()
    stop = threading.Event()
    seen: Counter[tuple[str, grpc.StatusCode]] = Counter()
    lock = threading.Lock()

    def client(seed: int) -> None:
        rng = random.Random(seed)
        with served.channel() as channel:
            stub = agent_pb2_grpc.AsyncAgentServiceStub(channel)
            raw = channel.unary_unary("/flyteidl.service.AsyncAgentService/GetTask")
            meta = stub.CreateTask(sleep_request(0.2), timeout=10).resource_meta
            while not stop.is_set():
                roll = rng.random()
                kind = (
                    "create" if roll < 0.2 else "get" if roll < 0.8 else "delete" if roll < 0.93
                    else rng.choice(["bad bytes", "bad meta", "unknown type", "failing"])
                )  # fmt: skip
                try:
                    if kind == "create":
                        meta = stub.CreateTask(sleep_request(rng.choice([0.0, 0.5])), timeout=10).resource_meta
                    elif kind == "get":
                        stub.GetTask(get_request("sleep", meta), timeout=10)
                    elif kind == "delete":
                        stub.DeleteTask(agent_pb2.DeleteTaskRequest(task_type="sleep", resource_meta=meta), timeout=10)
                    elif kind == "bad bytes":
                        raw(rng.randbytes(rng.randint(1, 200)) + b"\xff\xff\xff\xff", timeout=10)
                    elif kind == "bad meta":
                        stub.GetTask(get_request("sleep", b"{not json"), timeout=10)
                    elif kind == "unknown type":
                        stub.GetTask(get_request("no-such-type", meta), timeout=10)
                    else:
                        stub.GetTask(get_request("failing", b'{"pid": 1}'), timeout=10)
                    code = grpc.StatusCode.OK
                except grpc.RpcError as e:
                    code = e.code()
                with lock:
                    seen[(kind, code)] += 1

    samples: list[int] = []
    with ThreadPoolExecutor(32) as pool:
        futures = [pool.submit(client, i) for i in range(32)]
        started = time.monotonic()
        while time.monotonic() - started < SOAK_SECONDS:
            time.sleep(SOAK_SECONDS / 20)
            samples.append(rss_kb(served.proc.pid))
        stop.set()
        for future in futures:
            future.result(30)

    print(f"soak {SOAK_SECONDS:g} s: {sum(seen.values())} calls, RSS samples (kB) {samples}, codes {dict(seen)}")
    unexpected = {k: n for k, n in seen.items() if k[1] not in EXPECTED[k[0]]}
    assert unexpected == {}, unexpected
    assert sum(seen.values()) > 1000
    assert all(any(k[0] == kind for k in seen) for kind in EXPECTED)
    # Flat: after the warm-up (the first quarter), memory grows by less than 10% (or 8 MB) to the end.
    settled = samples[len(samples) // 4]
    assert max(samples[len(samples) // 4 :]) - settled < max(settled * 0.10, 8 * 1024), samples
    with served.channel() as channel:  # and it still answers
        agent_pb2_grpc.AgentMetadataServiceStub(channel).ListAgents(agent_pb2.ListAgentsRequest(), timeout=5)
