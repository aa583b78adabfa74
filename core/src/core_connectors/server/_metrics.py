"""Prometheus metrics with flytekit's names and labels, so existing dashboards keep working.

``flyte_connector_request_latency_seconds`` is a histogram (flytekit's summary had only ``_count`` and
``_sum``, which a histogram also has). Every request is recorded, and recording sits on the hot path of
every GetTask, so it is plain arithmetic on dicts owned by the event-loop thread (no locks, no
prometheus_client objects per request); a collector turns the totals into metric families when Prometheus
scrapes, and prometheus-client serves them. With ``--workers``, each worker writes its totals to a file in a
directory the supervisor names, every second and when it stops; the supervisor's collector sums the files.

Every series of the request counters, the latency histogram and the input-size summary also has the label
``protocol``: ``v1`` for flyteidl's services, ``v2`` for Flyte 2's ``flyteidl2.connector`` ones, so one
dashboard shows both; queries that sum over the other labels read as before.

Two gauges show load rather than history: ``flyte_connector_inflight_requests{task_type}`` (connector calls
running now, over either protocol) and the thread pool's size and busy threads (``flyte_connector_pool_threads``,
``flyte_connector_pool_busy_threads``), which say when plain ``def`` connectors are about to queue.
"""

from __future__ import annotations

import asyncio
import bisect
import contextvars
import functools
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # prometheus-client is imported where metrics are served (3 MB and 20 ms that counting needs not)
    from prometheus_client import CollectorRegistry
    from prometheus_client.core import Metric

__all__ = ["METRICS_DIR_ENV", "Metrics", "MeteredThreadPool", "ProcessTreeCollector", "WorkerTotalsCollector"]

PREFIX = "flyte_connector_"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
METRICS_DIR_ENV = "CORE_CONNECTORS_METRICS_DIR"
"""Set by the ``--workers`` supervisor: where each worker writes its totals."""

_by_registry: dict[int, Metrics] = {}


class Totals:
    """The counts behind the four metric families, as plain dicts keyed by label values.

    ``latency`` rows hold one count per bucket (the last one +Inf) followed by the sum of seconds;
    ``input_bytes`` rows hold the count and the sum.
    """

    def __init__(self) -> None:
        self.success: dict[tuple[str, str, str], int] = {}  # (task_type, operation, protocol)
        self.failure: dict[tuple[str, str, str, str], int] = {}  # (task_type, operation, error_code, protocol)
        self.latency: dict[tuple[str, str, str], list[float]] = {}
        self.input_bytes: dict[tuple[str, str], list[float]] = {}  # (task_type, protocol)
        # gauges: what is running now, not what has happened (calls of both protocols together)
        self.inflight: dict[str, int] = {}
        self.pool_threads = 0
        self.pool_busy = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "success": [[*k, v] for k, v in list(self.success.items())],
            "failure": [[*k, v] for k, v in list(self.failure.items())],
            "latency": [[*k, list(v)] for k, v in list(self.latency.items())],
            "input_bytes": [[*k, list(v)] for k, v in list(self.input_bytes.items())],
            "inflight": [[k, v] for k, v in list(self.inflight.items())],
            "pool": [self.pool_threads, self.pool_busy],
        }

    def add_json(self, data: dict[str, Any], gauges: bool = True) -> None:
        """Add another process's totals; its gauges too unless it has exited (``gauges=False``)."""
        for task_type, operation, protocol, n in data.get("success", []):
            key = (task_type, operation, protocol)
            self.success[key] = self.success.get(key, 0) + n
        for task_type, operation, code, protocol, n in data.get("failure", []):
            fkey = (task_type, operation, code, protocol)
            self.failure[fkey] = self.failure.get(fkey, 0) + n
        for task_type, operation, protocol, row in data.get("latency", []):
            into = self.latency.setdefault((task_type, operation, protocol), [0.0] * (len(LATENCY_BUCKETS) + 2))
            for i, value in enumerate(row):
                into[i] += value
        for task_type, protocol, row in data.get("input_bytes", []):
            into = self.input_bytes.setdefault((task_type, protocol), [0.0, 0.0])
            into[0] += row[0]
            into[1] += row[1]
        if gauges:
            for task_type, n in data.get("inflight", []):
                self.inflight[task_type] = self.inflight.get(task_type, 0) + n
            threads, busy = data.get("pool", (0, 0))
            self.pool_threads += threads
            self.pool_busy += busy

    def families(self) -> Iterator[Metric]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
            SummaryMetricFamily,
        )

        success = CounterMetricFamily(
            f"{PREFIX}requests_success",
            "Total number of successful requests",
            labels=["task_type", "operation", "protocol"],
        )
        for labels, n in list(self.success.items()):
            success.add_metric(list(labels), n)
        failure = CounterMetricFamily(
            f"{PREFIX}requests_failure",
            "Total number of failed requests",
            labels=["task_type", "operation", "error_code", "protocol"],
        )
        for failure_labels, n in list(self.failure.items()):
            failure.add_metric(list(failure_labels), n)
        latency = HistogramMetricFamily(
            f"{PREFIX}request_latency_seconds",
            "Time spent processing connector request",
            labels=["task_type", "operation", "protocol"],
        )
        for labels, row in list(self.latency.items()):
            row = list(row)  # one snapshot: the +Inf bucket and the count agree
            cumulative, buckets = 0.0, []
            for bound, count in zip((*map(str, LATENCY_BUCKETS), "+Inf"), row[:-1], strict=True):
                cumulative += count
                buckets.append((bound, cumulative))
            latency.add_metric(list(labels), buckets, sum_value=row[-1])
        input_bytes = SummaryMetricFamily(
            f"{PREFIX}input_literal_bytes", "Size of input literal", labels=["task_type", "protocol"]
        )
        for input_labels, (count, total) in list(self.input_bytes.items()):
            input_bytes.add_metric(list(input_labels), count_value=int(count), sum_value=total)
        inflight = GaugeMetricFamily(f"{PREFIX}inflight_requests", "Connector calls in flight", labels=["task_type"])
        for task_type, n in list(self.inflight.items()):
            inflight.add_metric([task_type], n)
        threads = GaugeMetricFamily(
            f"{PREFIX}pool_threads",
            "Size of the thread pool that runs plain `def` connector methods",
            self.pool_threads,
        )
        busy = GaugeMetricFamily(
            f"{PREFIX}pool_busy_threads", "Threads of that pool running a connector call now", self.pool_busy
        )
        yield from (success, failure, latency, input_bytes, inflight, threads, busy)


class Metrics:
    """Records each request into ``Totals``; registered in a prometheus-client registry as its collector.

    Record only from the event-loop thread (the service does): that is what makes the dicts safe without
    locks. A scrape reads copies of them from the metrics server's thread.
    """

    def __init__(self, registry: CollectorRegistry | None) -> None:
        """``registry=None`` counts without publishing (a ``--workers`` worker, whose supervisor serves the sum;
        the service with metrics turned off): prometheus-client is then never imported."""
        self.registry = registry
        self.totals = Totals()
        self.pools: list[MeteredThreadPool] = []  # the pools of the servers recording here
        if registry is not None:
            registry.register(self)

    @classmethod
    def for_registry(cls, registry: CollectorRegistry | None = None) -> Metrics:
        """The Metrics of ``registry`` (the process-wide default when None), created on first use."""
        if registry is None:
            import prometheus_client

            registry = prometheus_client.REGISTRY
        metrics = _by_registry.get(id(registry))
        if metrics is None or metrics.registry is not registry:
            metrics = _by_registry[id(registry)] = cls(registry)
        return metrics

    def collect(self) -> Iterator[Metric]:
        self._read_pools()
        return self.totals.families()

    def _read_pools(self) -> None:
        pools = list(self.pools)
        self.totals.pool_threads = sum(p.size for p in pools)
        self.totals.pool_busy = sum(len(p.busy) for p in pools)

    def call_started(self, task_type: str) -> None:
        inflight = self.totals.inflight
        inflight[task_type] = inflight.get(task_type, 0) + 1

    def call_ended(self, task_type: str) -> None:
        self.totals.inflight[task_type] -= 1

    def succeeded(self, task_type: str, operation: str, started: float, protocol: str = "v1") -> None:
        seconds = time.perf_counter() - started
        key = (task_type, operation, protocol)
        totals = self.totals
        totals.success[key] = totals.success.get(key, 0) + 1
        row = totals.latency.get(key) or self._latency_row(key)  # _observe inlined: once per request
        row[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        row[-1] += seconds

    def failed(self, task_type: str, operation: str, error_code: str, started: float, protocol: str = "v1") -> None:
        key = (task_type, operation, error_code, protocol)
        self.totals.failure[key] = self.totals.failure.get(key, 0) + 1
        self._observe((task_type, operation, protocol), time.perf_counter() - started)

    def input_size(self, task_type: str, size: int, protocol: str = "v1") -> None:
        key = (task_type, protocol)
        row = self.totals.input_bytes.get(key)
        if row is None:
            row = self.totals.input_bytes[key] = [0.0, 0.0]
        row[0] += 1
        row[1] += size

    def _observe(self, key: tuple[str, str, str], seconds: float) -> None:
        row = self.totals.latency.get(key) or self._latency_row(key)
        row[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1  # le: a value on a bound counts in its bucket
        row[-1] += seconds

    def _latency_row(self, key: tuple[str, str, str]) -> list[float]:
        row = self.totals.latency[key] = [0.0] * (len(LATENCY_BUCKETS) + 2)
        return row

    def write_totals(self, directory: str) -> None:
        """Write this process's totals for the supervisor (atomically: it may read at any moment)."""
        path = Path(directory) / f"worker-{os.getpid()}.json"
        partial = path.with_suffix(".tmp")
        self._read_pools()
        partial.write_text(json.dumps(self.totals.to_json()))
        os.replace(partial, path)

    async def write_totals_every(self, directory: str, seconds: float = 1.0) -> None:
        """Run on the event loop in a worker until cancelled; the caller writes once more at the end."""
        while True:
            await asyncio.sleep(seconds)
            self.write_totals(directory)


class MeteredThreadPool(ThreadPoolExecutor):
    """The service's pool for plain ``def`` methods, knowing how many of its threads run a call right now,
    and running each call in the submitter's context (contextvars), as ``asyncio.to_thread`` does.

    A thread adds its id to ``busy`` while it runs a call: set.add and set.discard are single atomic steps
    under the GIL, so counting needs no lock and costs two C calls per call.
    """

    def __init__(self, max_workers: int, thread_name_prefix: str = "") -> None:
        super().__init__(max_workers=max_workers, thread_name_prefix=thread_name_prefix)
        self.size = max_workers
        self.busy: set[int] = set()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        # the caller's context variables go with the call, as with asyncio.to_thread (the RPC's trace span)
        return super().submit(self._run, contextvars.copy_context(), fn, args, kwargs)

    def _run(
        self, context: contextvars.Context, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        ident = threading.get_ident()
        self.busy.add(ident)
        try:
            return context.run(fn, *args, **kwargs)
        finally:
            self.busy.discard(ident)


class WorkerTotalsCollector:
    """The supervisor's view: the sum of every worker's totals file (a restarted worker's old file counts
    too, so counters never go backwards; gauges count only workers still running)."""

    def __init__(self, directory: str) -> None:
        self.directory = Path(directory)

    def collect(self) -> Iterator[Metric]:
        totals = Totals()
        for path in sorted(self.directory.glob("worker-*.json")):
            try:
                totals.add_json(json.loads(path.read_text()), gauges=_alive(path))
            except (OSError, ValueError):
                continue  # a file being replaced right now: the next scrape reads it
        return totals.families()


class ProcessTreeCollector:
    """``process_*`` of the supervisor and its live workers, summed, so that memory and CPU panels show what
    the whole pod uses under ``--workers`` (a restarted worker's CPU leaves the sum: ``rate`` takes that as
    a counter reset)."""

    _SUMMED = ("process_resident_memory_bytes", "process_virtual_memory_bytes", "process_cpu_seconds_total")

    def collect(self) -> Iterator[Metric]:
        from prometheus_client import ProcessCollector

        me = os.getpid()
        families = {f.name: f for f in ProcessCollector(registry=None).collect()}
        for pid in _children(me):
            for family in ProcessCollector(pid=functools.partial(int, pid), registry=None).collect():
                mine = families.get(family.name)
                if mine is None or not family.samples or not mine.samples:
                    continue
                if any(family.samples[0].name.startswith(n) for n in self._SUMMED):
                    total = mine.samples[0].value + family.samples[0].value
                    mine.samples[0] = mine.samples[0]._replace(value=total)
        return iter(families.values())


def _children(pid: int) -> list[int]:
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return []
    found: list[int] = []
    for task in tasks:
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def _alive(totals_file: Path) -> bool:
    """Whether the worker that wrote ``worker-<pid>.json`` still runs."""
    try:
        os.kill(int(totals_file.stem.removeprefix("worker-")), 0)
    except ValueError:
        return False
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
