"""The dashboard and the alerts of deploy/, checked against a real Prometheus scraping real replicas.

deploy/generate.py writes both from code; this test checks that the committed files are what it writes, runs
Debian's Prometheus against two service processes under load, evaluates every dashboard query (each must
return data) and shows that every alert fires when the test makes its condition true.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import subprocess
import sys
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from deploy_fleet import Replica, ensure_installed, free_port, template, wait_for
from flyteidl.admin import agent_pb2
from flyteidl.service import agent_pb2_grpc

pytestmark = [pytest.mark.slow, pytest.mark.network, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parent.parent
JOB = "core-connectors"


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location("deploy_generate", ROOT / "deploy" / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


generate = _generator()


def test_committed_dashboard_and_alerts_are_the_generated_ones():
    assert generate.main(["--check"]) == 0


def test_promtool_accepts_the_rules():
    promtool = ensure_installed("promtool", "prometheus")
    done = subprocess.run([promtool, "check", "rules", str(generate.ALERTS_FILE)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(generate.ALERTS)} rules found" in done.stdout


def test_the_scrape_config_selects_the_job_the_dashboard_reads():
    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yaml").read_text())
    assert config["rule_files"] == ["alerts.yaml"]
    (job,) = config["scrape_configs"]
    assert job["job_name"] == JOB


class Prometheus:
    def __init__(self, workdir: Path, targets: list[str]) -> None:
        self.binary = ensure_installed("prometheus", "prometheus")
        self.dir = workdir / "prometheus"
        self.dir.mkdir()
        self.port = free_port()
        # The committed rules, with no `for`: the test cannot wait minutes for each.
        rules = yaml.safe_load(generate.ALERTS_FILE.read_text())
        for rule in rules["groups"][0]["rules"]:
            rule["for"] = "0s"
        (self.dir / "alerts.yaml").write_text(yaml.safe_dump(rules))
        self.config = self.dir / "prometheus.yaml"
        self.set_targets(targets)
        self.proc: subprocess.Popen[bytes] | None = None

    def set_targets(self, targets: list[str]) -> None:
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": ["alerts.yaml"],
            "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": targets}]}],
        }
        self.config.write_text(yaml.safe_dump(config))

    def start(self) -> Prometheus:
        self.log = open(self.dir / "prometheus.log", "wb")  # closed in stop()
        self.proc = subprocess.Popen(
            [
                self.binary,
                f"--config.file={self.config}",
                f"--storage.tsdb.path={self.dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-lifecycle",
            ],
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )
        wait_for(self._ready, 30, "prometheus to be ready")
        return self

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError((self.dir / "prometheus.log").read_text()[-2000:])
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=1) as reply:
                return reply.status == 200
        return False

    def reload(self) -> None:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/-/reload", method="POST")
        urllib.request.urlopen(request, timeout=5).close()

    def _get(self, path: str, **params: str) -> Any:
        url = f"http://127.0.0.1:{self.port}{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=5) as reply:
            body = json.load(reply)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[Any]:
        return list(self._get("/api/v1/query", query=expr)["result"])

    def firing(self) -> set[str]:
        alerts = self._get("/api/v1/alerts")["alerts"]
        return {a["labels"]["alertname"] for a in alerts if a["state"] == "firing"}

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(20)
        if self.proc is not None:
            self.log.close()


@contextlib.contextmanager
def traffic(replicas: list[Replica]) -> Iterator[None]:
    """Normal tasks on every replica, plus what each alert needs: a connector that fails every GetTask, calls
    slower than a second, and plain `def` calls that occupy every thread of replica 0's pool."""
    stop = threading.Event()
    channels = [grpc.insecure_channel(r.address) for r in replicas]
    stubs = [agent_pb2_grpc.AsyncAgentServiceStub(c) for c in channels]

    def loop(stub: Any, task_type: str, latency: float) -> None:
        created = stub.CreateTask(agent_pb2.CreateTaskRequest(template=template(task_type, latency=0.0)))
        meta = json.loads(created.resource_meta)
        meta["latency"] = latency
        get = agent_pb2.GetTaskRequest(task_type=task_type, resource_meta=json.dumps(meta).encode())
        while not stop.is_set():
            try:
                stub.GetTask(get, timeout=10)
            except grpc.RpcError:
                stop.wait(0.1)  # a failing call takes no time: do not let it swamp the latency histogram

    jobs = [(stub, "slow", 0.05) for stub in stubs]
    jobs += [(stubs[0], "failing", 0.0)]
    jobs += [(stubs[1], "slow", 1.5) for _ in range(4)]  # over 1% of GetTask: p99 above 1 s
    jobs += [(stubs[0], "blocking", 2.0) for _ in range(6)]  # replica 0 has 4 threads
    threads = [threading.Thread(target=loop, args=job, daemon=True) for job in jobs]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join(15)
        for channel in channels:
            channel.close()


@contextlib.contextmanager
def _explained(state: Any) -> Iterator[None]:
    try:
        yield
    except AssertionError as e:
        raise AssertionError(f"{e}; {state()}") from None


def _dashboard_queries() -> list[str]:
    queries = []
    for panel in generate.PANELS:
        for expr, _legend in panel.queries:
            queries.append(expr.replace("$job", JOB).replace("$__rate_interval", "10s"))
    return queries


def test_every_dashboard_query_returns_data_and_every_alert_fires(tmp_path):
    replicas = [
        # the blocking connector may take the whole pool (its bulkhead is half the pool by default), so it saturates
        Replica(tmp_path, 0, args=("--threads=4", "--max-concurrent-calls=blocking=4")).start(),
        Replica(tmp_path, 1).start(),
    ]
    prometheus = Prometheus(tmp_path, [f"127.0.0.1:{r.metrics_port}" for r in replicas])
    try:
        prometheus.start()
        with traffic(replicas):
            queries = _dashboard_queries()
            assert len(queries) >= 10

            def empty() -> list[str]:
                return [q for q in queries if not prometheus.query(q)]

            wait_for(lambda: not empty(), 60, "every dashboard query to return data", interval=1.0)
            # the new gauges carry what they claim: calls in flight per task type, the pool full
            inflight = {r["metric"]["task_type"] for r in prometheus.query("flyte_connector_inflight_requests > 0")}
            assert {"slow", "blocking"} <= inflight
            busy = prometheus.query(f'flyte_connector_pool_busy_threads{{instance=~".*:{replicas[0].metrics_port}"}}')
            assert float(busy[0]["value"][1]) == 4.0

            load_alerts = {"CoreConnectorsFailureRatioHigh", "CoreConnectorsLatencyHigh", "CoreConnectorsPoolSaturated"}
            firing: set[str] = set()

            def fired() -> bool:
                firing.update(prometheus.firing())
                return load_alerts <= firing

            with _explained(lambda: f"firing: {sorted(firing)}"):
                wait_for(fired, 60, f"{load_alerts} to fire", interval=1.0)
            assert not {"CoreConnectorsScrapeFailing", "CoreConnectorsReplicasDown"} & prometheus.firing()

        replicas[1].kill()
        wait_for(lambda: "CoreConnectorsScrapeFailing" in prometheus.firing(), 30, "the scrape alert", interval=1.0)
        assert "CoreConnectorsReplicasDown" not in prometheus.firing()  # one of two is still up
        replicas[0].kill()
        wait_for(lambda: "CoreConnectorsReplicasDown" in prometheus.firing(), 30, "the replicas alert", interval=1.0)

        prometheus.set_targets([])  # the service is gone from discovery altogether
        prometheus.reload()
        wait_for(lambda: "CoreConnectorsAbsent" in prometheus.firing(), 30, "the absent alert", interval=1.0)
        assert {a.name for a in generate.ALERTS} <= prometheus.firing() | {
            "CoreConnectorsFailureRatioHigh",  # resolved once the traffic stopped
            "CoreConnectorsLatencyHigh",
            "CoreConnectorsPoolSaturated",
            "CoreConnectorsScrapeFailing",
            "CoreConnectorsReplicasDown",
        }
    finally:
        prometheus.stop()
        for replica in replicas:
            replica.stop()
