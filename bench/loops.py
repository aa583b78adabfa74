"""GetTask on uvloop against asyncio's own loop: ours and the empty servicer, server CPU per call and req/s.

    python bench/loops.py --python VENV/bin/python [--rounds 5] [--requests 40000]

The venv of `--python` has core-connectors, core-connectors-sleep and uvloop installed. Four servers take
turns, each round driving a fixed number of GetTask calls with h2load (128 streams): `core-connectors serve` with
`--loop uvloop` and `--loop asyncio`, and bench/empty_server.py with and without `--uvloop`. The server's own
CPU time (utime + stime from /proc) over the calls it answered is steadier on a shared machine than a rate;
both are printed as medians over the rounds, with each one's ratio to the empty servicer on uvloop.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from run import BENCH, FAST_LOAD, SERVICE, Server, call, check_load, create_request, get_request, grpc_frame

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def drive(port: int, request, requests: int) -> tuple[float, int]:
    """h2load a fixed number of GetTask calls; req/s and the calls that succeeded."""
    clients, streams = FAST_LOAD
    with tempfile.NamedTemporaryFile(suffix=".bin") as body:
        body.write(grpc_frame(request))
        body.flush()
        argv = ["h2load", "-c", str(clients), "-m", str(streams), "-t", "1", "-n", str(requests)]
        argv += ["-H", "content-type: application/grpc", "-H", "te: trailers", "-d", body.name]
        out = subprocess.run(
            [*argv, f"http://127.0.0.1:{port}{SERVICE}GetTask"], capture_output=True, text=True, timeout=600
        ).stdout
    rps = float(re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out).group(1))
    counts = re.search(r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed", out)
    data = int(re.search(r"traffic: .*\((\d+)\) data", out).group(1))
    return rps, {"succeeded": int(counts.group(3)), "failed": int(counts.group(4)), "data_bytes": data}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--python", required=True)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=40000)
    args = parser.parse_args()
    cli = str(Path(args.python).parent / "core-connectors")
    ours = [cli, "serve", "--host", "127.0.0.1", "--port", "{port}", "--prometheus-port", "0", "--loop"]
    empty = [args.python, str(BENCH / "empty_server.py"), "--port", "{port}"]
    servers = {
        "ours, uvloop": Server("ours-uvloop", [*ours, "uvloop"], expect=("sleep",)),
        "ours, asyncio": Server("ours-asyncio", [*ours, "asyncio"], expect=("sleep",)),
        "empty, uvloop": Server("empty-uvloop", [*empty, "--uvloop"], expect=("sleep",)),
        "empty, asyncio": Server("empty-asyncio", empty, expect=("sleep",)),
    }
    requests = {}
    try:
        for name, server in servers.items():
            server.launch()
            meta = call(server.port, "CreateTask", create_request("sleep")).resource_meta
            requests[name] = get_request("sleep", meta)
            drive(server.port, requests[name], 2000)  # warm up
        per_call: dict[str, list[float]] = {n: [] for n in servers}
        rates: dict[str, list[float]] = {n: [] for n in servers}
        for _ in range(args.rounds):
            for name, server in servers.items():
                before = cpu_seconds(server.proc.pid)
                rps, counts = drive(server.port, requests[name], args.requests)
                check_load(server, "GetTask", counts, len(grpc_frame(call(server.port, "GetTask", requests[name]))))
                per_call[name].append((cpu_seconds(server.proc.pid) - before) / counts["succeeded"] * 1e6)
                rates[name].append(rps)
    finally:
        for server in servers.values():
            server.stop()
    base_cpu = statistics.median(per_call["empty, uvloop"])
    base_rps = statistics.median(rates["empty, uvloop"])
    print(f"GetTask, {args.requests} calls x {args.rounds} rounds, 128 streams; load average {os.getloadavg()[0]:.1f}")
    print(f"{'server':16} {'CPU µs/call':>12} {'/ empty uvloop':>15} {'req/s':>8} {'/ empty uvloop':>15}")
    for name in servers:
        cpu, rps = statistics.median(per_call[name]), statistics.median(rates[name])
        print(f"{name:16} {cpu:12.1f} {cpu / base_cpu:15.2f} {rps:8.0f} {rps / base_rps:15.2f}")
    print("rounds, CPU µs/call:", {n: [round(v, 1) for v in vs] for n, vs in per_call.items()})
    print("rounds, req/s:", {n: [round(v) for v in vs] for n, vs in rates.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
