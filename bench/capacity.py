"""Capacity of one replica, for sizing a deployment (docs/deploy.md, "Capacity and sizing").

    python bench/capacity.py [--seconds 10] [--workers 2] [--latency 0.05] [--json out.json]

Runs `core-connectors serve` from the current environment (the sleep connector installed; the connector of
tests/deploy_fleet/slow_connector.py adds a vendor latency) with --workers 1 and --workers N, and measures:

- GetTask/s of the sleep connector under h2load (128 streams) and the server's CPU seconds per call (process
  CPU time of the server and its workers over the run, divided by the calls);
- GetTask/s when each call waits `--latency` seconds on its vendor (an async connector; 256 streams);
- resident memory idle and with 1024 calls in flight at once (each waiting 1 s), per thousand calls.

From these: the running tasks one replica sustains with propeller polling each every 30 s. Needs h2load
(`apt-get install -y nghttp2-client`). The machine is shared: run it alone, and read ratios, not digits.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from flyteidl.admin import agent_pb2
from flyteidl.core import tasks_pb2
from google.protobuf import struct_pb2
from run import ROOT, call, cpu_seconds, create_request, free_port, get_request, h2load, rss_mb

POLL_SECONDS = 30  # propeller polls every running task's GetTask this often


def slow_meta(port: int, latency: float) -> bytes:
    custom = struct_pb2.Struct()
    custom.update({"latency": 0.0, "duration": 0.0})
    reply = call(
        port, "CreateTask", agent_pb2.CreateTaskRequest(template=tasks_pb2.TaskTemplate(type="slow", custom=custom))
    )
    meta = json.loads(reply.resource_meta)
    meta["latency"] = latency
    return json.dumps(meta).encode()


def measure(workers: int, seconds: float, latency: float) -> dict:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests" / "deploy_fleet")}
    argv = [str(Path(sys.executable).with_name("core-connectors")), "serve", "--host=127.0.0.1", f"--port={port}"]
    argv += ["--prometheus-port=0", f"--workers={workers}", "--modules=slow_connector", "--log-level=WARNING"]
    proc = subprocess.Popen(argv, env=env, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                call(port, "ListAgents", agent_pb2.ListAgentsRequest(), timeout=1)
                break
            except Exception:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the service did not start") from None
                time.sleep(0.2)
        time.sleep(1.0)
        idle_mb = rss_mb(proc.pid)
        sleep_meta = call(port, "CreateTask", create_request("sleep")).resource_meta
        get_sleep = get_request("sleep", sleep_meta)
        h2load(port, "GetTask", get_sleep, (4, 32), 2.0)  # warm-up
        before = cpu_seconds(proc.pid)
        fast = h2load(port, "GetTask", get_sleep, (4, 32), seconds)
        cpu_per_call = (cpu_seconds(proc.pid) - before) / max(fast["done"], 1)
        vendor = h2load(port, "GetTask", get_request("slow", slow_meta(port, latency)), (4, 64), seconds)
        # 1024 calls in flight at once, each waiting 1 s on its vendor: the peak resident memory
        peak = [idle_mb]
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(0.2):
                peak[0] = max(peak[0], rss_mb(proc.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        held = h2load(port, "GetTask", get_request("slow", slow_meta(port, 1.0)), (8, 128), 6.0)
        stop.set()
        sampler.join()
    finally:
        proc.terminate()
        proc.wait(30)
    return {
        "workers": workers,
        "gettask_per_s": round(fast["rps"]),
        "cpu_ms_per_call": round(cpu_per_call * 1000, 4),
        "vendor_latency_s": latency,
        "gettask_per_s_at_latency": round(vendor["rps"]),
        "idle_rss_mb": round(idle_mb, 1),
        "rss_mb_per_1000_calls_in_flight": round((peak[0] - idle_mb) * 1000 / 1024, 1),
        "held_calls_completed": held["succeeded"],
        "running_tasks_at_30s_poll": round(vendor["rps"] * POLL_SECONDS),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2, help="the N of the --workers N run")
    parser.add_argument("--latency", type=float, default=0.05, help="vendor latency of each GetTask, seconds")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = [measure(w, args.seconds, args.latency) for w in (1, args.workers)]
    for r in results:
        print(json.dumps(r))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
