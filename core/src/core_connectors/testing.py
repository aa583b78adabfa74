"""Checks a connector author runs in their own test suite (the pytest fixtures live in ``pytest_plugin``)."""

from __future__ import annotations

import json
import subprocess
import sys

__all__ = ["modules_after_discovery"]

_DISCOVER = """
import json, sys
from core_connectors.registry import Registry
registry = Registry()
registry.discover()
print(json.dumps({"modules": sorted(sys.modules), "failures": [f.error for f in registry.failures]}))
"""


def modules_after_discovery(python: str = sys.executable) -> set[str]:
    """The modules a fresh interpreter holds once it has discovered every installed connector, as
    ``core-connectors list`` and the service do at start. A connector's vendor SDK must not be among them:
    import it where it is used, so listing and starting stay fast and a broken SDK hurts only its connector.

    A plugin that fails to load is an AssertionError here, with its error, rather than a silent pass.
    """
    out = subprocess.run([python, "-c", _DISCOVER], capture_output=True, text=True, check=True).stdout
    found = json.loads(out)
    assert not found["failures"], f"connector plugins failed to load: {found['failures']}"
    return set(found["modules"])
