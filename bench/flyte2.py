"""GetTask/s over Flyte 2's flyteidl2.connector service against v1's AsyncAgentService, on one server.

The same `core-connectors serve` (sleep connector, uvloop) answers both; h2load drives each in turn, round after
round, with 128 streams, so background load on the machine hits both alike. Run from the repository root:

    .nox/cross/bin/python bench/flyte2.py [--python PATH] [--rounds 5] [--seconds 3]

`--python` is an interpreter with core-connectors[flyte2] and core-connectors-sleep (default: this one).
docs/benchmarks.md has the result.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from flyteidl2.connector import connector_pb2
from run import (
    FAST_LOAD,
    SERVICE,
    V2_SERVICE,
    Server,
    call,
    check_load,
    create_request,
    get_request,
    grpc_frame,
    h2load,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()

    cli = str(Path(args.python).parent / "core-connectors")
    argv = [cli, "serve", "--host", "127.0.0.1", "--port", "{port}", "--prometheus-port", "0"]
    server = Server("ours", argv, expect=("sleep",), logdir=Path(tempfile.mkdtemp(prefix="flyte2-bench-")))
    server.launch()
    try:
        meta = call(server.port, "CreateTask", create_request("sleep")).resource_meta
        v1 = get_request("sleep", meta)
        v2 = connector_pb2.GetTaskRequest(task_category=connector_pb2.TaskCategory(name="sleep"), resource_meta=meta)
        reply_size = len(grpc_frame(call(server.port, "GetTask", v1)))
        loads = {"v1": (SERVICE, v1), "v2": (V2_SERVICE, v2)}
        rates: dict[str, list[float]] = {"v1": [], "v2": []}
        for round_ in range(args.rounds + 1):  # round 0 warms up
            order = ("v1", "v2") if round_ % 2 else ("v2", "v1")  # neither always runs first
            for name in order:
                service, request = loads[name]
                r = h2load(server.port, "GetTask", request, FAST_LOAD, args.seconds if round_ else 1.0, service)
                check_load(server, f"{name} GetTask", r, reply_size)  # v2's reply is as long as v1's
                if round_:
                    rates[name].append(r["rps"])
        v1_rps, v2_rps = statistics.median(rates["v1"]), statistics.median(rates["v2"])
        print(f"rounds v1 {[round(r) for r in rates['v1']]}/s, v2 {[round(r) for r in rates['v2']]}/s")
        pairs = statistics.median(b / a for a, b in zip(rates["v1"], rates["v2"], strict=True))
        print(f"GetTask/s median: v1 {v1_rps:,.0f}, v2 {v2_rps:,.0f}, v2/v1 {v2_rps / v1_rps:.2f}")
        print(f"median of the per-round ratios v2/v1 (each pair run back to back): {pairs:.2f}")
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
