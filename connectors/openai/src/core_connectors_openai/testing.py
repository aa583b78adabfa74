"""A local stand-in of the OpenAI API for tests: chat completions, files and batches, on loopback.

Point the real ``openai`` client at ``FakeOpenAI().base_url`` (or set ``OPENAI_BASE_URL``); nothing is
patched. Standard library only, so it ships with the package for anyone testing workflows that use it::

    with FakeOpenAI(api_key="sk-test") as fake:
        fake.respond("POST", "/v1/chat/completions", 429, headers={"retry-after": "0"})   # the next call
        fake.script_batches(["in_progress", {"status": "completed"}])                      # the next batch
        ...
        fake.requests   # every request received: method, path, headers, body
"""

from __future__ import annotations

import collections
import contextlib
import email.parser
import email.policy
import itertools
import json
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["FakeOpenAI", "Recorded", "batch_template", "chatgpt_template", "error_body"]


@dataclass
class Recorded:
    """One request the stand-in received."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any  # the JSON body, the multipart form as {name: bytes}, or None


@dataclass
class _Scripted:
    method: str
    path: str
    status: int
    body: Any
    headers: dict[str, str]
    delay: float
    times: int


@dataclass
class _Batch:
    data: dict[str, Any]
    steps: collections.deque[Any] = field(default_factory=collections.deque)


def error_body(message: str, type_: str = "invalid_request_error", code: str | None = None) -> dict[str, Any]:
    """An error body shaped as the OpenAI API sends it."""
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


class FakeOpenAI:
    """The API on ``127.0.0.1`` in a thread. With ``api_key`` set, other keys get 401 (echoing the key
    given, as a careless server might, so tests can check that it never reaches a user)."""

    DEFAULT_STEPS = ("in_progress", "finalizing", "completed")

    def __init__(self, api_key: str | None = None):
        self.api_key = api_key
        self.requests: list[Recorded] = []
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, _Batch] = {}
        self._scripted: list[_Scripted] = []
        self._batch_steps: collections.deque[list[Any]] = collections.deque()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # ------------------------------------------------------------------------------------------ lifecycle
    def start(self) -> FakeOpenAI:
        fake = self

        class Handler(_Handler):
            owner = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start() the stand-in first"
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    # ---------------------------------------------------------------------------------------- scripting
    def respond(
        self,
        method: str,
        path: str,
        status: int = 200,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` requests to ``method path`` (a prefix) with this instead of the default.
        An error status without a body gets an OpenAI-shaped error body."""
        if body is None and status >= 400:
            body = error_body(f"scripted error {status}", "server_error" if status >= 500 else "invalid_request_error")
        self._scripted.append(_Scripted(method, path, status, body, headers or {}, delay, times))

    def script_batches(self, *steps: list[Any]) -> None:
        """The status progression of the next batches created: one list per batch. Each poll applies the
        next step (a status, or a dict of fields); the last one stays."""
        self._batch_steps.extend(steps)

    def paths(self, method: str | None = None) -> list[str]:
        return [r.path for r in self.requests if method is None or r.method == method]

    def new_id(self, prefix: str) -> str:
        return f"{prefix}-{next(self._ids)}"

    def add_file(self, content: bytes, prefix: str = "file") -> str:
        file_id = self.new_id(prefix)
        self.files[file_id] = content
        return file_id

    # ------------------------------------------------------------------------------------------- routes
    def _handle(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, Any, dict[str, str]]:
        body = _parse_body(headers.get("content-type", ""), raw)
        with self._lock:
            self.requests.append(Recorded(method, path, headers, body))
            scripted = next((s for s in self._scripted if s.method == method and path.startswith(s.path)), None)
            if scripted is not None:
                scripted.times -= 1
                if scripted.times <= 0:
                    self._scripted.remove(scripted)
        if scripted is not None:
            time.sleep(scripted.delay)
            if scripted.status != 200 or scripted.body is not None:
                return scripted.status, scripted.body, scripted.headers
        given = headers.get("authorization", "").removeprefix("Bearer ")
        if self.api_key is not None and given != self.api_key:
            return 401, error_body(f"Incorrect API key provided: {given}.", code="invalid_api_key"), {}
        with self._lock:
            return self._route(method, path, body)

    def _route(self, method: str, path: str, body: Any) -> tuple[int, Any, dict[str, str]]:
        parts = path.split("?")[0].strip("/").split("/")
        if method == "POST" and parts == ["v1", "chat", "completions"]:
            return 200, self._chat(body), {}
        if method == "POST" and parts == ["v1", "files"]:
            file_id = self.add_file(body["file"])
            return 200, self._file_object(file_id, body.get("purpose", b"").decode()), {}
        if method == "GET" and len(parts) == 4 and parts[1] == "files" and parts[3] == "content":
            if parts[2] not in self.files:
                return 404, error_body(f"No such File object: {parts[2]}"), {}
            return 200, self.files[parts[2]], {"content-type": "application/octet-stream"}
        if method == "POST" and parts == ["v1", "batches"]:
            return self._create_batch(body)
        if method == "GET" and parts == ["v1", "batches"]:
            return 200, self._list_batches(path), {}
        if len(parts) >= 3 and parts[1] == "batches":
            batch = self.batches.get(parts[2])
            if batch is None:
                return 404, error_body(f"No batch found with id '{parts[2]}'."), {}
            if method == "GET" and len(parts) == 3:
                self._advance(batch)
                return 200, batch.data, {}
            if method == "POST" and parts[3:] == ["cancel"]:
                return self._cancel(batch)
        return 404, error_body(f"Invalid URL ({method} {path})"), {}

    def _chat(self, body: dict[str, Any]) -> dict[str, Any]:
        last = body["messages"][-1]["content"] if body.get("messages") else ""
        return {
            "id": self.new_id("chatcmpl"),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", ""),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": f"echo: {last}", "refusal": None},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        }

    def _file_object(self, file_id: str, purpose: str) -> dict[str, Any]:
        return {
            "id": file_id,
            "object": "file",
            "bytes": len(self.files[file_id]),
            "created_at": int(time.time()),
            "filename": f"{file_id}.jsonl",
            "purpose": purpose or "batch",
            "status": "processed",
        }

    def _create_batch(self, body: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        if body.get("input_file_id") not in self.files:
            return 400, error_body(f"Invalid 'input_file_id': '{body.get('input_file_id')}'.", code="invalid_value"), {}
        batch_id = self.new_id("batch")
        total = len([line for line in self.files[body["input_file_id"]].splitlines() if line.strip()])
        data = {
            "id": batch_id,
            "object": "batch",
            "endpoint": body["endpoint"],
            "input_file_id": body["input_file_id"],
            "completion_window": body["completion_window"],
            "status": "validating",
            "created_at": int(time.time()),
            "metadata": body.get("metadata"),
            "errors": None,
            "output_file_id": None,
            "error_file_id": None,
            "request_counts": {"total": total, "completed": 0, "failed": 0},
        }
        steps = self._batch_steps.popleft() if self._batch_steps else list(self.DEFAULT_STEPS)
        self.batches[batch_id] = _Batch(data, collections.deque(steps))
        return 200, data, {}

    def _list_batches(self, path: str) -> dict[str, Any]:
        """The most recent batches first, as OpenAI lists them (one page of ``limit``)."""
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
        limit = int(query.get("limit", ["20"])[0])
        data = [batch.data for batch in reversed(self.batches.values())][:limit]
        return {"object": "list", "data": data, "first_id": None, "last_id": None, "has_more": False}

    def _advance(self, batch: _Batch) -> None:
        if not batch.steps:
            return
        step = batch.steps.popleft() if len(batch.steps) > 1 else batch.steps[0]
        batch.data.update({"status": step} if isinstance(step, str) else step)
        data = batch.data
        if data["status"] == "completed" and data["output_file_id"] is None:
            counts = data["request_counts"]
            if counts["completed"] + counts["failed"] < counts["total"]:
                counts["completed"] = counts["total"] - counts["failed"]
            lines = self.files[data["input_file_id"]].splitlines()
            output = b"".join(_result_line(line) + b"\n" for line in lines if line.strip())
            data["output_file_id"] = self.add_file(output)
            if counts["failed"]:
                data["error_file_id"] = self.add_file(b'{"error": "scripted failure"}\n')

    def _cancel(self, batch: _Batch) -> tuple[int, Any, dict[str, str]]:
        status = batch.data["status"]
        if status in ("completed", "failed", "expired", "cancelled"):
            return 409, error_body(f"Cannot cancel a batch with status '{status}'."), {}
        batch.data["status"] = "cancelling"
        batch.steps = collections.deque(["cancelled"])
        return 200, batch.data, {}


def _result_line(line: bytes) -> bytes:
    request = json.loads(line)
    messages = request.get("body", {}).get("messages") or [{}]
    content = f"echo: {messages[-1].get('content', '')}"
    return json.dumps(
        {
            "id": f"batch_req_{request.get('custom_id')}",
            "custom_id": request.get("custom_id"),
            "response": {"status_code": 200, "body": {"choices": [{"message": {"content": content}}]}},
            "error": None,
        }
    ).encode()


def _parse_body(content_type: str, raw: bytes) -> Any:
    if not raw:
        return None
    if content_type.startswith("application/json"):
        return json.loads(raw)
    if content_type.startswith("multipart/form-data"):
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw
        )
        return {
            part.get_param("name", header="content-disposition"): part.get_payload(decode=True)
            for part in message.iter_parts()
        }
    return raw


class _Handler(BaseHTTPRequestHandler):
    owner: FakeOpenAI
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read fake.requests instead
        pass

    def _serve(self) -> None:
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            status, body, extra = self.owner._handle(self.command, self.path, headers, raw)
        except Exception as e:  # a bug in a test's script: answer, so the client does not hang or retry blindly
            status, body, extra = 500, error_body(f"stand-in error: {e!r}", "server_error"), {}
        extra = dict(extra)
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("content-type", extra.pop("content-type", "application/json"))
            self.send_header("content-length", str(len(payload)))
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout test)
            pass

    do_GET = do_POST = do_DELETE = _serve


# ------------------------------------------------------------------------------------------- templates
@contextlib.contextmanager
def serving_fake_openai(monkeypatch: Any, api_key: str) -> Iterator[FakeOpenAI]:
    """Start a FakeOpenAI and point the connectors at it through their secret and ``OPENAI_BASE_URL``
    (``monkeypatch`` is pytest's fixture: every variable is restored afterwards)."""
    with FakeOpenAI(api_key=api_key) as server:
        monkeypatch.setenv("_FSEC_FLYTE_OPENAI_API_KEY", api_key)
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        for name in ("FLYTE_SECRETS_ENV_PREFIX", "OPENAI_ORG_ID", "OPENAI_API_KEY"):
            monkeypatch.delenv(name, raising=False)
        yield server


def chatgpt_template(config: dict[str, Any], organization: str | None = None) -> Any:
    """A TaskTemplate shaped as flytekitplugins-openai's ``ChatGPTTask`` writes it (no flytekit needed)."""
    from flyteidl.core import tasks_pb2

    from core_connectors.literals import variable_map

    template = tasks_pb2.TaskTemplate(type="chatgpt")
    template.interface.inputs.CopyFrom(variable_map({"message": str}))
    template.interface.outputs.CopyFrom(variable_map({"o0": str}))
    template.custom.update({"openai_organization": organization, "chatgpt_config": config})
    return template


def batch_template(config: dict[str, Any] | None = None, organization: str | None = None) -> Any:
    """A TaskTemplate shaped as flytekitplugins-openai's ``BatchEndpointTask`` writes it."""
    from flyteidl.core import tasks_pb2

    from core_connectors.literals import variable_map

    template = tasks_pb2.TaskTemplate(type="openai-batch")
    template.interface.inputs.CopyFrom(variable_map({"input_file_id": str}))
    template.interface.outputs.CopyFrom(variable_map({"result": dict}))
    template.custom.update({"openai_organization": organization, "config": config or {}})
    return template
