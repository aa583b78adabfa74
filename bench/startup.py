"""Where start-up time and idle memory go: `core-connectors serve` broken down by top-level package.

    python bench/startup.py --python VENV/bin/python [--compare OTHER/bin/python] [--flytekit] [--runs 7]

For the venv of `--python` (one with core-connectors and its connectors installed) it prints:

- launch to the first ListAgents that succeeds and the idle RSS one second later (medians of `--runs`
  launches, stdout not a terminal, metrics off: as bench/run.py launches it), the servers taking turns: ours,
  `--compare`'s (another venv, say before a change), the empty grpc.aio servicer on uvloop (the floor) and
  with `--flytekit` `pyflyte serve connector` from bench/run.py's cached flytekit venv;
- the import of the base classes (`import core_connectors.base_connector`, net of a bare interpreter);
- `python -X importtime` of the serve command until the port answers, summed per top-level package
  (self times, so the rows add up to the whole);
- the Python memory the idle service holds (tracemalloc), by the top-level package whose module code
  allocated it at import (a module's own imports subtracted) and what serving made after,
  beside its RSS, and which modules it has imported by then.

Ratios count, not absolute numbers: the machine is shared.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from run import BENCH, CACHE, Server, import_cost, rss_mb

# Runs inside the measured venv: serve until the port answers, then report what the process holds.
PROBE = r"""
import json, os, re, sys, threading, time, tracemalloc

class Metered:
    # wraps a loader: the Python memory each module own code allocates, its imports subtracted
    stack, self_bytes = [], {}

    def __init__(self, loader, name):
        self.loader, self.name = loader, name

    def __getattr__(self, attr):
        return getattr(self.loader, attr)

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        Metered.stack.append(0)
        before = tracemalloc.get_traced_memory()[0]
        try:
            self.loader.exec_module(module)
        finally:
            total = tracemalloc.get_traced_memory()[0] - before
            children = Metered.stack.pop()
            Metered.self_bytes[self.name] = total - children
            if Metered.stack:
                Metered.stack[-1] += total

class Finder:
    def find_spec(self, name, path, target=None):
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = Metered(spec.loader, name)
                return spec
        return None

if os.environ.get("PROBE_TRACEMALLOC"):
    tracemalloc.start()
    sys.meta_path.insert(0, Finder())
import grpc
from flyteidl.service import agent_pb2_grpc
from flyteidl.admin import agent_pb2
port = int(sys.argv[1])

def probe():
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = agent_pb2_grpc.AgentMetadataServiceStub(channel)
    while True:
        try:
            stub.ListAgents(agent_pb2.ListAgentsRequest(), timeout=1)
            break
        except grpc.RpcError:
            time.sleep(0.005)
    time.sleep(1.0)
    report = {"modules": sorted(sys.modules)}
    report["rss_kb"] = int(re.search(r"VmRSS:\s+(\d+)", open("/proc/self/status").read()).group(1))
    if tracemalloc.is_tracing():
        report["traced"] = dict(Metered.self_bytes)
        report["traced_total"] = tracemalloc.get_traced_memory()[0]
    print("PROBE " + json.dumps(report), file=sys.__stderr__, flush=True)
    os.kill(os.getpid(), 15)

threading.Thread(target=probe, daemon=True).start()
from core_connectors._cli import main
sys.argv = ["core-connectors", "serve", "--host", "127.0.0.1", "--port", str(port), "--prometheus-port", "0"]
main()
"""


def importtime(python: str, port: int) -> tuple[dict[str, int], int]:
    """Self import time in µs per top-level package, and the total, from `-X importtime` of the probe."""
    out = subprocess.run(
        [python, "-X", "importtime", "-c", PROBE, str(port)], capture_output=True, text=True, timeout=120
    ).stderr
    per: dict[str, int] = collections.Counter()
    for line in out.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+\d+ \|(\s*)(\S+)", line)
        if m:
            per[m.group(3).split(".")[0]] += int(m.group(1))
    return dict(per), sum(per.values())


def probe(python: str, port: int, tracing: bool) -> dict:
    env = {**os.environ, **({"PROBE_TRACEMALLOC": "1"} if tracing else {})}
    out = subprocess.run([python, "-c", PROBE, str(port)], capture_output=True, text=True, timeout=120, env=env)
    for line in out.stderr.splitlines():
        if line.startswith("PROBE "):
            return json.loads(line[6:])
    raise RuntimeError(out.stderr[-3000:])


def launches(servers: dict[str, Server], runs: int) -> dict:
    """Each server launched `runs` times, taking turns (so that load coming and going hits all alike)."""
    times: dict[str, list[float]] = {name: [] for name in servers}
    rss: dict[str, list[float]] = {name: [] for name in servers}
    cpu: dict[str, list[float]] = {name: [] for name in servers}
    for _ in range(runs):
        for name, server in servers.items():
            times[name].append(server.launch())
            cpu[name].append(cpu_seconds(server.proc.pid))
            time.sleep(1.0)
            rss[name].append(rss_mb(server.proc.pid))
            server.stop()
    return {
        name: {
            "launch_s": statistics.median(times[name]),
            "launch_cpu_s": statistics.median(cpu[name]),
            "idle_rss_mb": statistics.median(rss[name]),
        }
        for name in servers
    }


def cpu_seconds(pid: int) -> float:
    """CPU time the process has used (user + system): steadier than wall time on a shared machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    from run import free_port as free

    return free()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--python", required=True, help="python of a venv with core-connectors installed")
    parser.add_argument("--compare", help="python of another such venv (say, before a change), launched in turn")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--flytekit", action="store_true", help="also launch pyflyte serve connector (cached venv)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    python = args.python
    pythons = {"ours": python, **({"compared": args.compare} if args.compare else {})}
    servers = {}
    for name, interpreter in pythons.items():
        # launched as bench/run.py launches them: metrics off, the blocking connector given with --modules
        cli = str(Path(interpreter).parent / "core-connectors")
        argv = [cli, "serve", "--host", "127.0.0.1", "--port", "{port}", "--prometheus-port", "0"]
        servers[name] = Server(name, [*argv, "--modules", "ours_blocking_connector"])
    # the floor: an empty grpc.aio servicer on uvloop, from the same venv
    servers["empty"] = Server("empty", [python, str(BENCH / "empty_server.py"), "--uvloop", "--port", "{port}"])
    servers["empty"].expect = ("sleep",)
    if args.flytekit:
        pyflyte = str(CACHE / "flytekit-venv" / "bin" / "pyflyte")
        argv = [pyflyte, "serve", "connector", "--port", "{port}", "--prometheus_port", "0"]
        modules = ["--modules", "flytekit_sleep_connector", "--modules", "flytekit_blocking_connector"]
        servers["flytekit"] = Server("flytekit", [*argv, *modules])
        pythons["flytekit"] = str(CACHE / "flytekit-venv" / "bin" / "python")
    results: dict = launches(servers, args.runs)
    for name, interpreter in pythons.items():
        module = "flytekit.extend.backend.base_connector" if name == "flytekit" else "core_connectors.base_connector"
        results[name].update(import_cost(interpreter, module, args.runs))

    per, total = importtime(python, free_port())
    plain = probe(python, free_port(), tracing=False)
    traced = probe(python, free_port(), tracing=True)
    memory: dict[str, int] = collections.Counter()
    for module, size in traced["traced"].items():
        memory[module.split(".")[0]] += size
    memory["(not at import: objects made while serving)"] = traced["traced_total"] - sum(traced["traced"].values())
    results["importtime_us"] = per
    results["traced_bytes"] = dict(memory)
    results["probe_rss_mb"] = plain["rss_kb"] / 1024
    results["modules"] = plain["modules"]

    for name in servers:
        r = results[name]
        line = f"{name:9} launch {r['launch_s']:.3f} s (median of {args.runs}; CPU {r['launch_cpu_s']:.3f} s), "
        line += f"idle RSS {r['idle_rss_mb']:.1f} MB"
        if "import_s" in r:
            line += f", import base classes {r['import_s']:.3f} s net ({r['import_wall_s']:.3f} s wall)"
        print(line)
    for name in pythons:
        if name != "flytekit" and "flytekit" in results:
            o, f = results[name], results["flytekit"]
            print(
                f"{name} / flytekit: launch {o['launch_s'] / f['launch_s']:.3f} "
                f"(CPU {o['launch_cpu_s'] / f['launch_cpu_s']:.3f}), "
                f"import {o['import_s'] / f['import_s']:.3f}, RSS {o['idle_rss_mb'] / f['idle_rss_mb']:.2f}"
            )
    print(f"\nimport time until the port answers (-X importtime, self, by package): {total / 1000:.1f} ms")
    for pkg, us in sorted(per.items(), key=lambda kv: -kv[1])[:25]:
        print(f"  {pkg:32} {us / 1000:7.1f} ms")
    print(
        f"\nidle service: RSS {results['probe_rss_mb']:.1f} MB (probe thread included), "
        f"Python heap {sum(memory.values()) / 2**20:.1f} MB (tracemalloc), {len(plain['modules'])} modules"
    )
    for pkg, size in sorted(memory.items(), key=lambda kv: -kv[1])[:25]:
        print(f"  {pkg:32} {size / 2**20:7.2f} MB")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
