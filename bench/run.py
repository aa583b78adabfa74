"""Side-by-side benchmark: our connector service vs flytekit's vs an empty grpc.aio servicer (the ceiling).

Run from the repository root (about 4 minutes; `--quick` about 1):

    /work/venv/bin/python bench/run.py [--quick] [--only ours,flytekit,ceiling] [--json out.json]
                                       [--ours-python PATH] [--pin] [--no-size]

Needs h2load (`apt-get update && apt-get install -y nghttp2-client`); the harness's python needs grpcio and
flyteidl. flytekit 1.16.31 with `flytekit[connector]` is installed on first use into
~/.cache/core-connectors-bench/flytekit-venv. Ours is installed from ./core and ./connectors/sleep into a fresh
venv for each run (that venv also gives the installed size), or taken from `--ours-python` /
$CORE_CONNECTORS_PYTHON; ours is skipped with a message when `core-connectors serve` is not there.

The servers run one after another for launch time and memory, then stay up and take turns under h2load, so
background work on the machine hits them alike. Servers listen on 127.0.0.1; with taskset the servers are pinned
to the first core and the harness and h2load to the second. docs/benchmarks.md has the figures and results."""

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
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from flyteidl.admin import agent_pb2
from flyteidl.core import identifier_pb2, interface_pb2, literals_pb2, tasks_pb2
from flyteidl.service import agent_pb2_grpc
from google.protobuf import struct_pb2

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
CACHE = Path.home() / ".cache" / "core-connectors-bench"
FLYTEKIT_SPEC = "flytekit[connector]==1.16.31"
BASE_PYTHON = Path(getattr(sys, "_base_executable", sys.executable))
SUCCEEDED = 3  # flyteidl.core.execution_pb2.TaskExecution.SUCCEEDED
FAST_LOAD = (4, 32)  # h2load clients x streams per client = 128 concurrent streams
BLOCKING_LOAD = (2, 32)  # 64 concurrent streams
SERVICE = "/flyteidl.service.AsyncAgentService/"


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
    loads: dict = field(default_factory=dict)  # figure -> (method, request, check of a reply, h2load shape)

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
        if self.proc is None or self.proc.poll() is not None:
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
    """Drive one unary method (of `service`, a path prefix) with h2load for `seconds`; req/s and h2load's counts."""
    clients, streams = load
    with tempfile.NamedTemporaryFile(suffix=".bin") as body:
        body.write(grpc_frame(request))
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


def start_server(server: Server, args) -> dict:
    """Launch the server `args.launches` times (the last one stays up); launch time, idle RSS, resource metas."""
    launches = []
    for i in range(args.launches):
        launches.append(server.launch())
        if i < args.launches - 1:
            server.stop()
    time.sleep(0.2)
    res = {"launch_s": statistics.median(launches), "idle_rss_mb": rss_mb(server.proc.pid)}
    print(f"  launch {[round(t, 3) for t in launches]} s, idle RSS {res['idle_rss_mb']:.1f} MB", flush=True)
    metas = {
        t: created(call(server.port, "CreateTask", create_request(t))).resource_meta for t in ("sleep", "blocking")
    }
    server.loads = {
        "get_rps": ("GetTask", get_request("sleep", metas["sleep"]), succeeded, FAST_LOAD),
        "create_rps": ("CreateTask", create_request("sleep"), created, FAST_LOAD),
        "blocking_rps": ("GetTask", get_request("blocking", metas["blocking"]), succeeded, BLOCKING_LOAD),
    }
    return res


def error_text(e: Exception) -> str:
    return f"{e.code()}: {e.details()}" if isinstance(e, grpc.RpcError) else str(e)


def load_all(servers: dict[str, Server], results: dict, args) -> None:
    """Each throughput figure for every running server, the servers taking turns in each repeat.

    Taking turns makes the ratios robust against other work on the machine that comes and goes.
    """
    for key in ("get_rps", "create_rps", "blocking_rps"):
        rates: dict[str, list[float]] = {name: [] for name in servers}
        sizes = {}
        for rep in range(args.repeat + 1):  # round 0 is the warm-up
            for name, server in servers.items():
                if "error" in results[name]:
                    continue
                method, request, expect, load = server.loads[key]
                try:
                    if rep == 0:
                        sizes[name] = len(grpc_frame(expect(call(server.port, method, request))))
                        h2load(server.port, method, request, load, args.warmup)
                        continue
                    r = h2load(server.port, method, request, load, args.seconds)
                    check_load(server, method, r, sizes[name])
                    rates[name].append(r["rps"])
                    if rep == args.repeat:
                        expect(call(server.port, method, request))
                except (RuntimeError, AssertionError, grpc.RpcError, subprocess.TimeoutExpired) as e:
                    results[name]["error"] = error_text(e)
                    print(f"  {name} FAILED: {results[name]['error']}\n{server.tail()}", flush=True)
        for name, got in rates.items():
            if got and "error" not in results[name]:
                results[name][key] = statistics.median(got)
                results[name][f"{key}_runs"] = got
        print(f"{key}: " + ", ".join(f"{n} {[round(r) for r in rates[n]]}/s" for n in servers), flush=True)


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


def venv_size(venv: Path, empty: Path) -> dict:
    """Size and package count of `venv` minus those of an empty venv."""
    return {"size_mb": dir_mb(venv) - dir_mb(empty), "packages": package_count(venv) - package_count(empty)}


# ---------------------------------------------------------------------------------------------------- report

# key, label, unit, target and its check on (ours, ceiling, flytekit); a check is only made when its inputs exist
FIGURES = [
    ("get_rps", "GetTask/s, sleep, 128 streams", "/s", "within 10% of ceiling", lambda o, c, f: o >= 0.9 * c),
    ("create_rps", "CreateTask/s, sleep, 128 streams", "/s", "within 15% of ceil.", lambda o, c, f: o >= 0.85 * c),
    ("blocking_rps", "GetTask/s, blocking 50 ms def get, 64 str.", "/s", ">= 1000/s", lambda o, c, f: o >= 1000),
    ("launch_s", "launch to first ListAgents (median)", "s", "< 0.35 s", lambda o, c, f: o < 0.35),
    ("idle_rss_mb", "idle service RSS", "MB", "< 50 MB", lambda o, c, f: o < 50),
    ("import_s", "import base classes (net of bare python)", "s", "< 0.15 s", lambda o, c, f: o < 0.15),
    ("import_wall_s", "import base classes (wall)", "s", "", None),
    ("import_rss_mb", "RSS after that import", "MB", "", None),
    ("size_mb", "installed size (minus empty venv)", "MB", "< 1/3 of flytekit's", lambda o, c, f: o < f / 3),
    ("local_run_ms", "local run, zero-length sleep task (median)", "ms", "< 50 ms", lambda o, c, f: o < 50),
    ("packages", "installed packages (minus empty venv)", "", "", None),
]


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
    return f"{v:g}"


def report(results: dict) -> list[list[str]]:
    """Rows of the table: figure, flytekit, ceiling, ceiling on uvloop, ours, ours/ceiling, ours/ceiling on
    uvloop, ours/flytekit, target, status (targets are checked against the plain ceiling, as DESIGN.md says)."""
    rows = []
    for key, label, unit, target, check in FIGURES:
        f, c, cu, o = (results.get(s, {}).get(key) for s in ("flytekit", "ceiling", "ceiling_uvloop", "ours"))
        oc = f"{o / c:.2f}" if o is not None and c else "-"
        ocu = f"{o / cu:.2f}" if o is not None and cu else "-"
        of = f"{o / f:.2f}" if o is not None and f else "-"
        status = ""
        if check:
            try:
                status = "MET" if check(o, c, f) else "NOT MET"
            except TypeError:  # a figure it needs is missing
                status = "-"
        rows.append([label, fmt(f, unit), fmt(c, unit), fmt(cu, unit), fmt(o, unit), oc, ocu, of, target, status])
    return rows


def print_table(rows: list[list[str]]) -> None:
    head = [
        "figure",
        "flytekit 1.16.31",
        "ceiling",
        "ceiling, uvloop",
        "ours",
        "ours/ceil",
        "ours/ceil-uv",
        "ours/fk",
        "target",
        "status",
    ]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"  # noqa: E731
    print(line(head))
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


def main() -> int:
    parser = argparse.ArgumentParser(description="Benchmark ours vs flytekit vs an empty grpc.aio servicer.")
    parser.add_argument("--quick", action="store_true", help="short runs, for a smoke test")
    parser.add_argument("--only", default="ours,flytekit,ceiling", help="comma-separated subset to run")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--ours-python",
        default=os.environ.get("CORE_CONNECTORS_PYTHON"),
        help="serve ours from this interpreter's venv (default: a fresh venv with ./core ./connectors/sleep)",
    )
    parser.add_argument(
        "--pin", action="store_true", help="pin the servers to one core and the load to the other (taskset)"
    )
    parser.add_argument("--no-size", action="store_true", help="skip the installed-size figure")
    parser.add_argument(
        "--bridge", action="store_true", help="only the flytekit bridge's cost: ours + bridge vs pyflyte (bridge.py)"
    )
    args = parser.parse_args()
    args.seconds, args.warmup, args.repeat = (2, 0.5, 1) if args.quick else (3, 1, 5)
    args.launches, args.import_runs = (2, 3) if args.quick else (5, 7)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    if not only or set(only) - {"ours", "flytekit", "ceiling"}:
        parser.error("--only takes a comma-separated subset of ours,flytekit,ceiling")
    if not shutil.which("h2load"):
        print("h2load not found: apt-get update && apt-get install -y nghttp2-client", file=sys.stderr)
        return 2

    pin, note = [], "not pinned: server and load share the cores"
    if args.pin and shutil.which("taskset") and len(os.sched_getaffinity(0)) >= 2:
        cores = sorted(os.sched_getaffinity(0))
        pin = ["taskset", "-c", str(cores[0])]
        os.sched_setaffinity(0, {cores[1]})  # the harness, h2load, the clients and the import runs
        note = f"server pinned to core {cores[0]}, harness and h2load to core {cores[1]} (taskset)"
    machine = {"nproc": os.cpu_count(), "python": sys.version.split()[0], "pinning": note}
    machine["loadavg_at_start"] = round(os.getloadavg()[0], 2)
    print(
        f"{machine}; h2load {FAST_LOAD[0] * FAST_LOAD[1]} streams (GetTask, CreateTask), "
        f"{BLOCKING_LOAD[0] * BLOCKING_LOAD[1]} (blocking)",
        flush=True,
    )
    if machine["loadavg_at_start"] > 0.5:
        print("note: the machine is busy (load average above 0.5); servers take turns so ratios stay fair", flush=True)

    tmp = Path(tempfile.mkdtemp(prefix="core-connectors-bench-"))
    if args.bridge:
        from bridge import print_bridge_table, run_bridge

        results = {"machine": machine, **run_bridge(args, tmp, pin)}
        print_bridge_table(results)
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
        return 0
    results: dict = {"machine": machine}
    servers: dict[str, Server] = {}
    try:
        empty = make_venv(tmp / "empty") if not args.no_size else None
        if "ceiling" in only:
            argv = [sys.executable, str(BENCH / "empty_server.py"), "--port", "{port}"]
            servers["ceiling"] = Server("ceiling", argv, expect=("sleep",))
        fk_venv = flytekit_venv() if "flytekit" in only else None
        if fk_venv:
            argv = [
                str(fk_venv / "bin" / "pyflyte"),
                "serve",
                "connector",
                "--port",
                "{port}",
                "--prometheus_port",
                "0",
            ]
            argv += ["--modules", "flytekit_sleep_connector", "--modules", "flytekit_blocking_connector"]
            servers["flytekit"] = Server("flytekit", argv)
            results["flytekit"] = venv_size(fk_venv, empty) if empty else {}
        ours_python = args.ours_python
        if "ours" in only:
            results["ours"] = {}
            if not ours_python or empty:
                print("building a fresh venv with ./core ./connectors/sleep ...", flush=True)
                try:
                    fresh = make_venv(tmp / "ours", str(ROOT / "core"), str(ROOT / "connectors" / "sleep"))
                    ours_python = ours_python or str(fresh / "bin" / "python")
                    results["ours"] = venv_size(fresh, empty) if empty else {}
                except subprocess.CalledProcessError as e:
                    print(f"cannot install ours: {e.stderr.strip()[-2000:]}", flush=True)
            why = ours_available(ours_python) if ours_python else "no venv with core-connectors"
            if why:
                print(f"SKIPPING ours: {why}", flush=True)
                results["ours"]["skipped"] = why
            else:
                cli = str(Path(ours_python).parent / "core-connectors")
                argv = [cli, "serve", "--host", "127.0.0.1", "--port", "{port}", "--prometheus-port", "0"]
                servers["ours"] = Server("ours", argv + ["--modules", "ours_blocking_connector"])
                if "ceiling" in only:  # the same empty servicer on uvloop, the loop ours runs on
                    uv = [ours_python, str(BENCH / "empty_server.py"), "--uvloop", "--port", "{port}"]
                    servers["ceiling_uvloop"] = Server("ceiling_uvloop", uv, expect=("sleep",))

        for name, server in list(servers.items()):
            server.pin, server.logdir = pin, tmp
            print(f"{name}: {' '.join(server.argv)}", flush=True)
            try:
                results.setdefault(name, {}).update(start_server(server, args))
            except (RuntimeError, AssertionError, grpc.RpcError) as e:
                results[name]["error"] = error_text(e)
                print(f"  FAILED: {results[name]['error']}\n{server.tail()}", flush=True)
                server.stop()
                del servers[name]
        load_all(servers, results, args)
    finally:
        for server in servers.values():
            server.stop()

    imports = {}
    if fk_venv:
        imports["flytekit"] = (str(fk_venv / "bin" / "python"), "flytekit.extend.backend.base_connector")
    if "ours" in results and "skipped" not in results["ours"]:
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
    shutil.rmtree(tmp / "ours", ignore_errors=True)
    shutil.rmtree(tmp / "empty", ignore_errors=True)

    machine["loadavg_at_end"] = round(os.getloadavg()[0], 2)
    rows = report(results)
    print()
    print_table(rows)
    if args.json:
        results["table"] = rows
        args.json.write_text(json.dumps(results, indent=2))
    print(f"\nload average {machine['loadavg_at_start']} at start, {machine['loadavg_at_end']} at end; logs in {tmp}")
    return 1 if any("error" in r for r in results.values() if isinstance(r, dict)) else 0


if __name__ == "__main__":
    sys.exit(main())
