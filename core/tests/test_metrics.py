"""The metric families Prometheus scrapes: flytekit's names, a real histogram, worker totals summed."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from core_connectors.server._metrics import Metrics, WorkerTotalsCollector


def samples(registry):
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }


def record(metrics, seconds, operation="get", task_type="sleep"):
    metrics.succeeded(task_type, operation, time.perf_counter() - seconds)


def test_counts_and_histogram_buckets():
    metrics = Metrics(CollectorRegistry())
    record(metrics, 0.0)
    record(metrics, 0.003)
    record(metrics, 60)
    metrics.failed("sleep", "get", "500", time.perf_counter())
    metrics.input_size("sleep", 120)
    s = samples(metrics.registry)
    labels = (("operation", "get"), ("protocol", "v1"), ("task_type", "sleep"))
    assert s[("flyte_connector_requests_success_total", labels)] == 3
    assert s[("flyte_connector_requests_failure_total", (("error_code", "500"), *labels))] == 1
    bucket = "flyte_connector_request_latency_seconds_bucket"
    assert s[(bucket, (("le", "0.001"), *labels))] == 2  # the zero-length one and the failure
    assert s[(bucket, (("le", "0.005"), *labels))] == 3
    assert s[(bucket, (("le", "30.0"), *labels))] == 3
    assert s[(bucket, (("le", "+Inf"), *labels))] == 4 == s[("flyte_connector_request_latency_seconds_count", labels)]
    assert 60 < s[("flyte_connector_request_latency_seconds_sum", labels)] < 61
    assert (
        s[
            (
                "flyte_connector_input_literal_bytes_sum",
                (
                    ("protocol", "v1"),
                    ("task_type", "sleep"),
                ),
            )
        ]
        == 120
    )


def test_supervisor_sums_the_totals_every_worker_wrote(tmp_path):
    for worker_number in range(2):  # two worker processes, each writing worker-<pid>.json
        worker = Metrics(CollectorRegistry())
        record(worker, 0.002)
        worker.failed("sleep", "create", "404", time.perf_counter())
        worker.write_totals(str(tmp_path))
        (written,) = tmp_path.glob("worker-[0-9]*.json")
        written.rename(tmp_path / f"worker-as-if-pid-{worker_number}.json")
    (tmp_path / "worker-being-replaced.json").write_text("{not json")
    registry = CollectorRegistry()
    registry.register(WorkerTotalsCollector(str(tmp_path)))
    s = samples(registry)
    assert (
        s[
            (
                "flyte_connector_requests_success_total",
                (("operation", "get"), ("protocol", "v1"), ("task_type", "sleep")),
            )
        ]
        == 2
    )
    failed = (("error_code", "404"), ("operation", "create"), ("protocol", "v1"), ("task_type", "sleep"))
    assert s[("flyte_connector_requests_failure_total", failed)] == 2


def test_flyte2_calls_are_counted_apart_under_the_same_names(tmp_path):
    worker = Metrics(CollectorRegistry())
    record(worker, 0.002)
    worker.succeeded("sleep", "get", time.perf_counter(), "v2")
    worker.failed("sleep", "get", "404", time.perf_counter(), "v2")
    worker.write_totals(str(tmp_path))
    registry = CollectorRegistry()
    registry.register(WorkerTotalsCollector(str(tmp_path)))
    s = samples(registry)
    ok = "flyte_connector_requests_success_total"
    assert s[(ok, (("operation", "get"), ("protocol", "v1"), ("task_type", "sleep")))] == 1
    assert s[(ok, (("operation", "get"), ("protocol", "v2"), ("task_type", "sleep")))] == 1
    failed = (("error_code", "404"), ("operation", "get"), ("protocol", "v2"), ("task_type", "sleep"))
    assert s[("flyte_connector_requests_failure_total", failed)] == 1


def test_in_flight_and_pool_gauges_follow_the_calls_running_now():
    import asyncio
    import threading
    from dataclasses import dataclass

    from flyteidl.admin import agent_pb2
    from flyteidl.core.execution_pb2 import TaskExecution

    from core_connectors import AsyncConnectorBase, Resource, ResourceMeta
    from core_connectors.server.testing import start_service

    release = threading.Event()

    @dataclass
    class Meta(ResourceMeta):
        n: int = 0

    class Blocking(AsyncConnectorBase):
        name = "blocking"
        max_concurrent_calls = 4  # above the default bulkhead (half the pool): all three calls run at once

        def __init__(self):
            super().__init__(task_type_name="blocking", metadata_type=Meta)

        def create(self, task_template, **kwargs):
            return Meta()

        def get(self, resource_meta, **kwargs):
            release.wait(10)
            return Resource(phase=TaskExecution.SUCCEEDED)

        def delete(self, resource_meta, **kwargs):
            pass

    class Waiting(Blocking):
        name = "waiting"

        def __init__(self):
            AsyncConnectorBase.__init__(self, task_type_name="waiting", metadata_type=Meta)

        async def get(self, resource_meta, **kwargs):
            while not release.is_set():
                await asyncio.sleep(0.01)
            return Resource(phase=TaskExecution.SUCCEEDED)

    registry = CollectorRegistry()
    with start_service(Blocking(), Waiting(), threads=4, metrics_registry=registry) as service:
        stub = service.async_stub
        calls = [
            stub.GetTask.future(agent_pb2.GetTaskRequest(task_type=t, resource_meta=b'{"n": 0}'), timeout=10)
            for t in ("blocking", "blocking", "blocking", "waiting")
        ]

        def gauges():
            s = samples(registry)
            return (
                s.get(("flyte_connector_inflight_requests", (("task_type", "blocking"),))),
                s.get(("flyte_connector_inflight_requests", (("task_type", "waiting"),))),
                s[("flyte_connector_pool_busy_threads", ())],
                s[("flyte_connector_pool_threads", ())],
            )

        deadline = time.monotonic() + 5
        while gauges() != (3, 1, 3, 4) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert gauges() == (3, 1, 3, 4)
        release.set()
        assert all(c.result().resource.phase == TaskExecution.SUCCEEDED for c in calls)
        deadline = time.monotonic() + 5
        while gauges()[:3] != (0, 0, 0) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert gauges() == (0, 0, 0, 4)


def test_supervisor_sums_gauges_of_running_workers_only(tmp_path):
    import os
    import subprocess
    import sys

    worker = Metrics(CollectorRegistry())
    worker.call_started("sleep")
    worker.call_started("sleep")
    worker.write_totals(str(tmp_path))  # this process: alive
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / f"worker-{os.getpid()}.json").rename(tmp_path / f"worker-{gone.stdout.strip()}.json")
    worker.write_totals(str(tmp_path))
    registry = CollectorRegistry()
    registry.register(WorkerTotalsCollector(str(tmp_path)))
    assert samples(registry)[("flyte_connector_inflight_requests", (("task_type", "sleep"),))] == 2  # not 4


def test_the_supervisor_reports_the_memory_and_cpu_of_its_workers_too():
    import subprocess
    import sys

    from core_connectors.server._metrics import ProcessTreeCollector

    registry = CollectorRegistry()
    registry.register(ProcessTreeCollector())
    alone = samples(registry)[("process_resident_memory_bytes", ())]
    worker = subprocess.Popen([sys.executable, "-c", "import time; b = bytearray(64 << 20); time.sleep(30)"])
    try:
        deadline = time.monotonic() + 10
        while samples(registry)[("process_resident_memory_bytes", ())] < alone + (60 << 20):
            assert time.monotonic() < deadline, "the worker's memory never showed"
            time.sleep(0.05)
        assert samples(registry)[("process_cpu_seconds_total", ())] > 0
    finally:
        worker.kill()
        worker.wait()


def test_made_up_task_types_share_one_failure_label_and_served_ones_keep_theirs():
    """A caller naming a thousand task types that nobody serves must not grow the metrics by a thousand series."""
    from dataclasses import dataclass

    import grpc
    import pytest
    from flyteidl.admin import agent_pb2
    from flyteidl.core.execution_pb2 import TaskExecution

    from core_connectors import AsyncConnectorBase, Resource, ResourceMeta
    from core_connectors.server.testing import start_service

    @dataclass
    class Meta(ResourceMeta):
        deadline: float

    class Sleep(AsyncConnectorBase):
        name = "Sleep"

        def __init__(self):
            super().__init__(task_type_name="sleep", metadata_type=Meta)

        async def create(self, task_template, **kwargs):
            return Meta(deadline=0.0)

        async def get(self, resource_meta, **kwargs):
            return Resource(phase=TaskExecution.SUCCEEDED)

        async def delete(self, resource_meta, **kwargs):
            pass

    registry = CollectorRegistry()
    with start_service(Sleep(), metrics_registry=registry) as service:
        for i in range(30):
            request = agent_pb2.GetTaskRequest(task_type=f"made-up-{i}", resource_meta=b"{}")
            with pytest.raises(grpc.RpcError) as info:
                service.async_stub.GetTask(request, timeout=5)
            assert info.value.code() == grpc.StatusCode.NOT_FOUND
            assert f"made-up-{i}" in info.value.details()  # the caller is still told what it asked for
        bad_meta = agent_pb2.GetTaskRequest(task_type="sleep", resource_meta=b"not json")
        with pytest.raises(grpc.RpcError):
            service.async_stub.GetTask(bad_meta, timeout=5)
    failures = {
        labels: value
        for (name, labels), value in samples(registry).items()
        if name == "flyte_connector_requests_failure_total"
    }
    common = (("operation", "get"), ("protocol", "v1"))
    assert failures == {
        (("error_code", "404"), *common, ("task_type", "(not served)")): 30,
        (("error_code", "400"), *common, ("task_type", "sleep")): 1,
    }
