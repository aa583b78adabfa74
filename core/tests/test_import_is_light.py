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
