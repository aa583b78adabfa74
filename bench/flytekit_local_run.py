"""flytekit's side of the local-run figure: a zero-length sleep task through flytekit 1.16's
AsyncConnectorExecutorMixin, in one process; prints the median of N runs in ms (as bench/local_run.py).

Run with the flytekit venv's python, bench/ on PYTHONPATH (bench/run.py does both).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import flytekit_sleep_connector  # noqa: F401 - registers the "sleep" connector with flytekit's registry
from flytekit.core.base_task import PythonTask
from flytekit.core.interface import Interface
from flytekit.extend.backend.base_connector import AsyncConnectorExecutorMixin


class SleepTask(AsyncConnectorExecutorMixin, PythonTask):
    """A task of type "sleep" that flytekit runs locally through the registered connector."""

    def __init__(self, name: str):
        super().__init__(name=name, task_type="sleep", interface=Interface(inputs={}, outputs={}))

    def get_custom(self, settings) -> dict:
        return {"duration": 0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    task = SleepTask(name="bench")
    task()  # warm up, as bench/local_run.py does
    times = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        task()
        times.append((time.perf_counter() - t0) * 1000)
    print(json.dumps({"local_run_median_ms": round(statistics.median(times), 3), "runs": args.runs}))


if __name__ == "__main__":
    main()
