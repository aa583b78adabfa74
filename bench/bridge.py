"""What the flytekit bridge costs, measured in one run (`python bench/run.py --bridge`).

Four servers take turns, from two venvs: `pyflyte serve connector` (the cached flytekit[connector] venv of
bench/run.py) and, from the venv of bench/run.py's bridge and Flyte 2 servers (flytekit 1.16.31,
./core[flyte2], ./connectors/sleep and ./connectors/flytekit), `core-connectors serve` three times: with the
bridge serving flytekit's sleep connector (bench/flytekit_sleep_connector.py, given with --modules, the native
sleep plugin disabled) on its own loop, the same with --flytekit-loop service (its async methods on the
service's loop), and with the bridge disabled (CORE_CONNECTORS_DISABLE=flytekit, the native sleep connector).
Figures: GetTask/s of the sleep connector under h2load (128 streams), launch to the first ListAgents, idle
RSS, and the wall time of discovery (what `core-connectors list` and the service's start pay) with and without
the bridge.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

from run import (
    BENCH,
    FAST_LOAD,
    Server,
    call,
    check_load,
    create_request,
    created,
    extras_venv,
    flytekit_venv,
    fmt,
    get_request,
    grpc_frame,
    h2load,
    import_cost,
    rss_mb,
    run_ok,
    succeeded,
)

DISCOVER = "from core_connectors._registry import Registry; Registry().discover()"
COLUMNS = ("flytekit", "bridge", "bridge_service", "native")  # pyflyte; ours with the bridge (both loops); native


def discovery_s(python: str, env: dict[str, str], runs: int) -> float:
    """Median wall time of a fresh interpreter that discovers every installed connector."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        run_ok([python, "-c", DISCOVER], env=env)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def servers(fk_venv: Path, venv: Path, pin: list[str]) -> dict[str, Server]:
    serve = [str(venv / "bin" / "core-connectors"), "serve", "--host", "127.0.0.1", "--port", "{port}"]
    serve += ["--prometheus-port", "0"]
    pyflyte = [str(fk_venv / "bin" / "pyflyte"), "serve", "connector", "--port", "{port}", "--prometheus_port", "0"]
    found = {
        "flytekit": Server("flytekit", [*pyflyte, "--modules", "flytekit_sleep_connector"], expect=("sleep",)),
        "bridge": Server(
            "bridge",
            [*serve, "--modules", "flytekit_sleep_connector"],
            env={"CORE_CONNECTORS_DISABLE": "sleep"},
            expect=("sleep",),
        ),
        "bridge_service": Server(
            "bridge_service",
            [*serve, "--modules", "flytekit_sleep_connector", "--flytekit-loop", "service"],
            env={"CORE_CONNECTORS_DISABLE": "sleep"},
            expect=("sleep",),
        ),
        "native": Server("native", serve, env={"CORE_CONNECTORS_DISABLE": "flytekit"}, expect=("sleep",)),
    }
    for server in found.values():
        server.pin = pin
    return found


def run_bridge(args, tmp: Path, pin: list[str]) -> dict:
    fk_venv = Path(args.flytekit_python).parent.parent if args.flytekit_python else flytekit_venv()
    venv = Path(args.extras_python).parent.parent if args.extras_python else extras_venv()
    results: dict = {name: {} for name in COLUMNS}
    python = str(venv / "bin" / "python")
    base = {**os.environ, "PYTHONPATH": str(BENCH)}
    results["bridge"]["discovery_s"] = discovery_s(python, base, args.import_runs)
    results["native"]["discovery_s"] = discovery_s(
        python, {**base, "CORE_CONNECTORS_DISABLE": "flytekit"}, args.import_runs
    )
    results["flytekit"].update(
        import_cost(str(fk_venv / "bin" / "python"), "flytekit.extend.backend.base_connector", args.import_runs)
    )
    results["flytekit"]["discovery_s"] = results["flytekit"]["import_wall_s"]
    running = servers(fk_venv, venv, pin)
    try:
        for name, server in running.items():
            server.logdir = tmp
            launches = []
            for i in range(args.launches):
                launches.append(server.launch())
                if i < args.launches - 1:
                    server.stop()
            time.sleep(0.2)
            results[name].update(launch_s=statistics.median(launches), idle_rss_mb=rss_mb(server.proc.pid))
            meta = created(call(server.port, "CreateTask", create_request("sleep"))).resource_meta
            server.loads = {"get_rps": ("GetTask", get_request("sleep", meta), succeeded, FAST_LOAD)}
            print(f"{name}: launch {results[name]['launch_s']:.3f} s, idle {results[name]['idle_rss_mb']:.1f} MB")
        rates: dict[str, list[float]] = {name: [] for name in running}
        for rep in range(args.repeat + 1):  # round 0 warms up; then the servers take turns
            for name, server in running.items():
                method, request, expect, load = server.loads["get_rps"]
                size = len(grpc_frame(expect(call(server.port, method, request))))
                if rep == 0:
                    h2load(server.port, method, request, load, args.warmup)
                    continue
                r = h2load(server.port, method, request, load, args.seconds)
                check_load(server, method, r, size)
                rates[name].append(r["rps"])
        for name, got in rates.items():
            results[name]["get_rps"] = statistics.median(got)
            results[name]["get_rps_runs"] = got
        print("GetTask/s: " + ", ".join(f"{n} {[round(r) for r in rates[n]]}" for n in running), flush=True)
    finally:
        for server in running.values():
            server.stop()
    return results


FIGURES = [
    ("get_rps", "GetTask/s, sleep connector, 128 streams", "/s"),
    ("launch_s", "launch to first ListAgents (median)", "s"),
    ("idle_rss_mb", "idle service RSS", "MB"),
    ("discovery_s", "discovery, fresh interpreter (wall; flytekit: import)", "s"),
]


def print_bridge_table(results: dict) -> None:
    head = ["figure", "pyflyte, flytekit conn.", "ours + bridge, same conn.", "the same, service loop"]
    head += ["ours, native", "bridge/pyflyte", "service loop/pyflyte", "bridge/native"]
    rows = []
    for key, label, unit in FIGURES:
        f, b, s, n = (results[c].get(key) for c in COLUMNS)
        rows.append(
            [label, fmt(f, unit), fmt(b, unit), fmt(s, unit), fmt(n, unit)]
            + [f"{x / y:.2f}" if x and y else "-" for x, y in ((b, f), (s, f), (b, n))]
        )
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    for r in [head, ["-" * w for w in widths], *rows]:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |")
    sys.stdout.flush()
