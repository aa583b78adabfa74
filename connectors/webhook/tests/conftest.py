"""Fixtures: an HTTP stand-in on loopback, connectors that can only ever open loopback sockets, and webhook
templates written by flytekit 1.16's own WebhookTask (ours where flytekit does not import: Python 3.13)."""

from __future__ import annotations

import ipaddress
import sys
from collections import OrderedDict
from typing import Any

import httpcore
import pytest
from pytest_httpserver import HTTPServer

from core_connectors_webhook import WebhookConnector, WebhookTask

SECRET = "whk-DISTINCTIVE-token-0123456789"
"""Distinctive enough that a test can search every reply, message and log line for it."""
SECRET_NAME = "webhook_token"
FLYTEKIT = sys.version_info < (3, 13)  # flytekit 1.16 does not import on 3.13; everywhere else it must


class LoopbackOnly(httpcore.AsyncNetworkBackend):
    """The sockets of every connector under test: whatever the code under test decides, nothing but a
    loopback address is ever connected to. ``connected`` lists where it went."""

    def __init__(self) -> None:
        self.inner = httpcore.AnyIOBackend()
        self.connected: list[tuple[str, int]] = []

    async def connect_tcp(self, host: str, port: int, timeout=None, local_address=None, socket_options=None):
        if not ipaddress.ip_address(host).is_loopback:
            raise AssertionError(f"a test tried to connect to {host}:{port}, which is not a loopback address")
        self.connected.append((host, port))
        return await self.inner.connect_tcp(host, port, timeout, local_address, socket_options)

    async def connect_unix_socket(self, path, timeout=None, socket_options=None):
        raise AssertionError("no Unix sockets in these tests")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


@pytest.fixture
def sockets() -> LoopbackOnly:
    return LoopbackOnly()


@pytest.fixture
def make_connector(sockets):
    """``make_connector(allow=..., deny=..., max_response_bytes=...)``: a WebhookConnector on loopback-only
    sockets (the rules default to the environment, as in the service)."""

    def make(**kwargs: Any) -> WebhookConnector:
        return WebhookConnector(network_backend=sockets, **kwargs)

    return make


@pytest.fixture
def connector(make_connector) -> WebhookConnector:
    return make_connector()


@pytest.fixture
def stand_in():
    """A real HTTP server on 127.0.0.1 (threads, so a slow answer does not hold up the others)."""
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.clear()
    if server.is_running():
        server.stop()


@pytest.fixture
def secret_env(monkeypatch):
    """The secret mounted, and named by the operator as one webhooks may send."""
    monkeypatch.setenv(f"_FSEC_{SECRET_NAME.upper()}", SECRET)
    monkeypatch.setenv("CORE_CONNECTORS_WEBHOOK_SECRETS", SECRET_NAME)
    return SECRET


def _flytekit_template(**kwargs: Any):
    """The TaskTemplate (flyteidl message) that flytekit 1.16's WebhookTask serializes for ``kwargs``."""
    from flytekit.configuration import ImageConfig, SerializationSettings
    from flytekit.extras.webhook import WebhookTask as FlytekitWebhookTask
    from flytekit.tools.translator import get_serializable

    settings = SerializationSettings(image_config=ImageConfig.from_images("ghcr.io/flyteorg/flytekit:py3.12-1.16.31"))
    task = FlytekitWebhookTask(**kwargs)
    return get_serializable(OrderedDict(), settings, task).template.to_flyte_idl()


@pytest.fixture
def flytekit_template():
    """``flytekit_template(name=..., url=..., ...)``: flytekit 1.16's WebhookTask, serialized by flytekit."""
    return _flytekit_template


@pytest.fixture
def template():
    """``template(name=..., url=..., ...)`` with WebhookTask's arguments: flytekit's template where flytekit
    imports (3.10-3.12), ours on 3.13 (test_webhook_flytekit checks that the two are the same)."""

    def make(**kwargs: Any):
        kwargs.setdefault("name", "hook")
        if FLYTEKIT:
            return _flytekit_template(**kwargs)
        return WebhookTask(**kwargs).task_template()

    return make
