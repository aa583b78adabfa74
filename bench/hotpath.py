"""The service's per-call CPU, in-process: success paths and error paths, this tree against a git revision.

    python bench/hotpath.py [--base REV] [--rounds 15] [--calls 5000] [--only get_ok,...] [--profile PATH]

Calls the v1 handlers (``AsyncAgentService``) directly with request bytes, as grpc.aio hands them over, and
reports the process's CPU time per call (best of ``--rounds`` x ``--calls``): steadier than wall time on a
shared machine. Logging goes through the service's own text format to /dev/null, so what a log line costs
(formatting, tracebacks) is counted; the lines each path wrote are counted too. The paths:

- ``get_ok`` / ``create_ok``: the sleep connector's GetTask (SUCCEEDED) and CreateTask, as bench/run.py sends them;
- ``get_ok_v2``: the same GetTask over Flyte 2's AsyncConnectorService (``flyteidl2.connector``);
- ``get_not_found``: a task type nobody serves (NOT_FOUND);
- ``get_bad_meta``: resource metadata that is not JSON (INVALID_ARGUMENT, ResourceMetaDecodeError);
- ``get_bad_bytes``: request bytes that do not parse (INVALID_ARGUMENT);
- ``get_retryable``: a connector whose ``get`` raises RetryableFailure (a RETRYABLE_FAILED Resource);
- ``create_retryable``: a connector whose ``create`` raises RetryableFailure (UNAVAILABLE);
- ``get_raises``: a connector whose ``get`` raises an unexpected error (INTERNAL, traceback logged).

``--profile PATH`` runs one path under cProfile instead and prints its top functions (working tree only).
Needs grpcio, flyteidl and core-connectors' dependencies in this python (the tests' nox venv has them).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from run import ROOT, export  # bench/run.py

PATHS = (
    "get_ok",
    "create_ok",
    "get_ok_v2",
    "get_not_found",
    "get_bad_meta",
    "get_bad_bytes",
    "get_retryable",
    "create_retryable",
    "get_raises",
)

BODY = r"""
import asyncio, cProfile, json, logging, pstats, sys, time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from flyteidl.admin import agent_pb2
from prometheus_client import CollectorRegistry

from core_connectors import AsyncConnectorBase, Resource, ResourceMeta, RetryableFailure
from core_connectors._registry import Registry
from core_connectors.server._metrics import Metrics
from core_connectors.server._service import AsyncAgentService, Dispatcher
from core_connectors.server._flyte2 import AsyncConnectorService
from flyteidl2.connector import connector_pb2
from core_connectors_sleep.connector import SleepConnector, SleepMetadata

sys.path.insert(0, ARGS["bench"])
from run import create_request, get_request  # bench/run.py: the requests the benchmark sends

class Lines:
    "A log stream that counts lines and keeps none."
    n = 0
    def write(self, text):
        Lines.n += text.count("\n")
    def flush(self):
        pass

handler = logging.StreamHandler(Lines())
handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"))
logging.getLogger().handlers[:] = [handler]
logging.getLogger().setLevel(logging.INFO)


@dataclass
class JobMeta(ResourceMeta):
    job_id: str


class Failing(AsyncConnectorBase):
    name = "Failing Connector"

    def __init__(self, task_type, exc):
        super().__init__(task_type_name=task_type, metadata_type=JobMeta)
        self.exc = exc

    async def create(self, task_template, output_prefix="", inputs=None, **kwargs):
        raise self.exc("the vendor said 503, try later")

    async def get(self, resource_meta, **kwargs):
        raise self.exc("the vendor said 503, try later")

    async def delete(self, resource_meta, **kwargs):
        pass


registry = Registry(discover=False)
registry.register(SleepConnector())
registry.register(Failing("retryable", RetryableFailure))
registry.register(Failing("raises", RuntimeError))
dispatcher = Dispatcher(registry, ThreadPoolExecutor(4), Metrics.for_registry(CollectorRegistry()))
service = AsyncAgentService(dispatcher)
service_v2 = AsyncConnectorService(dispatcher)


class Aborted(Exception):
    pass


class Context:
    "What the handlers use of grpc.aio's ServicerContext: abort."
    async def abort(self, code, details):
        raise Aborted(code, details)


job = JobMeta(job_id="job-1").encode()
REQUESTS = {
    "get_ok": ("GetTask", get_request("sleep", SleepMetadata(deadline=0.0).encode())),
    "create_ok": ("CreateTask", create_request("sleep")),
    "get_ok_v2": ("v2 GetTask", connector_pb2.GetTaskRequest(
        task_category=connector_pb2.TaskCategory(name="sleep"), resource_meta=SleepMetadata(deadline=0.0).encode()
    )),
    "get_not_found": ("GetTask", get_request("nobody", job)),
    "get_bad_meta": ("GetTask", get_request("sleep", b"not json at all")),
    "get_bad_bytes": ("GetTask", b"\x0a\xff\xff\xff\xff\x0f"),
    "get_retryable": ("GetTask", get_request("retryable", job)),
    "create_retryable": ("CreateTask", create_request("retryable")),
    "get_raises": ("GetTask", get_request("raises", job)),
}


async def run(path, calls):
    rpc, request = REQUESTS[path]
    handler = getattr(service_v2, rpc[3:]) if rpc.startswith("v2 ") else getattr(service, rpc)
    data = request if isinstance(request, bytes) else request.SerializeToString()
    context = Context()
    aborted = 0
    started = time.process_time()
    for _ in range(calls):
        try:
            await handler(data, context)
        except Aborted:
            aborted += 1
    return (time.process_time() - started) / calls * 1e6, aborted


async def main():
    results = {}
    for path in ARGS["paths"]:
        await run(path, 200)  # warm: caches, routes, first log lines
        before = Lines.n
        best, aborted = min([await run(path, ARGS["calls"]) for _ in range(ARGS["rounds"])])
        results[path] = {
            "us": best,
            "aborted": aborted == ARGS["calls"],
            "log_lines": Lines.n - before,
            "calls": ARGS["rounds"] * ARGS["calls"],
        }
    print(json.dumps(results))


async def profile():
    path = ARGS["profile"]
    await run(path, 200)
    profiler = cProfile.Profile()
    profiler.enable()
    await run(path, ARGS["calls"] * 4)
    profiler.disable()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(30)


asyncio.run(profile() if ARGS["profile"] else main())
"""


def measure(tree: Path, args: argparse.Namespace, paths: list[str], profile: str | None = None) -> str:
    env = {**os.environ, "PYTHONPATH": f"{tree}/core/src:{tree}/connectors/sleep/src"}
    settings = {"bench": str(ROOT / "bench"), "paths": paths, "rounds": args.rounds, "calls": args.calls}
    script = f"ARGS = {json.dumps({**settings, 'profile': profile})!r}\nimport json\nARGS = json.loads(ARGS)\n" + BODY
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"{tree}: {out.stderr}")
    return out.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", help="a git revision to compare the working tree with")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--only", help="comma-separated paths (default: all)")
    parser.add_argument("--profile", metavar="PATH", choices=PATHS, help="cProfile one path instead")
    args = parser.parse_args()
    paths = args.only.split(",") if args.only else list(PATHS)
    if args.profile:
        print(measure(ROOT, args, paths, args.profile))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"working tree": ROOT}
        if args.base:
            trees = {args.base: export(args.base, Path(tmp)), **trees}
        results = {name: json.loads(measure(tree, args, paths)) for name, tree in trees.items()}
    names = list(results)
    print("us of CPU per call (best round) and the log lines the measured calls wrote, for each tree")
    print(f"{'path':<18}" + "".join(f"{n[:24]:>26}" for n in names) + "   this tree / its get_ok")
    for path in paths:
        row = f"{path:<18}"
        for name in names:
            r = results[name][path]
            row += f"{r['us']:>10.2f} us {r['log_lines']:>7} lines"
        ok = results[names[-1]]["get_ok"]["us"] if "get_ok" in paths else None
        if ok:
            row += f"   {results[names[-1]][path]['us'] / ok:.2f}"
        print(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
