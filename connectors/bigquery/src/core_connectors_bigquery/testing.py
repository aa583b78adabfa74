"""A local stand-in for the BigQuery jobs REST API, for tests of code that drives the real client.

The server is standard library only. Point google-cloud-bigquery at it with ``BIGQUERY_EMULATOR_HOST=fake.url`` (the
connector then uses anonymous credentials) and script what BigQuery does::

    with FakeBigQuery() as fake:
        fake.plan(states=["PENDING", "RUNNING", "DONE"], error_result={"reason": "invalidQuery", ...})
        ...                                   # every jobs.get moves a job one state on
        fake.requests[0].body["configuration"]["labels"]

It serves jobs.insert (409 "Already Exists" for a known id), jobs.get (404 for an unknown id or another
location), jobs.cancel and an OAuth token endpoint at ``/token``, and records every request. ``delay`` makes
answers slow, ``fail`` makes them fail. ``make_template``, ``make_inputs`` and ``make_metadata`` build the
messages propeller sends for a flytekitplugins-bigquery ``BigQueryTask``.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from flyteidl.admin import agent_pb2
from flyteidl.core import identifier_pb2, interface_pb2, literals_pb2, tasks_pb2, types_pb2
from google.protobuf import struct_pb2

from core_connectors.literals import python_to_literal_map, variable_map

__all__ = ["FakeBigQuery", "FakeJob", "Plan", "RecordedRequest", "make_inputs", "make_metadata", "make_template"]

_JOBS = re.compile(r"^/bigquery/v2/projects/(?P<project>[^/]+)/jobs(?:/(?P<job>[^/]+))?(?P<cancel>/cancel)?$")


@dataclass
class Plan:
    """What the next inserted jobs do: the states that jobs.get walks through, and how they end."""

    states: list[str] = field(default_factory=lambda: ["DONE"])
    error_result: dict[str, Any] | None = None
    errors: list[dict[str, Any]] | None = None
    """``status.errors`` once DONE: warnings when there is no ``error_result``."""
    destination: bool = True
    """Whether a DONE query has a destination table (an anonymous one unless the job names its own)."""


@dataclass
class FakeJob:
    project: str
    job_id: str
    location: str
    configuration: dict[str, Any]
    plan: Plan
    step: int = 0
    cancelled: bool = False

    @property
    def state(self) -> str:
        return "DONE" if self.cancelled else self.plan.states[min(self.step, len(self.plan.states) - 1)]

    def resource(self) -> dict[str, Any]:
        status: dict[str, Any] = {"state": self.state}
        configuration = json.loads(json.dumps(self.configuration))
        statistics: dict[str, Any] = {"creationTime": "1700000000000"}
        if self.state == "DONE":
            if self.cancelled:
                status["errorResult"] = {
                    "reason": "stopped",
                    "message": "Job execution was cancelled: User requested cancellation",
                }
                status["errors"] = [status["errorResult"]]
            elif self.plan.error_result:
                status["errorResult"] = self.plan.error_result
                status["errors"] = self.plan.errors or [self.plan.error_result]
            elif self.plan.errors:
                status["errors"] = self.plan.errors
            query = configuration.setdefault("query", {})
            if self.plan.destination and "destinationTable" not in query and not self.cancelled:
                query["destinationTable"] = {
                    "projectId": self.project,
                    "datasetId": "_anon",
                    "tableId": f"anon_{self.job_id}",
                }
            statistics["query"] = {"totalBytesProcessed": "1024", "totalBytesBilled": "10485760", "cacheHit": False}
        return {
            "kind": "bigquery#job",
            "id": f"{self.project}:{self.location}.{self.job_id}",
            "jobReference": {"projectId": self.project, "jobId": self.job_id, "location": self.location},
            "configuration": configuration,
            "status": status,
            "statistics": statistics,
        }


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    headers: dict[str, str]
    """Names in lower case."""
    status: int = 0
    """The HTTP status of the answer."""


class FakeBigQuery:
    """A threaded HTTP server on 127.0.0.1 answering like BigQuery's jobs API; use it as a context manager."""

    def __init__(self, default_location: str = "US") -> None:
        self.default_location = default_location
        self.jobs: dict[tuple[str, str], FakeJob] = {}
        self.requests: list[RecordedRequest] = []
        self._plan = Plan()
        self._delays: list[list[Any]] = []  # [method, seconds, remaining count or None]
        self._failures: list[list[Any]] = []  # [method, status, reason, remaining count]
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="fake-bigquery", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> FakeBigQuery:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()

    # ----------------------------------------------------------------------------------------- scripting
    def plan(self, states: list[str] | None = None, **kwargs: Any) -> Plan:
        """Set what jobs inserted from now on do (see ``Plan``)."""
        self._plan = Plan(states=list(states or ["DONE"]), **kwargs)
        return self._plan

    def add_job(self, project: str, job_id: str, location: str | None = None, **plan: Any) -> FakeJob:
        """A job that exists already (started by someone else, e.g. flytekit's connector)."""
        job = FakeJob(
            project, job_id, location or self.default_location, {"query": {"query": "SELECT 1"}}, Plan(**plan)
        )
        with self._lock:
            self.jobs[(project, job_id)] = job
        return job

    def delay(self, seconds: float, method: str | None = None, count: int | None = None) -> None:
        """Answer the next ``count`` requests (all when None) of ``method`` (any when None) ``seconds`` late;
        what the request does happens at once."""
        self._delays.append([method, seconds, count])

    def fail(self, status: int, reason: str, method: str | None = None, count: int = 1) -> None:
        """Answer the next ``count`` requests of ``method`` with an error of this HTTP status and reason."""
        self._failures.append([method, status, reason, count])

    def requests_to(self, method: str, kind: str = "") -> list[RecordedRequest]:
        """Recorded requests by HTTP method; kind "insert", "cancel" or "get" keeps only those jobs calls."""
        ends = {"insert": "/jobs", "cancel": "/cancel"}
        found = [r for r in self.requests if r.method == method]
        if kind in ends:
            return [r for r in found if r.path.endswith(ends[kind])]
        return [r for r in found if _JOBS.match(r.path) and not r.path.endswith("/cancel")] if kind else found

    # ----------------------------------------------------------------------------------------- serving
    def _take(self, rules: list[list[Any]], method: str, count_index: int) -> list[Any] | None:
        with self._lock:
            for rule in rules:
                if rule[0] in (None, method) and (rule[count_index] is None or rule[count_index] > 0):
                    if rule[count_index] is not None:
                        rule[count_index] -= 1
                    return rule
        return None

    def _answer(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, dict[str, Any]]:
        failure = self._take(self._failures, method, 3)
        if failure:
            return failure[1], _error(failure[1], failure[2], f"scripted {failure[2]}")
        if path == "/token":  # an OAuth token endpoint, for tests of credentials from a secret
            return 200, {"access_token": "fake-token", "expires_in": 3600, "token_type": "Bearer"}
        match = _JOBS.match(path)
        if not match:
            return 404, _error(404, "notFound", f"Not found: URL {path}")
        project, job_id, cancel = match["project"], match["job"], match["cancel"]
        with self._lock:
            if method == "POST" and job_id is None:
                return self._insert(project, body or {})
            job = self.jobs.get((project, job_id or ""))
            if job is None or (query.get("location") and query["location"] != job.location):
                return 404, _error(404, "notFound", f"Not found: Job {project}:{query.get('location', '')}.{job_id}")
            if method == "POST" and cancel:
                if job.state != "DONE":
                    job.cancelled = True
                return 200, {"kind": "bigquery#jobCancelResponse", "job": job.resource()}
            if method == "GET":
                resource = job.resource()
                job.step += 1
                return 200, resource
        return 405, _error(405, "badRequest", f"{method} {path} is not served here")

    def _insert(self, project: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        ref = body.get("jobReference", {})
        job_id = ref.get("jobId") or f"job_{len(self.jobs)}"
        location = ref.get("location") or self.default_location
        if (project, job_id) in self.jobs:
            return 409, _error(409, "duplicate", f"Already Exists: Job {project}:{location}.{job_id}")
        job = FakeJob(project, job_id, location, body.get("configuration", {}), self._plan)
        self.jobs[(project, job_id)] = job
        resource = job.resource()
        job.step += 1
        return 200, resource


def _error(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "errors": [{"reason": reason, "message": message}]}}


def _parse_body(raw: bytes, content_type: str) -> Any:
    if not raw:
        return None
    if "json" in content_type:
        return json.loads(raw)
    return {k: v[-1] for k, v in parse_qs(raw.decode()).items()}  # a form, as OAuth token requests send


def _handler(fake: FakeBigQuery) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = _parse_body(raw, self.headers.get("Content-Type", ""))
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            headers = {k.lower(): v for k, v in self.headers.items()}
            recorded = RecordedRequest(self.command, url.path, query, body, headers)
            with fake._lock:
                fake.requests.append(recorded)
            status, answer = fake._answer(self.command, url.path, query, body)
            recorded.status = status
            delay = fake._take(fake._delays, self.command, 2)
            if delay:  # slow answer: the work is done, the reply comes late (as a job insert that timed out)
                time.sleep(delay[1])
            data = json.dumps(answer).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout test)

        do_GET = do_POST = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


# ---------------------------------------------------------------------------------- what propeller sends
def make_template(
    sql: str = "SELECT 1",
    custom: dict[str, Any] | None = None,
    inputs: dict[str, Any] | None = None,
    results: bool = True,
) -> tasks_pb2.TaskTemplate:
    """A template shaped like flytekitplugins-bigquery's BigQueryTask renders it."""
    fields = {"ProjectID": "proj", "Location": "US", "Domain": "development", **(custom or {})}
    struct = struct_pb2.Struct()
    struct.update(fields)
    outputs = interface_pb2.VariableMap()
    if results:
        outputs.variables["results"].CopyFrom(
            interface_pb2.Variable(
                type=types_pb2.LiteralType(structured_dataset_type=types_pb2.StructuredDatasetType()),
                description="results",
            )
        )
    return tasks_pb2.TaskTemplate(
        id=identifier_pb2.Identifier(resource_type=identifier_pb2.TASK, project="p", domain="d", name="t", version="1"),
        type="bigquery_query_job_task",
        custom=struct,
        sql=tasks_pb2.Sql(statement=sql, dialect=tasks_pb2.Sql.ANSI),
        interface=interface_pb2.TypedInterface(inputs=variable_map(inputs or {}), outputs=outputs),
    )


def make_inputs(template: tasks_pb2.TaskTemplate, **values: Any) -> literals_pb2.LiteralMap:
    return python_to_literal_map(values, template.interface.inputs)


def make_metadata(
    execution: str = "exec1", attempt: int = 0, project: str = "flyteproj", workflow: str = "my_wf"
) -> agent_pb2.TaskExecutionMetadata:
    """What propeller sends with CreateTask."""
    execution_id = identifier_pb2.WorkflowExecutionIdentifier(project=project, domain="development", name=execution)
    return agent_pb2.TaskExecutionMetadata(
        task_execution_id=identifier_pb2.TaskExecutionIdentifier(
            task_id=identifier_pb2.Identifier(
                resource_type=identifier_pb2.TASK,
                project=project,
                domain="development",
                name="wf.Query Task",
                version="v1",
            ),
            node_execution_id=identifier_pb2.NodeExecutionIdentifier(node_id="n0", execution_id=execution_id),
            retry_attempt=attempt,
        ),
        namespace=f"{project}-development",
        labels={"workflow-name": workflow, "execution-id": execution},
    )
