"""Webhook templates written by flytekit's WebhookTask, sent over gRPC (ExecuteTaskSync, the flyteidl stubs
propeller uses) to a real core-connectors service, against a local HTTP stand-in."""

from __future__ import annotations

import json
import logging
import time
import tracemalloc

import pytest
from flyteidl.admin import agent_pb2
from flyteidl.core import literals_pb2
from flyteidl.core.execution_pb2 import TaskExecution
from werkzeug import Response

from core_connectors.literals import literal_to_python, python_to_literal_map
from core_connectors_webhook import WebhookTask
from core_connectors_webhook.connector import SUCCESS_MESSAGE

SECRET = "whk-DISTINCTIVE-token-0123456789"  # as in conftest (secret_env)

pytestmark = pytest.mark.network


def execute(service, template, inputs=None) -> agent_pb2.Resource:
    """One ExecuteTaskSync call as propeller makes it: the header, then the inputs, one reply."""
    header = agent_pb2.CreateRequestHeader(template=template, output_prefix="/tmp/out")
    literal_map = inputs if isinstance(inputs, literals_pb2.LiteralMap) else python_to_literal_map(inputs or {})
    requests = iter(
        [agent_pb2.ExecuteTaskSyncRequest(header=header), agent_pb2.ExecuteTaskSyncRequest(inputs=literal_map)]
    )
    (reply,) = list(service.sync_stub.ExecuteTaskSync(requests, timeout=30))
    return reply.header.resource


def info_of(resource: agent_pb2.Resource) -> dict:
    literal = resource.outputs.literals["info"]
    assert literal.scalar.binary.tag == "msgpack"  # as flytekit's dict type writes it
    return literal_to_python(literal)


def ours_only(caplog) -> list[logging.LogRecord]:
    """The log records of the service side: the stand-in (werkzeug) logs its own request lines."""
    return [r for r in caplog.records if not r.name.startswith("werkzeug")]


@pytest.fixture
def service(connector_service, connector):
    return connector_service(connector)


def test_get_with_placeholders_sends_query_parameters(service, stand_in, template):
    stand_in.expect_request("/items/10", method="GET", query_string={"q": "hello", "n": "10"}).respond_with_data(
        "found", status=200
    )
    tt = template(
        url=stand_in.url_for("/items/{inputs.item_id}"),
        method="GET",
        headers={"X-Item": "item-{inputs.item_id}"},
        data={"q": "{inputs.s}", "n": "{inputs.item_id}"},
        dynamic_inputs={"s": str, "item_id": int},
        show_data=True,
        show_url=True,
    )
    resource = execute(service, tt, {"s": "hello", "item_id": 10})
    assert resource.phase == TaskExecution.SUCCEEDED, resource.message
    assert resource.message == SUCCESS_MESSAGE
    assert info_of(resource) == {
        "status_code": 200,
        "response_data": "found",
        "input_data": {"q": "hello", "n": 10},  # a whole placeholder keeps the input's type
        "url": stand_in.url_for("/items/10"),
    }
    ((request, _),) = stand_in.log
    assert request.headers["X-Item"] == "item-10"


def test_post_sends_data_as_json(service, stand_in, template):
    stand_in.expect_request("/hook", method="POST").respond_with_json({"ok": True})
    tt = template(
        url=stand_in.url_for("/hook"),
        data={"text": "hi {inputs.who}", "who": "{inputs.who}", "tags": ["{inputs.n}", "n={inputs.n}"]},
        dynamic_inputs={"who": str, "n": int},
    )
    resource = execute(service, tt, {"who": "ann", "n": 3})
    assert resource.phase == TaskExecution.SUCCEEDED, resource.message
    assert json.loads(info_of(resource)["response_data"]) == {"ok": True}
    assert set(info_of(resource)) == {"status_code", "response_data"}  # no input_data / url unless asked
    ((request, _),) = stand_in.log
    assert request.headers["Content-Type"] == "application/json"
    assert request.get_json() == {"text": "hi ann", "who": "ann", "tags": [3, "n=3"]}


@pytest.mark.parametrize("status", [200, 201, 202, 204])
def test_every_2xx_succeeds(service, stand_in, template, status):
    stand_in.expect_request("/hook").respond_with_data("" if status == 204 else "done", status=status)
    resource = execute(service, template(url=stand_in.url_for("/hook")))
    assert resource.phase == TaskExecution.SUCCEEDED, resource.message
    assert info_of(resource)["status_code"] == status


@pytest.mark.parametrize(
    ("status", "phase"),
    [
        (404, TaskExecution.FAILED),
        (400, TaskExecution.FAILED),
        (403, TaskExecution.FAILED),
        (429, TaskExecution.RETRYABLE_FAILED),
        (500, TaskExecution.RETRYABLE_FAILED),
        (503, TaskExecution.RETRYABLE_FAILED),
    ],
)
def test_errors_fail_with_the_status_and_an_excerpt(service, stand_in, template, status, phase):
    stand_in.expect_request("/hook").respond_with_data("no such hook: " + "x" * 5000, status=status)
    resource = execute(service, template(url=stand_in.url_for("/hook")))
    assert resource.phase == phase
    assert resource.message.startswith(f"Webhook failed with status code {status}, response: no such hook: xxx")
    assert resource.message.endswith(" [...]") and len(resource.message) < 700  # an excerpt, not the body
    assert not resource.HasField("outputs")


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirects_are_not_followed_unless_asked(service, stand_in, template, status):
    stand_in.expect_request("/old").respond_with_response(
        Response("moved", status=status, headers={"Location": "/new"})
    )
    resource = execute(service, template(url=stand_in.url_for("/old")))
    assert resource.phase == TaskExecution.FAILED
    assert f"status code {status}" in resource.message and "redirect to /new not followed" in resource.message
    assert [r.path for r, _ in stand_in.log] == ["/old"]


def test_a_slow_answer_past_the_timeout_is_retryable(service, stand_in, template):
    def slow(request):
        time.sleep(3)
        return Response("late")

    stand_in.expect_request("/slow").respond_with_handler(slow)
    started = time.monotonic()
    resource = execute(service, template(url=stand_in.url_for("/slow"), timeout=1))
    assert resource.phase == TaskExecution.RETRYABLE_FAILED
    assert resource.message.startswith("Webhook timed out after 1 s")
    assert time.monotonic() - started < 2.5


def test_a_body_that_trickles_in_is_bounded_by_the_timeout_too(service, stand_in, template):
    def trickle(request):
        def chunks():
            for _ in range(30):
                time.sleep(0.1)
                yield b"."

        return Response(chunks())

    stand_in.expect_request("/trickle").respond_with_handler(trickle)
    started = time.monotonic()
    resource = execute(service, template(url=stand_in.url_for("/trickle"), timeout=1))
    assert resource.phase == TaskExecution.RETRYABLE_FAILED
    assert time.monotonic() - started < 2.5


def test_nothing_listening_is_retryable(service, template):
    import socket

    with socket.socket() as s:  # a port that was free a moment ago: connection refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    resource = execute(service, template(url=f"http://127.0.0.1:{port}/hook"))
    assert resource.phase == TaskExecution.RETRYABLE_FAILED
    assert resource.message.startswith(f"Webhook could not reach http://127.0.0.1:{port}/hook: ConnectError")


def test_a_missing_input_fails_naming_it(service, stand_in, template):
    tt = template(url=stand_in.url_for("/items/{inputs.item_id}"), dynamic_inputs={"s": str})
    resource = execute(service, tt, {"s": "x"})
    assert resource.phase == TaskExecution.FAILED
    assert "input 'item_id'" in resource.message and "its inputs: s" in resource.message
    assert not stand_in.log


def test_secrets_go_out_in_headers_and_url_but_never_come_back(
    secret_env, service, stand_in, template, caplog, monkeypatch
):  # secret_env first: the connector reads the secrets it may send when it is made
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("CORE_CONNECTORS_WEBHOOK_UNUSED", "x")  # the environment is otherwise as usual

    def echo(request):  # a careless server that echoes what it was sent
        return Response(json.dumps({"auth": request.headers.get("Authorization"), "path": request.full_path}))

    stand_in.expect_request(f"/hooks/{SECRET}").respond_with_handler(echo)
    tt = template(
        url=stand_in.url_for("/hooks/{secrets.webhook_token}"),
        headers={"Authorization": "Bearer {secrets.webhook_token}"},
        show_url=True,
        show_data=True,
    )
    resource = execute(service, tt)
    assert resource.phase == TaskExecution.SUCCEEDED, resource.message
    ((request, _),) = stand_in.log
    assert request.headers["Authorization"] == f"Bearer {SECRET}"  # it went out
    info = info_of(resource)
    assert info["url"] == stand_in.url_for("/hooks/{secrets.webhook_token}")
    assert json.loads(info["response_data"])["auth"] == "Bearer [redacted]"
    assert SECRET not in resource.SerializeToString().decode("utf-8", "replace")
    ours = ours_only(caplog)
    assert any(r.name == "httpx" for r in ours)  # httpx did log the request, without the secret
    assert not [r for r in ours if SECRET in r.getMessage()]


def test_a_failed_call_with_a_secret_does_not_echo_it(secret_env, service, stand_in, template, caplog):
    caplog.set_level(logging.DEBUG)
    stand_in.expect_request("/hook").respond_with_handler(
        lambda request: Response("bad token " + request.headers["X-Token"], status=401)
    )
    tt = template(url=stand_in.url_for("/hook"), headers={"X-Token": "{secrets.webhook_token}"})
    resource = execute(service, tt)
    assert resource.phase == TaskExecution.FAILED
    assert resource.message == "Webhook failed with status code 401, response: bad token [redacted]"
    assert not [r for r in ours_only(caplog) if SECRET in r.getMessage()]


def test_a_missing_secret_fails_naming_where_it_was_looked_for(connector_service, make_connector, stand_in, template):
    service = connector_service(make_connector(secrets=["no_such_secret"]))
    tt = template(url=stand_in.url_for("/hook"), headers={"X-Token": "{secrets.no_such_secret}"})
    resource = execute(service, tt)
    assert resource.phase == TaskExecution.FAILED
    assert "_FSEC_NO_SUCH_SECRET" in resource.message
    assert not stand_in.log


@pytest.mark.parametrize("name", ["openai_api_key", "metadata_signing_keys", "/proc/self/environ", "sub/key"])
def test_only_secrets_the_operator_names_go_out(secret_env, service, stand_in, template, monkeypatch, name):
    """Whoever registers a task chooses where it goes: the service's other secrets (a vendor's key, the metadata
    signing keys, any file) are not theirs to send."""
    monkeypatch.setenv("_FSEC_OPENAI_API_KEY", "sk-not-for-webhooks-123")
    tt = template(url=stand_in.url_for("/hook"), headers={"X-Token": "{secrets." + name + "}"})
    resource = execute(service, tt)
    assert resource.phase == TaskExecution.FAILED
    assert f"the secret {name!r} is not one that webhooks may send" in resource.message
    assert "CORE_CONNECTORS_WEBHOOK_SECRETS" in resource.message
    assert not stand_in.log


def test_a_template_cannot_set_the_host_header(service, stand_in, template):
    """The outbound rules judge the url's host; a Host header would send the request elsewhere behind a proxy."""
    tt = template(url=stand_in.url_for("/hook"), headers={"host": "admin.internal"})
    resource = execute(service, tt)
    assert resource.phase == TaskExecution.FAILED
    assert "headers may not set Host" in resource.message
    assert not stand_in.log


def _raw_deflate(data: bytes) -> bytes:
    import zlib

    deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return deflate.compress(data) + deflate.flush()


def _gzip(data: bytes) -> bytes:
    import gzip

    return gzip.compress(data, compresslevel=9, mtime=0)


@pytest.mark.parametrize(
    ("encoding", "body"),
    [
        ("gzip", lambda text: _gzip(text)),
        ("deflate", lambda text: __import__("zlib").compress(text)),  # with zlib's header
        ("deflate", lambda text: _raw_deflate(text)),  # without, as some servers send it
    ],
)
def test_a_compressed_answer_is_read(service, stand_in, template, encoding, body):
    stand_in.expect_request("/hook").respond_with_data(body(b"done " * 100), headers={"Content-Encoding": encoding})
    resource = execute(service, template(url=stand_in.url_for("/hook")))
    assert resource.phase == TaskExecution.SUCCEEDED, resource.message
    assert info_of(resource)["response_data"] == "done " * 100
    ((request, _),) = stand_in.log
    assert request.headers["Accept-Encoding"] == "gzip, deflate"  # only what is read within the limit


def test_a_compression_bomb_is_inflated_only_as_far_as_the_limit(connector_service, make_connector, stand_in, template):
    service = connector_service(make_connector(max_response_bytes=1000))
    bomb = _gzip(b"\0" * (64 << 20))  # 64 MiB of zeros in 64 kB
    stand_in.expect_request("/bomb").respond_with_data(bomb, headers={"Content-Encoding": "gzip"})
    stand_in.expect_request("/warm").respond_with_data("ok")
    assert execute(service, template(url=stand_in.url_for("/warm"))).phase == TaskExecution.SUCCEEDED  # imports
    tracemalloc.start()  # the service runs in this process: what it inflates is counted
    try:
        resource = execute(service, template(url=stand_in.url_for("/bomb")))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert resource.phase == TaskExecution.SUCCEEDED, resource.message
    info = info_of(resource)
    assert info["response_data"] == "\0" * 1000 and info["response_truncated"] is True
    assert peak < 16 << 20, f"{peak / 2**20:.0f} MiB at the peak"  # httpx inflates a 64 KiB chunk to 64 MiB


@pytest.mark.parametrize("encoding", ["gzip, gzip", "br", "zstd"])
def test_an_encoding_the_connector_did_not_offer_fails_the_task(service, stand_in, template, encoding):
    """Stacked gzip inflates a whole chunk at once in httpx (kilobytes into gigabytes): refused, not decoded."""
    stand_in.expect_request("/hook").respond_with_data(
        _gzip(_gzip(b"x" * 1000)), headers={"Content-Encoding": encoding}
    )
    resource = execute(service, template(url=stand_in.url_for("/hook")))
    assert resource.phase == TaskExecution.FAILED
    assert f"Content-Encoding {encoding!r} is not one the webhook connector reads" in resource.message


@pytest.mark.parametrize("charset", ["base64", "hex", "rot13", "no-such-charset"])
def test_a_charset_that_is_not_a_text_encoding_is_read_as_utf8(service, stand_in, template, charset):
    stand_in.expect_request("/hook").respond_with_data("ok ✓", content_type=f"text/plain; charset={charset}")
    resource = execute(service, template(url=stand_in.url_for("/hook")))
    assert resource.phase == TaskExecution.SUCCEEDED, resource.message
    assert info_of(resource)["response_data"] == "ok ✓"


def test_a_large_body_is_cut_at_the_limit(connector_service, make_connector, stand_in, template):
    service = connector_service(make_connector(max_response_bytes=1000))
    chunks_sent = []
    total = 512  # 32 MiB in 64 KiB chunks: more than the kernel buffers between the two ends

    def big(request):
        def chunks():
            for _ in range(total):
                yield b"y" * 65536
                chunks_sent.append(1)

        return Response(chunks())

    stand_in.expect_request("/big").respond_with_handler(big)
    resource = execute(service, template(url=stand_in.url_for("/big")))
    assert resource.phase == TaskExecution.SUCCEEDED, resource.message
    info = info_of(resource)
    assert info["response_data"] == "y" * 1000 and info["response_truncated"] is True
    assert len(chunks_sent) < total  # the connector stopped reading and hung up: the rest was never sent


def test_the_body_limit_comes_from_the_environment(connector_service, make_connector, stand_in, template, monkeypatch):
    monkeypatch.setenv("CORE_CONNECTORS_WEBHOOK_MAX_RESPONSE_BYTES", "5")
    service = connector_service(make_connector())
    stand_in.expect_request("/hook").respond_with_data("0123456789")
    info = info_of(execute(service, template(url=stand_in.url_for("/hook"))))
    assert info["response_data"] == "01234" and info["response_truncated"]


def test_denied_destination_fails_before_any_connection(connector_service, make_connector, sockets, stand_in, template):
    service = connector_service(make_connector(deny="127.0.0.0/8"))
    stand_in.expect_request("/hook").respond_with_data("ok")
    resource = execute(service, template(url=stand_in.url_for("/hook")))
    assert resource.phase == TaskExecution.FAILED
    assert resource.message == (
        "Webhook destination denied: 127.0.0.1 resolves to 127.0.0.1, in the denied network 127.0.0.0/8 "
        "(CORE_CONNECTORS_WEBHOOK_DENY)"
    )
    assert not sockets.connected and not stand_in.log


def test_the_service_keeps_connections_alive_and_reuses_them(service, template, sockets):
    """werkzeug's server closes every connection; this HTTP/1.1 one keeps them open, as real servers do."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class KeepAlive(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), KeepAlive)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        for _ in range(3):
            assert execute(service, template(url=url)).phase == TaskExecution.SUCCEEDED
    finally:
        server.shutdown()
        server.server_close()
    assert len(sockets.connected) == 1  # one pooled client on the service's loop, one connection


@pytest.mark.parametrize("deny", ["", "localhost,127.0.0.1"])
def test_the_installed_plugin_as_the_service_discovers_it(connector_service, stand_in, template, monkeypatch, deny):
    """No connector handed in: the service finds the installed distribution by its entry point, and the
    discovered connector takes its rules from the service's environment."""
    from core_connectors import ConnectorRegistry

    monkeypatch.setenv("CORE_CONNECTORS_WEBHOOK_DENY", deny)
    stand_in.expect_request("/hook").respond_with_data("ok")
    with ConnectorRegistry.isolated(discover=True) as registry:
        service = connector_service(registry=registry)
        resource = execute(service, template(url=stand_in.url_for("/hook")))
    if deny:
        assert resource.phase == TaskExecution.FAILED
        assert resource.message.startswith("Webhook destination denied: 127.0.0.1 resolves to 127.0.0.1, in the")
        assert not stand_in.log
    else:
        assert resource.phase == TaskExecution.SUCCEEDED and info_of(resource)["response_data"] == "ok"


@pytest.mark.slow
def test_core_connectors_serve_as_a_process(stand_in, template, tmp_path):
    """`core-connectors serve` with the package installed, its rules and secret in the environment, debug logs
    on: the webhook works, the denied destination fails, and the process's log never holds the secret."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import types

    import grpc
    from flyteidl.service import agent_pb2_grpc

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "_FSEC_WEBHOOK_TOKEN": SECRET,
        "CORE_CONNECTORS_WEBHOOK_SECRETS": "",  # the flag below names it
        "CORE_CONNECTORS_WEBHOOK_DENY": "127.0.0.2",
        "CORE_CONNECTORS_DISABLE": "",
    }
    log_path = tmp_path / "serve.log"
    argv = [sys.executable, "-m", "core_connectors", "serve", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--prometheus-port", "0", "--log-level", "DEBUG", "--webhook-secret", "webhook_token"]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=30)
            service = types.SimpleNamespace(sync_stub=agent_pb2_grpc.SyncAgentServiceStub(channel))

            stand_in.expect_request("/hook").respond_with_handler(
                lambda request: Response("token was " + request.headers["X-Token"])
            )
            tt = template(url=stand_in.url_for("/hook"), headers={"X-Token": "{secrets.webhook_token}"})
            resource = execute(service, tt)
            assert resource.phase == TaskExecution.SUCCEEDED, resource.message
            assert info_of(resource)["response_data"] == "token was [redacted]"

            denied = execute(service, template(url=f"http://127.0.0.2:{stand_in.port}/hook"))
            assert denied.phase == TaskExecution.FAILED and "denied network 127.0.0.2/32" in denied.message
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    ((request, _),) = stand_in.log
    assert request.headers["X-Token"] == SECRET
    log_text = log_path.read_text(errors="replace")
    assert "HTTP Request: POST" in log_text  # debug logging was on, httpx's line is there
    assert SECRET not in log_text


async def test_an_answer_cut_off_midway_is_retryable(connector):
    """A server that promises 100 bytes, sends 10 and hangs up: a transport error, worth another try."""
    import asyncio

    async def cut_off(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(cut_off, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        task = WebhookTask(name="cut", url=f"http://127.0.0.1:{port}/hook", method="GET")
        resource = await connector.do(task.task_template(), "", None)
    assert resource.phase == TaskExecution.RETRYABLE_FAILED
    assert resource.message.startswith(f"Webhook could not reach http://127.0.0.1:{port}/hook: RemoteProtocolError")


def test_a_get_url_keeps_its_own_query(service, stand_in, template):
    stand_in.expect_request("/q", query_string="a=1&a=2&b=x").respond_with_data("ok")
    stand_in.expect_request("/only", query_string="a=1").respond_with_data("ok")
    with_data = template(url=stand_in.url_for("/q") + "?a=1&a=2", method="GET", data={"b": "x"})
    assert execute(service, with_data).phase == TaskExecution.SUCCEEDED
    without_data = template(url=stand_in.url_for("/only") + "?a=1", method="GET")
    assert execute(service, without_data).phase == TaskExecution.SUCCEEDED


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("file:///etc/passwd", "Webhook URL file:///etc/passwd is not valid: Request URL is missing an 'http://'"),
        ("ftp://h/x", "Webhook URL ftp://h/x is not valid: Request URL has an unsupported protocol 'ftp://'"),
        ("hooks.example/x", "Webhook URL hooks.example/x is not valid: Request URL is missing an 'http://'"),
    ],
)
async def test_only_http_urls_are_called(connector, sockets, url, message):
    resource = await connector.do(WebhookTask(name="bad", url=url).task_template(), "", None)
    assert resource.phase == TaskExecution.FAILED and resource.message.startswith(message)
    assert not sockets.connected


async def test_a_malformed_request_fails_without_a_retry(connector, stand_in):
    task = WebhookTask(name="bad", url=stand_in.url_for("/x"), headers={"X-Split": "a\r\nX-Injected: 1"})
    resource = await connector.do(task.task_template(), "", None)
    assert resource.phase == TaskExecution.FAILED
    assert resource.message.startswith(f"Webhook request to {stand_in.url_for('/x')} cannot be sent:")
    assert not stand_in.log


async def test_data_that_is_not_json_fails_the_task(connector, sockets):
    task = WebhookTask(name="bad", url="http://127.0.0.1:9/x", data={"f": "{inputs.f}"}, dynamic_inputs={"f": float})
    resource = await connector.do(task.task_template(), "", python_to_literal_map({"f": float("inf")}))
    assert resource.phase == TaskExecution.FAILED
    assert resource.message.startswith("Webhook request cannot be built: Out of range float values")
    assert not sockets.connected


def test_serve_help_lists_the_webhook_flags_with_their_variables():
    import os
    import subprocess
    import sys

    argv = [sys.executable, "-m", "core_connectors", "serve", "--help"]
    env = {**os.environ, "COLUMNS": "200", "CORE_CONNECTORS_DISABLE": ""}
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())  # click wraps the help at 80 columns
    for flag, variable in [
        ("--webhook-allow RULE", "CORE_CONNECTORS_WEBHOOK_ALLOW"),
        ("--webhook-deny RULE", "CORE_CONNECTORS_WEBHOOK_DENY"),
        ("--webhook-secret NAME", "CORE_CONNECTORS_WEBHOOK_SECRETS"),
        ("--webhook-max-response-bytes N", "CORE_CONNECTORS_WEBHOOK_MAX_RESPONSE_BYTES"),
    ]:
        assert flag in text and f"[env var: {variable}]" in text


@pytest.mark.slow
@pytest.mark.parametrize("flags", [[], ["--webhook-deny", "127.0.0.1"]], ids=["no-flag", "webhook-deny"])
def test_the_deny_flag_of_core_connectors_serve(stand_in, template, tmp_path, flags):
    """`core-connectors serve --webhook-deny 127.0.0.1` (no rule in the environment) as a process: the webhook
    to the loopback stand-in fails, saying why, and nothing reaches it; without the flag it goes through."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import types

    import grpc
    from flyteidl.service import agent_pb2_grpc

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORE_CONNECTORS_")}
    argv = [sys.executable, "-m", "core_connectors", "serve", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--prometheus-port", "0", *flags]
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=30)
            service = types.SimpleNamespace(sync_stub=agent_pb2_grpc.SyncAgentServiceStub(channel))
            stand_in.expect_request("/hook").respond_with_data("ok")
            resource = execute(service, template(url=stand_in.url_for("/hook")))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    if flags:
        assert resource.phase == TaskExecution.FAILED
        assert resource.message == (
            "Webhook destination denied: 127.0.0.1 resolves to 127.0.0.1, in the denied network 127.0.0.1/32 "
            "(CORE_CONNECTORS_WEBHOOK_DENY)"
        )
        assert not stand_in.log
    else:
        assert resource.phase == TaskExecution.SUCCEEDED, resource.message + log_path.read_text(errors="replace")
        assert info_of(resource)["response_data"] == "ok"
