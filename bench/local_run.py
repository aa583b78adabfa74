"""Local run of a zero-length sleep task, end to end in one process: the median of N runs in ms.

Each run is what a user's ``SleepTask(name="bench")(duration=timedelta(0))`` does: render the template,
convert the inputs, find the connector, make a private event loop, install and restore the signal handlers,
create, get (SUCCEEDED at once) and convert the outputs. Target: under 50 ms (flytekit's mixin sleeps a
fixed second before its first get). Run from the repository root:

    /work/venv/bin/python bench/local_run.py [--runs 200] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import timedelta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--json", action="store_true", help="print one JSON object (bench/run.py reads it)")
    args = parser.parse_args()

    started = time.perf_counter()
    from core_connectors_sleep import SleepTask

    task = SleepTask(name="bench")
    task(duration=timedelta(0))  # the first run also discovers the installed connectors
    first_ms = (time.perf_counter() - started) * 1000

    times = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        task(duration=timedelta(0))
        times.append((time.perf_counter() - t0) * 1000)
    median = statistics.median(times)
    if args.json:
        print(
            json.dumps({"local_run_median_ms": round(median, 3), "first_run_ms": round(first_ms, 1), "runs": args.runs})
        )
    else:
        print(
            f"local run of a zero-length sleep task: median {median:.2f} ms over {args.runs} runs "
            f"(first run with imports and discovery: {first_ms:.0f} ms; target < 50 ms)"
        )


if __name__ == "__main__":
    main()
