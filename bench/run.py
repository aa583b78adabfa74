"""Side-by-side benchmark: our connector service vs flytekit's vs an empty grpc.aio servicer (the ceiling).

Run from the repository root (about 8 minutes, 2 of them building venvs; `--quick` about 3):

    python bench/run.py [--quick] [--only PARTS,SERVERS] [--json out.json] [--seconds S] [--rounds N]
                        [--ours-python PATH] [--flytekit-python PATH] [--extras-python PATH] [--pin] [--no-size]

One run measures every figure of docs/benchmarks.md and prints each ratio with its target, met or not. Servers:
ours, flytekit, ceiling (`--only` any of them); parts: load (GetTask/CreateTask/blocking GetTask under h2load,
with the server's CPU per call), mixed (32 clients looping create/get/delete with 7% bad calls, bench/mixed.py),
webhook (ExecuteTaskSync of a webhook task against a local nginx, bench/webhook.py), bridge (a flytekit connector
served through core-connectors-flytekit, on its own loop and with --flytekit-loop service, against pyflyte
serving it), v2 (flyteidl2 GetTask against v1 on one server), python (import, local run, installed size).
`--only mixed,ours,flytekit` runs one part on two servers; naming no part runs them all, naming no server runs
them all.

Needs h2load (`apt-get update && apt-get install -y nghttp2-client`) and, for the webhook part, nginx
(`apt-get install -y nginx`); the harness's python needs grpcio and flyteidl (and flyteidl2 for the v2 part).
flytekit 1.16.31 with `flytekit[connector]` is installed on first use into ~/.cache/core-connectors-bench/
flytekit-venv (or taken from `--flytekit-python`). Ours is installed into a fresh venv for each run: ./core and
./connectors/sleep (that is the installed size), then every connector package of the repository but the bridge
(webhook, sensor, bigquery, openai): that venv serves. The bridge and Flyte 2 run from a second venv
(flytekit, ./core[flyte2], ./connectors/sleep, ./connectors/flytekit), cached beside flytekit's and refreshed
with this checkout's packages each run (or `--extras-python`).

The servers run one after another for launch time and memory, then stay up and take turns under load (in
alternating order, round by round), so background work on the machine hits them alike. Servers listen on
127.0.0.1; with `--pin` (taskset) the servers are pinned to the first core and the harness and load to the
second."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path

import grpc
from flyteidl.admin import agent_pb2
from flyteidl.core import identifier_pb2, interface_pb2, literals_pb2, tasks_pb2
from flyteidl.service import agent_pb2_grpc
from google.protobuf import struct_pb2
from webhook import SYNC_SERVICE, StandIn, webhook_requests

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
CACHE = Path.home() / ".cache" / "core-connectors-bench"
FLYTEKIT_SPEC = "flytekit[connector]==1.16.31"
BASE_PYTHON = Path(getattr(sys, "_base_executable", sys.executable))
SUCCEEDED = 3  # flyteidl.core.execution_pb2.TaskExecution.SUCCEEDED
FAST_LOAD = (4, 32)  # h2load clients x streams per client = 128 concurrent streams
BLOCKING_LOAD = (2, 32)  # 64 concurrent streams
BLOCKING_LIMIT = 64 / 0.05  # GetTask/s when 64 calls each block 50 ms and all overlap
WEBHOOK_LOAD = (2, 16)  # 32 webhook calls at a time
MIXED_CLIENTS = (2, 16)  # client processes x clients in each = 32 clients
SERVICE = "/flyteidl.service.AsyncAgentService/"
V2_SERVICE = "/flyteidl2.connector.AsyncConnectorService/"
SERVERS = ("ours", "flytekit", "ceiling")
PARTS = ("load", "mixed", "webhook", "bridge", "v2", "python")
# every connector package of the repository installed beside sleep in ours' venv; not the bridge (flytekit's
# connectors served unchanged), which brings all of flytekit: it has a server and a figure of its own
CONNECTOR_PACKAGES = ("webhook", "sensor", "bigquery", "openai")
PACKAGE_TASK_TYPES = ("webhook", "sensor", "bigquery_query_job_task", "chatgpt", "openai-batch")  # ListAgents has
EXTRAS_PACKAGES = ("core[flyte2]", "connectors/sleep", "connectors/flytekit")
TICKS = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------------------------------- requests


def create_request(task_type: str) -> agent_pb2.CreateTaskRequest:
    """A CreateTaskRequest shaped like propeller's: a zero-length task of `task_type`."""
    custom = struct_pb2.Struct()
    custom.update({"duration": 0})
    task_id = identifier_pb2.Identifier(
        resource_type=identifier_pb2.TASK, project="bench", domain="development", name=f"bench.{task_type}", version="1"
    )
    template = tasks_pb2.TaskTemplate(
        id=task_id,
        type=task_type,
        metadata=tasks_pb2.TaskMetadata(
            runtime=tasks_pb2.RuntimeMetadata(type=tasks_pb2.RuntimeMetadata.FLYTE_SDK, version="1.16.31")
        ),
        interface=interface_pb2.TypedInterface(inputs=interface_pb2.VariableMap(), outputs=interface_pb2.VariableMap()),
        custom=custom,
    )
    metadata = agent_pb2.TaskExecutionMetadata(namespace="bench-development", labels={"bench": "1"})
    return agent_pb2.CreateTaskRequest(
        template=template,
        inputs=literals_pb2.LiteralMap(),
        output_prefix="/tmp/bench",
        task_execution_metadata=metadata,
    )


def get_request(task_type: str, resource_meta: bytes) -> agent_pb2.GetTaskRequest:
    """A GetTaskRequest as propeller sends it: task_category set, deprecated task_type too."""
    category = agent_pb2.TaskCategory(name=task_type, version=0)
    return agent_pb2.GetTaskRequest(task_type=task_type, task_category=category, resource_meta=resource_meta)


def grpc_frame(message) -> bytes:
    """The body of a unary gRPC call: flag byte 0, 4-byte big-endian length, the message."""
    data = message.SerializeToString()
    return b"\0" + len(data).to_bytes(4, "big") + data


def call(port: int, method: str, request, timeout: float = 10.0):
    """One real call with the flyteidl stubs on a fresh channel; raises grpc.RpcError on failure."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        if method == "ListAgents":
            return agent_pb2_grpc.AgentMetadataServiceStub(channel).ListAgents(request, timeout=timeout)
        return getattr(agent_pb2_grpc.AsyncAgentServiceStub(channel), method)(request, timeout=timeout)


# ---------------------------------------------------------------------------------------------------- processes


def export(rev: str, into: Path) -> Path:
    """The core and the sleep connector as they were at git revision ``rev``, unpacked under ``into`` (the A/B
    scripts put its src directories on PYTHONPATH)."""
    data = subprocess.run(
        ["git", "archive", rev, "core", "connectors/sleep"], cwd=ROOT, capture_output=True, check=True
    )
    with tarfile.open(fileobj=BytesIO(data.stdout)) as tar:
        tar.extractall(into, filter="data")
    return into


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    """Resident memory of `pid` and all its descendants, in MB (from /proc)."""
    total_kb, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
            total_kb += int(re.search(r"VmRSS:\s+(\d+)", status).group(1))
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, AttributeError):
            continue
    return total_kb / 1024


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of `pid` and its live descendants, from /proc."""
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / TICKS
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return total


@dataclass
class Load:
    """One figure's traffic for h2load: the gRPC body sent, and a real call that checks the reply's content."""

    method: str
    request: object  # a message, or the gRPC body as bytes (for a streaming call)
    shape: tuple[int, int]  # h2load clients x streams per client
    probe: Callable[[], int]  # one real call, checked; returns the length of its reply on the wire
    service: str = SERVICE


@dataclass
class Server:
    """One of the servers under test: how to start it, and its running process."""

    name: str
    argv: list[str]  # "{port}" is replaced
    env: dict[str, str] = field(default_factory=dict)
    pin: list[str] = field(default_factory=list)
    logdir: Path = Path(tempfile.gettempdir())
    expect: tuple[str, ...] = ("sleep", "blocking")  # task categories ListAgents must announce
    proc: subprocess.Popen | None = None
    port: int = 0
    loads: dict[str, Load] = field(default_factory=dict)  # figure -> its traffic
    launches: int = 0  # how many launches to time; 0: the run's default
    alias_of: Server | None = None  # another protocol of that server's process: never started or stopped here

    def start(self) -> None:
        self.port = free_port()
        argv = self.pin + [a.replace("{port}", str(self.port)) for a in self.argv]
        env = {**os.environ, "PYTHONPATH": str(BENCH), **self.env}
        self.log = self.logdir / f"{self.name}.log"
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                argv, cwd=BENCH, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def stop(self) -> None:
        """SIGTERM the server's process group, SIGKILL it after 5 s."""
        if self.alias_of is not None or self.proc is None or self.proc.poll() is not None:
            self.proc = None
            return
        for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
            try:
                os.killpg(self.proc.pid, sig)
                self.proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
            except ProcessLookupError:
                break
        self.proc = None

    def tail(self) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-15:])
        except OSError:
            return ""

    def launch(self, timeout: float = 60.0) -> float:
        """Start the server; return seconds from launch to the first ListAgents that succeeds."""
        t0 = time.perf_counter()
        self.start()
        while time.perf_counter() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                reply = call(self.port, "ListAgents", agent_pb2.ListAgentsRequest(), timeout=1.0)
            except grpc.RpcError:
                time.sleep(0.005)
                continue
            took = time.perf_counter() - t0
            found = {c.name for a in reply.agents for c in a.supported_task_categories}
            missing = set(self.expect) - found
            if missing:
                raise RuntimeError(f"{self.name}: ListAgents lacks {sorted(missing)} (has {sorted(found)})")
            return took
        raise RuntimeError(f"{self.name} served no ListAgents within {timeout} s:\n{self.tail()}")


# ---------------------------------------------------------------------------------------------------- load


def h2load(port: int, method: str, request, load: tuple[int, int], seconds: float, service: str = SERVICE) -> dict:
    """Drive one method (of `service`, a path prefix) with h2load for `seconds`; req/s and h2load's counts.

    `request` is a message (a unary call's one message) or the whole gRPC body as bytes (several messages)."""
    clients, streams = load
    with tempfile.NamedTemporaryFile(suffix=".bin") as body:
        body.write(request if isinstance(request, bytes) else grpc_frame(request))
        body.flush()
        argv = ["h2load", "-c", str(clients), "-m", str(streams), "-t", "1", "-D", f"{int(seconds * 1000)}ms"]
        argv += ["-H", "content-type: application/grpc", "-H", "te: trailers"]
        argv += ["-d", body.name, f"http://127.0.0.1:{port}{service}{method}"]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    out = proc.stdout
    try:
        rps = float(re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out).group(1))
        counts = re.search(r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed", out)
        data = int(re.search(r"traffic: .*\((\d+)\) data", out).group(1))
    except AttributeError:
        raise RuntimeError(f"cannot parse h2load output ({' '.join(argv)}):\n{out}{proc.stderr}") from None
    done, ok, failed = (int(counts.group(i)) for i in (2, 3, 4))
    return {"rps": rps, "done": done, "succeeded": ok, "failed": failed, "data_bytes": data}


def check_load(server: Server, method: str, r: dict, reply_size: int) -> None:
    """h2load counts any HTTP 200 as success, but a gRPC error has no body: so compare the response bytes too."""
    per_reply = r["data_bytes"] / max(r["succeeded"], 1)
    if r["failed"] or r["succeeded"] == 0 or not 0.95 * reply_size <= per_reply <= 1.1 * reply_size:
        raise RuntimeError(f"{server.name} {method}: bad replies under load {r}, expected {reply_size} B each")


def created(reply):
    assert reply.resource_meta, "CreateTask returned no resource_meta"
    return reply


def succeeded(reply):
    assert reply.resource.phase == SUCCEEDED, f"GetTask phase {reply.resource.phase}, expected SUCCEEDED"
    return reply


def unary_load(port: int, method: str, request, expect, shape: tuple[int, int]) -> Load:
    """A v1 unary call; its probe checks the reply with `expect`."""
    return Load(method, request, shape, lambda: len(grpc_frame(expect(call(port, method, request)))))


def v2_get_load(port: int, meta: bytes) -> Load:
    """GetTask over flyteidl2.connector (Flyte 2) for the task of `meta`, same shape as v1's GetTask."""
    from flyteidl2.connector import connector_pb2

    request = connector_pb2.GetTaskRequest(task_category=connector_pb2.TaskCategory(name="sleep"), resource_meta=meta)

    def probe() -> int:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            reply = channel.unary_unary(V2_SERVICE + "GetTask")(request.SerializeToString(), timeout=10)
        phase = connector_pb2.GetTaskResponse.FromString(reply).resource.phase
        assert phase == SUCCEEDED, f"v2 GetTask phase {phase}, expected SUCCEEDED"
        return len(reply) + 5

    return Load("GetTask", request, FAST_LOAD, probe, V2_SERVICE)


def webhook_load(port: int, url: str) -> Load:
    """ExecuteTaskSync of a webhook task posting to `url`; the probe checks the task SUCCEEDED."""
    requests = webhook_requests(url)

    def probe() -> int:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            replies = list(agent_pb2_grpc.SyncAgentServiceStub(channel).ExecuteTaskSync(iter(requests), timeout=10))
        resource = replies[0].header.resource
        assert resource.phase == SUCCEEDED, f"webhook phase {resource.phase}: {resource.message}"
        return sum(len(grpc_frame(r)) for r in replies)

    body = b"".join(grpc_frame(r) for r in requests)
    return Load("ExecuteTaskSync", body, WEBHOOK_LOAD, probe, SYNC_SERVICE)


def launch_server(server: Server, launches: int) -> dict:
    """Launch the server `launches` times (the last one stays up); launch time and idle RSS."""
    times = []
    for i in range(launches):
        times.append(server.launch())
        if i < launches - 1:
            server.stop()
    time.sleep(0.2)
    res = {"launch_s": statistics.median(times), "idle_rss_mb": rss_mb(server.proc.pid)}
    print(f"  launch {[round(t, 3) for t in times]} s, idle RSS {res['idle_rss_mb']:.1f} MB", flush=True)
    return res


def error_text(e: Exception) -> str:
    return f"{e.code()}: {e.details()}" if isinstance(e, grpc.RpcError) else str(e)


FAILURES = (RuntimeError, AssertionError, grpc.RpcError, subprocess.TimeoutExpired, OSError, ValueError)


def take_turns(servers: dict[str, Server], results: dict, args, key: str) -> None:
    """One throughput figure (`key` of the servers' loads) for every server that has it, the servers taking turns
    in each round, in alternating order: `{key}_rps` and the server's CPU per call, `{key}_cpu_us`.

    Taking turns makes the ratios robust against other work on the machine that comes and goes. CPU per call is
    the server process's (and its children's) user + system time over the round divided by the calls answered.
    """
    turns = [(n, s) for n, s in servers.items() if key in s.loads and "error" not in results[n]]
    rates: dict[str, list[float]] = {name: [] for name, _ in turns}
    cpus: dict[str, list[float]] = {name: [] for name, _ in turns}
    sizes = {}
    for rep in range(args.repeat + 1):  # round 0 is the warm-up
        for name, server in turns if rep % 2 else turns[::-1]:
            if "error" in results[name]:
                continue
            load = server.loads[key]
            try:
                if rep == 0:
                    sizes[name] = load.probe()
                    h2load(server.port, load.method, load.request, load.shape, args.warmup, load.service)
                    continue
                before = cpu_seconds(server.proc.pid)
                r = h2load(server.port, load.method, load.request, load.shape, args.seconds, load.service)
                used = cpu_seconds(server.proc.pid) - before
                check_load(server, load.method, r, sizes[name])
                rates[name].append(r["rps"])
                cpus[name].append(used / max(r["done"], 1) * 1e6)
                if rep == args.repeat:
                    load.probe()
            except FAILURES as e:
                results[name]["error"] = f"{key}: {error_text(e)}"
                print(f"  {name} FAILED: {results[name]['error']}\n{server.tail()}", flush=True)
    for name, got in rates.items():
        if got and "error" not in results[name]:
            results[name][f"{key}_rps"] = statistics.median(got)
            results[name][f"{key}_rps_runs"] = got
            results[name][f"{key}_cpu_us"] = statistics.median(cpus[name])
            results[name][f"{key}_cpu_us_runs"] = cpus[name]
    print(
        f"{key}: "
        + ", ".join(
            f"{n} {[round(r) for r in rates[n]]}/s {statistics.median(cpus[n] or [0]):.0f} us CPU" for n in rates
        ),
        flush=True,
    )


# What each kind of call of the mixed traffic must get from each server; anything else is unexpected.
# flytekit answers every exception of a connector with INTERNAL; grpc answers a request it cannot parse with
# UNKNOWN before flytekit's code sees it.
MIXED_CODES = {
    "ours": {
        "create": "OK", "get": "OK", "delete": "OK",
        "bad bytes": "INVALID_ARGUMENT", "bad meta": "INVALID_ARGUMENT", "unknown type": "NOT_FOUND",
        "failing": "INTERNAL",
    },
    "flytekit": {
        "create": "OK", "get": "OK", "delete": "OK",
        "bad bytes": "UNKNOWN", "bad meta": "INTERNAL", "unknown type": "NOT_FOUND", "failing": "INTERNAL",
    },
}  # fmt: skip


def mixed_round(port: int, seconds: float, seed: int) -> dict:
    """MIXED_CLIENTS of bench/mixed.py against `port` at once; loops/s and the codes counted."""
    processes, clients = MIXED_CLIENTS
    argv = [sys.executable, str(BENCH / "mixed.py"), "--port", str(port), "--clients", str(clients)]
    argv += ["--seconds", str(seconds)]
    env = {**os.environ, "PYTHONPATH": str(BENCH)}
    procs = [
        subprocess.Popen([*argv, "--seed", str(seed * 100 + i)], stdout=subprocess.PIPE, text=True, env=env)
        for i in range(processes)
    ]
    outs = []
    for proc in procs:
        out, _ = proc.communicate(timeout=seconds + 120)
        if proc.returncode:
            raise RuntimeError(f"bench/mixed.py exited with {proc.returncode}")
        outs.append(json.loads(out.strip().splitlines()[-1]))
    codes: Counter = Counter()
    for out in outs:
        codes.update(out["codes"])
    return {"loops_per_s": sum(o["loops"] / o["seconds"] for o in outs), "loops": sum(o["loops"] for o in outs),
            "codes": codes, "client_cpu_s": sum(o["cpu_s"] for o in outs)}  # fmt: skip


def mixed_traffic(servers: dict[str, Server], results: dict, args) -> None:
    """Loops/s of 32 clients of mixed traffic, the servers taking turns; every status code checked."""
    turns = [(n, s) for n, s in servers.items() if n in MIXED_CODES and "error" not in results[n]]
    loops: dict[str, list[float]] = {name: [] for name, _ in turns}
    codes: dict[str, Counter] = {name: Counter() for name, _ in turns}
    cpus: dict[str, list[float]] = {name: [] for name, _ in turns}
    client_cpus: dict[str, list[float]] = {name: [] for name, _ in turns}
    for rep in range(args.repeat + 1):  # round 0 is the warm-up
        for name, server in turns if rep % 2 else turns[::-1]:
            if "error" in results[name]:
                continue
            try:
                before = cpu_seconds(server.proc.pid)
                r = mixed_round(server.port, args.seconds if rep else args.warmup, rep)
                used = cpu_seconds(server.proc.pid) - before
            except FAILURES as e:
                results[name]["error"] = f"mixed: {error_text(e)}"
                print(f"  {name} FAILED: {results[name]['error']}\n{server.tail()}", flush=True)
                continue
            if rep:
                loops[name].append(r["loops_per_s"])
                codes[name].update(r["codes"])
                cpus[name].append(used / max(r["loops"], 1) * 1e6)
                client_cpus[name].append(r["client_cpu_s"] / max(r["loops"], 1) * 1e6)
    for name, got in loops.items():
        if not got:
            continue
        expected = MIXED_CODES[name]
        unexpected = {k: n for k, n in codes[name].items() if expected.get(k.split(": ")[0]) != k.split(": ", 1)[1]}
        calls = sum(codes[name].values())
        bad = sum(n for k, n in codes[name].items() if k.split(": ")[0] not in ("create", "get", "delete"))
        results[name].update(
            mixed_loops=statistics.median(got),
            mixed_loops_runs=got,
            mixed_unexpected=sum(unexpected.values()),
            mixed_unexpected_codes=unexpected,
            mixed_codes=dict(codes[name]),
            mixed_bad_share=bad / max(calls, 1),
            mixed_cpu_us_per_loop=statistics.median(cpus[name]),
            mixed_loops_per_cpu_s=1e6 / max(statistics.median(cpus[name]), 1e-9),
            mixed_client_cpu_us_per_loop=statistics.median(client_cpus[name]),
        )
        print(
            f"mixed: {name} {[round(x) for x in got]} loops/s, {calls} calls, {bad / max(calls, 1):.1%} bad, "
            f"unexpected codes {unexpected or 'none'}",
            flush=True,
        )


# ---------------------------------------------------------------------------------------------------- python side


def run_ok(argv: list[str], **kw) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True, **kw).stdout


def import_cost(python: str, module: str, runs: int) -> dict:
    """Median wall time of `python -c "import module"`, net of a bare interpreter, and the RSS after it."""

    def wall(code: str) -> float:
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            run_ok([python, "-c", code])
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    rss = "import re;print(re.search(r'VmRSS:\\s+(\\d+)', open('/proc/self/status').read()).group(1))"
    bare, full = wall("pass"), wall(f"import {module}")
    kb = int(run_ok([python, "-c", f"import {module};{rss}"]))
    return {"import_s": full - bare, "import_wall_s": full, "bare_python_s": bare, "import_rss_mb": kb / 1024}


def dir_mb(path: Path) -> float:
    return int(run_ok(["du", "-sk", str(path)]).split()[0]) / 1024


def package_count(venv: Path) -> int:
    return len(run_ok([str(venv / "bin" / "python"), "-m", "pip", "list", "--format=freeze"]).split())


def make_venv(path: Path, *pip_args: str) -> Path:
    run_ok([str(BASE_PYTHON), "-m", "venv", str(path)])
    if pip_args:
        run_ok([str(path / "bin" / "python"), "-m", "pip", "install", "-q", *pip_args], timeout=900)
    return path


def flytekit_venv() -> Path:
    """The cached flytekit[connector] venv, built on first use."""
    venv = CACHE / "flytekit-venv"
    if not (venv / "bin" / "pyflyte").exists():
        print(f"building {venv} with {FLYTEKIT_SPEC} (once) ...", flush=True)
        shutil.rmtree(venv, ignore_errors=True)
        make_venv(venv, FLYTEKIT_SPEC)
    return venv


def extras_venv() -> Path:
    """The venv of the bridge and Flyte 2 servers: flytekit (cached, built on first use), then this checkout's
    ./core[flyte2], ./connectors/sleep and ./connectors/flytekit installed again on every run."""
    venv = CACHE / "extras-venv"
    flytekit = "flytekit==" + FLYTEKIT_SPEC.split("==")[1]  # without the [connector] extra: ours serves
    if not (venv / "bin" / "python").exists() or not (CACHE / "extras-venv.ok").exists():
        print(f"building {venv} with {flytekit} (once) ...", flush=True)
        shutil.rmtree(venv, ignore_errors=True)
        make_venv(venv, flytekit)
        (CACHE / "extras-venv.ok").write_text(flytekit)
    print(f"installing {', '.join(EXTRAS_PACKAGES)} into {venv} ...", flush=True)
    packages = [str(ROOT / p) for p in EXTRAS_PACKAGES]
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    run_ok([*pip, "--force-reinstall", "--no-deps", *packages], timeout=900)  # this checkout, same version
    run_ok([*pip, *packages], timeout=900)  # and whatever they now depend on
    return venv


def venv_size(venv: Path, empty: Path) -> dict:
    """Size and package count of `venv` minus those of an empty venv."""
    return {"size_mb": dir_mb(venv) - dir_mb(empty), "packages": package_count(venv) - package_count(empty)}


# ---------------------------------------------------------------------------------------------------- report

COLUMNS = ("flytekit", "ceiling", "ceiling_uvloop")


@dataclass
class Figure:
    """A row of the table: `key` of each column's results (ours' column read from `ours`), and the target:
    `ratio` computes the ratio the target is about from the row (None: an absolute target), `met` judges it."""

    key: str
    label: str
    unit: str
    target: str = ""
    ratio: Callable[[dict], float] | None = None
    met: Callable[[float, dict], bool] | None = None
    ours: str = "ours"
    show: tuple[str, ...] = COLUMNS  # the reference columns that belong to this row


FIGURES = [
    Figure("get_rps", "GetTask/s, sleep, 128 streams", "/s", ">= 0.95 of ceil-uv", lambda r: r["o"] / r["cu"],
           lambda x, r: x >= 0.95),
    Figure("create_rps", "CreateTask/s, sleep, 128 streams", "/s", ">= 0.92 of ceil-uv", lambda r: r["o"] / r["cu"],
           lambda x, r: x >= 0.92),
    Figure("get_cpu_us", "server CPU per GetTask", "us", "<= 1.05x ceil-uv", lambda r: r["o"] / r["cu"],
           lambda x, r: x <= 1.05),
    Figure("create_cpu_us", "server CPU per CreateTask", "us"),
    Figure("blocking_rps", "GetTask/s, blocking 50 ms def get, 64 str.", "/s", f">= 0.9 of {BLOCKING_LIMIT:.0f}/s",
           lambda r: r["o"] / BLOCKING_LIMIT, lambda x, r: x >= 0.9),
    Figure("launch_s", "launch to ListAgents, all packages (median)", "s", "<= 0.10 of flytekit's",
           lambda r: r["o"] / r["f"], lambda x, r: x <= 0.10),
    Figure("idle_rss_mb", "idle service RSS", "MB", "<= 43 MB", None, lambda x, r: r["o"] <= 43),
    Figure("import_s", "import base classes (net of bare python)", "s", "<= 0.08 of flytekit's",
           lambda r: r["o"] / r["f"], lambda x, r: x <= 0.08),
    Figure("import_wall_s", "import base classes (wall)", "s"),
    Figure("import_rss_mb", "RSS after that import", "MB"),
    Figure("size_mb", "installed size, service + sleep (- empty venv)", "MB", "<= 0.30 of flytekit's",
           lambda r: r["o"] / r["f"], lambda x, r: x <= 0.30),
    Figure("packages", "installed packages (minus empty venv)", ""),
    Figure("local_run_ms", "local run, zero-length sleep task (median)", "ms", "< 5 ms", None,
           lambda x, r: r["o"] < 5),
    Figure("mixed_loops", "mixed traffic, 32 clients, loops/s", "/s", ">= 1.5x flytekit's",
           lambda r: r["o"] / r["f"], lambda x, r: x >= 1.5),
    Figure("mixed_unexpected", "mixed traffic: unexpected status codes", "", "0", None, lambda x, r: r["o"] == 0),
    Figure("mixed_cpu_us_per_loop", "mixed traffic: server CPU per loop", "us"),
    Figure("mixed_client_cpu_us_per_loop", "mixed traffic: the clients' CPU per loop", "us"),
    # the clients share the 2 cores with the server: loops per second of the server's own CPU is the rate it
    # would reach if they were free (and steadier on a shared machine)
    Figure("mixed_loops_per_cpu_s", "mixed traffic: loops per server CPU second", "/s"),
    Figure("webhook_rps", "webhook ExecuteTaskSync/s, 32 at a time", "/s", ">= flytekit's (no target set)",
           lambda r: r["o"] / r["f"], lambda x, r: x >= 1.0),
    Figure("webhook_cpu_us", "server CPU per webhook call", "us"),
    Figure("get_rps", "bridged flytekit conn., GetTask/s (ours: bridge)", "/s", ">= pyflyte serving it",
           lambda r: r["o"] / r["f"], lambda x, r: x >= 1.0, ours="bridge", show=("flytekit",)),
    Figure("get_rps", "the same, --flytekit-loop service", "/s", ">= pyflyte serving it",
           lambda r: r["o"] / r["f"], lambda x, r: x >= 1.0, ours="bridge_service", show=("flytekit",)),
    Figure("get_rps", "v1 GetTask/s on a [flyte2] server", "/s", ours="ours_flyte2", show=()),
    Figure("get_rps", "v2 GetTask/s on that server (flyteidl2)", "/s", ">= 0.95 of v1 there",
           lambda r: r["o"] / r["v1"], lambda x, r: x >= 0.95, ours="ours_flyte2_v2", show=()),
]  # fmt: skip


def fmt(v, unit: str) -> str:
    if v is None:
        return "-"
    if unit == "s":
        return f"{v:.3f} s"
    if unit == "/s":
        return f"{v:,.0f}/s"
    if unit == "MB":
        return f"{v:.1f} MB"
    if unit == "ms":
        return f"{v:.2f} ms"
    if unit == "us":
        return f"{v:.0f} us"
    return f"{v:g}"


def report(results: dict) -> list[list[str]]:
    """Rows of the table: figure, flytekit, ceiling, ceiling on uvloop, ours, ours/ceiling on uvloop (the
    reference of the targets), ours/flytekit, target, the ratio the target is about, status."""
    rows = []
    for fig in FIGURES:
        f, c, cu = (results.get(s, {}).get(fig.key) if s in fig.show else None for s in COLUMNS)
        o = results.get(fig.ours, {}).get(fig.key)
        if o is None and f is None and c is None and cu is None:
            continue  # a part not run
        row = {"o": o, "f": f, "c": c, "cu": cu, "v1": results.get("ours_flyte2", {}).get("get_rps")}
        ratio, status = None, ""
        if fig.met:
            try:
                ratio = fig.ratio(row) if fig.ratio else None
                status = "MET" if fig.met(ratio, row) else "NOT MET"
            except (TypeError, ZeroDivisionError):  # a figure it needs is missing
                status = "-"
        ocu = f"{o / cu:.2f}" if o is not None and cu else "-"
        of = f"{o / f:.2f}" if o is not None and f else "-"
        label = fig.label
        rows.append(
            [label, fmt(f, fig.unit), fmt(c, fig.unit), fmt(cu, fig.unit), fmt(o, fig.unit), ocu, of, fig.target]
            + [f"{ratio:.2f}" if ratio is not None else "", status]
        )
    return rows


HEAD = ["figure", "flytekit 1.16.31", "ceiling", "ceiling, uvloop", "ours", "ours/ceil-uv", "ours/fk", "target"]
HEAD += ["ratio", "status"]


def print_table(rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in [HEAD, *rows]) for i in range(len(HEAD))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"  # noqa: E731
    print(line(HEAD))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print(line(r))


# ---------------------------------------------------------------------------------------------------- main


def ours_available(python: str) -> str | None:
    """None when `core_connectors` imports and `core-connectors serve` is there, else why not."""
    if not Path(python).exists():
        return f"{python} does not exist"
    cli = Path(python).parent / "core-connectors"
    for argv in (
        [python, "-c", "import core_connectors.base_connector, core_connectors_sleep"],
        [cli, "serve", "--help"],
    ):
        try:
            run_ok([str(a) for a in argv], timeout=60)
        except (OSError, subprocess.CalledProcessError) as e:
            why = str(getattr(e, "stderr", "") or e).strip().splitlines()[-1:]
            return f"`{' '.join(map(str, argv))}` fails: {why}"
    return None


def serve_argv(python: str, *modules: str) -> list[str]:
    argv = [str(Path(python).parent / "core-connectors"), "serve", "--host", "127.0.0.1", "--port", "{port}"]
    argv += ["--prometheus-port", "0"]
    for module in modules:
        argv += ["--modules", module]
    return argv


def parse_args(argv: list[str] | None = None):
    parser = argparse.ArgumentParser(description="Benchmark ours vs flytekit vs an empty grpc.aio servicer.")
    parser.add_argument("--quick", action="store_true", help="short runs, for a smoke test")
    parser.add_argument(
        "--only",
        default="",
        help=f"comma-separated servers ({','.join(SERVERS)}) and parts ({','.join(PARTS)}); default: all",
    )
    parser.add_argument("--json", type=Path, help="also write every figure and round here")
    parser.add_argument("--seconds", type=float, help="seconds of each timed round (default 3; --quick 1)")
    parser.add_argument("--warmup", type=float, help="seconds of the warm-up round (default 1; --quick 0.3)")
    parser.add_argument("--rounds", type=int, help="timed rounds per figure (default 5; --quick 1)")
    parser.add_argument("--launches", type=int, help="launches timed per server (default 5; --quick 2)")
    parser.add_argument(
        "--ours-python",
        default=os.environ.get("CORE_CONNECTORS_PYTHON"),
        help="serve ours from this interpreter's venv (default: a fresh venv with every connector package)",
    )
    parser.add_argument("--flytekit-python", help="run pyflyte from this interpreter's venv (default: the cache)")
    parser.add_argument(
        "--extras-python", help="serve the bridge and Flyte 2 from this interpreter's venv (default: the cache)"
    )
    parser.add_argument(
        "--pin", action="store_true", help="pin the servers to one core and the load to the other (taskset)"
    )
    parser.add_argument("--no-size", action="store_true", help="skip the installed-size figure")
    parser.add_argument(
        "--bridge", action="store_true", help="only the flytekit bridge's cost in detail (bench/bridge.py)"
    )
    args = parser.parse_args(argv)
    quick = args.quick
    args.seconds = args.seconds or (1.0 if quick else 3.0)
    args.warmup = args.warmup if args.warmup is not None else (0.3 if quick else 1.0)
    args.repeat = args.rounds or (1 if quick else 5)
    args.launches = args.launches or (2 if quick else 5)
    args.import_runs = 3 if quick else 7
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    if only - set(SERVERS) - set(PARTS):
        parser.error(f"--only takes servers ({','.join(SERVERS)}) and parts ({','.join(PARTS)})")
    args.servers = [s for s in SERVERS if s in only] or list(SERVERS)
    args.parts = [p for p in PARTS if p in only] or list(PARTS)
    return args


def main() -> int:
    args = parse_args()
    if not shutil.which("h2load"):
        print("h2load not found: apt-get update && apt-get install -y nghttp2-client", file=sys.stderr)
        return 2
    started = time.monotonic()
    pin, note = [], "not pinned: server and load share the cores"
    if args.pin and shutil.which("taskset") and len(os.sched_getaffinity(0)) >= 2:
        cores = sorted(os.sched_getaffinity(0))
        pin = ["taskset", "-c", str(cores[0])]
        os.sched_setaffinity(0, {cores[1]})  # the harness, h2load, the clients and the import runs
        note = f"server pinned to core {cores[0]}, harness and h2load to core {cores[1]} (taskset)"
    machine = {"nproc": os.cpu_count(), "python": sys.version.split()[0], "pinning": note}
    machine.update(loadavg_at_start=round(os.getloadavg()[0], 2), servers=args.servers, parts=args.parts)
    machine.update(seconds=args.seconds, rounds=args.repeat, warmup=args.warmup, launches=args.launches)
    print(machine, flush=True)
    if machine["loadavg_at_start"] > 0.5:
        print("note: the machine is busy (load average above 0.5); servers take turns so ratios stay fair", flush=True)

    tmp = Path(tempfile.mkdtemp(prefix="core-connectors-bench-"))
    machine["phases_s"] = {}
    mark = [started]

    def phase(name: str) -> None:
        """Seconds since the previous phase ended, under `name`."""
        now = time.monotonic()
        machine["phases_s"][name] = round(now - mark[0])
        mark[0] = now

    if args.bridge:
        from bridge import print_bridge_table, run_bridge

        results = {"machine": machine, **run_bridge(args, tmp, pin)}
        print_bridge_table(results)
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
        return 0
    results: dict = {"machine": machine}
    parts, names = set(args.parts), set(args.servers)
    webhook = "webhook" in parts and ({"ours", "flytekit"} & names)
    if webhook and not shutil.which("nginx") and not Path("/usr/sbin/nginx").exists():
        print("SKIPPING the webhook part: nginx not found (apt-get install -y nginx)", flush=True)
        webhook = False
    size = "python" in parts and not args.no_size
    servers: dict[str, Server] = {}
    stand_in = None
    try:
        empty = make_venv(tmp / "empty") if size else None
        fk_python = None
        if "flytekit" in names:
            fk_python = args.flytekit_python or str(flytekit_venv() / "bin" / "python")
            pyflyte = [str(Path(fk_python).parent / "pyflyte"), "serve", "connector", "--port", "{port}"]
            pyflyte += ["--prometheus_port", "0"]
            for module in ("flytekit_sleep_connector", "flytekit_blocking_connector", "flytekit_failing_connector"):
                pyflyte += ["--modules", module]
            expect = ("sleep", "blocking", "failing", "webhook", "sensor")  # with flytekit's own two
            servers["flytekit"] = Server("flytekit", pyflyte, expect=expect)
            results["flytekit"] = venv_size(Path(fk_python).parent.parent, empty) if empty else {}
        if "ceiling" in names and "load" in parts:
            argv = [sys.executable, str(BENCH / "empty_server.py"), "--port", "{port}"]
            servers["ceiling"] = Server("ceiling", argv, expect=("sleep",))
        ours_python = args.ours_python
        if "ours" in names:
            results["ours"] = {}
            if not ours_python or empty:
                print("building a fresh venv with ./core ./connectors/sleep ...", flush=True)
                try:
                    fresh = make_venv(tmp / "ours", str(ROOT / "core"), str(ROOT / "connectors" / "sleep"))
                    results["ours"] = venv_size(fresh, empty) if empty else {}
                    if not ours_python:
                        print(f"adding the connector packages {', '.join(CONNECTOR_PACKAGES)} ...", flush=True)
                        run_ok([str(fresh / "bin" / "python"), "-m", "pip", "install", "-q"]
                               + [str(ROOT / "connectors" / c) for c in CONNECTOR_PACKAGES], timeout=900)  # fmt: skip
                        ours_python = str(fresh / "bin" / "python")
                except subprocess.CalledProcessError as e:
                    print(f"cannot install ours: {e.stderr.strip()[-2000:]}", flush=True)
            why = ours_available(ours_python) if ours_python else "no venv with core-connectors"
            if why:
                print(f"SKIPPING ours: {why}", flush=True)
                results["ours"]["skipped"] = why
            else:
                modules = ("ours_blocking_connector", "ours_failing_connector")
                expect = ("sleep", "blocking", "failing") + (PACKAGE_TASK_TYPES if not args.ours_python else ())
                servers["ours"] = Server("ours", serve_argv(ours_python, *modules), expect=expect)
                servers["ours"].env = {"CORE_CONNECTORS_DISABLE": "flytekit"}  # when --ours-python has the bridge
                if "ceiling" in names and "load" in parts:  # the same empty servicer on uvloop, ours' event loop
                    uv = [ours_python, str(BENCH / "empty_server.py"), "--uvloop", "--port", "{port}"]
                    servers["ceiling_uvloop"] = Server("ceiling_uvloop", uv, expect=("sleep",))
            if {"bridge", "v2"} & parts and not why:
                extras = args.extras_python or str(extras_venv() / "bin" / "python")
                if "bridge" in parts:  # flytekit's sleep connector, served through the bridge (both loops)
                    argv = serve_argv(extras, "flytekit_sleep_connector")
                    env = {"CORE_CONNECTORS_DISABLE": "sleep"}
                    servers["bridge"] = Server("bridge", argv, env=env, expect=("sleep",), launches=1)
                    argv = [*argv, "--flytekit-loop", "service"]
                    servers["bridge_service"] = Server("bridge_service", argv, env=env, expect=("sleep",), launches=1)
                if "v2" in parts:
                    env = {"CORE_CONNECTORS_DISABLE": "flytekit"}
                    servers["ours_flyte2"] = Server("ours_flyte2", serve_argv(extras), env=env, expect=("sleep",))
                    servers["ours_flyte2"].launches = 1
        if webhook:
            stand_in = StandIn(tmp / "nginx", free_port(), pin)
            stand_in.start()

        phase("venvs")
        for name, server in list(servers.items()):
            server.pin, server.logdir = pin, tmp
            print(f"{name}: {' '.join(server.argv)}", flush=True)
            try:
                results.setdefault(name, {}).update(launch_server(server, server.launches or args.launches))
                add_loads(server, parts, stand_in)
            except FAILURES as e:
                results[name]["error"] = error_text(e)
                print(f"  FAILED: {results[name]['error']}\n{server.tail()}", flush=True)
                server.stop()
                del servers[name]
        if "ours_flyte2" in servers:  # v2 on the same process, in the same rounds as its v1
            base = servers.pop("ours_flyte2")
            meta = created(call(base.port, "CreateTask", create_request("sleep"))).resource_meta
            alias = Server("ours_flyte2_v2", [], proc=base.proc, port=base.port, logdir=tmp, alias_of=base)
            alias.log, alias.loads = base.log, {"get": v2_get_load(base.port, meta)}
            servers["ours_flyte2"], servers["ours_flyte2_v2"] = base, alias
            results["ours_flyte2_v2"] = {}
        phase("launches")
        order = (
            "flytekit",
            "bridge",
            "bridge_service",
            "ceiling",
            "ours",
            "ceiling_uvloop",
            "ours_flyte2",
            "ours_flyte2_v2",
        )
        servers = {name: servers[name] for name in order if name in servers}  # each pair of a ratio adjacent
        for key in ("get", "create", "blocking", "webhook"):
            if any(key in s.loads for s in servers.values()):
                take_turns(servers, results, args, key)
        phase("load")
        if "mixed" in parts:
            mixed_traffic(servers, results, args)
            phase("mixed")
    finally:
        for server in servers.values():
            server.stop()
        if stand_in:
            stand_in.stop()

    if "python" in parts:
        python_side(results, fk_python, ours_python if "ours" in servers else None, args)
        phase("python")
    shutil.rmtree(tmp / "ours", ignore_errors=True)
    shutil.rmtree(tmp / "empty", ignore_errors=True)

    machine["loadavg_at_end"] = round(os.getloadavg()[0], 2)
    machine["duration_s"] = round(time.monotonic() - started)
    rows = report(results)
    print()
    print_table(rows)
    if args.json:
        results["table"] = [HEAD, *rows]
        args.json.write_text(json.dumps(results, indent=2))
    print(f"\nload average {machine['loadavg_at_start']} at start, {machine['loadavg_at_end']} at end; "
          f"{machine['duration_s']} s ({machine['phases_s']}); logs in {tmp}")  # fmt: skip
    return 1 if any("error" in r for r in results.values() if isinstance(r, dict)) else 0


def add_loads(server: Server, parts: set[str], stand_in: StandIn | None) -> None:
    """The traffic of each figure this server takes part in, from a task it created."""
    port, name = server.port, server.name
    if name in ("bridge", "bridge_service", "ours_flyte2"):
        meta = created(call(port, "CreateTask", create_request("sleep"))).resource_meta
        server.loads["get"] = unary_load(port, "GetTask", get_request("sleep", meta), succeeded, FAST_LOAD)
        return
    meta = created(call(port, "CreateTask", create_request("sleep"))).resource_meta
    if "load" in parts or (name == "flytekit" and "bridge" in parts):
        server.loads["get"] = unary_load(port, "GetTask", get_request("sleep", meta), succeeded, FAST_LOAD)
    if "load" in parts:
        server.loads["create"] = unary_load(port, "CreateTask", create_request("sleep"), created, FAST_LOAD)
        blocking = created(call(port, "CreateTask", create_request("blocking"))).resource_meta
        server.loads["blocking"] = unary_load(
            port, "GetTask", get_request("blocking", blocking), succeeded, BLOCKING_LOAD
        )
    if stand_in and name in ("ours", "flytekit"):
        server.loads["webhook"] = webhook_load(port, f"http://127.0.0.1:{stand_in.port}/hook")


def python_side(results: dict, fk_python: str | None, ours_python: str | None, args) -> None:
    """Import of the base classes, and a local run of a zero-length sleep task (no service)."""
    imports = {}
    if fk_python:
        imports["flytekit"] = (fk_python, "flytekit.extend.backend.base_connector")
    if ours_python:
        imports["ours"] = (ours_python, "core_connectors.base_connector")
    for name, (python, module) in imports.items():
        results[name].update(import_cost(python, module, args.import_runs))
        print(f"{name}: import {module} {results[name]['import_wall_s']:.3f} s wall", flush=True)
    local_runs = {"flytekit": "flytekit_local_run.py", "ours": "local_run.py"}
    for name, (python, _) in imports.items():  # a task run in-process through its connector, no service
        runs = ["--runs", "3"] if name == "flytekit" or args.quick else ["--runs", "100", "--json"]
        runs += ["--json"] if name == "ours" and "--json" not in runs else []
        out = run_ok(
            [python, str(BENCH / local_runs[name]), *runs], cwd=BENCH, env={**os.environ, "PYTHONPATH": str(BENCH)}
        )
        results[name]["local_run_ms"] = json.loads(out.strip().splitlines()[-1])["local_run_median_ms"]
        print(f"{name}: local run of a zero-length sleep task {results[name]['local_run_ms']:.2f} ms", flush=True)


if __name__ == "__main__":
    sys.exit(main())
