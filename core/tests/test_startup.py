"""What `core-connectors serve` loads before it answers, and what still works when the optional parts are missing.

Each test runs the command in a fresh interpreter: a probe thread calls ListAgents until the port answers, then
records what the process has imported (and how often it scanned the installed distributions) and stops it.
"""

from __future__ import annotations

import json
import os
import pty
import socket
import subprocess
import sys

import pytest

# Serve until ListAgents answers, then print what is imported and stop. BLOCK names modules made unimportable
# (as if not installed); the entry-point scans are counted by wrapping importlib.metadata.entry_points.
PROBE = r"""
import json, os, sys, threading, time
for name in os.environ.get("BLOCK", "").split():
    sys.modules[name] = None
import importlib.metadata
scans = []
original = importlib.metadata.entry_points
def entry_points(**params):
    scans.append(params)
    return original(**params)
importlib.metadata.entry_points = entry_points
port, argv = int(sys.argv[1]), sys.argv[2:]

def probe():  # its own imports (a gRPC client) are none of the modules the tests look for
    import grpc
    from flyteidl.admin import agent_pb2
    from flyteidl.service import agent_pb2_grpc
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = agent_pb2_grpc.AgentMetadataServiceStub(channel)
        while True:
            try:
                stub.ListAgents(agent_pb2.ListAgentsRequest(), timeout=1)
                break
            except grpc.RpcError:
                time.sleep(0.01)
    seen = sorted(sys.modules)
    extra = {}
    if os.environ.get("METRICS_PORT"):
        import urllib.request
        with urllib.request.urlopen(f"http://127.0.0.1:{os.environ['METRICS_PORT']}/metrics") as r:
            extra["metrics"] = r.read().decode()
    print("PROBE " + json.dumps({"modules": seen, "scans": scans, **extra}), file=sys.__stdout__, flush=True)
    os.kill(os.getpid(), 15)

threading.Thread(target=probe, daemon=True).start()
from core_connectors._cli import main
main(["serve", "--host", "127.0.0.1", "--port", str(port), *argv])
"""

ONLY_FOR_PEOPLE = ("rich", "pygments", "yaml", "core_connectors.local", "core_connectors._scaffold")
ONLY_WHEN_ENABLED = ("prometheus_client", "opentelemetry")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(*argv: str, block: str = "", env: dict[str, str] | None = None) -> tuple[dict, str]:
    full_env = {**os.environ, "BLOCK": block, **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(_free_port()), *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env=full_env,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("PROBE "):
            return json.loads(line[len("PROBE ") :]), proc.stderr
    raise AssertionError(f"serve never answered ListAgents (exit {proc.returncode}):\n{proc.stderr[-3000:]}")


def _loaded(modules: list[str], names: tuple[str, ...]) -> list[str]:
    return [m for m in modules if any(m == n or m.startswith(n + ".") for n in names)]


def test_serve_answers_without_loading_what_only_people_or_metrics_need():
    report, log = _serve("--prometheus-port", "0")
    assert _loaded(report["modules"], ONLY_FOR_PEOPLE + ONLY_WHEN_ENABLED) == []
    assert "core_connectors.server._app" in report["modules"]  # the probe does see the server's imports
    assert "Connectors served" in log  # the plain start-up table, stderr being a pipe


def test_serve_scans_the_installed_distributions_once():
    report, _ = _serve("--prometheus-port", "0")
    assert report["scans"] == [{}]


def test_metrics_are_served_when_a_port_is_given():
    port = str(_free_port())
    report, _ = _serve("--prometheus-port", port, env={"METRICS_PORT": port})
    assert "prometheus_client" in report["modules"]
    assert "flyte_connector_pool_threads" in report["metrics"]


def test_serves_on_asyncio_when_uvloop_is_not_installed():
    _, log = _serve("--prometheus-port", "0", block="uvloop")
    assert "asyncio loop" in log


def test_asking_for_uvloop_when_it_is_not_installed_is_a_clear_error():
    code = "import sys; sys.modules['uvloop'] = None\nfrom core_connectors._cli import main\nmain()"
    argv = ["serve", "--port", "0", "--prometheus-port", "0", "--loop", "uvloop"]
    proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "uvloop is not installed" in proc.stderr
    assert "Traceback" not in proc.stderr


def _on_a_terminal(code: str) -> str:
    """Run `code` with stdout and stderr on a pseudo-terminal; what it printed."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=follower, stderr=follower, env={**os.environ, "COLUMNS": "200"}
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closes when the process ends
            break
        if not chunk:
            break
        chunks.append(chunk)
    proc.wait(timeout=60)
    os.close(leader)
    return b"".join(chunks).decode(errors="replace")


@pytest.mark.parametrize("rich_installed", [True, False])
def test_list_on_a_terminal_draws_rich_tables_or_plain_ones_without_rich(rich_installed):
    block = "" if rich_installed else "import sys; sys.modules['rich'] = None\n"
    out = _on_a_terminal(block + "from core_connectors._cli import main\nmain(['list'])")
    assert "Connectors" in out and "Task category" in out
    assert ("━" in out or "─" in out) is rich_installed, out


def test_a_yaml_template_without_pyyaml_asks_for_the_extra(tmp_path):
    template = tmp_path / "task.yaml"
    template.write_text("type: echo\n")
    code = "import sys; sys.modules['yaml'] = None\nfrom core_connectors._cli import main\nmain()"
    proc = subprocess.run(
        [sys.executable, "-c", code, "run", str(template)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert "pip install 'core-connectors[cli]'" in proc.stderr and "Traceback" not in proc.stderr


def test_a_local_run_without_rich_shows_one_line_per_phase(tmp_path):
    code = """
import sys
sys.modules["rich"] = None
from flyteidl.core import execution_pb2
from core_connectors import Resource, SyncConnectorBase
from core_connectors.local import ConnectorTask

class Echo(SyncConnectorBase):
    name = "Echo"
    def __init__(self):
        super().__init__(task_type_name="echo")
    def do(self, task_template, output_prefix, inputs=None, **kwargs):
        return Resource(phase=execution_pb2.TaskExecution.SUCCEEDED, message="all done")

from core_connectors import ConnectorRegistry
ConnectorRegistry.register(Echo())
ConnectorTask("echo-task", task_type="echo", progress=True).execute()
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "echo-task" in proc.stderr and "SUCCEEDED" in proc.stderr and "all done" in proc.stderr


def test_importing_the_base_classes_leaves_the_registry_and_pathlib_for_later():
    """Every connector module starts with this import: pluggy, logging and pathlib (urllib, ipaddress) wait until a
    registry name is used, and then every name flytekit's module has is there."""
    code = """
import sys
import core_connectors.base_connector as bc
print(sorted(m for m in ("pluggy", "logging", "pathlib", "core_connectors._registry", "grpc") if m in sys.modules))
import core_connectors
assert bc.ConnectorRegistry is core_connectors.ConnectorRegistry
assert [n for n in core_connectors.__all__ if getattr(core_connectors, n, None) is None] == []
assert [n for n in bc.__all__ if getattr(bc, n, None) is None] == []
print(sorted(m for m in ("pluggy", "core_connectors._registry") if m in sys.modules))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:2] == ["[]", "['core_connectors._registry', 'pluggy']"]
