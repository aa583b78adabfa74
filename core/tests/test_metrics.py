"""The metric families Prometheus scrapes: flytekit's names, a real histogram, worker totals summed."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from core_connectors.server.metrics import Metrics, WorkerTotalsCollector


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
