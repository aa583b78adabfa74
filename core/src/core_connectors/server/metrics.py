"""Prometheus metrics with flytekit's names and labels, so existing dashboards keep working.

``flyte_connector_request_latency_seconds`` is a histogram (flytekit's summary had only ``_count`` and
``_sum``, which a histogram also has). Label children are bound once per (task type, operation) and reused,
so recording a request costs two lock-protected additions. With several worker processes,
``PROMETHEUS_MULTIPROC_DIR`` is set before prometheus_client is imported and the parent serves the totals.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, Summary

__all__ = ["Metrics"]

PREFIX = "flyte_connector_"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

_by_registry: dict[int, Metrics] = {}


class Metrics:
    """The service's four metric families in one registry (one instance per registry: names are unique)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.success = Counter(
            f"{PREFIX}requests_success_total",
            "Total number of successful requests",
            ["task_type", "operation"],
            registry=registry,
        )
        self.failure = Counter(
            f"{PREFIX}requests_failure_total",
            "Total number of failed requests",
            ["task_type", "operation", "error_code"],
            registry=registry,
        )
        self.latency = Histogram(
            f"{PREFIX}request_latency_seconds",
            "Time spent processing connector request",
            ["task_type", "operation"],
            registry=registry,
            buckets=LATENCY_BUCKETS,
        )
        self.input_bytes = Summary(
            f"{PREFIX}input_literal_bytes", "Size of input literal", ["task_type"], registry=registry
        )
        self._children: dict[tuple[str, str], tuple[Any, Any]] = {}
        self._input_children: dict[str, Any] = {}

    @classmethod
    def for_registry(cls, registry: CollectorRegistry | None = None) -> Metrics:
        """The Metrics of ``registry`` (the process-wide default when None), created on first use."""
        registry = registry if registry is not None else REGISTRY
        metrics = _by_registry.get(id(registry))
        if metrics is None or metrics.registry is not registry:
            metrics = _by_registry[id(registry)] = cls(registry)
        return metrics

    def succeeded(self, task_type: str, operation: str, started: float) -> None:
        children = self._children.get((task_type, operation))
        if children is None:
            children = self._bind(task_type, operation)
        children[0].inc()
        children[1].observe(time.perf_counter() - started)

    def failed(self, task_type: str, operation: str, error_code: str, started: float) -> None:
        self.latency.labels(task_type=task_type, operation=operation).observe(time.perf_counter() - started)
        self.failure.labels(task_type=task_type, operation=operation, error_code=error_code).inc()

    def input_size(self, task_type: str, size: int) -> None:
        child = self._input_children.get(task_type)
        if child is None:
            child = self._input_children[task_type] = self.input_bytes.labels(task_type=task_type)
        child.observe(size)

    def _bind(self, task_type: str, operation: str) -> tuple[Any, Any]:
        children = (
            self.success.labels(task_type=task_type, operation=operation),
            self.latency.labels(task_type=task_type, operation=operation),
        )
        self._children[(task_type, operation)] = children
        return children
