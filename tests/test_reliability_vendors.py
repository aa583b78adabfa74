"""Vendor faults through the service over gRPC: the OpenAI chat connector (ExecuteTaskSync) against a stand-in
that answers 500, 429 with Retry-After, resets the connection or hangs. Each is a RETRYABLE_FAILED Resource
within propeller's 10 s deadline (never a gRPC error, never the key), and the service keeps serving."""

from __future__ import annotations

import socket
import struct
import threading
import time

import pytest
from flyteidl.admin import agent_pb2
from flyteidl.core.execution_pb2 import TaskExecution

from core_connectors.literals import python_to_literal_map
from core_connectors_openai import ChatGPTConnector
from core_connectors_openai.testing import chatgpt_template, serving_fake_openai

pytestmark = pytest.mark.network
API_KEY = "sk-proj-VENDORFAULTS0123456789abcdef"
DEADLINE = 10


def execute(service) -> agent_pb2.Resource:
    messages = [
        agent_pb2.ExecuteTaskSyncRequest(
            header=agent_pb2.CreateRequestHeader(template=chatgpt_template({"model": "m"}))
        ),
        agent_pb2.ExecuteTaskSyncRequest(inputs=python_to_literal_map({"message": "hi"})),
    ]
    (reply,) = service.sync_stub.ExecuteTaskSync(iter(messages), timeout=DEADLINE)
    return reply.header.resource


@pytest.fixture
def fake(monkeypatch):
    with serving_fake_openai(monkeypatch, API_KEY) as server:
        yield server


@pytest.mark.parametrize(
    "script, words",
    [
        ({"status": 500, "headers": {"retry-after": "0"}, "times": 5}, "500"),
        ({"status": 429, "headers": {"retry-after": "0.1"}, "times": 5}, "429"),
        ({"status": 200, "body": None, "delay": 30, "times": 5}, "did not answer within 2 s"),
    ],
    ids=["500", "429 with Retry-After", "hanging"],
)
def test_a_failing_vendor_is_a_retryable_failure_within_the_deadline(connector_service, fake, script, words):
    service = connector_service(ChatGPTConnector(timeout=2))
    fake.respond("POST", "/v1/chat/completions", **script)
    started = time.monotonic()
    resource = execute(service)
    assert time.monotonic() - started < DEADLINE
    assert resource.phase == TaskExecution.RETRYABLE_FAILED
    assert words in resource.message and API_KEY not in resource.message
    agents = service.metadata_stub.ListAgents(agent_pb2.ListAgentsRequest(), timeout=DEADLINE).agents
    assert [a.name for a in agents] == [ChatGPTConnector.name]


@pytest.fixture
def resetting_vendor(monkeypatch):
    """A vendor whose every connection is reset (RST) as soon as the request arrives."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            conn.recv(65536)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    monkeypatch.setenv("_FSEC_FLYTE_OPENAI_API_KEY", API_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{listener.getsockname()[1]}/v1")
    yield
    stop.set()
    thread.join(5)
    listener.close()


def test_a_vendor_that_resets_the_connection_is_a_retryable_failure(connector_service, resetting_vendor):
    service = connector_service(ChatGPTConnector(timeout=2))
    resource = execute(service)
    assert resource.phase == TaskExecution.RETRYABLE_FAILED
    assert API_KEY not in resource.message
    agents = service.metadata_stub.ListAgents(agent_pb2.ListAgentsRequest(), timeout=DEADLINE).agents
    assert [a.name for a in agents] == [ChatGPTConnector.name]
