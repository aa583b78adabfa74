"""Fixtures for connector authors, loaded by pytest automatically once core-connectors is installed.

``connector_registry`` gives each test a fresh, empty registry that ``ConnectorRegistry``'s static methods
use, so registrations never leak between tests. Heavier fixtures import what they need when used.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .registry import ConnectorRegistry, Registry


@pytest.fixture
def connector_registry() -> Iterator[Registry]:
    """A fresh registry without discovery; register the connectors under test into it."""
    with ConnectorRegistry.isolated(discover=False) as registry:
        yield registry
