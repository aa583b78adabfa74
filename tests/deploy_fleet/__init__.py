"""Replicas of the service behind a real load balancer, for the deployment tests.

``Fleet`` starts N ``core-connectors serve`` processes on loopback (each with the connectors of
``slow_connector.py``, whose calls take as long as the task asks) and nginx in front of them with
``grpc_pass``, as a Kubernetes Service or an ingress would sit in front of the pods. ``Load`` drives
steady traffic through the balancer from threads and records every call's outcome. ``ensure_installed``
brings in a Debian package (nginx, prometheus) the first time a test needs it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from flyteidl.admin import agent_pb2
from flyteidl.core import tasks_pb2
from flyteidl.core.execution_pb2 import TaskExecution
from flyteidl.service import agent_pb2_grpc
from google.protobuf import struct_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

HERE = Path(__file__).resolve().parent
CLI = str(Path(sys.executable).with_name("core-connectors"))


def ensure_installed(binary: str, *packages: str) -> str:
    """The path of ``binary``, installing the first Debian package of ``packages`` that apt has when it is
    missing (CI runs as root; the lists are refreshed once if no package is found)."""
    found = _which(binary)
    if found:
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    errors = []
    for refresh in (False, True):
        if refresh:
            subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True)
        for package in packages:
            install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", package]
            done = subprocess.run(install, env=env, capture_output=True, text=True)
            if done.returncode == 0 and _which(binary):
                return str(_which(binary))
            errors.append(f"{package}: {done.stderr.strip()[-300:]}")
    pytest.fail(f"cannot install {binary} with apt-get ({'; '.join(errors)})")


def _which(binary: str) -> str | None:
    return shutil.which(binary) or next((p for p in (f"/usr/sbin/{binary}",) if os.path.exists(p)), None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def health(address: str, timeout: float = 1.0) -> int | None:
    """The overall health status a Kubernetes gRPC probe sees, or None when nothing answers."""
    with grpc.insecure_channel(address) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout)
        except grpc.RpcError:
            return None
        return int(reply.status)


def template(task_type: str = "slow", **custom: Any) -> tasks_pb2.TaskTemplate:
    struct = struct_pb2.Struct()
    struct.update(custom)
    return tasks_pb2.TaskTemplate(type=task_type, custom=struct)


# ------------------------------------------------------------------------------------------------ replicas
class Replica:
    """One ``core-connectors serve`` process on a fixed loopback port (so it restarts where nginx expects)."""

    def __init__(self, workdir: Path, index: int, grace: float = 10.0, args: tuple[str, ...] = ()) -> None:
        self.port = free_port()
        self.metrics_port = free_port()
        self.log = workdir / f"replica-{index}.log"
        self.grace = grace
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> Replica:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
        command = [
            CLI,
            "serve",
            "--host=127.0.0.1",
            f"--port={self.port}",
            f"--prometheus-port={self.metrics_port}",
            f"--grace={self.grace}",
            "--modules=slow_connector",
            "--log-format=json",
            *self.args,
        ]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(command, env=env, stdout=log, stderr=log, cwd=HERE)
        wait_for(lambda: self._serving(), timeout, f"replica on {self.address} to serve")
        return self

    def _serving(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"replica exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
        return health(self.address) == health_pb2.HealthCheckResponse.SERVING

    def terminate(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


# ------------------------------------------------------------------------------------------------ nginx
FAIL_TIMEOUT = 1.0
"""How long nginx keeps a replica out after a failed connection (its passive health check)."""

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
{user}
events {{ worker_connections 4096; }}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    upstream connectors {{
{servers}
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port} http2;
        location / {{
            grpc_pass grpc://connectors;
            # A refused or reset connection before the request was sent is retried on the next replica;
            # a request already sent is not (gRPC calls are POSTs: non-idempotent).
            grpc_next_upstream error timeout;
            grpc_connect_timeout 1s;
            grpc_read_timeout 60s;
        }}
    }}
}}
"""


class Nginx:
    """nginx with ``grpc_pass`` to the replicas. Open-source nginx has only passive health (a failed
    connection takes a replica out for ``fail_timeout``); ``set_upstreams`` rewrites the upstream list and
    reloads gracefully, as an ingress controller does when a pod's readiness changes."""

    def __init__(self, workdir: Path, upstreams: list[str]) -> None:
        self.binary = ensure_installed("nginx", "nginx-light", "nginx")
        self.dir = workdir / "nginx"
        self.dir.mkdir()
        self.port = free_port()
        self.conf = self.dir / "nginx.conf"
        self.upstreams: list[str] = []
        self.reloads = 0
        self._write(upstreams)
        self.proc: subprocess.Popen[bytes] | None = None

    def _write(self, upstreams: list[str]) -> None:
        self.upstreams = list(upstreams)
        servers = "\n".join(f"        server {a} max_fails=1 fail_timeout={FAIL_TIMEOUT:g}s;" for a in upstreams)
        user = "user root;" if os.geteuid() == 0 else ""
        self.conf.write_text(NGINX_CONF.format(dir=self.dir, servers=servers, port=self.port, user=user))

    def set_upstreams(self, upstreams: list[str]) -> None:
        """Serve through ``upstreams`` only, from now on (a graceful reload: calls running finish)."""
        assert self.proc is not None
        self._write(upstreams)
        self.proc.send_signal(signal.SIGHUP)
        self.reloads += 1

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> Nginx:
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(self.conf), "-p", str(self.dir), "-e", str(self.dir / "error.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        wait_for(self._listening, 15, "nginx to listen")
        return self

    def _listening(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"nginx exited: {self.proc.stderr.read().decode() if self.proc.stderr else ''}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
            return True
        return False

    def routes(self) -> list[str]:
        """The replicas nginx sends calls to now: none are known while a reload (asynchronous) is under way,
        that is until the new worker has started and the old one, which routes by the old list, has exited."""
        log = self.error_log()
        started = log.count("start worker process") >= self.reloads + 1
        old_gone = log.count("exited with code") >= self.reloads
        return list(self.upstreams) if started and old_gone else []

    def error_log(self) -> str:
        path = self.dir / "error.log"
        return path.read_text() if path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class ReadinessWatcher:
    """The kubelet's readiness probe and the ingress controller in one thread: probes every replica's
    grpc.health.v1 every ``period`` seconds and gives nginx the replicas that answer SERVING."""

    def __init__(self, replicas: list[Replica], nginx: Nginx, period: float = 0.2) -> None:
        self.replicas = replicas
        self.nginx = nginx
        self.period = period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="readiness", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            ready = [
                r.address for r in self.replicas if health(r.address, 0.5) == health_pb2.HealthCheckResponse.SERVING
            ]
            if ready and ready != self.nginx.upstreams:
                self.nginx.set_upstreams(ready)


class Fleet:
    """N replicas behind nginx; ``stub(i)`` talks to replica i directly, ``lb_stub()`` through nginx.

    ``readiness=True`` adds the ReadinessWatcher, so that nginx follows the replicas' health as an
    ingress controller follows pod readiness; without it nginx has only its passive checks.
    """

    def __init__(
        self,
        workdir: Path,
        replicas: int = 3,
        grace: float = 10.0,
        args: tuple[str, ...] = (),
        readiness: bool = False,
    ) -> None:
        self.replicas = [Replica(workdir, i, grace, args) for i in range(replicas)]
        self.nginx = Nginx(workdir, [r.address for r in self.replicas])
        self.watcher = ReadinessWatcher(self.replicas, self.nginx) if readiness else None
        self._channels: list[grpc.Channel] = []

    def __enter__(self) -> Fleet:
        try:
            for replica in self.replicas:
                replica.start()
            self.nginx.start()
            if self.watcher is not None:
                self.watcher.start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.watcher is not None:
            self.watcher.stop()
        for channel in self._channels:
            channel.close()
        self.nginx.stop()
        for replica in self.replicas:
            replica.stop()

    def _channel(self, address: str) -> grpc.Channel:
        channel = grpc.insecure_channel(address)
        self._channels.append(channel)
        return channel

    def stub(self, index: int) -> agent_pb2_grpc.AsyncAgentServiceStub:
        return agent_pb2_grpc.AsyncAgentServiceStub(self._channel(self.replicas[index].address))

    def lb_stub(self) -> agent_pb2_grpc.AsyncAgentServiceStub:
        return agent_pb2_grpc.AsyncAgentServiceStub(self._channel(self.nginx.address))


# ------------------------------------------------------------------------------------------------ load
@dataclass
class Failure:
    at: float
    operation: str
    code: str
    details: str


@dataclass
class Load:
    """Threads that each run tasks end to end (create, poll until done, delete) through one stub, as
    propeller does, and record every call. A failed call is retried (``retry=True``) or ends the task."""

    stub: agent_pb2_grpc.AsyncAgentServiceStub
    threads: int = 8
    latency: float = 0.05
    duration: float = 0.3
    retry: bool = True
    calls: int = 0
    tasks_started: int = 0
    tasks_done: int = 0
    failures: list[Failure] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> Load:
        self._workers = [threading.Thread(target=self._run, daemon=True) for _ in range(self.threads)]
        for worker in self._workers:
            worker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        """Let every thread finish the task it is running (a task never finishes if one of its calls
        keeps failing: ``lost`` counts those)."""
        self._stop.set()
        for worker in self._workers:
            worker.join(60)

    @property
    def lost(self) -> int:
        return self.tasks_started - self.tasks_done

    def _call(self, operation: str, method: Any, request: Any) -> Any:
        while True:
            try:
                reply = method(request, timeout=10)
            except grpc.RpcError as e:
                with self._lock:
                    self.failures.append(Failure(time.monotonic(), operation, e.code().name, e.details() or ""))
                if not self.retry:
                    raise
                time.sleep(0.05)
                continue
            with self._lock:
                self.calls += 1
            return reply

    def _run(self) -> None:
        task = template(latency=self.latency, duration=self.duration)
        while not self._stop.is_set():
            with self._lock:
                self.tasks_started += 1
            with contextlib.suppress(grpc.RpcError):
                meta = self._call("create", self.stub.CreateTask, agent_pb2.CreateTaskRequest(template=task))
                get = agent_pb2.GetTaskRequest(task_type="slow", resource_meta=meta.resource_meta)
                while self._call("get", self.stub.GetTask, get).resource.phase != TaskExecution.SUCCEEDED:
                    pass
                delete = agent_pb2.DeleteTaskRequest(task_type="slow", resource_meta=meta.resource_meta)
                self._call("delete", self.stub.DeleteTask, delete)
                with self._lock:
                    self.tasks_done += 1


@contextlib.contextmanager
def cpu_contention(processes: int = 2) -> Iterator[None]:
    """Busy loops on every core, so the service, nginx and the clients fight for CPU as on a busy node."""
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(processes)]
    try:
        yield
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()


def log_events(replica: Replica) -> list[dict[str, Any]]:
    events = []
    for line in replica.log.read_text().splitlines():
        with contextlib.suppress(ValueError):
            events.append(json.loads(line))
    return events
