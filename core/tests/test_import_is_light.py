"""`import core_connectors` must stay light: the service, metrics, CLI and local runner load on demand."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("grpc", "grpc_health", "grpc_reflection", "prometheus_client", "click", "rich", "yaml", "flytekit")


def test_importing_the_package_loads_no_server_metrics_or_cli():
    code = (
        "import json, sys, core_connectors, core_connectors.base_connector, core_connectors.literals\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = set(json.loads(out))
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


def test_the_base_classes_leave_distribution_metadata_to_the_first_discovery():
    """importlib.metadata (email, zipfile, csv) is a fifth of the base classes' import time: discovery loads it."""
    code = (
        "import sys, core_connectors.base_connector\n"
        "print('importlib.metadata' in sys.modules)\n"
        "core_connectors.base_connector.ConnectorRegistry.list_connectors()\n"
        "print('importlib.metadata' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "True"]
