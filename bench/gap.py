"""Where ours' server CPU per GetTask goes beyond an empty servicer's: intermediate servers, side by side.

    python bench/gap.py [--rounds 6] [--requests 15000] [--base REV] [--variants empty,raw,...]

Each variant is a server process that adds one piece of `core-connectors serve` to bench/empty_server.py
(on uvloop, fixed replies):

    empty              the generated servicers, as bench/empty_server.py --uvloop
    raw                raw-bytes handlers added by _wire.add_service, still fixed replies (request parsed)
    raw+registered     the same, its methods also given to add_registered_method_handlers
    handler            our GetTask handler: Dispatcher, the sleep connector, Metrics, MeteredThreadPool
    health             + the server options, [::], health and reflection (generic handlers, as served)
    watchdog           + the loop watchdog
    serve              `core-connectors serve` of this tree (logging, signals, Flyte 2's services, discovery)
    serve@REV          `core-connectors serve` of git revision REV (with --base)

A variant of ours (handler, health, watchdog) with `+timed` also measures its GetTask handler's own CPU per call
(thread time around it): what the handler costs under load, against what bench/hotpath.py measures in a loop.

They take turns (alternating order) driving a fixed number of GetTask calls with h2load (128 streams, the
body a real GetTaskRequest); CPU per call is the server's utime + stime from /proc over the calls it
answered. Printed: the median per variant and its ratio to `empty`. On this shared machine a variant differs
from itself by up to 15% between rounds: compare medians of several rounds. Needs h2load and, in this python,
grpcio, grpcio-health-checking, grpcio-reflection, uvloop, flyteidl (and flyteidl2 for the v2 services).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STEPS = ("empty", "raw", "handler", "health", "watchdog")
DEFAULT = "empty,raw,raw+registered,handler,health,watchdog,serve"


# ------------------------------------------------------------------------------------------------ the servers
def serve_variant(variant: str, port: int) -> None:
    """Run one intermediate server (in its own process) until killed."""
    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.run(_serve_variant(variant, port))


async def _serve_variant(variant: str, port: int) -> None:
    import grpc
    from flyteidl.admin import agent_pb2
    from flyteidl.service import agent_pb2 as service_pb2
    from flyteidl.service import agent_pb2_grpc
    from google.protobuf import message_factory

    from core_connectors.server import _wire as wire

    step, registered, timed = variant.split("+")[0], variant.endswith("+registered"), variant.endswith("+timed")
    level = STEPS.index(step)
    done = agent_pb2.GetTaskResponse(resource=agent_pb2.Resource(phase=3))
    created = agent_pb2.CreateTaskResponse(resource_meta=b'{"deadline": 0.0}')
    sleep = agent_pb2.TaskCategory(name="sleep")
    agents = agent_pb2.ListAgentsResponse(
        agents=[agent_pb2.Agent(name="Sleep Connector", supported_task_categories=[sleep])]
    )

    class Fixed:  # every method of the service: fixed replies
        def __init__(self, raw: bool) -> None:
            self.raw = raw

        async def CreateTask(self, request, context):
            return created

        async def GetTask(self, request, context):
            if self.raw:
                agent_pb2.GetTaskRequest.FromString(request)
            return done

        async def ListAgents(self, request, context):
            return agents

        def __getattr__(self, name):
            async def unused(request, context):
                return None

            return unused

    options = None
    if level >= STEPS.index("health"):
        options = [("grpc.so_reuseport", 0), ("grpc.max_receive_message_length", 8 << 20)]
        options.append(("grpc.max_send_message_length", 4 << 20))
    server = grpc.aio.server(options=options)
    services = service_pb2.DESCRIPTOR.services_by_name
    names = ("AsyncAgentService", "AgentMetadataService")
    if level == 0:
        agent_pb2_grpc.add_AsyncAgentServiceServicer_to_server(Fixed(False), server)
        agent_pb2_grpc.add_AgentMetadataServiceServicer_to_server(Fixed(False), server)
    elif level == 1:
        for name in names:
            wire.add_service(server, services[name], Fixed(True))
        if registered:  # what _wire.add_service did before: the same handlers, registered by name too
            for name in names:
                handlers = {
                    m.name: grpc.unary_unary_rpc_method_handler(
                        getattr(Fixed(True), m.name),
                        response_serializer=message_factory.GetMessageClass(m.output_type).SerializeToString,
                    )
                    for m in services[name].methods
                }
                server.add_registered_method_handlers(services[name].full_name, handlers)
    else:
        from core_connectors._registry import Registry
        from core_connectors.server._metrics import MeteredThreadPool, Metrics
        from core_connectors.server._service import AsyncAgentService, Dispatcher, MetadataService, SyncAgentService
        from core_connectors_sleep.connector import SleepConnector

        registry = Registry(discover=False)
        registry.register(SleepConnector())
        pool = MeteredThreadPool(max_workers=128, thread_name_prefix="connector")
        metrics = Metrics(None)
        metrics.pools.append(pool)
        dispatcher = Dispatcher(registry, pool, metrics, threads=128, max_message_bytes=4 << 20)
        service = AsyncAgentService(dispatcher)
        if timed:
            _time_handler(service)
        wire.add_service(server, services["AsyncAgentService"], service)
        wire.add_service(server, services["SyncAgentService"], SyncAgentService(dispatcher))
        wire.add_service(server, services["AgentMetadataService"], MetadataService(dispatcher))
    if level >= STEPS.index("health"):
        from grpc_health.v1 import health, health_pb2, health_pb2_grpc
        from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc

        checks = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(checks, wire.GenericOnly(server))
        reflector = reflection.aio.ReflectionServicer((health.SERVICE_NAME, reflection.SERVICE_NAME))
        reflection_pb2_grpc.add_ServerReflectionServicer_to_server(reflector, wire.GenericOnly(server))
        await checks.set("", health_pb2.HealthCheckResponse.SERVING)
    server.add_insecure_port(f"{'[::]' if level >= STEPS.index('health') else '127.0.0.1'}:{port}")
    await server.start()
    if level >= STEPS.index("watchdog"):
        from core_connectors.server._watchdog import LoopWatchdog

        LoopWatchdog(0.1, dispatcher.method_names).start()
    await server.wait_for_termination()


def _time_handler(service) -> None:
    """Wrap ``service.GetTask`` in its thread's CPU clock; on SIGTERM write µs per call to $GAP_TIMED_OUT."""
    import signal

    handler, spent = service.GetTask, [0, 0]

    async def GetTask(data, context):
        started = time.thread_time_ns()  # the handler never awaits anything that suspends: all of it is here
        try:
            return await handler(data, context)
        finally:
            spent[0] += time.thread_time_ns() - started
            spent[1] += 1

    def report(*_):
        Path(os.environ["GAP_TIMED_OUT"]).write_text(f"{spent[0] / max(spent[1], 1) / 1000:.2f} {spent[1]}")
        os._exit(0)

    service.GetTask = GetTask
    signal.signal(signal.SIGTERM, report)


# ------------------------------------------------------------------------------------------------ the driver
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--requests", type=int, default=15000, help="GetTask calls per variant and round")
    parser.add_argument("--base", help="also serve `core-connectors serve` of this git revision (serve@REV)")
    parser.add_argument("--variants", default=DEFAULT)
    parser.add_argument("--serve", nargs=2, metavar=("VARIANT", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve_variant(args.serve[0], int(args.serve[1]))
        return 0

    import grpc
    from loops import cpu_seconds, drive  # bench/loops.py, bench/run.py
    from run import ROOT, call, create_request, export, free_port, get_request

    variants = args.variants.split(",") + ([f"serve@{args.base}"] if args.base else [])
    tmp = tempfile.TemporaryDirectory()
    trees = {"": ROOT}
    if args.base:
        trees[args.base] = export(args.base, Path(tmp.name))
    procs: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
    requests = {}
    try:
        for variant in variants:
            port = free_port()
            tree = trees[variant.partition("@")[2]]
            env = {**os.environ, "PYTHONPATH": f"{tree}/core/src:{tree}/connectors/sleep/src:{ROOT}/bench"}
            env["GAP_TIMED_OUT"] = str(Path(tmp.name) / f"{variant}.timed")
            if variant.startswith("serve"):
                argv = [sys.executable, "-m", "core_connectors", "serve", "--host", "127.0.0.1", "--port", str(port)]
                argv += ["--prometheus-port", "0", "--modules", "core_connectors_sleep"]
            else:
                argv = [sys.executable, __file__, "--serve", variant, str(port)]
            procs[variant] = (subprocess.Popen(argv, env=env, stderr=subprocess.DEVNULL), port)
        for variant, (proc, port) in procs.items():
            deadline = time.monotonic() + 60
            while True:
                try:
                    meta = call(port, "CreateTask", create_request("sleep"), timeout=1.0).resource_meta
                    break
                except grpc.RpcError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"{variant} did not start") from None
                    time.sleep(0.05)
            requests[variant] = get_request("sleep", meta)
            reply = call(port, "GetTask", requests[variant])
            print(f"{variant}: GetTask reply {reply.ByteSize()} bytes")
            drive(port, requests[variant], 2000)  # warm up
        per_call: dict[str, list[float]] = {v: [] for v in variants}
        for i in range(args.rounds):
            for variant in variants if i % 2 == 0 else variants[::-1]:
                proc, port = procs[variant]
                before = cpu_seconds(proc.pid)
                _, counts = drive(port, requests[variant], args.requests)
                if counts["failed"] or not counts["succeeded"]:
                    raise RuntimeError(f"{variant}: failed calls under load: {counts}")
                per_call[variant].append((cpu_seconds(proc.pid) - before) / counts["succeeded"] * 1e6)
    finally:
        for proc, _ in procs.values():
            proc.terminate()
            proc.wait(10)
    for variant in variants:
        out = Path(tmp.name) / f"{variant}.timed"
        if out.exists():
            us, calls = out.read_text().split()
            print(f"{variant}: the GetTask handler's own CPU under load, {us} µs per call over {calls} calls")
    tmp.cleanup()
    base = statistics.median(per_call[variants[0]])
    load = os.getloadavg()[0]
    print(f"\nGetTask, {args.requests} calls x {args.rounds} rounds, 128 streams; load average {load:.1f}")
    print(f"{'variant':24} {'CPU µs/call':>12} {'/ ' + variants[0]:>10}  rounds")
    for variant in variants:
        cpu = statistics.median(per_call[variant])
        print(f"{variant:24} {cpu:12.1f} {cpu / base:10.2f}  {[round(v) for v in per_call[variant]]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
