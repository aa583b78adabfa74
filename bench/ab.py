"""A/B: the same server from two revisions of core, side by side in one run: GetTask/s and server CPU per call.

    python bench/ab.py BASE_REV [--rounds 10] [--seconds 5] [--handler]

Serves the sleep connector from ``BASE_REV`` (exported with git archive) and from the working tree, each as
``core-connectors serve`` on 127.0.0.1, and drives GetTask with h2load (128 streams). The two take turns in
each round, in alternating order, so that other work on the machine hits both alike. CPU per call is the
server process's user + system time over the round divided by the calls it answered. On a busy shared
machine two identical servers differ by up to 12% this way: compare medians of many rounds.

``--handler`` instead times the GetTask handler alone, in-process (best of 15 x 10,000 calls, request bytes
parsed in the handler where the revision does so), in wall time and in the process's CPU time (the steadier
of the two when others share the machine): what a change to the service's own code costs. bench/hotpath.py
does the same for CreateTask and the error paths. Needs h2load and, in this python, grpcio, flyteidl and
core-connectors' dependencies (the tests' nox venv has them).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
from flyteidl.admin import agent_pb2
from run import ROOT, call, cpu_seconds, create_request, export, free_port, get_request, h2load  # bench/run.py

HANDLER = """
import asyncio, inspect, time
from concurrent.futures import ThreadPoolExecutor
from flyteidl.admin import agent_pb2
from prometheus_client import CollectorRegistry
from core_connectors._registry import Registry
from core_connectors.server._metrics import Metrics
from core_connectors.server._service import AsyncAgentService, Dispatcher
from core_connectors_sleep.connector import SleepConnector, SleepMetadata

registry = Registry(discover=False)
registry.register(SleepConnector())
service = AsyncAgentService(Dispatcher(registry, ThreadPoolExecutor(4), Metrics.for_registry(CollectorRegistry())))
request = agent_pb2.GetTaskRequest(
    task_category=agent_pb2.TaskCategory(name="sleep"), resource_meta=SleepMetadata(deadline=0.0).encode()
)
raw = "data" in inspect.signature(service.GetTask).parameters  # this revision parses the bytes itself
arg = request.SerializeToString() if raw else request

async def main():
    best = cpu = float("inf")
    for _ in range(15):
        started, used = time.perf_counter(), time.process_time()
        for _ in range(10000):
            await service.GetTask(arg, None)
        best = min(best, (time.perf_counter() - started) / 10000 * 1e6)
        cpu = min(cpu, (time.process_time() - used) / 10000 * 1e6)
    print(f"{best:.2f} us per GetTask in the handler, {cpu:.2f} us of CPU (best of 15 x 10,000)")

asyncio.run(main())
"""


def wait_ready(proc: subprocess.Popen[bytes], port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server on port {port} exited with {proc.returncode}")
        try:
            call(port, "ListAgents", agent_pb2.ListAgentsRequest(), timeout=1.0)
            return
        except grpc.RpcError:
            time.sleep(0.05)
    raise RuntimeError(f"the server on port {port} did not answer within {timeout} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", help="the git revision to compare the working tree with")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--handler", action="store_true", help="time the GetTask handler in-process instead")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        trees = {args.base: export(args.base, Path(tmp)), "working tree": ROOT}
        if args.handler:
            for _ in range(args.rounds):
                for name, tree in trees.items():
                    env = {**os.environ, "PYTHONPATH": f"{tree}/core/src:{tree}/connectors/sleep/src"}
                    out = subprocess.run([sys.executable, "-c", HANDLER], env=env, capture_output=True, text=True)
                    print(f"{name}: {out.stdout.strip() or out.stderr}")
            return 0
        servers = {}
        for name, tree in trees.items():
            port = free_port()
            env = {**os.environ, "PYTHONPATH": f"{tree}/core/src:{tree}/connectors/sleep/src"}
            argv = [sys.executable, "-c", "from core_connectors._cli import main; main()", "serve"]
            argv += ["--host", "127.0.0.1", "--port", str(port), "--prometheus-port", "0"]
            argv += ["--modules", "core_connectors_sleep"]
            servers[name] = (subprocess.Popen(argv, env=env, stderr=subprocess.DEVNULL), port)
        try:
            for proc, port in servers.values():
                wait_ready(proc, port)
            requests = {
                name: get_request("sleep", call(port, "CreateTask", create_request("sleep")).resource_meta)
                for name, (_, port) in servers.items()
            }
            results: dict[str, list[tuple[float, float]]] = {name: [] for name in servers}
            for i in range(args.rounds):
                turns = list(servers.items())
                for name, (proc, port) in turns if i % 2 == 0 else reversed(turns):  # neither always goes first
                    before = cpu_seconds(proc.pid)
                    r = h2load(port, "GetTask", requests[name], (4, 32), args.seconds)
                    used = cpu_seconds(proc.pid) - before
                    if r["failed"] or not r["done"]:
                        raise RuntimeError(f"{name}: failed calls under load: {r}")
                    results[name].append((r["rps"], used / r["done"] * 1e6))
                    print(f"round {i + 1} {name}: {r['rps']:.0f} GetTask/s, {results[name][-1][1]:.1f} us CPU/call")
        finally:
            for proc, _ in servers.values():
                proc.terminate()
                proc.wait(10)
    for name, rows in results.items():
        rps = statistics.median(r for r, _ in rows)
        cpu = statistics.median(c for _, c in rows)
        print(f"{name}: median {rps:.0f} GetTask/s, {cpu:.1f} us server CPU per call")
    return 0


if __name__ == "__main__":
    sys.exit(main())
