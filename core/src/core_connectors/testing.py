"""What a connector author runs in their own test suite: the contract suite and the discovery checks.

Subclass ``AsyncConnectorContract`` or ``SyncConnectorContract`` in a test module to run every check against
your connector (see their docstrings); the fixtures ``connector_registry`` and ``connector_service`` come
from the pytest plugin that core-connectors installs.
"""

from __future__ import annotations

import sys

from ._contract import AsyncConnectorContract, ContractWarning, SyncConnectorContract, discovery_report

__all__ = [
    "AsyncConnectorContract",
    "ContractWarning",
    "SyncConnectorContract",
    "discovery_report",
    "modules_after_discovery",
]


def modules_after_discovery(python: str = sys.executable) -> set[str]:
    """The modules a fresh interpreter holds once it has discovered every installed connector, as
    ``core-connectors list`` and the service do at start. A connector's vendor SDK must not be among them:
    import it where it is used, so listing and starting stay fast and a broken SDK hurts only its connector.

    A plugin that fails to load is an AssertionError here, with its error, rather than a silent pass.
    """
    found = discovery_report(python)
    failures = [f["error"] for f in found["failed"]]
    assert not failures, f"connector plugins failed to load: {failures}"
    return set(found["modules"])
