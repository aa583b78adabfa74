"""Fixtures for connector authors, loaded by pytest automatically once core-connectors is installed.

``connector_registry`` gives each test a fresh, empty registry that ``ConnectorRegistry``'s static methods
use, so registrations never leak between tests. ``connector_service`` serves connectors over gRPC on
loopback. Heavier fixtures import what they need when used.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ._registry import ConnectorRegistry, Registry

__all__ = ["connector_registry", "connector_service"]


@pytest.fixture
def connector_registry() -> Iterator[Registry]:
    """A fresh registry without discovery; register the connectors under test into it."""
    with ConnectorRegistry.isolated(discover=False) as registry:
        yield registry


@pytest.fixture
def connector_service() -> Iterator[Any]:
    """Start the gRPC service with your connectors on a free loopback port, in a background thread.

    ``connector_service(MyConnector(), threads=8)`` returns a started ``ServiceThread`` with ``.address``,
    ``.channel`` and the stubs propeller uses (``.async_stub``, ``.sync_stub``, ``.metadata_stub``); each
    call gets a fresh registry unless ``registry=`` is given. Every service is drained after the test.
    """
    from .server.testing import start_service

    started: list[Any] = []

    def start(*connectors: Any, **options: Any) -> Any:
        service = start_service(*connectors, **options)
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()
