"""Generate the Grafana dashboard and the Prometheus alerting rules of the connector service.

    python deploy/generate.py           # write deploy/grafana/core-connectors.json, deploy/prometheus/alerts.yaml
    python deploy/generate.py --check   # exit 1 if the committed files differ from what this writes

Every query lives in ``PANELS`` and every alert in ``ALERTS``, so that the deployment test can evaluate each
of them against a real Prometheus scraping a real service. Needs grafanalib and PyYAML.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml
from grafanalib._gen import DashboardEncoder
from grafanalib.core import (
    Dashboard,
    GridPos,
    Target,
    Template,
    Templating,
    TimeSeries,
)

HERE = Path(__file__).resolve().parent
DASHBOARD_FILE = HERE / "grafana" / "core-connectors.json"
ALERTS_FILE = HERE / "prometheus" / "alerts.yaml"

JOB = 'job=~"$job"'
RATE = "$__rate_interval"
SUCCESS = "flyte_connector_requests_success_total"
FAILURE = "flyte_connector_requests_failure_total"
LATENCY = "flyte_connector_request_latency_seconds_bucket"


@dataclass(frozen=True)
class Panel:
    title: str
    unit: str
    queries: tuple[tuple[str, str], ...]  # (PromQL, legend)
    description: str = ""


PANELS = (
    Panel(
        "Requests per second by RPC and task type",
        "reqps",
        ((f"sum by (operation, task_type) (rate({SUCCESS}{{{JOB}}}[{RATE}]))", "{{operation}} {{task_type}}"),),
    ),
    Panel(
        "Failures per second by RPC, task type and code",
        "reqps",
        (
            (
                f"sum by (operation, task_type, error_code) (rate({FAILURE}{{{JOB}}}[{RATE}]))",
                "{{operation}} {{task_type}} {{error_code}}",
            ),
        ),
        "error_code is the HTTP status of the gRPC code: 400 bad request, 404 unknown task type, 500 connector error.",
    ),
    Panel(
        "Failure ratio by task type",
        "percentunit",
        (
            (
                f"sum by (task_type) (rate({FAILURE}{{{JOB}}}[{RATE}])) / (sum by (task_type) "
                f"(rate({SUCCESS}{{{JOB}}}[{RATE}])) + sum by (task_type) (rate({FAILURE}{{{JOB}}}[{RATE}])))",
                "{{task_type}}",
            ),
        ),
    ),
    Panel(
        "Latency quantiles by RPC",
        "s",
        tuple(
            (
                f"histogram_quantile({q}, sum by (le, operation) (rate({LATENCY}{{{JOB}}}[{RATE}])))",
                f"p{round(q * 100)} {{{{operation}}}}",
            )
            for q in (0.5, 0.95, 0.99)
        ),
    ),
    Panel(
        "Connector calls in flight by task type",
        "short",
        ((f"sum by (task_type) (flyte_connector_inflight_requests{{{JOB}}})", "{{task_type}}"),),
        "Calls running in connectors now. Propeller polls each running task every 30 s, so a steady value "
        "here is (running tasks / 30 s) x call latency.",
    ),
    Panel(
        "Thread pool saturation (plain def connectors)",
        "percentunit",
        (
            (
                f"sum by (instance) (flyte_connector_pool_busy_threads{{{JOB}}}) / "
                f"sum by (instance) (flyte_connector_pool_threads{{{JOB}}})",
                "{{instance}}",
            ),
        ),
        "Near 1, plain `def` calls queue for a thread: raise --threads or add replicas.",
    ),
    Panel(
        "Resident memory by replica",
        "bytes",
        ((f"process_resident_memory_bytes{{{JOB}}}", "{{instance}}"),),
    ),
    Panel(
        "CPU by replica",
        "percentunit",
        ((f"rate(process_cpu_seconds_total{{{JOB}}}[{RATE}])", "{{instance}}"),),
        "1.0 is one core; the event loop of a replica (or of one --workers process) cannot use more.",
    ),
    Panel(
        "Replicas up",
        "short",
        ((f"sum(up{{{JOB}}})", "up"), (f"count(up{{{JOB}}})", "scraped")),
    ),
)


@dataclass(frozen=True)
class Alert:
    name: str
    expr: str
    for_: str
    severity: str
    summary: str


ALERT_JOB = 'job="core-connectors"'
ALERTS = (
    Alert(
        "CoreConnectorsFailureRatioHigh",
        f'sum by (task_type) (rate({FAILURE}{{{ALERT_JOB},error_code=~"5.."}}[5m])) / '
        f"(sum by (task_type) (rate({SUCCESS}{{{ALERT_JOB}}}[5m])) + "
        f"sum by (task_type) (rate({FAILURE}{{{ALERT_JOB}}}[5m]))) > 0.05",
        "10m",
        "warning",
        "More than 5% of {{ $labels.task_type }} calls fail in the connector (5xx); five failed GetTask in a "
        "row fail a task.",
    ),
    Alert(
        "CoreConnectorsLatencyHigh",
        f"histogram_quantile(0.99, sum by (le, operation) (rate({LATENCY}{{{ALERT_JOB}}}[5m]))) > 1",
        "10m",
        "warning",
        "p99 of {{ $labels.operation }} is above 1 s (propeller's deadline is 10 s).",
    ),
    Alert(
        "CoreConnectorsPoolSaturated",
        f"sum by (instance) (flyte_connector_pool_busy_threads{{{ALERT_JOB}}}) / "
        f"sum by (instance) (flyte_connector_pool_threads{{{ALERT_JOB}}}) > 0.9",
        "5m",
        "warning",
        "{{ $labels.instance }}: the thread pool for plain def connectors is over 90% busy.",
    ),
    Alert(
        "CoreConnectorsScrapeFailing",
        f"up{{{ALERT_JOB}}} == 0",
        "5m",
        "warning",
        "Prometheus cannot scrape {{ $labels.instance }}.",
    ),
    Alert(
        "CoreConnectorsReplicasDown",
        f"sum(up{{{ALERT_JOB}}}) / count(up{{{ALERT_JOB}}}) < 0.5",
        "2m",
        "critical",
        "Fewer than half of the connector service replicas are up.",
    ),
    Alert(
        "CoreConnectorsAbsent",
        f"absent(up{{{ALERT_JOB}}})",
        "10m",
        "critical",
        "Prometheus has no connector service target at all.",
    ),
)


def dashboard() -> dict[str, object]:
    panels = []
    for i, panel in enumerate(PANELS):
        panels.append(
            TimeSeries(
                title=panel.title,
                description=panel.description,
                dataSource="${datasource}",
                unit=panel.unit,
                targets=[
                    Target(expr=expr, legendFormat=legend, refId=chr(ord("A") + n))
                    for n, (expr, legend) in enumerate(panel.queries)
                ],
                gridPos=GridPos(h=8, w=12, x=12 * (i % 2), y=8 * (i // 2)),
            )
        )
    board = Dashboard(
        title="core-connectors",
        uid="core-connectors",
        description="The Flyte connector service: traffic, failures, latency, load and resources per replica.",
        tags=["flyte", "connectors"],
        timezone="utc",
        refresh="30s",
        templating=Templating(
            [
                Template(name="datasource", type="datasource", query="prometheus", label="Data source"),
                Template(
                    name="job",
                    label="Job",
                    dataSource="${datasource}",
                    query="label_values(flyte_connector_pool_threads, job)",
                    default="core-connectors",
                    includeAll=False,
                ),
            ]
        ),
        panels=panels,
    ).auto_panel_ids()
    data: dict[str, object] = board.to_json_data()
    return data


def alert_rules() -> dict[str, object]:
    return {
        "groups": [
            {
                "name": "core-connectors",
                "rules": [
                    {
                        "alert": a.name,
                        "expr": a.expr,
                        "for": a.for_,
                        "labels": {"severity": a.severity},
                        "annotations": {"summary": a.summary},
                    }
                    for a in ALERTS
                ],
            }
        ]
    }


def rendered() -> dict[Path, str]:
    return {
        DASHBOARD_FILE: json.dumps(dashboard(), cls=DashboardEncoder, indent=2, sort_keys=True) + "\n",
        ALERTS_FILE: "# Generated by deploy/generate.py: edit that, then run it.\n"
        + yaml.safe_dump(alert_rules(), sort_keys=False, width=200),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    stale = []
    for path, text in rendered().items():
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(path)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    for path in stale:
        print(f"{path} differs from what deploy/generate.py writes: run it and commit the result", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
